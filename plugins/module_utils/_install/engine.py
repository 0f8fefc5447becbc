# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The installs of one account and region: plan, adopt, send, follow, confirm.

``AccountRegionInstall`` never blocks: ``prepare`` reads what is there, ``send`` sends, and ``look`` reads
once what changed; ``next_look`` says when looking again is worth it. A driver (``follow``) runs many of
them side by side on one clock, so that waiting is the driver's alone.

Calls grow with batches and changes, not with instances per look:

- before sending, one paged ListCommands of the commands executing in the account-region finds the installs
  already running (sent by an earlier or a concurrent run) and they are adopted, never sent again; one paged
  DescribeSourceServers listing finds the registered instances; DescribeInstanceInformation (50 a call) is
  read only for instances whose SSM state is not known fresh;
- SendCommand takes 50 instances a call;
- a look reads a command's invocations (with their output, so failures need no call of their own) only when
  some of them ended: directly when the last look found some ending (its counts would have moved again), else
  when its counts moved, read for all such commands of a document with one paged ListCommands;
  DescribeSourceServers is listed only while a success awaits its source server;
- looks back off while nothing changes, and come exactly at the deadlines (per install, registration, SSM
  online, overall), so that the end of a wave is noticed when it is due.
"""

import datetime
import re

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports a missing botocore

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import failures
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import outcomes
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.aws import pages
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.source_servers import is_stale
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.source_servers import list_source_servers
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.source_servers import servers_by_instance_id
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._install import ssm as run_command
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._install.options import CROSS_ACCOUNT_DOCUMENT
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._install.options import SAME_ACCOUNT_DOCUMENT
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._install.options import format_tags
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._install.options import run_of_comment
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._install.options import send_batches

DESCRIBE_CHUNK_SIZE = 50  # one DescribeInstanceInformation page (MaxResults 50) per chunk
TAIL_LINES = 20
# The end of a wave is near when at most this many invocations, or this share of those sent, still run: a
# look then comes at a third of the poll interval (at least LOOK_FLOOR seconds), so that the end is seen soon.
TAIL_INSTANCES = 2
TAIL_SHARE = 0.1
LOOK_FLOOR = 1.0
# Once looks have found nothing new for BACKOFF_AFTER poll intervals, each waits BACKOFF times longer than the
# one before, up to BACKOFF_CAP poll intervals: a hung install costs a look a minute, not one per poll interval.
BACKOFF_AFTER = 2.0
BACKOFF = 2.0
BACKOFF_CAP = 4.0
# While installs still run, registrations are confirmed (one DRS listing) at most every CONFIRM_EVERY poll
# intervals, and as soon as none runs, so that the end of an account-region's installs is known at once.
CONFIRM_EVERY = 2.0

NOT_MANAGED_REASON = ("not managed by Systems Manager in this account and region (no SSM agent registration, "
                      "or the instance profile lacks AmazonSSMManagedInstanceCore)")
AWS_ERROR_MESSAGE = ("DRS agent install stopped on an AWS error: check the credentials' permissions (SSM "
                     "describe/list/send/cancel in the source account, DRS describe in the staging account)")


class InstallRefused(Exception):
    """SSM refused to send the install (document, parameters, permissions): nothing more is sent."""

    def __init__(self, message, error):
        super().__init__(message)
        self.message = message
        self.error = error


def error_code(error):
    return error.response.get("Error", {}).get("Code")


def tail(text, lines=TAIL_LINES):
    if not text:
        return ""
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])


def first_error_line(text):
    """The installer's first line that reads like an error, to explain a failure in one line."""
    for line in (text or "").splitlines():
        if re.search(r"error|failed|denied|cannot|not supported|not found", line, re.IGNORECASE):
            return line.strip()[:300]
    return ""


def offline_reason(info):
    last_ping = info.get("LastPingDateTime")
    seen = f", last ping {last_ping.isoformat() if hasattr(last_ping, 'isoformat') else last_ping}" if last_ping else ""
    return f"SSM ping status is {info.get('PingStatus')}{seen}: the SSM agent is not connected"


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


