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

import base64
import csv
import hashlib
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
REPLICATION_CSV_COLUMNS = (
    "deployment_id", "started_at", "account_id", "account_name", "region", "instance_id", "name", "wave",
    "verdict", "replication_state", "error", "error_category", "lag_seconds", "reason", "remediation",
)
DRILL_CSV_COLUMNS = (
    "drill_id", "status", "started_at", "finished_at", "wave", "servers", "launched", "failed", "timed_out",
    "stopped", "not_protected", "jobs", "recovery_seconds", "rto_seconds", "over_rto",
)
ISO_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# Replication verdicts (module_utils/replication.py), in the order the report shows them.
VERDICTS = ("healthy", "syncing", "stalled", "disconnected", "stopped", "not_found")
# The figures of a drill's wave.
DRILL_FIGURES = ("servers", "launched", "failed", "timed_out", "stopped", "not_protected", "jobs")
EXTENSION_FIGURES = ("requested", "extended", "already_extended", "failed", "left_out")
# The trend has one bucket per hour up to this period, then per day up to the next, then per week.
HOURLY_UP_TO = timedelta(hours=48)
DAILY_UP_TO = timedelta(days=92)
# How many unhealthy servers the worst lags list shows.
WORST_LAGS = 10


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
            filter_waves=filter_values(wave for run in own for wave in _wave_list(run)),
            filter_statuses=filter_values(run.get("status") for run in own),
            filter_patterns=filter_values(run.get("deployment_pattern") for run in own),
            filter_categories=filter_values(category for run in own for category in _categories(run)),
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
        filter_waves=filter_values(_wave_list(deployment)),
        filter_categories=filter_values(_categories(deployment)),
    )


def report_data(deployments, filters=None, generated_at=None, drills=None):
    """Everything the HTML report shows, computed once: summary, account grid, results by wave, failed instances
    and their counts by error category, unprotected instances by account, extension results, replication
    health, the last drill of each wave, the success rate's trend, the timeline (newest first), the filters
    used and those the page offers, and the page's script with its hash for the Content Security Policy."""
    deployments = list(deployments or [])
    drills = list(drills or [])
    filters = dict(filters or {})
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
    replication = replication_health(deployments)
    return {
        "generated_at": generated_at,
        "filters": filters,
        "summary": summary,
        "accounts": accounts,
        "waves": wave_rows(deployments),
        "failures_by_account": failures_by_account(failures, accounts),
        "failure_categories": failure_categories(failures),
        "unprotected_by_account": unprotected,
        "extensions": extension_rows(deployments),
        "replication": replication,
        "worst_lags": worst_lags(replication),
        "drills": last_drill_per_wave(drills),
        "drill_count": len(drills),
        "trend": success_trend(deployments, filters.get("since"), filters.get("until")),
        "timeline": [_timeline_entry(deployment) for deployment in reversed(_time_order(deployments))],
        "choices": filter_choices(deployments, drills),
        "script": FILTER_SCRIPT,
        "script_hash": script_hash(FILTER_SCRIPT),
    }


# --- the page's filters --------------------------------------------------------------------------------

def filter_value(value):
    """A value as the page's filters compare it: text, its whitespace runs made ``_`` (an attribute holds a
    list of them separated by spaces); empty for None."""
    if value is None:
        return ""
    return "_".join(str(value).split())


def filter_values(values):
    """The distinct values as one attribute: filter values separated by spaces, in a stable order."""
    shown = {filter_value(value) for value in values if value not in (None, "")}
    return " ".join(sorted(shown - {""}, key=_choice_order))


def _choice_order(value):
    return (0, int(value), "") if str(value).isdigit() else (1, 0, str(value))


def _wave_list(deployment):
    waves = {wave.get("wave") for wave in deployment.get("waves") or []}
    waves |= {entry.get("wave") for entry in deployment.get("unprotected_instances") or []}
    return [wave for wave in waves if wave not in (None, "")]


def _categories(deployment):
    return [entry.get("error_category") for entry in deployment.get("unprotected_instances") or []]


