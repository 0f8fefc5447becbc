# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Drift between the DR-tagged instances and the DRS source servers, across accounts, run by ``drs_reconcile``.

What is read, all at once (a thread per call, roles assumed at once by ``Sessions``), and how much:

- the tagged instances of every source account-region: discovery's one paged DescribeInstances (the deploy's
  tag filters, every state but shutting-down and terminated);
- the source servers of every staging account-region, and of every target account-region: one paged
  DescribeSourceServers each, matched to instances locally (``source_servers``);
- the instances of the servers that are not among the tagged ones: DescribeInstances with an ``instance-id``
  filter, 200 ids a call, in their source account-region (untagged, terminated, or unknown to EC2);
- the history: one paged Query of the account index per source account, over ``history_days``, for the last
  recorded outcome of each instance (the reason ``failed``).

The drift itself is ``_reconcile.drift``'s. Retiring (only with ``retire``, never in check mode) disconnects
and deletes the servers of untagged and terminated instances, their extended servers first, and never one with
a recovery instance.
"""

import concurrent.futures
import datetime

try:
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass  # the action reports a missing botocore

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import history
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.aws import pages
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.discovery import EC2_ID_CHUNK
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.discovery import EC2_PAGE_SIZE
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.discovery import chunks
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.discovery import discover
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.source_servers import instance_id_of
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.source_servers import list_source_servers
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.tags import check_tag_filters
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.tags import tags_to_dict
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._reconcile import drift
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.summary import write_json
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils.sessions import MAX_THREADS
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils.sessions import Sessions

# At most this many lines per kind of drift on the console; the result and the report file hold them all.
SHOWN_PER_KIND = 50
HISTORY_PAGE = 1000
KIND_TITLES = {
    "tagged_not_protected": "Tagged but not protected",
    "untagged": "Protected but no longer tagged",
    "terminated": "Protected but the instance is terminated",
    "extension_errors": "Extended servers whose staging server is gone (EXTENSION_ERROR)",
}


def _error_text(error):
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        return f"{details.get('Code', 'Error')}: {details.get('Message', '')}"
    return str(error)


class Reconcile:
    """One reconcile run. ``settings``: the checked settings (_reconcile.settings); ``name`` names settings in
    messages; ``display`` has ``display(text)`` and ``warning(text)``."""

    def __init__(self, settings, name, display, check_mode):
        self.settings = settings
        self.name = name
        self.display = display
        self.check_mode = check_mode
        self.accounts = [self._with_external_id(entry) for entry in settings["accounts"]]
        self.sessions = None
        self.unreachable = []

    def _with_external_id(self, entry):
        account = dict(entry)
        account["external_id"] = entry.get("external_id") or self.settings["external_id"] or None
        return account

    # --- the run ---

    def run(self):
        self.sessions = Sessions(self.settings["profile"], self.settings["history_region"])
        self._open_sessions()
        places = self._places()
        with concurrent.futures.ThreadPoolExecutor(max_workers=MAX_THREADS, thread_name_prefix="drs-reconcile") as pool:
            self.pool = pool
            found = self._read(places)
            report = self._drift(places, *found)
            report["retire"] = self._retire(report, found[3])
        return self._finish(report)

    def _open_sessions(self):
        roles = [account for account in self.accounts if account.get("role_arn")]
        roles += [self._with_external_id(entry) for entry in self.settings["staging_accounts"]]
        roles += [self._with_external_id(entry) for entry in self.settings["target_accounts"] if entry.get("role_arn")]
        self.sessions.assume(roles, self.settings["session_name"], self.settings["sts_region"])
        for account_id, reason in sorted(self.sessions.unreachable.items()):
            self._unreachable(account_id, None, reason)

    def _unreachable(self, account_id, region, reason):
        self.unreachable.append({"account_id": account_id, "region": region, "reason": reason})
        self.display.display(f"{account_id}{'/' + region if region else ''} is left out: {reason}")

    def _places(self):
        """{(source account id, region): place} of the reachable accounts whose staging account is reachable."""
        left_out = {entry["account_id"] for entry in self.unreachable}
        places = {}
        for account in self.accounts:
            staging = account.get("staging_account_id") or account["account_id"]
            if account["account_id"] in left_out:
                continue
            if staging in left_out:
                self._unreachable(account["account_id"], None, f"its staging account {staging} could not be reached")
                continue
            target = account.get("target_account_id")
            for region in account["regions"]:
                places[(account["account_id"], region)] = {
                    "account_id": account["account_id"], "region": region, "staging_account_id": staging,
                    "drs_region": account.get("drs_region") or region,
                    "target_account_id": target if target not in (None, "", staging) else None,
                }
        return places

    def _read(self, places):
        """Everything read at once: (discoveries, staging listings, target listings, unreadable targets, last
        records by source account or None per account when not read)."""
        options = {"tag_filters": check_tag_filters(self.settings["tag_filters"]),
                   "wave_tag_key": self.settings["wave_tag_key"], "priority_tag_key": self.settings["priority_tag_key"],
                   "waves": None, "instance_states": list(drift.TAGGED_STATES), "include_ssm_status": False}
        left_out = {entry["account_id"] for entry in self.unreachable}
        staging_keys = sorted({(place["staging_account_id"], place["drs_region"]) for place in places.values()})
        target_keys = sorted({(place["target_account_id"], place["drs_region"]) for place in places.values()
                              if place["target_account_id"]} - set(staging_keys))
        discoveries = {key: self.pool.submit(self._discover, key, options) for key in places}
        listings = {key: self.pool.submit(self._list, key) for key in staging_keys + target_keys
                    if key[0] not in left_out}
        records = {account_id: self.pool.submit(self._history, account_id)
                   for account_id in sorted({key[0] for key in places})}
        found = {}
        for key, future in discoveries.items():
            try:
                found[key] = future.result()["instances"]
            except (BotoCoreError, ClientError) as error:
                self._unreachable(key[0], key[1], f"could not discover instances (ec2:DescribeInstances): "
                                                  f"{_error_text(error)}")
        read = {}
        for key, future in listings.items():
            try:
                read[key] = future.result()
            except (BotoCoreError, ClientError) as error:
                self._unreachable(key[0], key[1], f"could not list the source servers (drs:DescribeSourceServers): "
                                                  f"{_error_text(error)}")
        staging = {key: read[key] for key in staging_keys if key in read}
        # a target account-region that is also a staging one is read once: its extended servers are among its servers
        targets = {key: read[key] for key in staging_keys + target_keys if key in read}
        unreadable_targets = {key[0] for key in target_keys if key not in read}
        last = {account_id: future.result() for account_id, future in records.items()}
        return found, staging, targets, unreadable_targets, last

    def _discover(self, key, options):
        account_id, region = key
        return discover(self.sessions.client(account_id, "ec2", region, keep=False), None, account_id, region, options)

    def _list(self, key):
        account_id, region = key
        return list_source_servers(self.sessions.client(account_id, "drs", region))

    def _history(self, account_id):
        """{instance id: last record} of one source account, or None when there is no history to read."""
        table = self.settings["history_table"]
        if not table:
            return None
        now = datetime.datetime.now(datetime.timezone.utc)
        params = {"table_name": table, "account_id": account_id, "deployment_id": None, "deployment_pattern": None,
                  "status": None, "failures_only": False, "until": None, "limit": HISTORY_PAGE, "next_token": None,
                  "since": history.iso(now - datetime.timedelta(days=self.settings["history_days"]))}
        dynamodb = self.sessions.client(None, "dynamodb", self.settings["history_region"])
        deployments = []
        try:
            while True:
                answer = history.query_history(dynamodb, params, now)
                deployments.extend(answer["deployments"])
                if not answer["next_token"]:
                    break
                params["next_token"] = answer["next_token"]
        except (BotoCoreError, ClientError) as error:
            self.display.warning(f"The history {table} could not be read for account {account_id} "
                                 f"({_error_text(error)}): its unprotected instances without a server are reported "
                                 "as not_installed, not told apart as failed or never installed.")
            return None
        return drift.last_records(deployments)

    # --- the drift ---

    def _drift(self, places, discoveries, staging, targets, unreadable_targets, last):
        reachable = {key: place for key, place in places.items() if key in discoveries
                     and (place["staging_account_id"], place["drs_region"]) in staging}
        for key, place in places.items():
            if key in discoveries and key not in reachable:
                self._unreachable(key[0], key[1], f"the source servers of its staging account "
                                                  f"{place['staging_account_id']} could not be listed")
        assigned, unplaced = drift.assign_servers(staging, reachable)
        extended = drift.extended_by_staging_arn(targets)
        others = self._others(reachable, discoveries, assigned)
        report = {"protected": 0, "tagged": 0, "tagged_not_protected": [], "untagged": [], "terminated": [],
                  "unplaced": unplaced}
        for key, place in reachable.items():
            found = drift.classify(place, discoveries[key], assigned[key], others.get(key, {}), extended,
                                   last.get(place["account_id"]), self.settings["retry_failed"],
                                   self.name("retry_failed"))
            report["tagged"] += len(discoveries[key])
            report["protected"] += len(found["protected"])
            for kind in drift.KINDS:
                report[kind].extend(found[kind])
        report["extension_errors"] = [entry for key in sorted(targets)
                                      for entry in drift.extension_errors(key, targets[key])]
        report["unreadable_targets"] = sorted(unreadable_targets)
        report["install_instance_ids"] = sorted(entry["instance_id"] for entry in report["tagged_not_protected"]
                                                if entry["installable"])
        return report

    def _others(self, places, discoveries, assigned):
        """{place key: {instance id: {"state", "name"}}} for the servers' instances that are not tagged: one
        DescribeInstances per 200 of them, with an instance-id filter, in their account-region."""
        wanted = {}
        for key in places:
            tagged = {instance["instance_id"] for instance in discoveries[key]}
            ids = sorted({instance_id_of(server) for server in assigned[key]} - tagged)
            if ids:
                wanted[key] = ids
        futures = {key: self.pool.submit(self._describe, key, ids) for key, ids in wanted.items()}
        seen = {}
        for key, future in futures.items():
            try:
                seen[key] = future.result()
            except (BotoCoreError, ClientError) as error:
                # unknown is not terminated: these servers are not classified, so never retired
                self.display.warning(f"{key[0]}/{key[1]}: the instances of {len(wanted[key])} source server(s) could "
                                     f"not be described ({_error_text(error)}); they are left out of this run.")
                assigned[key] = [server for server in assigned[key] if instance_id_of(server) not in wanted[key]]
        return seen

    def _describe(self, key, instance_ids):
        account_id, region = key
        ec2 = self.sessions.client(account_id, "ec2", region, keep=False)
        seen = {}
        for chunk in chunks(instance_ids, EC2_ID_CHUNK):
            for page in pages(ec2.describe_instances, Filters=[{"Name": "instance-id", "Values": chunk}],
                              MaxResults=EC2_PAGE_SIZE):
                for reservation in page["Reservations"]:
                    for raw in reservation["Instances"]:
                        seen[raw["InstanceId"]] = {"state": raw["State"]["Name"],
                                                   "name": tags_to_dict(raw.get("Tags")).get("Name", "")}
        return seen

    # --- retiring ---

    def _retire(self, report, unreadable_targets):
        """Retire the servers of untagged and terminated instances when asked, never in check mode; the outcome."""
        asked = self.settings["retire"]
        outcome = {"asked": asked, "retired": [], "would_retire": [], "candidates": [], "kept": [], "failed": []}
        targets_of = {}
        for account in self.accounts:
            target = account.get("target_account_id")
            if target and target in unreadable_targets:
                targets_of.setdefault(account["account_id"], set()).add(target)
        for entry in report["untagged"] + report["terminated"]:
            blocker = drift.retire_blocker(entry, targets_of.get(entry["account_id"], ()))
            if blocker:
                outcome["kept"].append(dict(_server_of(entry), reason=blocker))
            elif not asked:
                outcome["candidates"].append(_server_of(entry))
            elif self.check_mode:
                outcome["would_retire"].append(_server_of(entry))
            else:
                self._retire_one(entry, outcome)
        return outcome

    def _retire_one(self, entry, outcome):
        done = []
        for account_id, region, server_id, disconnect in drift.retire_steps(entry):
            drs = self.sessions.client(account_id, "drs", region)
            try:
                if disconnect:
                    drs.disconnect_source_server(sourceServerID=server_id, aws_retry=True)
                drs.delete_source_server(sourceServerID=server_id, aws_retry=True)
            except (BotoCoreError, ClientError) as error:
                outcome["failed"].append(dict(_server_of(entry), failed_server_id=server_id, account=account_id,
                                              deleted=done, error=_error_text(error)))
                return
            done.append(server_id)
        outcome["retired"].append(dict(_server_of(entry), deleted=done))

    # --- the answer ---

    def _finish(self, report):
        retire = report["retire"]
        counts = {
            "tagged": report["tagged"], "protected": report["protected"],
            "tagged_not_protected": len(report["tagged_not_protected"]),
            "untagged": len(report["untagged"]), "terminated": len(report["terminated"]),
            "extension_errors": len(report["extension_errors"]), "unplaced": len(report["unplaced"]),
            "to_install": len(report["install_instance_ids"]),
            "retired": len(retire["retired"]), "would_retire": len(retire["would_retire"]),
            "retire_candidates": len(retire["candidates"]), "kept": len(retire["kept"]),
            "retire_failed": len(retire["failed"]),
        }
        for reason in drift.REASONS:
            counts[reason] = sum(1 for entry in report["tagged_not_protected"] if entry["reason"] == reason)
        document = {
            "check_mode": self.check_mode,
            "generated_at": history.iso(datetime.datetime.now(datetime.timezone.utc)),
            "counts": counts,
            "drift": {kind: report[kind] for kind in ("tagged_not_protected", "untagged", "terminated",
                                                      "extension_errors", "unplaced")},
            "install_instance_ids": report["install_instance_ids"],
            "retire": retire,
            "unreachable": self.unreachable,
            "unreadable_targets": report["unreadable_targets"],
            "clean": not any(counts[kind] for kind in ("tagged_not_protected", "untagged", "terminated",
                                                       "extension_errors")),
        }
        lines = self._lines(document)
        if self.settings["report_file"]:
            write_json(self.settings["report_file"], document)
            lines.append(f"Drift report written to {self.settings['report_file']}")
        for line in lines:
            self.display.display(line)
        changed = bool(retire["retired"] or retire["failed"])
        if self.check_mode:
            changed = bool(report["install_instance_ids"] or retire["would_retire"])
        result = dict(document, changed=changed)
        problems = []
        if self.unreachable:
            places = sorted({entry["account_id"] for entry in self.unreachable})
            problems.append(f"Not reconciled, could not be reached or read: {', '.join(places)} (see the reasons "
                            "above).")
        if retire["failed"]:
            problems.append(f"{len(retire['failed'])} server(s) could not be retired (see the errors above).")
        if problems:
            result.update(failed=True, msg=" ".join(problems))
        return result

    def _lines(self, document):
        lines = []
        counts = document["counts"]
        lines.append(f"Reconcile: {counts['tagged']} tagged instance(s), {counts['protected']} protected; drift: "
                     f"{counts['tagged_not_protected']} tagged but not protected ({counts['never_installed']} never "
                     f"installed, {counts['failed']} failed, {counts['stale_record']} stale record, "
                     f"{counts['not_installed']} not installed), {counts['untagged']} no longer tagged, "
                     f"{counts['terminated']} terminated, {counts['extension_errors']} EXTENSION_ERROR")
        for kind, entries in document["drift"].items():
            if kind not in KIND_TITLES or not entries:
                continue
            lines.append(f"{KIND_TITLES[kind]}:")
            for entry in entries[:SHOWN_PER_KIND]:
                lines.append("  " + _entry_line(kind, entry))
            if len(entries) > SHOWN_PER_KIND:
                lines.append(f"  ... and {len(entries) - SHOWN_PER_KIND} more (every one is in the task's result"
                             + (" and the report file)" if self.settings["report_file"] else ")"))
        for entry in document["drift"]["unplaced"][:SHOWN_PER_KIND]:
            lines.append(f"Not placed (never retired): {entry['source_server_id']} of {entry['instance_id']} in "
                         f"{entry['staging_account_id']}/{entry['drs_region']}: {entry['reason']}")
        ids = document["install_instance_ids"]
        if ids:
            lines.append(f"{'Would install' if self.check_mode else 'To install'} on {len(ids)} instance(s): "
                         f"{', '.join(ids[:SHOWN_PER_KIND])}{' ...' if len(ids) > SHOWN_PER_KIND else ''}")
        retire = document["retire"]
        for entry in retire["would_retire"]:
            lines.append(f"Would retire {_server_text(entry)}")
        for entry in retire["retired"]:
            lines.append(f"Retired {_server_text(entry)}: disconnected and deleted {', '.join(entry['deleted'])}")
        for entry in retire["kept"]:
            lines.append(f"Kept {_server_text(entry)}: {entry['reason']}")
        for entry in retire["failed"]:
            lines.append(f"Could not retire {_server_text(entry)}: {entry['failed_server_id']} in {entry['account']}: "
                         f"{entry['error']}")
        if retire["candidates"]:
            lines.append(f"{len(retire['candidates'])} server(s) of untagged or terminated instances are left as they "
                         f"are: set {self.name('retire')}: true to disconnect and delete them")
        if document["clean"]:
            lines.append("No drift: every tagged instance is protected and every source server's instance is tagged.")
        return lines


def _server_of(entry):
    """What the retire outcome says of an entry: its instance and servers."""
    server = {key: entry.get(key) for key in ("account_id", "region", "instance_id", "name", "state",
                                              "staging_account_id", "drs_region", "source_server_id")}
    server["extended_server_ids"] = [item["source_server_id"] for item in entry.get("extended_servers") or []]
    return server


def _server_text(entry):
    extended = entry.get("extended_server_ids") or []
    return (f"{entry['source_server_id']} ({entry['instance_id']}, {entry['state']}) in "
            f"{entry['staging_account_id']}/{entry['drs_region']}"
            + (f" with extended server(s) {', '.join(extended)}" if extended else ""))


def _entry_line(kind, entry):
    if kind == "tagged_not_protected":
        line = f"{entry['instance_id']} ({entry['name'] or 'no name'}, {entry['account_id']}/{entry['region']}): " \
               f"{entry['reason']}: {entry['detail']}"
        if entry["not_installed_because"]:
            line += f"; not installed: {entry['not_installed_because']}"
        return line
    if kind == "extension_errors":
        return (f"{entry['source_server_id']} in {entry['target_account_id']}/{entry['region']} (from "
                f"{entry['staging_source_server_arn']}): {entry['remediation']}")
    return (f"{entry['instance_id']} ({entry['name'] or 'no name'}, {entry['state']}, {entry['account_id']}/"
            f"{entry['region']}): source server {entry['source_server_id']} in {entry['staging_account_id']}/"
            f"{entry['drs_region']} ({entry['replication_state']})")
