# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Deployment history reports: time range, per-account success rates, colour bands and exports.

Controller-side logic of the drs_report role, kept out of Jinja so it can be tested. The input is
what drs_history_info returns: deployment items (one per source account per deployment run) and
their failed instances.
"""

import csv
import io
from datetime import datetime, timedelta, timezone

# An account's cell is green from this success rate on, yellow from the next, red below it.
GREEN_FROM = 0.95
YELLOW_FROM = 0.80
DEFAULT_WINDOW_HOURS = 24
COUNT_FIELDS = ("attempted", "installed", "already_registered", "failed", "skipped")
FAILURE_CSV_COLUMNS = (
    "deployment_id", "timestamp", "account_id", "account_name", "region", "instance_id", "name", "wave",
    "priority", "ssm_status", "error_category", "error_message", "remediation",
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
    """A history time (ISO 8601, perhaps with a ``#<account>`` suffix) as ``YYYY-MM-DD HH:MM:SS`` UTC for
    people; the text itself when it is not a time."""
    text = str(value or "").split("#", 1)[0]
    try:
        moment = parse_time(text)
    except ValueError:
        return text
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


def _ratio(succeeded, attempted):
    return None if not attempted else succeeded / attempted


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


def _count(item, field):
    value = item.get(field)
    return int(value) if value not in (None, "") else 0


def _when(deployment):
    """The sort key of a deployment: when it started (or its timestamp without the account suffix)."""
    return str(deployment.get("started_at") or str(deployment.get("timestamp") or "").split("#", 1)[0])


def _sorted_deployments(deployments):
    return sorted(deployments, key=lambda item: (_when(item), str(item.get("source_account_id", ""))))


def flatten_failures(deployments):
    """The failed instances of the deployments, each with its deployment's id, timestamp and account."""
    flattened = []
    for deployment in _sorted_deployments(deployments):
        for instance in deployment.get("failed_instances") or []:
            entry = {
                "deployment_id": deployment.get("deployment_id"),
                "timestamp": deployment.get("timestamp"),
                "source_account_id": deployment.get("source_account_id"),
                "source_account_name": deployment.get("source_account_name"),
                "deployment_pattern": deployment.get("deployment_pattern"),
            }
            entry.update(instance)
            flattened.append(entry)
    return flattened


def _failure_account(failure):
    return str(failure.get("account_id") or failure.get("source_account_id") or "")


def account_rows(deployments):
    """One row per source account, sorted by account id: its deployments, summed counts, success rate
    (installed plus already registered over attempted, over all its deployments) and colour band."""
    accounts = {}
    for deployment in _sorted_deployments(deployments):
        account_id = str(deployment.get("source_account_id") or "")
        row = accounts.setdefault(account_id, dict(
            {field: 0 for field in COUNT_FIELDS},
            account_id=account_id, account_name=account_id, deployments=0,
            statuses={"success": 0, "partial": 0, "failed": 0}, last_status=None, last_deployment_at=None,
        ))
        row["account_name"] = deployment.get("source_account_name") or row["account_name"]
        row["deployments"] += 1
        for field in COUNT_FIELDS:
            row[field] += _count(deployment, field)
        status = deployment.get("status")
        row["statuses"][status] = row["statuses"].get(status, 0) + 1
        row["last_status"] = status
        row["last_deployment_at"] = display_time(_when(deployment))
    rows = []
    for account_id in sorted(accounts):
        row = accounts[account_id]
        row["success_rate"] = _ratio(row["installed"] + row["already_registered"], row["attempted"])
        row["band"] = success_band(row["success_rate"])
        rows.append(row)
    return rows


def failures_by_account(failures, accounts=None):
    """The failed instances grouped by account (sorted by account id), newest deployment first."""
    names = {row["account_id"]: row["account_name"] for row in accounts or []}
    groups = {}
    for failure in failures:
        account_id = _failure_account(failure)
        group = groups.setdefault(account_id, {
            "account_id": account_id,
            "account_name": failure.get("source_account_name") or names.get(account_id) or account_id,
            "failures": [],
        })
        group["failures"].append(dict(failure, when=display_time(failure.get("timestamp"))))
    for group in groups.values():
        group["failures"].sort(key=lambda entry: (
            str(entry.get("timestamp") or ""), -_count(entry, "wave"), str(entry.get("instance_id") or "")
        ), reverse=True)
    return [groups[account_id] for account_id in sorted(groups)]


def report_data(deployments, failures=None, filters=None, generated_at=None):
    """Everything the HTML report shows, computed once: summary, account grid, failures by account,
    timeline and filters. ``failures`` defaults to the deployments' own failed instances."""
    deployments = list(deployments or [])
    if failures is None:
        failures = flatten_failures(deployments)
    accounts = account_rows(deployments)
    totals = {field: sum(row[field] for row in accounts) for field in COUNT_FIELDS}
    success_rate = _ratio(totals["installed"] + totals["already_registered"], totals["attempted"])
    statuses = {"success": 0, "partial": 0, "failed": 0}
    for deployment in deployments:
        statuses[deployment.get("status")] = statuses.get(deployment.get("status"), 0) + 1
    summary = dict(
        totals,
        deployments=len({deployment.get("deployment_id") for deployment in deployments}),
        records=len(deployments),
        accounts=len(accounts),
        failed_instances=len(failures),
        success_rate=success_rate,
        band=success_band(success_rate),
        statuses=statuses,
    )
    timeline = [
        dict(deployment, when=display_time(_when(deployment)), band=success_band(deployment.get("success_rate")),
             duration=display_duration(deployment.get("duration_seconds")))
        for deployment in reversed(_sorted_deployments(deployments))
    ]
    return {
        "generated_at": generated_at,
        "filters": dict(filters or {}),
        "summary": summary,
        "accounts": accounts,
        "failures_by_account": failures_by_account(failures, accounts),
        "timeline": timeline,
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


def failures_csv(failures):
    """The failed instances as CSV text (RFC 4180 quoting, CRLF line ends), with a header row; text that a
    spreadsheet would run as a formula is kept as text (``FORMULA_STARTS``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow(FAILURE_CSV_COLUMNS)
    for failure in failures:
        row = dict(failure, account_id=_failure_account(failure),
                   account_name=failure.get("source_account_name") or failure.get("account_name"))
        writer.writerow([_csv_value(row.get(column)) for column in FAILURE_CSV_COLUMNS])
    return buffer.getvalue()


def deployments_export(deployments, filters=None, generated_at=None):
    """The content of deployments.json: the deployments in time order, the filters and when it was made."""
    return {
        "generated_at": generated_at,
        "filters": dict(filters or {}),
        "count": len(deployments or []),
        "deployments": _sorted_deployments(deployments or []),
    }