def filter_choices(deployments, drills=()):
    """The values each of the page's filters offers, from everything the report shows: accounts (id and name),
    waves, statuses (of the runs and the drills), patterns, and error categories (of the unprotected instances
    and of the servers whose replication is not healthy)."""
    accounts = {}
    waves, statuses, patterns, categories = set(), set(), set(), set()
    for deployment in _time_order(deployments):
        account_id = str(deployment.get("source_account_id") or "")
        accounts[account_id] = deployment.get("source_account_name") or accounts.get(account_id) or account_id
        waves.update(_wave_list(deployment))
        waves.update(entry.get("wave") for entry in deployment.get("unhealthy_replication") or [])
        for run in (deployment.get("extension") or {}).get("runs") or []:
            waves.add(run.get("wave"))
        statuses.add(deployment.get("status"))
        patterns.add(deployment.get("deployment_pattern"))
        categories.update(_categories(deployment))
        categories.update(entry.get("error_category") for entry in deployment.get("unhealthy_replication") or [])
    for drill in drills:
        statuses.add(drill.get("status"))
        waves.update(wave.get("wave") for wave in drill.get("waves") or [])

    def listed(values):
        return [value for value in filter_values(values).split(" ") if value]

    return {
        "account": [{"value": filter_value(account_id), "label": f"{name} ({account_id})" if name != account_id
                     else account_id} for account_id, name in sorted(accounts.items()) if account_id],
        "wave": listed(waves),
        "status": listed(statuses),
        "pattern": listed(patterns),
        "category": listed(categories),
    }


# The page's script: the filters (select boxes, and the URL fragment, such as #account=111111111111&wave=2)
# hide the rows that do not match and count the rows shown. A row is an element with data-row (its section);
# it matches a filter when it does not carry that filter's attribute (data-account, data-wave, data-status,
# data-pattern, data-category), or when the attribute's space-separated values include the one chosen. A
# group (data-group) is hidden when none of its rows is shown. It reads and writes only attributes and text,
# never markup. The Content Security Policy allows this script only, by its hash (script_hash).
FILTER_SCRIPT = """
(function () {
  "use strict";
  var keys = ["account", "wave", "status", "pattern", "category"];
  function chosen() {
    var params = new URLSearchParams(window.location.hash.replace(/^#/, ""));
    var values = {};
    keys.forEach(function (key) { values[key] = params.get(key) || ""; });
    return values;
  }
  function select(key) { return document.getElementById("filter-" + key); }
  function show(values) {
    keys.forEach(function (key) {
      var box = select(key);
      if (!box) { return; }
      var known = Array.prototype.some.call(box.options, function (option) { return option.value === values[key]; });
      if (!known) {
        var option = document.createElement("option");
        option.value = values[key];
        option.textContent = values[key] + " (not in this report)";
        box.appendChild(option);
      }
      box.value = values[key];
    });
  }
  function matches(row, values) {
    return keys.every(function (key) {
      var wanted = values[key];
      var attribute = "data-" + key;
      if (!wanted || !row.hasAttribute(attribute)) { return true; }
      return row.getAttribute(attribute).split(" ").indexOf(wanted) !== -1;
    });
  }
  function apply() {
    var values = chosen();
    show(values);
    var counts = {};
    document.querySelectorAll("[data-row]").forEach(function (row) {
      var visible = matches(row, values);
      row.hidden = !visible;
      var section = row.getAttribute("data-row");
      counts[section] = (counts[section] || 0) + (visible ? 1 : 0);
    });
    document.querySelectorAll("[data-group]").forEach(function (group) {
      group.hidden = group.querySelector("[data-row]:not([hidden])") === null;
    });
    document.querySelectorAll("[data-count]").forEach(function (count) {
      count.textContent = String(counts[count.getAttribute("data-count")] || 0);
    });
    var active = keys.filter(function (key) { return values[key]; });
    var state = document.getElementById("filter-state");
    if (state) {
      state.textContent = active.length ? "Showing the rows that match " + active.map(function (key) {
        return key + " " + values[key];
      }).join(", ") + "." : "Showing every row.";
    }
    document.documentElement.setAttribute("data-filtered", active.join(" "));
  }
  function choose() {
    var params = new URLSearchParams();
    keys.forEach(function (key) {
      var box = select(key);
      if (box && box.value) { params.set(key, box.value); }
    });
    window.location.hash = params.toString();
  }
  keys.forEach(function (key) {
    var box = select(key);
    if (box) { box.addEventListener("change", choose); }
  });
  var reset = document.getElementById("filter-reset");
  if (reset) { reset.addEventListener("click", function () { window.location.hash = ""; }); }
  window.addEventListener("hashchange", apply);
  apply();
}());
"""


def script_hash(script):
    """The Content Security Policy source that allows ``script`` (the exact text between its tags) to run."""
    return "sha256-" + base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode("ascii")


# --- results by wave, failures by category, extension ----------------------------------------------------

