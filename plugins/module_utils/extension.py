# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Extended source servers: a staging account's servers made recoverable in a target account.

Everything runs with the target account's credentials. The target's own servers are listed once:
that listing proves access (DRS initialized, the role allowed), counts the servers against the
capacity limit, and shows which staging servers are already extended (``stagingArea``), so an
already-extended server is recognised before any create call. Runs from several staging accounts
into one target and region share one ``TargetListing``: the target is listed by the first of them
only, and each run adds the servers it creates, so the next one counts them against the limit. The
error DRS returns for a server extended twice is not documented; it is matched on its code and
confirmed with a fresh listing. Options are checked by ``option_errors`` before any AWS call.
"""

import re

try:
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass  # AnsibleAWSModule reports a missing botocore

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import metrics
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.aws import pages
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.source_servers import FILTER_CHUNK
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.source_servers import list_source_servers

ACCOUNT_ID = re.compile(r"^\d{12}$")
SOURCE_SERVER_ARN = re.compile(r"^arn:aws[a-z-]*:drs:([a-z0-9-]+):(\d{12}):source-server/(s-[0-9a-zA-Z]{17})$")
# ListExtensibleSourceServers takes at most 300 results a page.
EXTENSIBLE_PAGE_SIZE = 300
# DRS tags: keys up to 128 characters, values up to 256, at most 50 per resource; "aws:" is reserved.
MAX_TAG_KEY_LENGTH = 128
MAX_TAG_VALUE_LENGTH = 256
MAX_TAGS = 50
EXTENDED_FROM_TAG = "ExtendedFrom"
DEPLOYMENT_ID_TAG = "DeploymentId"
# Codes DRS has been seen to use for a server that is already extended (undocumented, see above).
ALREADY_EXTENDED_CODES = ("ConflictException", "ValidationException")
EXTENDED = "EXTENDED"
EXTENSION_ERROR = "EXTENSION_ERROR"
SETUP_STEP = (
    "deploy the target account's role with playbooks/setup_accounts.yml (roles/drs_account_setup/files/"
    "target-account-role.yml grants the extension actions)"
)


class ExtensionSetupError(Exception):
    """The target account cannot extend anything: the message says what to set up."""

    def __init__(self, message, error=None):
        super().__init__(message)
        self.error = error
        self.partial = {}


def option_errors(params):
    """What is wrong with the options, each naming the option and the fix; empty when usable."""
    errors = []
    staging = params["staging_account_id"]
    if not ACCOUNT_ID.match(staging or ""):
        errors.append(f"staging_account_id: {staging!r} is not an account id; give the 12 digits, quoted as a string")
    for arn in params.get("source_server_arns") or []:
        match = SOURCE_SERVER_ARN.match(arn)
        if match is None:
            errors.append(
                f"source_server_arns: {arn!r} is not a source server ARN "
                "(arn:aws:drs:<region>:<staging account>:source-server/s-<17 characters>)"
            )
        elif match.group(2) != staging:
            errors.append(f"source_server_arns: {arn} belongs to account {match.group(2)}, not to "
                          f"staging_account_id {staging}; extend each staging account's servers in its own run")
        elif params.get("region") and match.group(1) != params["region"]:
            errors.append(f"source_server_arns: {arn} is in region {match.group(1)}; this run extends in "
                          f"{params['region']}: set region to the servers' region")
    return errors + setting_errors(params)


def setting_errors(params, name=str):
    """What is wrong with the settings an extension shares with a deployment (tags, capacity, waits);
    ``name(option)`` is how an option is called in messages."""
    errors = []
    if params["capacity_limit"] < 1:
        errors.append(f"{name('capacity_limit')}: {params['capacity_limit']} must be at least 1 (DRS allows 300 per "
                      "account and region)")
    for threshold in params["capacity_warning_thresholds"]:
        if not 0 < threshold <= 100:
            errors.append(f"{name('capacity_warning_thresholds')}: {threshold} is not a percentage from 1 to 100")
    for key, value in (params.get("tags") or {}).items():
        errors.extend(_tag_errors(name("tags"), key, value))
    if params["wait_timeout"] < 1:
        errors.append(f"{name('wait_timeout')}: give a number of seconds, at least 1")
    return errors


def _tag_errors(name, key, value):
    if not isinstance(key, str) or not 0 < len(key) <= MAX_TAG_KEY_LENGTH:
        return [f"{name}: the key {key!r} must be 1 to {MAX_TAG_KEY_LENGTH} characters"]
    if key.lower().startswith("aws:"):
        return [f"{name}: the key {key!r} starts with aws:, which AWS reserves; choose another key"]
    if not isinstance(value, str) or len(value) > MAX_TAG_VALUE_LENGTH:
        return [f"{name}: the value of {key!r} must be a string of at most {MAX_TAG_VALUE_LENGTH} characters (quote it)"]
    return []


def server_tags(params):
    """The tags for each extended server: the defaults (unless turned off) under the user's own."""
    tags = {}
    if params["default_tags"]:
        tags[EXTENDED_FROM_TAG] = params["staging_account_id"]
        if params.get("deployment_id"):
            tags[DEPLOYMENT_ID_TAG] = params["deployment_id"]
    tags.update(params.get("tags") or {})
    return tags


