# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Install the DRS replication agent through SSM Run Command, and prove each install in DRS.

The engine costs a number of AWS calls that grows with batches, not with instances per poll:
SendCommand takes 50 instances, one paginated ListCommandInvocations per command and poll reads a
whole batch, full output is fetched only for failures, and registrations are confirmed with one
paginated DRS listing per poll, matched locally on the instance id.
"""

import json
import os
import re
import tempfile
import threading
import time

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports a missing botocore

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import failures
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.aws import pages
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.source_servers import (
    is_stale,
    list_source_servers,
    servers_by_instance_id,
)

SAME_ACCOUNT_DOCUMENT = "AWSDisasterRecovery-InstallDRAgentOnInstance"
CROSS_ACCOUNT_DOCUMENT = "DRSOrchestration-InstallDRAgentCrossAccount"
PLUGIN_BY_PLATFORM = {"Linux": "InstallLinuxAgent", "Windows": "InstallWindowsAgent"}
SEND_BATCH_SIZE = 50  # SendCommand takes at most 50 InstanceIds
DESCRIBE_CHUNK_SIZE = 50  # one DescribeInstanceInformation page (MaxResults 50) per chunk
TAIL_LINES = 20
# The end of a run is near enough to look more often when at most this many invocations, or this share
# of those sent, are still running: installs of like duration end together, and the last tenth soon after.
TAIL_INSTANCES = 2
TAIL_SHARE = 0.1
COMMAND_COMMENT = "DRS agent install (drs_orchestration.agent_deployer)"

INSTALLED = "installed"
ALREADY_REGISTERED = "already_registered"
SKIPPED_SSM_OFFLINE = "skipped_ssm_offline"
SKIPPED_NOT_MANAGED = "skipped_not_managed"
FAILED = "failed"
TIMED_OUT = "timed_out"
NOT_REGISTERED_AFTER_SUCCESS = "not_registered_after_success"
STATUSES = (INSTALLED, ALREADY_REGISTERED, SKIPPED_SSM_OFFLINE, SKIPPED_NOT_MANAGED, FAILED, TIMED_OUT,
            NOT_REGISTERED_AFTER_SUCCESS)
ATTEMPTED = (INSTALLED, FAILED, TIMED_OUT, NOT_REGISTERED_AFTER_SUCCESS)
UNSUCCESSFUL = (FAILED, TIMED_OUT, NOT_REGISTERED_AFTER_SUCCESS)

IN_FLIGHT_STATUSES = ("Pending", "InProgress", "Delayed", "Cancelling")

INSTANCE_ID_PATTERN = re.compile(r"^i-[0-9a-f]{8,17}$")
ACCOUNT_ID_PATTERN = re.compile(r"^\d{12}$")
REGION_PATTERN = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
DOCUMENT_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_\-.:/]{3,128}$")
DOCUMENT_VERSION_PATTERN = re.compile(r"^(\$LATEST|\$DEFAULT|[1-9][0-9]*)$")
MAX_CONCURRENCY_PATTERN = re.compile(r"^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$")
MAX_ERRORS_PATTERN = re.compile(r"^([1-9][0-9]*|0|[1-9][0-9]%|[0-9]%|100%)$")
# Tags travel as KEY=VALUE,KEY=VALUE into a double-quoted shell (and PowerShell) string and on to
# the installer's --tags: no separators inside keys or values, nothing the shells expand or quote.
# Inner spaces are fine; outer ones would be trimmed by the installer and change the tag.
TAG_TEXT_PATTERN = re.compile(r"^([A-Za-z0-9_.:/+@-]([A-Za-z0-9 _.:/+@-]*[A-Za-z0-9_.:/+@-])?)?$")
MAX_TAG_KEY_LENGTH = 128
MAX_TAG_VALUE_LENGTH = 256
MAX_AGENT_TAGS = 50


class InstallRefused(Exception):
    """SSM refused to send the install (document, parameters, permissions): nothing more is sent."""

    def __init__(self, message, error, result):
        super().__init__(message)
        self.message = message
        self.error = error
        self.result = result


# --- validation --------------------------------------------------------------------------------

def tag_errors(tags):
    """What is wrong with ``agent_tags``, one message per problem."""
    errors = []
    if len(tags) > MAX_AGENT_TAGS:
        errors.append(f"agent_tags has {len(tags)} tags; a DRS source server takes at most {MAX_AGENT_TAGS}")
    allowed = "letters, digits, inner spaces and _ . : / + @ -"
    for key, value in tags.items():
        if not isinstance(key, str) or not key or len(key) > MAX_TAG_KEY_LENGTH or not TAG_TEXT_PATTERN.match(key):
            errors.append(f"agent_tags key {key!r} must be 1 to {MAX_TAG_KEY_LENGTH} of {allowed}")
        elif key.lower().startswith("aws:"):
            errors.append(f"agent_tags key {key!r} uses the reserved prefix aws:")
        if not isinstance(value, str):
            errors.append(f"agent_tags value of {key!r} must be a string (quote it: {key}: \"{value}\")")
        elif len(value) > MAX_TAG_VALUE_LENGTH or not TAG_TEXT_PATTERN.match(value):
            errors.append(f"agent_tags value {value!r} of {key!r} must be at most {MAX_TAG_VALUE_LENGTH} of {allowed}")
    return errors


def format_tags(tags):
    """``agent_tags`` as the install documents' ``Tags`` parameter: ``KEY=VALUE,KEY=VALUE``."""
    return ",".join(f"{key}={value}" for key, value in tags.items())