def wave_rows(deployments):
    """One entry per wave (in wave order): the figures of its instances summed over every account and run,
    and one row per account with that account's figures of the wave, its runs' statuses and patterns."""
    waves = {}
    for deployment in _time_order(deployments):
        account_id = str(deployment.get("source_account_id") or "")
        for wave in deployment.get("waves") or []:
            number = wave.get("wave")
            if number in (None, ""):
                continue
            entry = waves.setdefault(number, {"by_status": [], "accounts": {}, "runs": set()})
            entry["by_status"].append(wave.get("by_status"))
            entry["runs"].add(deployment.get("run_id"))
            account = entry["accounts"].setdefault(account_id, {
                "account_id": account_id, "by_status": [], "runs": 0, "statuses": [], "patterns": [],
                "account_name": deployment.get("source_account_name") or account_id, "last_started_at": None})
            account["by_status"].append(wave.get("by_status"))
            account["runs"] += 1
            account["statuses"].append(deployment.get("status"))
            account["patterns"].append(deployment.get("deployment_pattern"))
            account["last_started_at"] = display_time(deployment.get("started_at"))
    rows = []
    for number in sorted(waves, key=_wave_order):
        entry = waves[number]
        figures = outcomes.tally(outcomes.add(*entry["by_status"]))
        accounts = []
        for account_id in sorted(entry["accounts"]):
            account = entry["accounts"][account_id]
            own = outcomes.tally(outcomes.add(*account["by_status"]))
            accounts.append(dict(own, account_id=account_id, account_name=account["account_name"],
                                 runs=account["runs"], band=success_band(own["success_rate"]),
                                 last_started_at=account["last_started_at"],
                                 statuses=filter_values(account["statuses"]),
                                 patterns=filter_values(account["patterns"])))
        rows.append(dict(figures, wave=number, runs=len(entry["runs"]), band=success_band(figures["success_rate"]),
                         accounts=accounts, account_ids=filter_values(row["account_id"] for row in accounts)))
    return rows


def failure_categories(failures):
    """The failed instances counted by error category (most first), each category with its count per account
    (sorted by account id), the instances' statuses and waves."""
    categories = {}
    for failure in failures:
        category = failure.get("error_category") or "unknown"
        entry = categories.setdefault(category, {"error_category": category, "count": 0, "accounts": {}})
        entry["count"] += 1
        account_id = str(failure.get("account_id") or "")
        account = entry["accounts"].setdefault(account_id, {
            "account_id": account_id, "account_name": failure.get("account_name") or account_id, "count": 0,
            "statuses": [], "instance_statuses": [], "waves": [], "patterns": []})
        account["count"] += 1
        account["statuses"].append(failure.get("deployment_status"))
        account["instance_statuses"].append(failure.get("status"))
        account["waves"].append(failure.get("wave"))
        account["patterns"].append(failure.get("deployment_pattern"))
    rows = []
    for entry in sorted(categories.values(), key=lambda entry: (-entry["count"], entry["error_category"])):
        accounts = []
        for account_id in sorted(entry["accounts"]):
            account = entry["accounts"][account_id]
            accounts.append(dict(account, statuses=filter_values(account["statuses"]),
                                 waves=filter_values(account["waves"]), patterns=filter_values(account["patterns"]),
                                 instance_statuses=", ".join(
                                     f"{count} {status}" for status, count in sorted(
                                         _counts(account["instance_statuses"]).items(),
                                         key=lambda pair: _status_order(pair[0])))))
        rows.append(dict(entry, accounts=accounts))
    return rows


def _counts(values):
    counts = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def extension_rows(deployments):
    """One row per extension of the servers into a target account (each wave's, staging account's and region's)
    of every run, newest run first: requested, extended, already extended, failed and left out, with its
    message. A run's items all hold its extension record: it is counted once per run. The row's accounts are
    the run's source accounts that register in its staging account (all the run's when none does)."""
    runs = {}
    for deployment in _time_order(deployments):
        extension = deployment.get("extension")
        if not isinstance(extension, dict) or not extension.get("runs"):
            continue
        key = (deployment.get("deployment_id"), deployment.get("run_id"))
        run = runs.setdefault(key, {"deployment": deployment, "extension": extension, "items": []})
        run["items"].append(deployment)
    rows = []
    for run in runs.values():
        deployment = run["deployment"]
        for entry in run["extension"]["runs"]:
            staging = str(entry.get("staging_account_id") or "")
            sources = [item for item in run["items"] if str(item.get("staging_account_id") or "") == staging] \
                or run["items"]
            rows.append(dict(
                {figure: int(entry.get(figure) or 0) for figure in EXTENSION_FIGURES},
                deployment_id=deployment.get("deployment_id"),
                started_at=deployment.get("started_at"),
                started=display_time(deployment.get("started_at")),
                wave=entry.get("wave"),
                target_account_id=entry.get("target_account_id"),
                staging_account_id=entry.get("staging_account_id"),
                region=entry.get("region"),
                message=entry.get("message") or "",
                capacity=entry.get("capacity"),
                accounts=filter_values(item.get("source_account_id") for item in sources),
                statuses=filter_values(item.get("status") for item in sources),
                pattern=deployment.get("deployment_pattern"),
            ))
    by_place = sorted(rows, key=lambda row: (_wave_order(row["wave"]), str(row["target_account_id"]),
                                             str(row["staging_account_id"]), str(row["region"])))
    return sorted(by_place, key=lambda row: str(row["started_at"] or ""), reverse=True)