def tag_count_error(tags):
    if len(tags) > MAX_TAGS:
        return f"tags: {len(tags)} tags with the defaults; a DRS source server holds at most {MAX_TAGS}"
    return None


def _code(error):
    return error.response.get("Error", {}).get("Code", "") if isinstance(error, ClientError) else ""


def _message(error):
    if isinstance(error, ClientError):
        return error.response.get("Error", {}).get("Message", "") or str(error)
    return str(error)


def setup_error(error, target_account_id, staging_account_id, region, action):
    """The ExtensionSetupError for an error no server can get past, or None."""
    code = _code(error)
    where = f"account {target_account_id or '(target)'} in {region}"
    if code == "UninitializedAccountException":
        return ExtensionSetupError(
            f"Elastic Disaster Recovery is not initialized in target {where}, so nothing can be extended into it. "
            "Initialize it (playbooks/setup_accounts.yml with the target account's drs_initialize set, or the DRS "
            "console's Set default replication settings page) and run again.", error)
    if code in ("AccessDeniedException", "AccessDenied", "UnauthorizedOperation"):
        return ExtensionSetupError(
            f"Access denied while {action} in target {where}: {_message(error)}. Either the role used here lacks the "
            f"extension permissions ({SETUP_STEP}), or staging account {staging_account_id} does not trust the target "
            f"account: in staging account {staging_account_id}, add {target_account_id or 'the target account'} as a "
            "trusted account (DRS console: Settings, Trusted accounts, with the staging account trust role).", error)
    if code == "ResourceNotFoundException":
        return ExtensionSetupError(
            f"Not found while {action} in target {where}: {_message(error)}. Check that staging account "
            f"{staging_account_id} has DRS initialized in {region}, that its agents registered there, and that it "
            "trusts the target account (DRS console of the staging account: Settings, Trusted accounts).", error)
    return None


def _server_fields(server):
    area = server.get("stagingArea") or {}
    return {
        "source_server_id": server.get("sourceServerID"),
        "arn": server.get("arn"),
        "hostname": ((server.get("sourceProperties") or {}).get("identificationHints") or {}).get("hostname"),
        "staging_source_server_arn": area.get("stagingSourceServerArn"),
        "staging_area_status": area.get("status"),
    }


def extended_from(servers, staging_account_id):
    """{staging server ARN: the target's server extended from it} for one staging account."""
    found = {}
    for server in servers:
        area = server.get("stagingArea") or {}
        if area.get("status") in (EXTENDED, EXTENSION_ERROR) and area.get("stagingAccountID") == staging_account_id:
            found[area.get("stagingSourceServerArn")] = server
    return found


def list_extensible(drs, staging_account_id):
    """The staging account's servers not yet extended into this account, in listing order."""
    servers = []
    for page in pages(drs.list_extensible_source_servers, "nextToken",
                      stagingAccountID=staging_account_id, maxResults=EXTENSIBLE_PAGE_SIZE):
        servers.extend(page.get("items", []))
    return servers


def capacity(limit, before, adding, thresholds):
    after = before + adding
    return {
        "limit": limit,
        "before": before,
        "after": after,
        "room_before": max(limit - before, 0),
        "utilization_percent": round(after * 100.0 / limit, 1),
        "thresholds_reached": [t for t in sorted(thresholds) if after * 100.0 >= t * limit],
    }


def capacity_warnings(figures, target_account_id, region, left_out_count):
    where = f"target account {target_account_id} in {region}"
    warnings = [
        f"After extension {where} holds {figures['after']} of its {figures['limit']} source servers "
        f"({figures['utilization_percent']}%), at or above the {threshold}% warning threshold"
        for threshold in figures["thresholds_reached"]
    ]
    if left_out_count:
        warnings.append(
            f"{left_out_count} server(s) were not extended: {where} would exceed its capacity of {figures['limit']} "
            "source servers. Recover them through another target account, or raise the quota and capacity_limit."
        )
    return warnings


class TargetListing:
    """The source servers of one target account in one region (DescribeSourceServers), None until listed."""

    def __init__(self):
        self.servers = None