def option_errors(params):
    """Every problem with the module's options, found before any AWS call."""
    errors = []
    instance_ids = params["instance_ids"]
    if not instance_ids:
        errors.append("instance_ids is empty: give at least one EC2 instance id")
    bad_ids = [instance_id for instance_id in instance_ids if not INSTANCE_ID_PATTERN.match(str(instance_id))]
    if bad_ids:
        errors.append(f"instance_ids {bad_ids} are not EC2 instance ids (i- followed by 8 or 17 hex digits)")
    if params.get("drs_region") and not REGION_PATTERN.match(params["drs_region"]):
        errors.append(f"drs_region {params['drs_region']!r} is not an AWS region name such as us-east-1")
    staging = params.get("staging_account_id")
    if staging is not None and not ACCOUNT_ID_PATTERN.match(staging):
        errors.append(f"staging_account_id {staging!r} must be 12 digits (quote it in YAML)")
    staging_keys = [params.get(name) for name in ("staging_access_key", "staging_secret_key")]
    if any(staging_keys) and not all(staging_keys):
        errors.append("staging_access_key and staging_secret_key go together: give both or neither")
    if params.get("staging_session_token") and not all(staging_keys):
        errors.append("staging_session_token needs staging_access_key and staging_secret_key")
    if any(staging_keys) and staging is None:
        errors.append("staging credentials were given without staging_account_id: name the account they belong to")
    if params.get("document_name") is not None and not DOCUMENT_NAME_PATTERN.match(params["document_name"]):
        errors.append(f"document_name {params['document_name']!r} is not an SSM document name")
    if params.get("document_version") is not None and not DOCUMENT_VERSION_PATTERN.match(params["document_version"]):
        errors.append(f"document_version {params['document_version']!r} must be $LATEST, $DEFAULT or a version number")
    if not MAX_CONCURRENCY_PATTERN.match(params["max_concurrency"]):
        errors.append(f"max_concurrency {params['max_concurrency']!r} must be a number from 1 or a percentage like 10%")
    if not MAX_ERRORS_PATTERN.match(params["max_errors"]):
        errors.append(f"max_errors {params['max_errors']!r} must be a number from 0 or a percentage like 10%")
    for name in ("timeout", "poll_interval", "registration_timeout"):
        if params[name] <= 0:
            errors.append(f"{name} must be a positive number of seconds, not {params[name]}")
    if params["ssm_online_timeout"] < 0:
        errors.append(f"ssm_online_timeout must be 0 (look once) or more seconds, not {params['ssm_online_timeout']}")
    if not 0 <= params["max_failure_rate"] <= 1:
        errors.append(f"max_failure_rate must be between 0 and 1, not {params['max_failure_rate']}")
    errors.extend(tag_errors(params.get("agent_tags") or {}))
    return errors


# --- pure planning -----------------------------------------------------------------------------

def chunks(items, size):
    return [items[start:start + size] for start in range(0, len(items), size)]


def send_batches(new_ids, registered_ids, size=SEND_BATCH_SIZE):
    """SendCommand batches as (instance ids, with tags): tags only for servers that are new to DRS,
    because the installer refuses --tags for a server that is already registered."""
    return [(batch, True) for batch in chunks(list(new_ids), size)] + \
        [(batch, False) for batch in chunks(list(registered_ids), size)]