# --- replication health, drills, trend ---------------------------------------------------------------------

def _lag_order(entry):
    """Worst lag first; servers without a lag after those with one."""
    lag = entry.get("lag_seconds")
    return (0, -float(lag)) if lag not in (None, "") else (1, 0.0)


def replication_health(deployments):
    """One row per source account whose replication a run verified: the counts per verdict of its latest run
    that verified it (every verdict present; healthy, syncing and stalled, the rest as other), and its servers
    not healthy in that run, worst lag first."""
    latest = {}
    for deployment in _time_order(deployments):
        if deployment.get("replication"):
            latest[str(deployment.get("source_account_id") or "")] = deployment
    rows = []
    for account_id in sorted(latest):
        deployment = latest[account_id]
        counts = dict.fromkeys(VERDICTS, 0)
        for verdict, number in deployment["replication"].items():
            counts[verdict] = counts.get(verdict, 0) + int(number or 0)
        servers = [dict(entry, account_id=account_id,
                        account_name=deployment.get("source_account_name") or account_id,
                        deployment_id=deployment.get("deployment_id"), started_at=deployment.get("started_at"),
                        deployment_status=deployment.get("status"),
                        deployment_pattern=deployment.get("deployment_pattern"),
                        lag=display_duration(entry.get("lag_seconds")))
                   for entry in deployment.get("unhealthy_replication") or []]
        servers.sort(key=lambda entry: (_lag_order(entry), str(entry.get("instance_id") or "")))
        lags = [float(entry["lag_seconds"]) for entry in servers if entry.get("lag_seconds") not in (None, "")]
        total = sum(counts.values())
        rows.append({
            "account_id": account_id,
            "account_name": deployment.get("source_account_name") or account_id,
            "deployment_id": deployment.get("deployment_id"),
            "started_at": deployment.get("started_at"),
            "started": display_time(deployment.get("started_at")),
            "status": deployment.get("status"),
            "pattern": deployment.get("deployment_pattern"),
            "counts": counts,
            "servers_checked": total,
            "healthy": counts["healthy"],
            "syncing": counts["syncing"],
            "stalled": counts["stalled"],
            "other": total - counts["healthy"] - counts["syncing"] - counts["stalled"],
            "health": "healthy" if total and counts["healthy"] == total else "unhealthy",
            "worst_lag_seconds": max(lags) if lags else None,
            "worst_lag": display_duration(max(lags)) if lags else "",
            "servers": servers,
            "waves": filter_values(entry.get("wave") for entry in servers),
            "categories": filter_values(entry.get("error_category") for entry in servers),
        })
    return rows


def worst_lags(replication, number=WORST_LAGS):
    """The servers not healthy with the longest lags over every account's latest verified run, at most
    ``number``, worst first (servers without a lag are left out)."""
    servers = [server for row in replication for server in row["servers"]
               if server.get("lag_seconds") not in (None, "")]
    return sorted(servers, key=lambda entry: (_lag_order(entry), entry["account_id"],
                                              str(entry.get("instance_id") or "")))[:number]


def flatten_unhealthy(deployments):
    """replication.csv's rows: the servers not healthy of each account's latest verified run, by account, worst
    lag first."""
    return [server for row in replication_health(deployments) for server in row["servers"]]


def _drill_order(drill):
    return (str(drill.get("started_at") or ""), str(drill.get("run_id") or ""))


def flatten_drills(drills):
    """drills.csv's rows: one per drill and wave, oldest drill first, in wave order."""
    rows = []
    for drill in sorted(drills or [], key=_drill_order):
        for wave in sorted(drill.get("waves") or [], key=lambda wave: _wave_order(wave.get("wave"))):
            rows.append(dict({figure: wave.get(figure) for figure in DRILL_FIGURES},
                             drill_id=drill.get("run_id") or str(drill.get("deployment_id") or "").split("#", 1)[-1],
                             status=drill.get("status"), started_at=drill.get("started_at"),
                             finished_at=drill.get("finished_at"), wave=wave.get("wave"),
                             recovery_seconds=wave.get("recovery_seconds"), rto_seconds=wave.get("rto_seconds"),
                             over_rto=bool(wave.get("over_rto"))))
    return rows