class OpenCommand:
    """A command this install follows: sent by it, or adopted from an earlier or concurrent run."""

    def __init__(self, command_id, document_name, requested_at, instance_ids, adopted, sender=None):
        self.command_id = command_id
        self.document_name = document_name
        self.requested_at = requested_at  # a datetime, as SSM reports it
        self.open = set(instance_ids)  # its invocations of this install that have not ended yet
        self.size = len(self.open)  # of a command this install sent, every instance is its own
        self.adopted = adopted
        self.sender = sender  # the run that sent an adopted command, when its comment names one
        self.progress = None  # command_progress() when its counts were last read (None: not read yet)
        self.ending = False  # the last look found invocations of it ending
        self.listed = adopted  # SSM's listings show it (an adopted command was found in them)


class AccountRegionInstall:
    """One account-region's installs; every instance ends with one result.

    ``settings``: instance_ids, drs_region, staging_account_id (None: the credentials' account), cross_account,
    document_name, document_version, agent_tags, max_concurrency, max_errors, reinstall, ssm_online_timeout,
    timeout, install_timeout (None: none), poll_interval, registration_timeout, comment, and optionally
    platforms ({instance id: Linux or Windows}) and ssm_information ({instance id: a DescribeInstanceInformation
    entry}, read moments ago, for the instances it holds).
    """

    def __init__(self, ssm, drs, settings, now):
        self.ssm = ssm
        self.drs = drs
        self.settings = settings
        self.started = now
        self.deadline = now + settings["timeout"]
        self.ssm_deadline = now + settings["ssm_online_timeout"]
        staging = settings.get("staging_account_id")
        self.destination = f"account {staging}" if staging else "the instances' account"
        self.instance_ids = list(dict.fromkeys(settings["instance_ids"]))
        self.platforms = dict(settings.get("platforms") or {})
        self.results = {}
        self.plan = None
        self.commands = []  # what this install sent
        self.open_commands = {}  # command id -> OpenCommand
        self.command_of = {}  # instance id -> command id, of every command followed
        self.sent_at = {}  # instance id -> when its install was sent or adopted (for the per-install deadline)
        self.awaiting_registration = {}  # instance id -> (its registration deadline, SSM facts of its Success)
        self.waiting_for_ssm = {}  # instance id -> why it is not sent yet
        self.registered = {}  # instance id -> source server id, of re-installs
        self.adopted_from = {}  # instance id -> the run that sent the install it waits for (None: unknown)
        self._online = []
        self.last_look = now
        self.last_change = now
        self.last_confirmation = now
        self.interval = settings["poll_interval"]
        self.stopped_message = None

    # --- the run ---

    @property
    def done(self):
        return not (self.waiting_for_ssm or self.open_commands or self.awaiting_registration)

    @property
    def sent_unlisted(self):
        """Whether a command this install sent is not in SSM's listings yet: until it is, another run reading
        the installs in flight would not see it."""
        return any(not command.listed for command in self.open_commands.values())

    def prepare(self, now, check_mode=False):
        """Read the account-region once: installs in flight, registered servers, SSM readiness; decide each
        instance. In check mode the plan is the answer and nothing is sent afterwards."""
        # installs of the document this run sends, and of the AWS document, which every account has
        documents = (self.settings["document_name"], SAME_ACCOUNT_DOCUMENT)
        in_flight = run_command.installs_in_flight(self.ssm, documents, self.instance_ids)
        try:
            servers = list_source_servers(self.drs, instance_ids=self.instance_ids)
        except botocore.exceptions.ClientError as error:
            if error_code(error) != "UninitializedAccountException":
                raise
            return self._uninitialized(now)
        live = {iid: server for iid, server in servers_by_instance_id(servers).items() if not is_stale(server)}
        already, new, again = split_registered([iid for iid in self.instance_ids if iid not in in_flight], live,
                                               self.settings["reinstall"])
        for instance_id, server in already.items():
            state = server.get("dataReplicationInfo", {}).get("dataReplicationState")
            self._settle(instance_id, outcomes.ALREADY_REGISTERED, now, source_server_id=server.get("sourceServerID"),
                         reason=f"registered in DRS, replication state {state} (reinstall is false)")
        self.registered = {iid: live[iid].get("sourceServerID") for iid in again}
        candidates = new + again
        information = self._ssm_information(candidates)
        online, offline, unmanaged = ssm_readiness(candidates, information)
        self.plan = {
            "would_install": [iid for iid in new if iid in online],
            "would_reinstall": [iid for iid in again if iid in online],
            "would_adopt": [{"instance_id": iid, "command_id": command_id}
                            for iid, (command_id, _command) in in_flight.items()],
            "would_skip": [{"instance_id": iid, "status": outcomes.ALREADY_REGISTERED,
                            "reason": "registered in DRS (reinstall is false)"} for iid in already]
            + [{"instance_id": iid, "status": outcomes.SKIPPED_NOT_MANAGED, "reason": NOT_MANAGED_REASON}
               for iid in unmanaged]
            + [{"instance_id": iid, "status": outcomes.SKIPPED_SSM_OFFLINE, "reason": reason}
               for iid, reason in offline.items()],
        }
        if check_mode:
            for instance_id in unmanaged:
                self._settle(instance_id, outcomes.SKIPPED_NOT_MANAGED, now, reason=NOT_MANAGED_REASON)
            for instance_id, reason in offline.items():
                self._settle(instance_id, outcomes.SKIPPED_SSM_OFFLINE, now, reason=reason)
            return self.plan
        for instance_id, (command_id, command) in in_flight.items():
            self._follow_command(command_id, command.get("DocumentName"), command.get("RequestedDateTime"),
                                 [instance_id], now, adopted=True, sender=run_of_comment(command.get("Comment")))
        self.waiting_for_ssm = {iid: offline.get(iid, NOT_MANAGED_REASON) for iid in candidates if iid not in online}
        self._online = online
        return self.plan

    def send(self, now):
        """Send the install to the instances that are Online; the others wait for SSM until its deadline."""
        if self.plan is not None and not self.stopped_message:
            self._send(self._online, now)
            self._online = []

    def look(self, now):
        """Read once what changed: SSM readiness of waiting instances, command counts (and the invocations of
        the commands whose counts moved), registrations; cancel installs past their deadline; time out at the end."""
        self.last_look = now
        changed = False
        if self.waiting_for_ssm:
            if now >= self.ssm_deadline:
                self._give_up_on_ssm(now)
                changed = True
            else:
                changed |= self._recheck_ssm(now)
        if self.open_commands:
            changed |= self._read_commands(now)
        if self.open_commands and self.settings.get("install_timeout"):
            changed |= self._cancel_overdue(now)
        if self.awaiting_registration and self._confirmation_due(now):
            changed |= self._confirm_registrations(now)
        if not self.done and now >= self.deadline:
            self._time_out(now)
            changed = True
        self._pace(changed, now)

    def next_look(self, now):
        """When looking again is worth it: after the paced interval, or sooner when a deadline falls due (an
        install past install_timeout, a success not registered by its deadline, the SSM deadline, the end)."""
        due = [self.last_look + self.interval, self.deadline]
        due.extend(deadline for deadline, _facts in self.awaiting_registration.values())
        if self.waiting_for_ssm:
            due.append(self.ssm_deadline)
        if self.settings.get("install_timeout") and self.sent_at:
            open_ids = [iid for command in self.open_commands.values() for iid in command.open]
            if open_ids:
                due.append(min(self.sent_at[iid] for iid in open_ids) + self.settings["install_timeout"])
        return min(due)

    def stop(self, now, message):
        """Stop following: every instance whose install still runs ends ``in_flight`` (a later run adopts it),
        every instance not sent yet ends failed with ``message``."""
        self.stopped_message = message
        for command in self.open_commands.values():
            for instance_id in command.open:
                self._settle(instance_id, outcomes.IN_FLIGHT, now, command_id=command.command_id,
                             reason=f"the install is still running on the instance ({message})")
        for instance_id, (_deadline, facts) in self.awaiting_registration.items():
            self._settle(instance_id, outcomes.IN_FLIGHT, now, reason=f"SSM reported Success; the run stopped before "
                         f"DRS showed the source server ({message})", **facts)
        for instance_id in list(self.waiting_for_ssm) + list(self._online):
            self._settle(instance_id, outcomes.FAILED, now, error_category=failures.UNKNOWN,
                         reason=f"not sent: {message}")
        for instance_id in self.instance_ids:
            if instance_id not in self.results:
                self._settle(instance_id, outcomes.FAILED, now, error_category=failures.UNKNOWN,
                             reason=f"not sent: {message}")
        self.open_commands, self.awaiting_registration, self.waiting_for_ssm, self._online = {}, {}, {}, []

    # --- pacing ---

    def _pace(self, changed, now):
        poll_interval = self.settings["poll_interval"]
        base = poll_interval
        sent = len(self.command_of)
        running = sum(len(command.open) for command in self.open_commands.values())
        if not self.waiting_for_ssm and running <= max(TAIL_INSTANCES, TAIL_SHARE * sent):
            base = min(base, max(LOOK_FLOOR, base / 3))
        if changed:
            self.last_change = now
        if now - self.last_change < BACKOFF_AFTER * poll_interval:
            self.interval = base
        else:
            self.interval = min(max(self.interval, base) * BACKOFF, poll_interval * BACKOFF_CAP)

    # --- SSM readiness ---

    def _ssm_information(self, instance_ids):
        known = self.settings.get("ssm_information")
        if known is not None:
            found = {iid: known[iid] for iid in instance_ids if iid in known}
            for instance_id, info in found.items():
                self.platforms.setdefault(instance_id, info.get("PlatformType"))
            return found
        return self._describe_managed(instance_ids)

    def _describe_managed(self, instance_ids):
        found = {}
        for start in range(0, len(instance_ids), DESCRIBE_CHUNK_SIZE):
            filters = [{"Key": "InstanceIds", "Values": instance_ids[start:start + DESCRIBE_CHUNK_SIZE]}]
            for page in pages(self.ssm.describe_instance_information, Filters=filters, MaxResults=DESCRIBE_CHUNK_SIZE):
                for info in page["InstanceInformationList"]:
                    found[info["InstanceId"]] = info
                    self.platforms[info["InstanceId"]] = info.get("PlatformType")
        return found

    def _recheck_ssm(self, now):
        waiting = list(self.waiting_for_ssm)
        online, offline, unmanaged = ssm_readiness(waiting, self._describe_managed(waiting))
        for instance_id in online:
            del self.waiting_for_ssm[instance_id]
        self.waiting_for_ssm.update(offline)
        self.waiting_for_ssm.update((instance_id, NOT_MANAGED_REASON) for instance_id in unmanaged)
        self._send(online, now)
        return bool(online)

    def _give_up_on_ssm(self, now):
        waited = self.settings["ssm_online_timeout"]
        for instance_id, reason in self.waiting_for_ssm.items():
            if reason == NOT_MANAGED_REASON:
                self._settle(instance_id, outcomes.SKIPPED_NOT_MANAGED, now, reason=f"{reason}; waited {waited} s")
            else:
                self._settle(instance_id, outcomes.SKIPPED_SSM_OFFLINE, now,
                             reason=f"{reason}; waited {waited} s for Online")
        self.waiting_for_ssm = {}

    # --- sending ---

    def _parameters(self, with_tags):
        parameters = {"Region": [self.settings["drs_region"]]}
        tags = format_tags(self.settings.get("agent_tags") or {})
        if with_tags and tags:
            parameters["Tags"] = [tags]
        if self.settings["cross_account"]:
            parameters["AccountId"] = [self.settings["staging_account_id"]]
        return parameters

    def _send(self, instance_ids, now):
        new = [iid for iid in instance_ids if iid not in self.registered]
        again = [iid for iid in instance_ids if iid in self.registered]
        for batch, with_tags in send_batches(new, again):
            self._send_batch(batch, with_tags, now)

    def _send_batch(self, batch, with_tags, now):
        request = {
            "DocumentName": self.settings["document_name"],
            "InstanceIds": batch,
            "Parameters": self._parameters(with_tags),
            "MaxConcurrency": self.settings["max_concurrency"],
            "MaxErrors": self.settings["max_errors"],
            "Comment": self.settings["comment"],
        }
        if self.settings.get("document_version"):
            request["DocumentVersion"] = self.settings["document_version"]
        try:
            command = self.ssm.send_command(aws_retry=True, **request)["Command"]
        except botocore.exceptions.ClientError as error:
            if error_code(error) != "InvalidInstanceId":
                raise InstallRefused(self._refusal(error), error) from error
            if len(batch) == 1:
                # the instance left SSM (stopped, terminated, deregistered) between the check and the send
                self._settle(batch[0], outcomes.FAILED, now, error_category=failures.SSM_DELIVERY,
                             ssm_status_details=error.response["Error"].get("Message"),
                             reason="SendCommand refused the instance (InvalidInstanceId)")
                return
            for instance_id in batch:  # find which instances SSM refused; the others still go
                self._send_batch([instance_id], with_tags, now)
            return
        self.commands.append({"command_id": command["CommandId"], "instance_ids": list(batch), "with_tags": with_tags,
                              "document_name": command.get("DocumentName"), "parameters": request["Parameters"]})
        self._follow_command(command["CommandId"], command.get("DocumentName") or request["DocumentName"],
                             command.get("RequestedDateTime"), batch, now, adopted=False)

    def _follow_command(self, command_id, document_name, requested_at, instance_ids, now, adopted, sender=None):
        if not isinstance(requested_at, datetime.datetime):
            requested_at = datetime.datetime.now(datetime.timezone.utc)
        command = self.open_commands.get(command_id)
        if command is None:
            command = self.open_commands[command_id] = OpenCommand(command_id, document_name, requested_at,
                                                                   instance_ids, adopted, sender)
            if not adopted:
                command.progress = run_command.NOTHING_ENDED  # what a new command's counts are
        else:
            command.open.update(instance_ids)
        for instance_id in instance_ids:
            self.command_of[instance_id] = command_id
            self.sent_at[instance_id] = now
        if adopted:
            self.adopted_from.update(dict.fromkeys(instance_ids, sender))

    def _refusal(self, error):
        """What to fix when SendCommand refuses the document or its parameters."""
        code = error_code(error)
        document = self.settings["document_name"]
        if code in ("InvalidDocument", "InvalidDocumentVersion"):
            if document == CROSS_ACCOUNT_DOCUMENT:
                return (f"SSM document {document} is not in the source account and region: create it with the "
                        "drs_account_setup role (playbooks/setup_accounts.yml), then re-run")
            version = self.settings.get("document_version") or "$DEFAULT"
            return f"SSM document {document} (version {version}) is not usable: check document_name and document_version"
        if code == "InvalidParameters":
            return (f"SSM document {document} refused the parameters {sorted(self._parameters(True))}: use a document "
                    "that defines Region, Tags and, cross-account, AccountId")
        return f"SSM refused to send {document}: check the source credentials' ssm:SendCommand permission"

    # --- following ---

    def _read_commands(self, now):
        """Read the invocations of the open commands in which some ended, with their output, and settle those:
        directly for the commands found ending at the last look, through their counts (one paged ListCommands per
        document) for the others."""
        changed = False
        by_document = {}
        for command in list(self.open_commands.values()):
            if command.ending:
                command.ending = self._read_invocations(command, now)
                # its counts moved without being read: the next reading of them compares with none
                command.progress = None
                changed |= command.ending
            else:
                by_document.setdefault(command.document_name, []).append(command)
        for document_name, commands in by_document.items():
            oldest = min(command.requested_at for command in commands) - datetime.timedelta(seconds=1)
            listed = {entry["CommandId"]: entry
                      for entry in run_command.list_commands(self.ssm, document_name, invoked_after=oldest)}
            for command in commands:
                entry = listed.get(command.command_id)
                if entry is None:
                    continue  # not shown yet: SSM lists a new command after a moment
                command.listed = True
                progress = run_command.command_progress(entry)
                if progress == command.progress:
                    continue
                command.ending = self._read_invocations(command, now)
                changed |= command.ending
                # SSM's listings are eventually consistent: when the invocations show fewer ends than the command
                # counts, they are read again at the next look rather than waited for until the next change
                ended = command.size - len(command.open)
                if command.adopted or ended >= entry.get("CompletedCount", 0):
                    command.progress = progress
        return changed

    def _read_invocations(self, command, now):
        """Settle the invocations of ``command`` that ended since the last reading; whether there were any."""
        changed = False
        for invocation in run_command.invocations(self.ssm, command.command_id, details=True):
            instance_id = invocation["InstanceId"]
            if instance_id not in command.open or invocation["Status"] in run_command.IN_FLIGHT_STATUSES:
                continue
            command.open.discard(instance_id)
            changed = True
            status, details, code, stdout, stderr = run_command.install_step(invocation, self.platforms.get(instance_id))
            facts = {"command_id": command.command_id, "ssm_status": status, "ssm_status_details": details,
                     "response_code": code, "stdout_tail": tail(stdout), "stderr_tail": tail(stderr)}
            if status == "Success":
                self.awaiting_registration[instance_id] = (now + self.settings["registration_timeout"], facts)
                continue
            category = failures.classify(details, stdout, stderr)
            reason = first_error_line(stderr) or f"SSM reported {status} ({details})"
            if command.adopted:
                reason = f"{reason} (an install that was already running, adopted)"
            self._settle(instance_id, outcomes.FAILED, now, error_category=category, reason=reason, **facts)
        if not command.open:
            del self.open_commands[command.command_id]
        return changed

    def _cancel_overdue(self, now):
        """Cancel the installs running longer than install_timeout (one CancelCommand per command) and report
        them timed out, so that a hung install does not hold the wave."""
        limit = self.settings["install_timeout"]
        changed = False
        for command in list(self.open_commands.values()):
            overdue = sorted(iid for iid in command.open if now >= self.sent_at[iid] + limit)
            if not overdue:
                continue
            try:
                self.ssm.cancel_command(CommandId=command.command_id, InstanceIds=overdue, aws_retry=True)
            except botocore.exceptions.ClientError as error:
                if error_code(error) not in ("InvalidCommandId", "InvalidInstanceId"):
                    raise
                continue  # it ended meanwhile: the next look reads how
            for instance_id in overdue:
                command.open.discard(instance_id)
                self._settle(instance_id, outcomes.TIMED_OUT, now, command_id=command.command_id,
                             ssm_status="Cancelling", error_category=failures.TIMEOUT,
                             remediation=failures.cancelled_remediation(limit),
                             reason=f"still running after install_timeout ({limit} s): cancelled (CancelCommand)")
            if not command.open:
                del self.open_commands[command.command_id]
            changed = True
        return changed

    def _confirmation_due(self, now):
        return (not self.open_commands or now - self.last_confirmation >= CONFIRM_EVERY * self.settings["poll_interval"]
                or any(now >= deadline for deadline, _facts in self.awaiting_registration.values()))

    def _confirm_registrations(self, now):
        self.last_confirmation = now
        servers = list_source_servers(self.drs, instance_ids=list(self.awaiting_registration))
        live = {iid: server for iid, server in servers_by_instance_id(servers).items() if not is_stale(server)}
        changed = False
        for instance_id, (registration_deadline, facts) in list(self.awaiting_registration.items()):
            server = live.get(instance_id)
            if server is not None:
                del self.awaiting_registration[instance_id]
                self._settle(instance_id, outcomes.INSTALLED, now, source_server_id=server.get("sourceServerID"),
                             **dict(facts, stdout_tail="", stderr_tail=""))
                changed = True
            elif now >= registration_deadline:
                del self.awaiting_registration[instance_id]
                self._settle(instance_id, outcomes.NOT_REGISTERED_AFTER_SUCCESS, now,
                             error_category=failures.classify("Success", facts["stdout_tail"], facts["stderr_tail"]),
                             remediation=failures.not_registered_remediation(self.settings["drs_region"], self.destination),
                             reason=f"no DRS source server after {self.settings['registration_timeout']} s", **facts)
                changed = True
        return changed

    def _time_out(self, now):
        limit = self.settings["timeout"]
        for command in self.open_commands.values():
            for instance_id in command.open:
                self._settle(instance_id, outcomes.TIMED_OUT, now, command_id=command.command_id,
                             error_category=failures.TIMEOUT,
                             reason=f"still running in SSM after {limit} s (left running; a re-run adopts it)")
        for instance_id, (_deadline, facts) in self.awaiting_registration.items():
            self._settle(instance_id, outcomes.TIMED_OUT, now, error_category=failures.TIMEOUT,
                         reason=f"SSM Success, but not yet registered in DRS after {limit} s", **facts)
        self.open_commands, self.awaiting_registration = {}, {}
        self._give_up_on_ssm(now)

    # --- results ---

    def _uninitialized(self, now):
        reason = (f"DRS is not initialized in {self.destination}, region {self.settings['drs_region']} "
                  "(DescribeSourceServers: UninitializedAccountException); nothing was sent")
        for instance_id in self.instance_ids:
            self._settle(instance_id, outcomes.FAILED, now, error_category=failures.ACCOUNT_NOT_INITIALIZED,
                         reason=reason)
        self.plan = {"would_install": [], "would_reinstall": [], "would_adopt": [],
                     "would_skip": [{"instance_id": iid, "status": outcomes.FAILED, "reason": reason}
                                    for iid in self.instance_ids]}
        self._online = []
        return self.plan

    def _settle(self, instance_id, status, now, **facts):
        result = {
            "instance_id": instance_id,
            "status": status,
            "command_id": facts.get("command_id", self.command_of.get(instance_id)),
            "adopted": instance_id in self.adopted_from,
            "adopted_from": self.adopted_from.get(instance_id),
            "ssm_status": facts.get("ssm_status"),
            "ssm_status_details": facts.get("ssm_status_details"),
            "response_code": facts.get("response_code"),
            "error_category": facts.get("error_category"),
            "remediation": facts.get("remediation"),
            "stderr_tail": facts.get("stderr_tail", ""),
            "stdout_tail": facts.get("stdout_tail", ""),
            "source_server_id": facts.get("source_server_id", self.registered.get(instance_id)),
            "reason": facts.get("reason", ""),
            "duration_seconds": round(now - self.started, 1),
        }
        if result["error_category"] and not result["remediation"]:
            result["remediation"] = failures.remediation(result["error_category"], self.settings["drs_region"],
                                                         self.destination)
        if not result["remediation"]:
            result["remediation"] = outcomes.status_remediation(status)
        self.results[instance_id] = result

    def report(self):
        """The install's answer: every result (in the order of instance_ids), their figures (``outcomes.tally``:
        kept under ``figures``, whose ``failed`` count must not pass for Ansible's ``failed``), the commands sent,
        the plan, whether anything was sent."""
        ordered = [self.results[iid] for iid in self.instance_ids if iid in self.results]
        return {"results": ordered, "figures": outcomes.tally_of(ordered), "commands": self.commands,
                "changed": bool(self.commands), "plan": self.plan}

    def progress(self):
        """Counts for a progress line: total, done, failed, in flight, waiting for DRS, waiting for SSM."""
        figures = outcomes.tally_of(self.results.values())
        return {
            "total": len(self.instance_ids),
            "done": len(self.results),
            "failed": figures["failed"],
            "in_flight": sum(len(command.open) for command in self.open_commands.values()),
            "awaiting_registration": len(self.awaiting_registration),
            "waiting_for_ssm": len(self.waiting_for_ssm),
        }

    def running(self):
        """(instance id, command id) of every install still running on an instance, as far as known."""
        found = [(iid, command.command_id) for command in self.open_commands.values() for iid in sorted(command.open)]
        found.extend((iid, facts["command_id"]) for iid, (_deadline, facts) in self.awaiting_registration.items())
        return found