def split_registered(instance_ids, live_servers, reinstall):
    """(already registered {id: server}, new ids, registered ids to re-install)."""
    already, new, again = {}, [], []
    for instance_id in instance_ids:
        server = live_servers.get(instance_id)
        if server is None:
            new.append(instance_id)
        elif reinstall:
            again.append(instance_id)
        else:
            already[instance_id] = server
    return already, new, again


def ssm_readiness(instance_ids, information):
    """(online ids, {offline id: reason}, not managed ids) from DescribeInstanceInformation entries."""
    online, offline, unmanaged = [], {}, []
    for instance_id in instance_ids:
        info = information.get(instance_id)
        if info is None:
            unmanaged.append(instance_id)
        elif info.get("PingStatus") == "Online":
            online.append(instance_id)
        else:
            offline[instance_id] = offline_reason(info)
    return online, offline, unmanaged


def offline_reason(info):
    last_ping = info.get("LastPingDateTime")
    seen = f", last ping {last_ping.isoformat() if hasattr(last_ping, 'isoformat') else last_ping}" if last_ping else ""
    return f"SSM ping status is {info.get('PingStatus')}{seen}: the SSM agent is not connected"


NOT_MANAGED_REASON = ("not managed by Systems Manager in this account and region (no SSM agent registration, "
                      "or the instance profile lacks AmazonSSMManagedInstanceCore)")


def summarize(results):
    """Counts per status, attempts and rates over a list of results."""
    counts = dict.fromkeys(STATUSES, 0)
    for result in results:
        counts[result["status"]] += 1
    attempted = sum(counts[status] for status in ATTEMPTED)
    unsuccessful = sum(counts[status] for status in UNSUCCESSFUL)
    return {
        "counts": counts,
        "attempted": attempted,
        "success_rate": round(counts[INSTALLED] / attempted, 4) if attempted else 1.0,
        "failure_rate": round(unsuccessful / attempted, 4) if attempted else 0.0,
    }


def top_categories(results, limit=3):
    """The most frequent error categories among unsuccessful results, as ``name: count``."""
    tally = {}
    for result in results:
        if result["status"] in UNSUCCESSFUL:
            tally[result["error_category"]] = tally.get(result["error_category"], 0) + 1
    ranked = sorted(tally.items(), key=lambda item: (-item[1], item[0]))[:limit]
    return ", ".join(f"{category}: {count}" for category, count in ranked)


def tail(text, lines=TAIL_LINES):
    if not text:
        return ""
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


# --- connections -------------------------------------------------------------------------------

class TargetError(Exception):
    """One target cannot be installed as given (its credentials or document); nothing was sent to it."""


def connect(factory, settings):
    """(SSM client, DRS client of the account agents register in, that account's id, cross-account)
    for one target. Cross-account needs credentials in the staging account, checked here so that
    wrong ones fail before anything is sent rather than as unconfirmed registrations.

    ``settings["account_id"]``, when given, is the account of the target's credentials (known from
    the role that was assumed): it spares the GetCallerIdentity that would otherwise find it.
    """
    credentials = {name: settings.get(name) for name in ("access_key", "secret_key", "session_token")}
    ssm = factory.client("ssm", region=settings.get("region"), credentials=credentials)
    staging = settings["staging_account_id"]
    if staging is None:
        return ssm, factory.client("drs", region=settings["drs_region"], credentials=credentials), None, False
    own_account = settings.get("account_id") or factory.client(
        "sts", region=settings.get("region"), credentials=credentials).get_caller_identity(aws_retry=True)["Account"]
    if staging == own_account:
        return ssm, factory.client("drs", region=settings["drs_region"], credentials=credentials), staging, False
    if not settings["staging_access_key"]:
        raise TargetError(
            f"staging_account_id {staging} is not the account of the module's credentials ({own_account}): give "
            "staging_access_key, staging_secret_key (and staging_session_token) for a role in the staging account "
            "so that registrations can be confirmed in its DRS")
    staging_keys = {"access_key": settings["staging_access_key"], "secret_key": settings["staging_secret_key"],
                    "session_token": settings["staging_session_token"]}
    staging_sts = factory.client("sts", region=settings.get("region"), credentials=staging_keys)
    staging_account = staging_sts.get_caller_identity(aws_retry=True)["Account"]
    if staging_account != staging:
        raise TargetError(f"the staging credentials belong to account {staging_account}, not to staging_account_id "
                          f"{staging}: give credentials for a role in {staging}")
    drs = factory.client("drs", region=settings["drs_region"], credentials=staging_keys)
    return ssm, drs, staging, True