class Extension:
    """One run: extend a staging account's servers into the target account of ``drs``. ``listing``: the target's
    servers shared with the other runs into it (a TargetListing); by default the run lists them itself."""

    def __init__(self, drs, params, target_account_id, region, clock, listing=None):
        self.drs = drs
        self.listing = listing if listing is not None else TargetListing()
        self.looked = False
        self.params = params
        self.staging = params["staging_account_id"]
        self.target_account_id = target_account_id
        self.region = region
        self.clock = clock
        self.tags = server_tags(params)
        self.result = {"extended": [], "already_extended": [], "failed_servers": [], "left_out": [], "extension_warnings": []}

    def _fatal(self, error, action):
        return setup_error(error, self.target_account_id, self.staging, self.region, action)

    def run(self, check_mode):
        started = self.clock.now()
        existing, already, extensible = self._look()
        if self.params["wait"] and not check_mode:
            # a server that just registered in the staging account may take a moment to become extensible
            deadline = started + self.params["wait_timeout"]
            while self._unknown(already, extensible) and self.clock.now() < deadline:
                self.clock.sleep(min(self.params["poll_interval"], max(deadline - self.clock.now(), 0)))
                existing, already, extensible = self._look()
        candidates = self._candidates(already, extensible)

        before = len(existing)
        room = max(self.params["capacity_limit"] - before, 0)
        planned, beyond = candidates[:room], candidates[room:]
        for item in beyond:
            self._leave_out(item, f"capacity_limit {self.params['capacity_limit']} reached in the target account")
        figures = capacity(self.params["capacity_limit"], before, len(planned),
                           self.params["capacity_warning_thresholds"])
        self.result["capacity"] = figures
        self.result["tags"] = self.tags

        if check_mode:
            self.result["would_extend"] = [{"staging_source_server_arn": i["arn"], "hostname": i.get("hostname")}
                                           for i in planned]
            self.result["extension_warnings"] = capacity_warnings(figures, self.target_account_id, self.region, len(beyond))
            self.result["changed"] = bool(planned)
            return self._finish(started)

        created = self._create_all(planned)
        if self.params["wait"] and created:
            self._confirm(created)
        figures = capacity(self.params["capacity_limit"], before, len(created),
                           self.params["capacity_warning_thresholds"])
        self.result["capacity"] = figures
        warnings = capacity_warnings(figures, self.target_account_id, self.region, len(self.result["left_out"]))
        self.result["extension_warnings"] = warnings + self.result["extension_warnings"]
        self.result["changed"] = bool(created)
        return self._finish(started)

    def _look(self):
        """The target's servers (listed unless another run into the target listed them, and again when the run
        looks once more), those extended from the staging account, and the staging servers extensible."""
        if self.listing.servers is None or self.looked:
            try:
                self.listing.servers = list_source_servers(self.drs)
            except (BotoCoreError, ClientError) as error:
                raise self._fatal(error, "listing the target account's source servers") or error
        self.looked = True
        existing = self.listing.servers
        try:
            extensible = list_extensible(self.drs, self.staging)
        except (BotoCoreError, ClientError) as error:
            raise self._fatal(error, f"listing the extensible servers of staging account {self.staging}") or error
        return existing, extended_from(existing, self.staging), extensible

    def _unknown(self, already, extensible):
        known = set(already) | {item["arn"] for item in extensible}
        return [arn for arn in self.params.get("source_server_arns") or [] if arn not in known]

    def _finish(self, started):
        result = self.result
        result["counts"] = {"extended": len(result["extended"]), "already_extended": len(result["already_extended"]),
                            "failed": len(result["failed_servers"]), "left_out": len(result["left_out"])}
        if "would_extend" in result:
            result["counts"]["would_extend"] = len(result["would_extend"])
        result["duration_seconds"] = round(self.clock.now() - started, 3)
        return result

    def _candidates(self, already, extensible):
        """The servers to create, in listing order; already-extended and unknown ones are reported now."""
        by_arn = {item["arn"]: item for item in extensible}
        wanted = self.params.get("source_server_arns")
        if not wanted:
            for arn, server in already.items():
                self._already(server, arn)
            return [item for item in extensible if item["arn"] not in already]
        candidates = []
        for arn in dict.fromkeys(wanted):
            if arn in already:
                self._already(already[arn], arn)
            elif arn in by_arn:
                candidates.append(by_arn[arn])
            else:
                self.result["failed_servers"].append({
                    "staging_source_server_arn": arn, "hostname": None, "error_code": "NotExtensible",
                    "message": f"{arn} is not among the servers staging account {self.staging} can extend into this "
                               f"account in {self.region}: it does not exist there (yet), or it is itself an extended "
                               "server. Check that its agent registered in the staging account.",
                })
        return candidates

    def _already(self, server, arn):
        fields = _server_fields(server)
        fields["staging_source_server_arn"] = arn
        self.result["already_extended"].append(fields)

    def _leave_out(self, item, reason):
        self.result["left_out"].append({"staging_source_server_arn": item["arn"], "hostname": item.get("hostname"),
                                        "reason": reason})

    def _create_all(self, planned):
        created = self.result["extended"]
        for position, item in enumerate(planned):
            try:
                response = self.drs.create_extended_source_server(sourceServerArn=item["arn"], aws_retry=True,
                                                                  **({"tags": self.tags} if self.tags else {}))
            except (BotoCoreError, ClientError) as error:
                fatal = self._fatal(error, f"extending {item['arn']}")
                if fatal is not None and _code(error) != "ResourceNotFoundException":
                    # no server gets past this error: the ones not tried fail with it too
                    for rest in planned[position:]:
                        self._fail(rest, error, fatal)
                    fatal.partial = self.result
                    raise fatal
                if _code(error) == "ServiceQuotaExceededException":
                    for rest in planned[position:]:
                        self._leave_out(rest, f"the service refused more source servers: {_message(error)}")
                    break
                if _code(error) in ALREADY_EXTENDED_CODES and self._confirm_already(item["arn"]):
                    continue
                self._fail(item, error, fatal)
                continue
            server = response.get("sourceServer", {})
            self.listing.servers.append(server)
            fields = _server_fields(server)
            fields["staging_source_server_arn"] = item["arn"]
            fields["hostname"] = fields["hostname"] or item.get("hostname")
            created.append(fields)
        return created

    def _confirm_already(self, arn):
        """Whether ``arn`` turns out to be extended already (the create call's error said so)."""
        found = extended_from(list_source_servers(self.drs, staging_account_ids=[self.staging]), self.staging)
        if arn in found:
            self._already(found[arn], arn)
            self.listing.servers.append(found[arn])  # created by this run after all, its response lost
            return True
        return False

    def _fail(self, item, error, setup=None):
        entry = {"staging_source_server_arn": item["arn"], "hostname": item.get("hostname"),
                 "error_code": _code(error) or type(error).__name__, "message": _message(error)}
        if setup is not None:
            entry["remediation"] = str(setup)
        self.result["failed_servers"].append(entry)

    def _confirm(self, created):
        """Wait until DescribeSourceServers shows every created server as extended."""
        deadline = self.clock.now() + self.params["wait_timeout"]
        pending = {fields["source_server_id"]: fields for fields in created}
        while pending:
            ids = sorted(pending)
            for start in range(0, len(ids), FILTER_CHUNK):
                for server in list_source_servers(self.drs, source_server_ids=ids[start:start + FILTER_CHUNK]):
                    status = (server.get("stagingArea") or {}).get("status")
                    fields = pending.get(server.get("sourceServerID"))
                    if fields is None or status not in (EXTENDED, EXTENSION_ERROR):
                        continue
                    fields["staging_area_status"] = status
                    del pending[server["sourceServerID"]]
            if not pending or self.clock.now() >= deadline:
                break
            self.clock.sleep(min(self.params["poll_interval"], max(deadline - self.clock.now(), 0)))
        for fields in created:
            fields["confirmed"] = fields["source_server_id"] not in pending and fields["staging_area_status"] == EXTENDED
        if pending:
            self.result["extension_warnings"].append(
                f"Waited {self.params['wait_timeout']} s for DescribeSourceServers to show {len(pending)} extended "
                f"server(s) ({', '.join(sorted(pending))}); they were created but not seen yet: check them with "
                "drs_source_server_info.")
        broken = [fields for fields in created if fields["staging_area_status"] == EXTENSION_ERROR]
        for fields in broken:
            created.remove(fields)
            self.result["failed_servers"].append({
                "staging_source_server_arn": fields["staging_source_server_arn"], "hostname": fields["hostname"],
                "error_code": EXTENSION_ERROR, "source_server_id": fields["source_server_id"],
                "message": "the extended server was created but DRS reports EXTENSION_ERROR (its staging server may "
                           "have been deleted); delete it in the target account and extend again",
            })


def extend(drs, params, target_account_id, region, check_mode, warn, clock, cloudwatch=None, listing=None):
    """Extend, then publish the metrics when a namespace is given (a failure to publish only warns). ``clock``
    (module_utils.clock) paces the waits; ``listing``: see ``Extension``."""
    result = Extension(drs, params, target_account_id, region, clock, listing).run(check_mode)
    if cloudwatch is not None and params.get("metrics_namespace") and not check_mode:
        try:
            metrics.put(cloudwatch, params["metrics_namespace"],
                        metrics.extension_metrics(result, params["staging_account_id"]))
            result["metrics_published"] = True
        except (BotoCoreError, ClientError) as error:
            result["metrics_published"] = False
            result["extension_warnings"].append(f"The extension metrics could not be sent to CloudWatch: {_message(error)}")
    for message in result["extension_warnings"]:
        warn(message)
    return result