def last_drill_per_wave(drills):
    """For each wave drilled in the period (in wave order), its latest drill: the drill, its status and times,
    the wave's servers launched and not, its recovery time against its RTO (``rto``: ``met``, ``over``, or
    ``none`` without an RTO), and how many drills of the period included the wave."""
    latest, drilled = {}, {}
    for row in flatten_drills(drills):
        latest[row["wave"]] = row  # oldest first: the last one kept is the latest
        drilled[row["wave"]] = drilled.get(row["wave"], 0) + 1
    rows = []
    for wave in sorted(latest, key=_wave_order):
        row = latest[wave]
        rto = row["rto_seconds"]
        rows.append(dict(
            row,
            drills=drilled[wave],
            started=display_time(row["started_at"]),
            recovery=display_duration(row["recovery_seconds"]) or "not recovered",
            rto=display_duration(rto) if rto not in (None, "", 0) else "",
            verdict="over" if row["over_rto"] else ("met" if rto not in (None, "", 0) else "none"),
            unlaunched=int(row.get("failed") or 0) + int(row.get("timed_out") or 0),
        ))
    return rows


def _bucket_size(since, until):
    length = until - since
    if length <= HOURLY_UP_TO:
        return timedelta(hours=1), "hour"
    if length <= DAILY_UP_TO:
        return timedelta(days=1), "day"
    return timedelta(days=7), "week"


def _bucket_start(moment, size):
    if size == timedelta(hours=1):
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def success_trend(deployments, since, until):
    """The success rate over the period, one bucket per hour (a period up to 48 hours), day (up to 92 days) or
    week (from the period's first day), every bucket of the period present, each with the finished runs (not in
    progress or interrupted) that started in it: their records, instances attempted and protected, and the
    success rate (None when nothing was attempted)."""
    start, end = parse_time(since), parse_time(until)
    finished = [deployment for deployment in deployments
                if deployment.get("status") not in (history.IN_PROGRESS, history.INTERRUPTED)
                and deployment.get("started_at")]
    if start is None or end is None:
        moments = [parse_time(deployment["started_at"]) for deployment in finished]
        if not moments:
            return {"unit": "hour", "buckets": []}
        start, end = start or min(moments), end or max(moments)
    size, unit = _bucket_size(start, end)
    first = _bucket_start(start, size)
    buckets = []
    moment = first
    while moment <= end:
        buckets.append({"start": moment, "records": 0, "by_status": []})
        moment += size
    for deployment in finished:
        started = parse_time(deployment["started_at"])
        index = int((started - first) // size)
        if 0 <= index < len(buckets):
            buckets[index]["records"] += 1
            buckets[index]["by_status"].append(deployment.get("by_status"))
    shown = []
    for bucket in buckets:
        figures = outcomes.tally(outcomes.add(*bucket["by_status"]))
        label = bucket["start"].strftime("%Y-%m-%d %H:00" if unit == "hour" else "%Y-%m-%d")
        shown.append({"start": format_time(bucket["start"]), "label": label, "records": bucket["records"],
                      "attempted": figures["attempted"], "protected": figures["protected"],
                      "failed": figures["failed"], "success_rate": figures["success_rate"],
                      "band": success_band(figures["success_rate"])})
    return {"unit": unit, "buckets": shown}


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


def _csv_number(value):
    """A number as CSV shows it: an integer without ``.0``, empty when unknown."""
    if value is None or value == "":
        return None
    number = float(value)
    return int(number) if number.is_integer() else round(number, 3)


def replication_csv(servers):
    """replication.csv: one row per server not healthy (``flatten_unhealthy``), columns
    ``REPLICATION_CSV_COLUMNS``; ``lag_seconds`` empty when DRS gave none."""
    return _csv(REPLICATION_CSV_COLUMNS, [dict(server, lag_seconds=_csv_number(server.get("lag_seconds")))
                                          for server in servers])


def drills_csv(rows):
    """drills.csv: one row per drill and wave (``flatten_drills``), columns ``DRILL_CSV_COLUMNS``;
    ``recovery_seconds`` and ``rto_seconds`` empty when there is none, ``over_rto`` ``true`` or ``false``."""
    return _csv(DRILL_CSV_COLUMNS, [dict(row, recovery_seconds=_csv_number(row.get("recovery_seconds")),
                                         rto_seconds=_csv_number(row.get("rto_seconds")),
                                         over_rto="true" if row.get("over_rto") else "false") for row in rows])