def choose_document(settings, staging_account, cross_account):
    """The install document: the option, or the default for same- or cross-account installs."""
    if settings["document_name"] is None:
        return CROSS_ACCOUNT_DOCUMENT if cross_account else SAME_ACCOUNT_DOCUMENT
    if cross_account and settings["document_name"] == SAME_ACCOUNT_DOCUMENT:
        raise TargetError(f"{SAME_ACCOUNT_DOCUMENT} has no AccountId parameter and cannot register agents in staging "
                          f"account {staging_account}: leave document_name out to use {CROSS_ACCOUNT_DOCUMENT}")
    return settings["document_name"]


AWS_ERROR_MESSAGE = ("DRS agent install stopped on an AWS error: check the credentials' permissions (SSM "
                     "describe/send/list/get in the source account, DRS describe in the staging account)")


class TargetOutcome:
    """How one target's install ended: its report, or why it stopped (message, AWS error, partial result)."""

    def __init__(self, settings, report=None, message=None, error=None, partial=None):
        self.settings = settings
        self.report = report
        self.message = message
        self.error = error
        self.partial = partial or {}

    @property
    def failed(self):
        return self.message is not None

    def as_result(self, name):
        """The target's entry of the module's ``targets`` return value (no credentials)."""
        result = {"name": name, "region": self.settings.get("region"), "instance_ids": self.settings["instance_ids"]}
        if self.failed:
            result.update(self.partial)
            result.setdefault("results", [])
            result.update(failed=True, msg=self.message)
            if self.error is not None:
                result["msg"] = f"{self.message}: {self.error}"
            for key, value in summarize(result["results"]).items():
                result.setdefault(key, value)
            result.setdefault("commands", [])
            result.setdefault("changed", bool(result["commands"]))
            result.setdefault("plan", None)
        else:
            result.update(self.report, failed=False)
        return result


def install_target(factory, settings, check_mode, clock=time.monotonic, sleep=time.sleep):
    """Plan, send, follow and confirm the installs of one target (one account and region); never raises
    for the target's own problems, so that the other targets of the run go on."""
    try:
        ssm, drs, staging_account, cross_account = connect(factory, settings)
        settings = dict(settings, document_name=choose_document(settings, staging_account, cross_account))
        report = AgentInstall(ssm, drs, settings, cross_account, clock=clock, sleep=sleep).run(check_mode)
    except TargetError as error:
        return TargetOutcome(settings, message=str(error))
    except InstallRefused as refused:
        return TargetOutcome(settings, message=refused.message, error=refused.error, partial=refused.result)
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
        return TargetOutcome(settings, message=AWS_ERROR_MESSAGE, error=error)
    if report["failure_rate"] > settings["max_failure_rate"]:
        unsuccessful = sum(report["counts"][status] for status in UNSUCCESSFUL)
        message = (f"{unsuccessful} of {report['attempted']} attempted instances did not install (failure rate "
                   f"{report['failure_rate']} > max_failure_rate {settings['max_failure_rate']}); top causes: "
                   f"{top_categories(report['results'])}. See results[].remediation.")
        return TargetOutcome(settings, message=message, partial=report)
    return TargetOutcome(settings, report=report)


