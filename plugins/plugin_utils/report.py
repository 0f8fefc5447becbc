# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Deployment history reports: time range, per-account figures, colour bands, unprotected instances and exports.

Controller-side logic of the drs_report role, kept out of Jinja so it can be tested. The input is what
drs_history_info returns in ``deployments``: one item per source account per run, each with its counts per
instance status (``by_status``) and its unprotected instances. Every sum and rate comes from ``outcomes``, the
one definition of the statuses and their arithmetic; the failed instances are the unprotected ones whose
status is a failure.

An item's ``timestamp`` is the table's sort key (``<start>#<account>#<run>``): it orders items but is never
shown; people see ``started_at`` and ``finished_at``.
"""

import csv
import io
from datetime import datetime, timedelta, timezone

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import history
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import outcomes

# An account's cell is green from this success rate on, yellow from the next, red below it.
GREEN_FROM = 0.95
YELLOW_FROM = 0.80
DEFAULT_WINDOW_HOURS = 24
# The statuses a deployment item is shown with, in the order the report lists them.
DEPLOYMENT_STATUSES = history.FILTER_STATUSES
# The fields of the run that every flattened instance carries.
CONTEXT_FIELDS = ("deployment_id", "started_at", "source_account_id", "source_account_name", "deployment_pattern")
FAILURE_CSV_COLUMNS = (
    "deployment_id", "started_at", "account_id", "account_name", "region", "instance_id", "name", "wave",
    "priority", "ssm_status", "error_category", "error_message", "remediation",
)
UNPROTECTED_CSV_COLUMNS = (
    "deployment_id", "started_at", "account_id", "account_name", "region", "instance_id", "name", "wave",
    "priority", "status", "error_category", "reason", "remediation",
)
ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


def parse_time(value):
    """A datetime in UTC from ISO 8601 text (``Z`` or an offset; none means UTC), or None when empty."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value
    else:
        text = str(value).strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"not an ISO 8601 date and time: {value!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def format_time(moment):
    return moment.astimezone(timezone.utc).strftime(ISO_FORMAT)


def display_time(value):
    """An ISO 8601 time as ``YYYY-MM-DD HH:MM:SS`` UTC for people; the text itself when it is not a time."""
    try:
        moment = parse_time(value)
    except ValueError:
        return str(value)
    return "" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


def display_duration(seconds):
    """Seconds as ``45 s``, ``12 min 5 s`` or ``2 h 3 min``; empty when unknown."""
    if seconds is None or seconds == "":
        return ""
    total = int(round(float(seconds)))
    if total < 60:
        return f"{total} s"
    if total < 3600:
        return f"{total // 60} min {total % 60} s" if total % 60 else f"{total // 60} min"
    return f"{total // 3600} h {total % 3600 // 60} min"


def time_range(since=None, until=None, now=None, window_hours=DEFAULT_WINDOW_HOURS):
    """The report's time range as ISO 8601 UTC text: ``until`` defaults to now, ``since`` to
    ``window_hours`` before ``until``. Raises ValueError when a bound is not a date or since is after until."""
    end = parse_time(until) or parse_time(now) or datetime.now(timezone.utc)
    start = parse_time(since) or end - timedelta(hours=float(window_hours))
    if start > end:
        raise ValueError(f"the report's start {format_time(start)} is after its end {format_time(end)}")
    return {"since": format_time(start), "until": format_time(end)}


def success_band(rate):
    """``green`` (at least 95%), ``yellow`` (at least 80%), ``red`` (below), ``none`` (nothing attempted).

    Rates are rounded to 9 decimals first, so that 19/20 or 0.8 read from a table are not put one band
    lower by floating point error."""
    if rate is None:
        return "none"
    rate = round(float(rate), 9)
    if rate >= GREEN_FROM:
        return "green"
    if rate >= YELLOW_FROM:
        return "yellow"
    return "red"


def _time_order(deployments):
    """The deployments oldest first: by the run's start, then account and run, so that the order is stable."""
    return sorted(deployments, key=lambda item: tuple(str(item.get(field) or "")
                                                      for field in ("started_at", "source_account_id", "run_id")))


def _figures(deployments):
    """The figures (``outcomes.tally``) of the deployments' instances, their counts per status summed."""
    return outcomes.tally(outcomes.add(*(deployment.get("by_status") for deployment in deployments)))


def _status_counts(deployments):
    """How many deployments have each status, every status of DEPLOYMENT_STATUSES present."""
    counts = dict.fromkeys(DEPLOYMENT_STATUSES, 0)
    for deployment in deployments:
        status = deployment.get("status")
        counts[status] = counts.get(status, 0) + 1
    return counts


def flatten_unprotected(deployments):
    """Every unprotected instance of the deployments, in time order, each with its run's fields and
    ``account_id``/``account_name``."""
    flattened = []
    for deployment in _time_order(deployments):
        context = {field: deployment.get(field) for field in CONTEXT_FIELDS}
        context.update(account_id=deployment.get("source_account_id"),
                       account_name=deployment.get("source_account_name") or deployment.get("source_account_id"),
                       deployment_status=deployment.get("status"))
        for instance in deployment.get("unprotected_instances") or []:
            flattened.append(dict(instance, **context))
    return flattened


def flatten_failures(deployments):
    """The failed instances of the deployments: their unprotected instances whose status is a failure, each
    with its reason as ``error_message``."""
    return [dict(entry, error_message=entry.get("reason")) for entry in flatten_unprotected(deployments)
            if entry.get("status") in outcomes.FAILED_STATUSES]


def account_rows(deployments):
    """One row per source account, sorted by account id: its deployments, the figures of all its instances
    (counts summed over its deployments), its colour band, and its latest deployment."""
    runs = {}
    for deployment in _time_order(deployments):
        runs.setdefault(str(deployment.get("source_account_id") or ""), []).append(deployment)
    rows = []
    for account_id in sorted(runs):
        own = runs[account_id]
        latest = own[-1]
        figures = _figures(own)
        rows.append(dict(
            figures,
            account_id=account_id,
            account_name=next((run["source_account_name"] for run in reversed(own) if run.get("source_account_name")),
                              account_id),
            deployments=len(own),
            statuses=_status_counts(own),
            last_status=latest.get("status"),
            last_started_at=display_time(latest.get("started_at")),
            band=success_band(figures["success_rate"]),
        ))
    return rows


def _newest_first(entries):
    """Entries newest run first, then by wave and instance id."""
    by_instance = sorted(entries, key=lambda entry: (_wave_order(entry.get("wave")), str(entry.get("instance_id") or "")))
    return sorted(by_instance, key=lambda entry: str(entry.get("started_at") or ""), reverse=True)


def _wave_order(value):
    """A wave for sorting: instances without one last."""
    return (1, 0) if value in (None, "") else (0, int(value))


def failures_by_account(failures, accounts=()):
    """The failed instances grouped by account (sorted by account id), newest run first."""
    names = {row["account_id"]: row["account_name"] for row in accounts}
    groups = {}
    for failure in failures:
        account_id = str(failure.get("account_id") or "")
        group = groups.setdefault(account_id, {"account_id": account_id,
                                               "account_name": names.get(account_id) or failure.get("account_name"),
                                               "failures": []})
        group["failures"].append(dict(failure, started=display_time(failure.get("started_at"))))
    for group in groups.values():
        group["failures"] = _newest_first(group["failures"])
    return [groups[account_id] for account_id in sorted(groups)]


def _status_order(status):
    return outcomes.STATUSES.index(status) if status in outcomes.STATUSES else len(outcomes.STATUSES)


def unprotected_by_account(deployments, accounts=()):
    """The unprotected instances grouped by account (sorted by account id), then by status (in the order of
    ``outcomes.STATUSES``) and error category, newest run first; with each account's runs whose item left
    some out (``unprotected_left_out``)."""
    names = {row["account_id"]: row["account_name"] for row in accounts}
    groups = {}

    def account_group(account_id, name):
        return groups.setdefault(account_id, {"account_id": account_id, "account_name": names.get(account_id) or name,
                                              "count": 0, "kinds": {}, "left_out": []})

    for entry in flatten_unprotected(deployments):
        group = account_group(str(entry["account_id"] or ""), entry["account_name"])
        status = entry.get("status")
        kind = group["kinds"].setdefault((status, entry.get("error_category") or ""), {
            "status": status,
            "group": outcomes.GROUP_OF.get(status, "unknown"),
            "error_category": entry.get("error_category") or "",
            "instances": [],
        })
        kind["instances"].append(dict(entry, started=display_time(entry.get("started_at"))))
        group["count"] += 1
    for deployment in _time_order(deployments):
        left_out = int(deployment.get("unprotected_left_out") or 0)
        if left_out:
            group = account_group(str(deployment.get("source_account_id") or ""),
                                  deployment.get("source_account_name") or deployment.get("source_account_id"))
            group["left_out"].append({"deployment_id": deployment.get("deployment_id"), "count": left_out,
                                      "listed": len(deployment.get("unprotected_instances") or []),
                                      "started": display_time(deployment.get("started_at"))})
    for group in groups.values():
        kinds = sorted(group["kinds"].values(),
                       key=lambda kind: (_status_order(kind["status"]), kind["error_category"]))
        for kind in kinds:
            kind["instances"] = _newest_first(kind["instances"])
        group["kinds"] = kinds
    return [groups[account_id] for account_id in sorted(groups)]


def _timeline_entry(deployment):
    figures = outcomes.tally(deployment.get("by_status"))
    finished = deployment.get("finished_at")
    return dict(
        deployment,
        figures=figures,
        band=success_band(figures["success_rate"]),
        started=display_time(deployment.get("started_at")),
        finished=display_time(finished) if finished else "",
        duration=display_duration(deployment.get("duration_seconds")) if finished else "",
        lease_until_shown=display_time(deployment.get("lease_until")) if deployment.get("lease_until") else "",
    )


def report_data(deployments, filters=None, generated_at=None):
    """Everything the HTML report shows, computed once: summary, account grid, failed instances and
    unprotected instances by account, timeline (newest first) and filters."""
    deployments = list(deployments or [])
    accounts = account_rows(deployments)
    failures = flatten_failures(deployments)
    unprotected = unprotected_by_account(deployments, accounts)
    figures = _figures(deployments)
    summary = dict(
        figures,
        deployments=len({deployment.get("deployment_id") for deployment in deployments}),
        records=len(deployments),
        accounts=len(accounts),
        failed_instances=len(failures),
        unprotected_listed=sum(group["count"] for group in unprotected),
        unprotected_left_out=sum(int(deployment.get("unprotected_left_out") or 0) for deployment in deployments),
        band=success_band(figures["success_rate"]),
        statuses=_status_counts(deployments),
    )
    return {
        "generated_at": generated_at,
        "filters": dict(filters or {}),
        "summary": summary,
        "accounts": accounts,
        "failures_by_account": failures_by_account(failures, accounts),
        "unprotected_by_account": unprotected,
        "timeline": [_timeline_entry(deployment) for deployment in reversed(_time_order(deployments))],
    }


def percent(rate, digits=1):
    """A rate (0 to 1) as a percentage text; ``n/a`` when there is none."""
    if rate is None or rate == "":
        return "n/a"
    return f"{float(rate) * 100:.{int(digits)}f}%"


# A spreadsheet opening the CSV runs a cell that starts with one of these as a formula; instance names,
# error messages and remediation come from tags and instance output, so such a cell gets a leading
# apostrophe (OWASP's advice on CSV injection) and shows as the text it is.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _csv_value(value):
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return str(value)


def _csv(columns, entries):
    """The entries as CSV text (RFC 4180 quoting, CRLF line ends) with a header row; text that a spreadsheet
    would run as a formula is kept as text (``FORMULA_STARTS``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow(columns)
    for entry in entries:
        writer.writerow([_csv_value(entry.get(column)) for column in columns])
    return buffer.getvalue()


def failures_csv(failures):
    """failures.csv: one row per failed instance (``flatten_failures``), columns ``FAILURE_CSV_COLUMNS``."""
    return _csv(FAILURE_CSV_COLUMNS, failures)


def unprotected_csv(unprotected):
    """unprotected.csv: one row per unprotected instance (``flatten_unprotected``), columns
    ``UNPROTECTED_CSV_COLUMNS``."""
    return _csv(UNPROTECTED_CSV_COLUMNS, unprotected)


def deployments_export(deployments, filters=None, generated_at=None):
    """The content of deployments.json: the deployments in time order, the filters and when it was made."""
    return {
        "generated_at": generated_at,
        "filters": dict(filters or {}),
        "count": len(deployments or []),
        "deployments": _time_order(deployments or []),
    }
