# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The history items of a run: one per source account, written when the run starts and rewritten as it goes.

Key: ``deployment_id`` and ``timestamp``, the run's start as fixed-width ISO 8601 UTC with milliseconds, then
``#<source account>#<run>``, so that every index sorts items by time and the runs of one deployment (several
slices, or a re-run given the same id) each have their own items.

A run's items say ``in_progress`` until it ends (``success``, ``partial``, ``failed``, or ``stopped`` when it
was interrupted), and carry ``lease_until``: a run that is still going renews it at every write and at least
every few minutes. An item still ``in_progress`` after its lease is the record of a run that was killed
without a chance to say so: readers show it as ``interrupted``.

``unprotected_instances`` lists every instance of the account that is not protected, with its status, reason
and remediation (failed ones also with their error details), up to ``MAX_UNPROTECTED`` (DynamoDB items hold
400 KB); ``unprotected_left_out`` counts the rest, which the run's summary file lists. ``in_flight`` lists the
installs still running when the run stopped: the next run that covers them adopts them and counts them (see
``claimed_by``).

Next to them, a run writes one wave item per wave it recorded (``build_wave_items``): each account's status
and figures of that wave, for the wave gate to read one wave of a deployment with a key condition.
"""

import datetime
import re

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import outcomes

RECORD_TYPE = "deployment"
WAVE_RECORD_TYPE = "wave"
IN_PROGRESS = "in_progress"
STOPPED = "stopped"
INTERRUPTED = "interrupted"  # shown for an in_progress item whose lease has expired; never stored
DEPLOYMENT_STATUSES = (IN_PROGRESS, "success", "partial", "failed", STOPPED)
FILTER_STATUSES = DEPLOYMENT_STATUSES + (INTERRUPTED,)
FAILURE_STATUSES = ("partial", "failed", STOPPED, INTERRUPTED)
PATTERNS = ("same-account", "cross-account", "multi-account")
# a run started by an event (the rulebook's deploy) says so instead of the pattern its accounts make
EVENT_PATTERN = "event"
RECORDED_PATTERNS = PATTERNS + (EVENT_PATTERN,)
# A running run renews its lease at every write and at least every LEASE_RENEWAL seconds.
LEASE_SECONDS = 900
LEASE_RENEWAL = 300
MAX_UNPROTECTED = 300
MAX_TEXT = 300
# Keys that look like credentials are never stored, wherever they are in the extension data.
SECRET_KEY_PATTERN = re.compile(r"(access_key|secret|session_token|password|external_id|sts_creds|credentials)", re.I)
UNPROTECTED_FIELDS = ("instance_id", "name", "region", "wave", "priority", "status", "error_category", "ssm_status",
                      "command_id", "reason", "remediation")


# AWX / Automation Platform job variables that name the deployment when none is given, and how: every slice
# of a sliced job shares its workflow job, and a workflow passes the id on to its later nodes as an artifact.
JOB_DEPLOYMENT_IDS = (("awx_workflow_job_id", "awx-workflow-"), ("awx_job_id", "awx-job-"))


class HistoryInputError(Exception):
    """An option is wrong; the message names it."""


def job_deployment_id(job_vars):
    """The deployment id an AWX / Automation Platform job implies (its workflow job's, else its own), or None
    outside AWX."""
    for key, prefix in JOB_DEPLOYMENT_IDS:
        value = job_vars.get(key)
        if value not in (None, ""):
            return f"{prefix}{value}"
    return None


# --- time ---------------------------------------------------------------------------------------

def parse_time(name, value):
    """An ISO 8601 date-time (naive means UTC) or epoch seconds, as an aware UTC datetime."""
    if isinstance(value, datetime.datetime):
        moment = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        moment = datetime.datetime.fromtimestamp(value, tz=datetime.timezone.utc)
    elif isinstance(value, str) and re.match(r"^\d+(\.\d+)?$", value.strip()):
        moment = datetime.datetime.fromtimestamp(float(value), tz=datetime.timezone.utc)
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.datetime.fromisoformat(text)
        except ValueError:
            raise HistoryInputError(
                f"{name} {value!r} is not an ISO 8601 date-time (such as 2025-06-01T12:00:00Z) or epoch seconds"
            ) from None
    else:
        raise HistoryInputError(f"{name} {value!r} is not an ISO 8601 date-time or epoch seconds")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)


def iso(moment):
    """Fixed-width ISO 8601 UTC with milliseconds, so that text order is time order."""
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def sort_key(started, account_id, run_id):
    return f"{iso(started)}#{account_id}#{run_id[:8]}"


def time_range_errors(params, start, end):
    """What is wrong with the optional times ``params[start]`` and ``params[end]``, as messages."""
    errors = []
    times = {}
    for name in (start, end):
        if params.get(name) is not None:
            try:
                times[name] = parse_time(name, params[name])
            except HistoryInputError as e:
                errors.append(str(e))
    if len(times) == 2 and times[start] > times[end]:
        errors.append(f"{start} is after {end}")
    return errors


# --- what an item holds ---------------------------------------------------------------------------

def trim(text, length=MAX_TEXT):
    text = " ".join(str(text).split())
    return text if len(text) <= length else text[:length - 3] + "..."


def scrub(value):
    """``value`` without any mapping key that looks like a credential."""
    if isinstance(value, dict):
        return {key: scrub(item) for key, item in value.items() if not SECRET_KEY_PATTERN.search(str(key))}
    if isinstance(value, (list, tuple)):
        return [scrub(item) for item in value]
    return value


def derive_pattern(accounts):
    """same-account, cross-account or multi-account, from the source accounts and their staging accounts."""
    if len(accounts) > 1:
        return "multi-account"
    if accounts:
        account = accounts[0]
        if account.get("staging_account_id") not in (None, "", account["account_id"]):
            return "cross-account"
    return "same-account"


def account_status(figures, unreachable, final, stopped):
    """The status of one account's item.

    While the run goes on: ``in_progress``. Interrupted: ``stopped``. Otherwise ``failed`` when the account
    could not be reached, when nothing protected came of what was attempted, or when nothing could be attempted
    though instances were there; ``success`` when every attempted instance is protected; ``partial`` otherwise.
    """
    if not final:
        return IN_PROGRESS
    if stopped:
        return STOPPED
    if unreachable:
        return "failed"
    if figures["attempted"] == 0:
        return "failed" if figures["unprotected"] else "success"
    if figures["failed"] == 0:
        return "success"
    if figures["protected"] == 0:
        return "failed"
    return "partial"


def unprotected_entry(instance):
    entry = {key: instance.get(key) for key in UNPROTECTED_FIELDS}
    entry["reason"] = trim(instance.get("reason") or instance.get("error_message") or "no reason given")
    entry["remediation"] = trim(instance.get("remediation") or "", 600) or None
    return entry


def failed_instances(item):
    """The failed instances of an item (those of its unprotected instances whose status is a failure), each with
    its error message, as reports show them."""
    found = []
    for entry in item.get("unprotected_instances") or []:
        if entry.get("status") in outcomes.FAILED_STATUSES:
            found.append(dict(entry, account_id=item.get("source_account_id"),
                              error_category=entry.get("error_category") or "unknown", error_message=entry.get("reason")))
    return found


def by_account(entries):
    """{account id: its entries}, in their order."""
    grouped = {}
    for entry in entries or []:
        grouped.setdefault(entry["account_id"], []).append(entry)
    return grouped


def build_items(record, names, now, ttl_days):
    """The items of a run, one per source account.

    ``record`` (what the deploy action or drs_history_record hands over): ``deployment_id``, ``run_id``,
    ``pattern`` (or None), ``started_at``, ``finished_at`` (datetimes; finished_at None while running),
    ``final`` (the run ended), ``stopped`` (it was interrupted), ``stop_reason``, ``stopped_after_wave``,
    ``accounts`` (account_id, name, staging_account_id, regions), ``instances`` (every planned or discovered
    instance with account_id, region, wave, status or None while not settled, and its details), ``waves``
    (wave, started_at, finished_at), ``unreachable`` (account_id, region, reason), ``extension``, ``in_flight``
    (instance_id, command_id, account_id, region, wave). ``names`` maps account ids to names.
    """
    accounts = _accounts(record)
    pattern = record.get("pattern") or derive_pattern(accounts)
    started = record["started_at"]
    finished = record.get("finished_at")
    instances_of = by_account(record.get("instances"))
    in_flight_of = by_account(record.get("in_flight"))
    items = []
    for account in accounts:
        account_id = account["account_id"]
        own = instances_of.get(account_id, [])
        settled = [instance for instance in own if instance.get("status")]
        lost = [{"region": entry.get("region"), "reason": trim(entry.get("reason") or "not reached")}
                for entry in record.get("unreachable") or [] if entry["account_id"] == account_id]
        figures = outcomes.tally_of(settled)
        unprotected = [unprotected_entry(instance) for instance in settled
                       if not outcomes.is_protected(instance["status"])]
        regions = set(account["regions"]) | {instance["region"] for instance in own}
        regions |= {entry["region"] for entry in lost if entry["region"]}
        item = {
            "deployment_id": record["deployment_id"],
            "timestamp": sort_key(started, account_id, record["run_id"]),
            "record_type": RECORD_TYPE,
            "run_id": record["run_id"],
            "source_account_id": account_id,
            "source_account_name": names.get(account_id) or account_id,
            "deployment_pattern": pattern,
            "regions": sorted(regions),
            "staging_account_id": account["staging_account_id"] or account_id,
            "started_at": iso(started),
            "updated_at": iso(now),
            "status": account_status(figures, bool(lost), record.get("final"), record.get("stopped")),
            "planned": {"instances": sum(1 for instance in own if instance.get("wave") is not None),
                        "waves": sorted({instance["wave"] for instance in own if instance.get("wave") is not None})},
            "waves": _waves(record, settled),
            "stopped_after_wave": record.get("stopped_after_wave"),
            "stop_reason": record.get("stop_reason"),
            "unprotected_instances": unprotected[:MAX_UNPROTECTED],
            "unprotected_left_out": max(0, len(unprotected) - MAX_UNPROTECTED),
            "in_flight": [{key: entry.get(key) for key in ("instance_id", "command_id", "region", "wave")}
                          for entry in in_flight_of.get(account_id, [])],
            "unreachable": lost,
            "ttl": int(now.timestamp()) + ttl_days * 86400,
        }
        item.update(figures)
        if finished is not None:
            item["finished_at"] = iso(finished)
            item["duration_seconds"] = round((finished - started).total_seconds(), 3)
        else:
            item["lease_until"] = iso(now + datetime.timedelta(seconds=LEASE_SECONDS))
        if record.get("extension") is not None:
            item["extension"] = scrub(record["extension"])
        verified = replication_of(settled)
        if verified:
            item["replication"] = verified
            item["unhealthy_replication"] = [
                _unhealthy_entry(instance) for instance in settled
                if (instance.get("replication") or {}).get("verdict") not in (None, "healthy")][:MAX_UNPROTECTED]
        items.append(item)
    return items


# The sort keys of a deployment's wave items begin with this: past every ISO time, so a time range never
# reaches them.
WAVE_KEYS = "wave#"


def wave_key_prefix(wave):
    """What the sort keys of a deployment's wave items of ``wave`` begin with; the last ``#`` keeps wave 20's
    out of wave 2's."""
    return f"{WAVE_KEYS}{wave}#"


def build_wave_items(items):
    """The wave items of a run, from its account items (``build_items``): one per wave it recorded, holding each
    account's status and figures of that wave, under the deployment with the sort key
    ``wave#<wave>#<run's start>#<run>``, so that the wave gate reads one wave with a key condition. They carry no
    status, account or pattern attribute, so no index holds them."""
    waves = {}
    for item in items:
        for entry in item["waves"]:
            waves.setdefault(entry["wave"], []).append({
                "source_account_id": item["source_account_id"], "status": item["status"],
                "by_status": {status: count for status, count in entry["by_status"].items() if count}})
    wave_items = []
    for wave, accounts in sorted(waves.items()):
        first = items[0]
        wave_item = {
            "deployment_id": first["deployment_id"],
            "timestamp": f"{wave_key_prefix(wave)}{first['started_at']}#{first['run_id'][:8]}",
            "record_type": WAVE_RECORD_TYPE,
            "run_id": first["run_id"],
            "wave": wave,
            "updated_at": first["updated_at"],
            "accounts": accounts,
            "ttl": first["ttl"],
        }
        if "lease_until" in first:
            wave_item["lease_until"] = first["lease_until"]
        wave_items.append(wave_item)
    return wave_items


def _unhealthy_entry(instance):
    """A server whose replication is not healthy, as the item keeps it: where it is, its verdict and why, its
    replication state and error, and its lag (seconds, None when DRS gave none)."""
    health = instance["replication"]
    entry = {key: instance.get(key) for key in ("instance_id", "name", "region", "wave")}
    entry.update({key: trim(health[key]) if health.get(key) else None
                  for key in ("verdict", "reason", "replication_state", "error", "error_category", "remediation")})
    lag = health.get("lag_seconds")
    entry["lag_seconds"] = None if lag is None else float(lag)
    return entry


def _accounts(record):
    """Every source account of the run, in a stable order: those listed, then those only in its instances or
    unreachable entries."""
    entries = {}
    for account in record.get("accounts") or []:
        entries[str(account["account_id"])] = {
            "account_id": str(account["account_id"]),
            "name": account.get("name"),
            "staging_account_id": str(account["staging_account_id"]) if account.get("staging_account_id") else None,
            "regions": list(account.get("regions") or []),
        }
    for source in (record.get("instances") or [], record.get("unreachable") or []):
        for entry in source:
            account_id = str(entry["account_id"])
            entries.setdefault(account_id, {"account_id": account_id, "name": None, "staging_account_id": None,
                                            "regions": []})
    return list(entries.values())


def _waves(record, settled):
    """Each wave's own figures for one account, with its times."""
    waves = []
    for wave in record.get("waves") or []:
        own = [instance for instance in settled if instance.get("wave") == wave["wave"]]
        if not own:
            continue
        entry = {"wave": wave["wave"], "started_at": iso(wave["started_at"])}
        if wave.get("finished_at") is not None:
            entry["finished_at"] = iso(wave["finished_at"])
        entry.update(outcomes.tally_of(own))
        verified = replication_of(own)
        if verified:
            entry["replication"] = verified
        waves.append(entry)
    return waves


def replication_of(instances):
    """{verdict: count} of the instances whose replication was verified (empty when none was)."""
    counts = {}
    for instance in instances:
        verdict = (instance.get("replication") or {}).get("verdict")
        if verdict:
            counts[verdict] = counts.get(verdict, 0) + 1
    return counts


def effective_status(item, now):
    """The status to show: ``interrupted`` for an item still in progress after its lease."""
    if item.get("status") == IN_PROGRESS and item.get("lease_until"):
        try:
            if parse_time("lease_until", item["lease_until"]) < now:
                return INTERRUPTED
        except HistoryInputError:
            return INTERRUPTED
    return item.get("status")


def names_of(record):
    """The accounts' names given in the record (accounts[].name)."""
    return {account["account_id"]: account.get("name") for account in _accounts(record)}