def install_targets(factory, targets, check_mode):
    """Every target at once, each followed in its own thread with its own clients; the outcomes in the
    order of ``targets``. One target is simply followed in the calling thread."""
    if len(targets) == 1:
        return [install_target(factory, targets[0], check_mode)]
    outcomes = [None] * len(targets)

    def follow(index):
        try:
            outcomes[index] = install_target(factory, targets[index], check_mode)
        except Exception as error:  # pylint: disable=broad-except
            # a bug must not leave the other targets without an answer
            outcomes[index] = TargetOutcome(targets[index], message="the install of this target stopped unexpectedly",
                                            error=f"{type(error).__name__}: {error}")

    threads = [threading.Thread(target=follow, args=(index,), name=f"drs-install-{index}", daemon=True)
               for index in range(len(targets))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def merge_reports(results):
    """The run's totals over the targets' results: every instance result, counts, rates, commands, plans."""
    every = [entry for result in results for entry in result.get("results") or []]
    merged = {"results": every, "commands": [command for result in results for command in result.get("commands") or []]}
    merged["changed"] = bool(merged["commands"])
    plans = [result.get("plan") for result in results if result.get("plan")]
    merged["plan"] = {key: [entry for plan in plans for entry in plan[key]]
                      for key in ("would_install", "would_reinstall", "would_skip")}
    merged.update(summarize(every))
    return merged


# --- the engine --------------------------------------------------------------------------------

class AgentInstall:
    """One run of the module: plan, send, poll, confirm; every instance ends with one result."""

    def __init__(self, ssm, drs, settings, cross_account, clock=time.monotonic, sleep=time.sleep):
        self.ssm = ssm
        self.drs = drs
        self.settings = settings
        self.cross_account = cross_account
        self.clock = clock
        self.sleep = sleep
        self.started = clock()
        staging = settings["staging_account_id"]
        self.destination = f"account {staging}" if staging else "the instances' account"
        self.results = {}
        self.platforms = {}
        self.waiting_for_ssm = {}
        self.commands = []
        self.open_invocations = {}  # command id -> {instance id: last (Status, StatusDetails)}
        self.output_to_fetch = {}  # instance id -> (command id, Status, StatusDetails)
        self.awaiting_registration = {}  # instance id -> (command id, its deadline to register, after SSM's Success)
        self.command_of = {}
        self.registered = {}  # instance id -> source server id, for re-installs
        self.plan = None

    # --- the run ---

    def run(self, check_mode):
        instance_ids = list(dict.fromkeys(self.settings["instance_ids"]))
        try:
            servers = list_source_servers(self.drs, instance_ids=instance_ids)
        except botocore.exceptions.ClientError as error:
            if error_code(error) != "UninitializedAccountException":
                raise
            return self._uninitialized(instance_ids)
        live = {iid: server for iid, server in servers_by_instance_id(servers).items() if not is_stale(server)}
        already, new, again = split_registered(instance_ids, live, self.settings["reinstall"])
        for instance_id, server in already.items():
            state = server.get("dataReplicationInfo", {}).get("dataReplicationState")
            self._settle(instance_id, ALREADY_REGISTERED, source_server_id=server.get("sourceServerID"),
                         reason=f"registered in DRS, replication state {state} (reinstall is false)")
        self.registered = {iid: live[iid].get("sourceServerID") for iid in again}

        candidates = new + again
        information = self._describe_managed(candidates)
        online, offline, unmanaged = ssm_readiness(candidates, information)
        self.plan = self._plan(already, new, again, online, offline, unmanaged)
        if check_mode:
            for instance_id in unmanaged:
                self._settle(instance_id, SKIPPED_NOT_MANAGED, reason=NOT_MANAGED_REASON)
            for instance_id, reason in offline.items():
                self._settle(instance_id, SKIPPED_SSM_OFFLINE, reason=reason)
            return self._report()

        self.waiting_for_ssm = {iid: offline.get(iid, NOT_MANAGED_REASON) for iid in candidates if iid not in online}
        self._send(online)
        self._follow()
        return self._report()

    def _follow(self):
        deadline = self.started + self.settings["timeout"]
        ssm_deadline = self.started + self.settings["ssm_online_timeout"]
        while True:
            now = self.clock()
            if self.waiting_for_ssm and now >= ssm_deadline:
                self._give_up_on_ssm()
            self._write_progress()
            if not (self.waiting_for_ssm or self.open_invocations or self.output_to_fetch or self.awaiting_registration):
                return
            if now >= deadline:
                self._time_out()
                self._write_progress()
                return
            self.sleep(max(self._next_look(now, ssm_deadline, deadline) - now, 0))
            if self.waiting_for_ssm:
                self._recheck_ssm()
            self._poll_invocations()
            self._fetch_outputs()
            self._confirm_registrations()

    def _next_look(self, now, ssm_deadline, deadline):
        """When to look again: after the poll interval, or sooner when something falls due before it (an
        instance still unregistered at its registration deadline, instances still offline at the SSM deadline)
        so that it is settled then rather than at the next poll; never after the run's deadline."""
        due = [now + self._next_interval(), deadline]
        due.extend(registration_deadline for _command_id, registration_deadline in self.awaiting_registration.values())
        if self.waiting_for_ssm:
            due.append(ssm_deadline)
        return min(due)

    def _next_interval(self):
        """The poll interval, shortened at the end of the run: when at most TAIL_INSTANCES invocations, or
        TAIL_SHARE of those sent, are still running in SSM, or only registrations are left to confirm, the end
        is near and a short look (a third of the interval, at least a second) notices it sooner for a few
        calls more."""
        interval = self.settings["poll_interval"]
        if self.waiting_for_ssm:
            return interval
        in_flight = sum(len(still_open) for still_open in self.open_invocations.values()) + len(self.output_to_fetch)
        if in_flight <= max(TAIL_INSTANCES, TAIL_SHARE * len(self.command_of)):
            return min(interval, max(1.0, interval / 3))
        return interval

    # --- SSM readiness ---

    def _describe_managed(self, instance_ids):
        found = {}
        for chunk in chunks(instance_ids, DESCRIBE_CHUNK_SIZE):
            filters = [{"Key": "InstanceIds", "Values": chunk}]
            for page in pages(self.ssm.describe_instance_information, Filters=filters, MaxResults=DESCRIBE_CHUNK_SIZE):
                for info in page["InstanceInformationList"]:
                    found[info["InstanceId"]] = info
                    self.platforms[info["InstanceId"]] = info.get("PlatformType")
        return found

    def _recheck_ssm(self):
        information = self._describe_managed(list(self.waiting_for_ssm))
        online, offline, unmanaged = ssm_readiness(list(self.waiting_for_ssm), information)
        for instance_id in online:
            del self.waiting_for_ssm[instance_id]
        self.waiting_for_ssm.update(offline)
        self.waiting_for_ssm.update((instance_id, NOT_MANAGED_REASON) for instance_id in unmanaged)
        self._send(online)

    def _give_up_on_ssm(self):
        waited = self.settings["ssm_online_timeout"]
        for instance_id, reason in self.waiting_for_ssm.items():
            if reason == NOT_MANAGED_REASON:
                self._settle(instance_id, SKIPPED_NOT_MANAGED, reason=f"{reason}; waited {waited} s")
            else:
                self._settle(instance_id, SKIPPED_SSM_OFFLINE, reason=f"{reason}; waited {waited} s for Online")
        self.waiting_for_ssm = {}

    # --- sending ---

    def _parameters(self, with_tags):
        parameters = {"Region": [self.settings["drs_region"]]}
        tags = format_tags(self.settings["agent_tags"] or {})
        if with_tags and tags:
            parameters["Tags"] = [tags]
        if self.cross_account:
            parameters["AccountId"] = [self.settings["staging_account_id"]]
        return parameters

    def _send(self, instance_ids):
        new = [iid for iid in instance_ids if iid not in self.registered]
        again = [iid for iid in instance_ids if iid in self.registered]
        for batch, with_tags in send_batches(new, again):
            self._send_batch(batch, with_tags)

    def _send_batch(self, batch, with_tags):
        request = {
            "DocumentName": self.settings["document_name"],
            "InstanceIds": batch,
            "Parameters": self._parameters(with_tags),
            "MaxConcurrency": self.settings["max_concurrency"],
            "MaxErrors": self.settings["max_errors"],
            "Comment": COMMAND_COMMENT,
        }
        if self.settings["document_version"]:
            request["DocumentVersion"] = self.settings["document_version"]
        try:
            command = self.ssm.send_command(aws_retry=True, **request)["Command"]
        except botocore.exceptions.ClientError as error:
            if error_code(error) != "InvalidInstanceId":
                raise InstallRefused(self._refusal(error), error, self._report()) from error
            if len(batch) == 1:
                # the instance left SSM (stopped, terminated, deregistered) between the check and the send
                self._settle(batch[0], FAILED, error_category=failures.SSM_DELIVERY,
                             ssm_status_details=error.response["Error"].get("Message"),
                             reason="SendCommand refused the instance (InvalidInstanceId)")
                return
            for instance_id in batch:  # find which instances SSM refused; the others still go
                self._send_batch([instance_id], with_tags)
            return
        command_id = command["CommandId"]
        self.commands.append({"command_id": command_id, "instance_ids": list(batch), "with_tags": with_tags,
                              "document_name": command.get("DocumentName"), "parameters": request["Parameters"]})
        self.open_invocations[command_id] = {iid: ("Pending", "Pending") for iid in batch}
        for instance_id in batch:
            self.command_of[instance_id] = command_id

    def _refusal(self, error):
        """What to fix when SendCommand refuses the document or its parameters."""
        code = error_code(error)
        document = self.settings["document_name"]
        if code in ("InvalidDocument", "InvalidDocumentVersion"):
            if document == CROSS_ACCOUNT_DOCUMENT:
                return (f"SSM document {document} is not in the source account and region: create it with the "
                        "drs_account_setup role (playbooks/setup_accounts.yml), then re-run")
            version = self.settings["document_version"] or "$DEFAULT"
            return f"SSM document {document} (version {version}) is not usable: check document_name and document_version"
        if code == "InvalidParameters":
            return (f"SSM document {document} refused the parameters {sorted(self._parameters(True))}: use a document "
                    "that defines Region, Tags and, cross-account, AccountId")
        return f"SSM refused to send {document}: check the source credentials' ssm:SendCommand permission"

    # --- polling ---

    def _poll_invocations(self):
        for command_id in list(self.open_invocations):
            still_open = self.open_invocations[command_id]
            for page in pages(self.ssm.list_command_invocations, CommandId=command_id, MaxResults=50):
                for invocation in page["CommandInvocations"]:
                    instance_id = invocation["InstanceId"]
                    if instance_id not in still_open:
                        continue
                    status, details = invocation["Status"], invocation.get("StatusDetails", invocation["Status"])
                    if status in IN_FLIGHT_STATUSES:
                        still_open[instance_id] = (status, details)
                        continue
                    del still_open[instance_id]
                    if status == "Success":
                        self.awaiting_registration[instance_id] = (command_id, self.clock() + self.settings["registration_timeout"])
                    else:
                        self.output_to_fetch[instance_id] = (command_id, status, details)
            if not still_open:
                del self.open_invocations[command_id]

    def _invocation_output(self, command_id, instance_id):
        """GetCommandInvocation of the platform's install step, or None while SSM cannot show it yet."""
        request = {"CommandId": command_id, "InstanceId": instance_id}
        plugin = PLUGIN_BY_PLATFORM.get(self.platforms.get(instance_id))
        if plugin:
            request["PluginName"] = plugin
        try:
            return self.ssm.get_command_invocation(aws_retry=True, **request)
        except botocore.exceptions.ClientError as error:
            if error_code(error) == "InvocationDoesNotExist":
                return None
            raise

    def _fetch_outputs(self):
        for instance_id, (command_id, status, details) in list(self.output_to_fetch.items()):
            output = self._invocation_output(command_id, instance_id)
            if output is None:
                continue
            del self.output_to_fetch[instance_id]
            details = output.get("StatusDetails") or details
            stdout, stderr = output.get("StandardOutputContent", ""), output.get("StandardErrorContent", "")
            category = failures.classify(details, stdout, stderr)
            self._settle(instance_id, FAILED, command_id=command_id, ssm_status=output.get("Status", status),
                         ssm_status_details=details, response_code=output.get("ResponseCode"),
                         error_category=category, stderr_tail=tail(stderr), stdout_tail=tail(stdout),
                         reason=first_error_line(stderr) or f"SSM reported {status} ({details})")

    def _confirm_registrations(self):
        if not self.awaiting_registration:
            return
        servers = list_source_servers(self.drs, instance_ids=list(self.awaiting_registration))
        live = {iid: server for iid, server in servers_by_instance_id(servers).items() if not is_stale(server)}
        now = self.clock()
        for instance_id, (command_id, registration_deadline) in list(self.awaiting_registration.items()):
            server = live.get(instance_id)
            if server is not None:
                del self.awaiting_registration[instance_id]
                self._settle(instance_id, INSTALLED, command_id=command_id, ssm_status="Success",
                             ssm_status_details="Success", response_code=0,
                             source_server_id=server.get("sourceServerID"))
            elif now >= registration_deadline:
                del self.awaiting_registration[instance_id]
                self._not_registered(instance_id, command_id)

    def _not_registered(self, instance_id, command_id):
        output = self._invocation_output(command_id, instance_id) or {}
        stdout, stderr = output.get("StandardOutputContent", ""), output.get("StandardErrorContent", "")
        self._settle(instance_id, NOT_REGISTERED_AFTER_SUCCESS, command_id=command_id, ssm_status="Success",
                     ssm_status_details="Success", response_code=output.get("ResponseCode"),
                     error_category=failures.classify("Success", stdout, stderr),
                     remediation=failures.not_registered_remediation(self.settings["drs_region"], self.destination),
                     stderr_tail=tail(stderr), stdout_tail=tail(stdout),
                     reason=f"no DRS source server after {self.settings['registration_timeout']} s")

    def _time_out(self):
        limit = self.settings["timeout"]
        for command_id, still_open in self.open_invocations.items():
            for instance_id, (status, details) in still_open.items():
                self._settle(instance_id, TIMED_OUT, command_id=command_id, ssm_status=status,
                             ssm_status_details=details, error_category=failures.TIMEOUT,
                             reason=f"still {status} in SSM after {limit} s")
        for instance_id, (command_id, status, details) in self.output_to_fetch.items():
            self._settle(instance_id, FAILED, command_id=command_id, ssm_status=status, ssm_status_details=details,
                         error_category=failures.classify(details),
                         reason=f"SSM reported {status} ({details}); its output was not readable before the timeout")
        for instance_id, (command_id, _registration_deadline) in self.awaiting_registration.items():
            self._settle(instance_id, TIMED_OUT, command_id=command_id, ssm_status="Success",
                         ssm_status_details="Success", error_category=failures.TIMEOUT,
                         reason=f"SSM Success, but not yet registered in DRS after {limit} s")
        self.open_invocations, self.output_to_fetch, self.awaiting_registration = {}, {}, {}
        self._give_up_on_ssm()

    # --- results ---

    def _uninitialized(self, instance_ids):
        reason = (f"DRS is not initialized in {self.destination}, region {self.settings['drs_region']} "
                  "(DescribeSourceServers: UninitializedAccountException); nothing was sent")
        for instance_id in instance_ids:
            self._settle(instance_id, FAILED, error_category=failures.ACCOUNT_NOT_INITIALIZED, reason=reason)
        self.plan = {"would_install": [], "would_reinstall": [],
                     "would_skip": [{"instance_id": iid, "status": FAILED, "reason": reason} for iid in instance_ids]}
        return self._report()

    def _plan(self, already, new, again, online, offline, unmanaged):
        skip = [{"instance_id": iid, "status": ALREADY_REGISTERED, "reason": "registered in DRS (reinstall is false)"}
                for iid in already]
        skip += [{"instance_id": iid, "status": SKIPPED_NOT_MANAGED, "reason": NOT_MANAGED_REASON} for iid in unmanaged]
        skip += [{"instance_id": iid, "status": SKIPPED_SSM_OFFLINE, "reason": reason} for iid, reason in offline.items()]
        return {
            "would_install": [iid for iid in new if iid in online],
            "would_reinstall": [iid for iid in again if iid in online],
            "would_skip": skip,
        }

    def _settle(self, instance_id, status, **facts):
        result = {
            "instance_id": instance_id,
            "status": status,
            "command_id": facts.get("command_id", self.command_of.get(instance_id)),
            "ssm_status": facts.get("ssm_status"),
            "ssm_status_details": facts.get("ssm_status_details"),
            "response_code": facts.get("response_code"),
            "error_category": facts.get("error_category"),
            "remediation": facts.get("remediation"),
            "stderr_tail": facts.get("stderr_tail", ""),
            "stdout_tail": facts.get("stdout_tail", ""),
            "source_server_id": facts.get("source_server_id", self.registered.get(instance_id)),
            "reason": facts.get("reason", ""),
            "duration_seconds": round(self.clock() - self.started, 1),
        }
        if result["error_category"] and not result["remediation"]:
            result["remediation"] = failures.remediation(result["error_category"], self.settings["drs_region"],
                                                         self.destination)
        self.results[instance_id] = result

    def _report(self):
        ordered = [self.results[iid] for iid in dict.fromkeys(self.settings["instance_ids"]) if iid in self.results]
        report = {"results": ordered, "commands": self.commands, "changed": bool(self.commands), "plan": self.plan}
        report.update(summarize(ordered))
        return report

    # --- progress ---

    def _write_progress(self):
        path = self.settings.get("progress_file")
        if not path:
            return
        counts = summarize(list(self.results.values()))["counts"]
        in_flight = sum(len(still_open) for still_open in self.open_invocations.values())
        progress = {
            "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "elapsed_seconds": round(self.clock() - self.started, 1),
            "total": len(dict.fromkeys(self.settings["instance_ids"])),
            "done": len(self.results),
            "failed": sum(counts[status] for status in UNSUCCESSFUL),
            "in_flight": in_flight + len(self.output_to_fetch),
            "awaiting_registration": len(self.awaiting_registration),
            "waiting_for_ssm": len(self.waiting_for_ssm),
            "counts": counts,
        }
        write_json_atomically(path, progress)


def error_code(error):
    return error.response.get("Error", {}).get("Code")


def first_error_line(text):
    """The installer's first line that reads like an error, to explain a failure in one line."""
    for line in (text or "").splitlines():
        if re.search(r"error|failed|denied|cannot|not supported|not found", line, re.IGNORECASE):
            return line.strip()[:300]
    return ""


def write_json_atomically(path, data):
    """Replace ``path`` in one step, so a reader never sees half a file."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".progress-")
    with os.fdopen(handle, "w") as stream:
        json.dump(data, stream, sort_keys=True)
    os.replace(temporary, path)
