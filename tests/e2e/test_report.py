"""playbooks/report.yml end to end: deployment history in the lab's DynamoDB, the report written with
ansible-playbook, then opened in headless Chromium (Debian's package, `make browser`).

The history is put into the lab with boto3, item by item in the layout drs_history_record writes (one
item per source account per deployment run), so that the success rates sit exactly on the colour
bands' boundaries. The report reads it back through drs_history_info.
"""

import csv
import json
import re
import shutil
import subprocess
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from html.parser import HTMLParser

import pytest

from tests.e2e.conftest import run_playbook
from tests.lab_fixture import REPO_ROOT

PLAYBOOK = REPO_ROOT / "playbooks" / "report.yml"
CHROMIUM_TIMEOUT = 120
CSV_COLUMNS = ["deployment_id", "timestamp", "account_id", "account_name", "region", "instance_id", "name", "wave",
               "priority", "ssm_status", "error_category", "error_message", "remediation"]
HOSTILE_NAME = '<img src=x onerror="console.error(\'xss-name\')">, "db"'
HOSTILE_MESSAGE = '<script>console.error("xss-message")</script> exit 1,\nsee "agent.log"'
PROD, SHARED, RETAIL, SANDBOX = "111111111111", "222222222222", "444444444444", "555555555555"


def _iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _failure(number, account_id, wave=1, name=None, message="exit code 1", category="agent_install"):
    return {
        "instance_id": f"i-{account_id[:4]}{number:013x}", "name": name or f"server-{number}", "account_id": account_id,
        "region": "us-east-1" if number % 2 else "us-west-2", "wave": wave, "priority": "high",
        "ssm_status": "Failed", "error_category": category, "error_message": message,
        "remediation": "Check the agent's installation log on the instance, then run the deployment again.",
    }


def _item(deployment_id, account_id, name, finished, pattern, counts, failures=(), stopped_after_wave=None):
    attempted, installed, already, failed, skipped = counts
    assert failed == len(failures)
    succeeded = installed + already
    if attempted and succeeded == attempted:
        status = "success"
    elif succeeded:
        status = "partial"
    else:
        status = "failed"
    started = finished - timedelta(minutes=20)
    return {
        "deployment_id": deployment_id,
        "timestamp": f"{_iso(finished)}#{account_id}",
        "source_account_id": account_id,
        "source_account_name": name,
        "deployment_pattern": pattern,
        "status": status,
        "regions": ["us-east-1", "us-west-2"],
        "staging_account_id": "333333333333",
        "started_at": _iso(started),
        "finished_at": _iso(finished),
        "duration_seconds": 1200,
        "attempted": attempted,
        "installed": installed,
        "already_registered": already,
        "failed": failed,
        "skipped": skipped,
        "success_rate": Fraction(succeeded, attempted) if attempted else None,
        "stopped_after_wave": stopped_after_wave,
        "failed_instances": list(failures),
        "ttl": int((finished + timedelta(days=90)).timestamp()),
    }


def _history(now):
    """Deployments of the last hours (at 95% and 80% exactly, below, and nothing attempted) and one of
    three days ago, which the default period (the last 24 hours) leaves out."""
    multi, single, retail, sandbox, old = (str(uuid.uuid4()) for _number in range(5))
    retail_failures = [_failure(n, RETAIL, wave=1 + n % 3) for n in range(4)]
    retail_failures.append(_failure(4, RETAIL, wave=2, name=HOSTILE_NAME, message=HOSTILE_MESSAGE, category="network"))
    return [
        # PROD: 10 of 10, then 9 of 10: 19 of 20 is 95%, green
        _item(single, PROD, "Production, EU", now - timedelta(hours=20), "cross-account", (10, 10, 0, 0, 0)),
        _item(multi, PROD, "Production, EU", now - timedelta(hours=3), "multi-account", (10, 8, 1, 1, 0),
              [_failure(1, PROD, wave=2, message='failed, "quoted"')], stopped_after_wave=2),
        # SHARED: 8 of 10 is 80%, yellow; two skipped do not count
        _item(multi, SHARED, "Shared services", now - timedelta(hours=3), "multi-account", (10, 7, 1, 2, 2),
              [_failure(2, SHARED), _failure(3, SHARED, wave=3, category="ssm_timeout")]),
        # RETAIL: 15 of 20 is 75%, red; an instance name and error message written to attack the report
        _item(retail, RETAIL, "Retail <script>", now - timedelta(hours=1), "same-account", (20, 15, 0, 5, 1),
              retail_failures),
        # SANDBOX: nothing attempted, all skipped: no rate, grey
        _item(sandbox, SANDBOX, "Sandbox", now - timedelta(hours=2), "same-account", (0, 0, 0, 0, 3)),
        # three days ago: outside the default period
        _item(old, PROD, "Production, EU", now - timedelta(days=3), "cross-account", (5, 0, 0, 5, 0),
              [_failure(n, PROD) for n in range(5, 10)]),
    ]


def _dynamo_value(value):
    if isinstance(value, dict):
        return {key: _dynamo_value(entry) for key, entry in value.items()}
    if isinstance(value, list):
        return [_dynamo_value(entry) for entry in value]
    if isinstance(value, Fraction):
        return Decimal(value.numerator) / Decimal(value.denominator)
    if isinstance(value, float):
        return Decimal(str(value))
    return value


def _create_table(lab, name):
    """The table as roles/drs_history_table/files/history-table.yml declares it."""
    indexes = [("AccountIndex", "source_account_id"), ("StatusIndex", "status"), ("PatternIndex", "deployment_pattern")]
    lab.client("dynamodb").create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": attribute, "AttributeType": "S"} for attribute in
                              ("deployment_id", "timestamp", "source_account_id", "status", "deployment_pattern")],
        KeySchema=[{"AttributeName": "deployment_id", "KeyType": "HASH"},
                   {"AttributeName": "timestamp", "KeyType": "RANGE"}],
        GlobalSecondaryIndexes=[{
            "IndexName": index, "Projection": {"ProjectionType": "ALL"},
            "KeySchema": [{"AttributeName": key, "KeyType": "HASH"}, {"AttributeName": "timestamp", "KeyType": "RANGE"}],
        } for index, key in indexes],
    )


@pytest.fixture(scope="module")
def history(lab_factory):
    lab = lab_factory("demo")
    table_name = f"drs-report-{uuid.uuid4().hex[:8]}"
    _create_table(lab, table_name)
    items = _history(datetime.now(timezone.utc))
    table = lab.client("dynamodb")
    from boto3.dynamodb.types import TypeSerializer  # pylint: disable=import-outside-toplevel
    serializer = TypeSerializer()
    for item in items:
        table.put_item(TableName=table_name, Item={key: serializer.serialize(_dynamo_value(value))
                                                   for key, value in item.items()})
    return lab, table_name, items


def _report(history_fixture, output_dir, **filters):
    lab, table_name, _items = history_fixture
    extra_vars = {"drs_report_table_name": table_name, "drs_report_output_dir": str(output_dir),
                  "drs_report_page_size": 2}
    extra_vars.update(filters)
    run = run_playbook(lab, PLAYBOOK, extra_vars)
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-3000:]
    return run


def _chromium():
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("no chromium binary: run `make browser` (it installs Debian's chromium package)")
    return None


def _open(page, tmp_path, *args):
    """Open ``page`` in headless Chromium; returns its stdout and the console messages it logged."""
    command = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
               "--enable-logging=stderr", "--v=0", f"--user-data-dir={tmp_path / 'chromium-profile'}", *args,
               page.as_uri()]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    console = [line for line in completed.stderr.splitlines() if re.search(r":CONSOLE[:(\]]", line)]
    return completed.stdout, console


class _Dom(HTMLParser):
    """The elements of a dumped DOM (tag and attributes) and its text."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.elements = []
        self.text = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data):
        self.text.append(data)

    def with_class(self, name):
        return [attrs for _tag, attrs in self.elements if name in (attrs.get("class") or "").split()]


def _expected_bands(items):
    """Account id -> (success rate, colour) computed from the items with exact fractions."""
    sums = {}
    for item in items:
        attempted, succeeded = sums.get(item["source_account_id"], (0, 0))
        sums[item["source_account_id"]] = (attempted + item["attempted"],
                                           succeeded + item["installed"] + item["already_registered"])
    bands = {}
    for account_id, (attempted, succeeded) in sums.items():
        if not attempted:
            bands[account_id] = (None, "none")
            continue
        rate = Fraction(succeeded, attempted)
        bands[account_id] = (rate, "green" if rate >= Fraction(95, 100) else "yellow" if rate >= Fraction(80, 100)
                             else "red")
    return bands


def _in_period(items, since):
    return [item for item in items if item["timestamp"] >= since]


def _failure_rows(items):
    rows = []
    for item in items:
        for failure in item["failed_instances"]:
            rows.append({
                "deployment_id": item["deployment_id"], "timestamp": item["timestamp"], "account_id": failure["account_id"],
                "account_name": item["source_account_name"], "region": failure["region"],
                "instance_id": failure["instance_id"], "name": failure["name"], "wave": str(failure["wave"]),
                "priority": failure["priority"], "ssm_status": failure["ssm_status"],
                "error_category": failure["error_category"], "error_message": failure["error_message"],
                "remediation": failure["remediation"],
            })
    return sorted(rows, key=lambda row: (row["deployment_id"], row["timestamp"], row["instance_id"]))


def test_chromium_reports_console_messages_to_the_check(tmp_path):
    """The console check is not blind: a page that logs an error, and one whose policy blocks an image, are caught."""
    page = tmp_path / "control.html"
    page.write_text("<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" content=\"default-src "
                    "'none'; script-src 'unsafe-inline'\"></head><body><script>console.error('control-marker')"
                    "</script><img src=\"https://example.invalid/x.png\"></body></html>", encoding="utf-8")
    _dom, console = _open(page, tmp_path, "--dump-dom")
    assert any("control-marker" in line for line in console), console
    assert any("Content Security Policy" in line for line in console), console


def test_the_report_of_the_last_24_hours_opens_cleanly_and_matches_the_table(history, tmp_path):
    _lab, table_name, items = history
    output = tmp_path / "report"
    run = _report(history, output)
    generated = json.loads((output / "deployments.json").read_text(encoding="utf-8"))
    since = generated["filters"]["since"]
    until = generated["filters"]["until"]
    assert datetime.fromisoformat(until.replace("Z", "+00:00")) - datetime.fromisoformat(since.replace("Z", "+00:00")) \
        == timedelta(hours=24)
    reported = _in_period(items, since)
    assert len(reported) == len(items) - 1  # the deployment of three days ago is left out
    assert "Report written to" in run.stdout

    # deployments.json: the table's items of the period, the filters and when it was made
    assert generated["filters"] == {"since": since, "until": until, "account_id": None, "deployment_pattern": None,
                                    "status": None, "table_name": table_name}
    assert generated["generated_at"] == until
    assert generated["count"] == len(reported)
    by_key = {(entry["deployment_id"], entry["timestamp"]): entry for entry in generated["deployments"]}
    assert set(by_key) == {(item["deployment_id"], item["timestamp"]) for item in reported}
    for item in reported:
        entry = by_key[(item["deployment_id"], item["timestamp"])]
        for field in ("source_account_id", "source_account_name", "deployment_pattern", "status", "attempted",
                      "installed", "already_registered", "failed", "skipped", "started_at", "stopped_after_wave",
                      "failed_instances"):
            assert entry[field] == item[field], field
        assert entry["success_rate"] == pytest.approx(None if item["success_rate"] is None else float(item["success_rate"]))

    # failures.csv: one row per failed instance of the period, quoted so that commas, quotes and newlines survive
    with (output / "failures.csv").open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == CSV_COLUMNS
        rows = sorted(reader, key=lambda row: (row["deployment_id"], row["timestamp"], row["instance_id"]))
    assert rows == _failure_rows(reported)
    assert any(row["error_message"] == HOSTILE_MESSAGE and row["name"] == HOSTILE_NAME for row in rows)

    # report.html: self-contained, no console message (an error, a blocked script or asset) in Chromium
    page = output / "report.html"
    html = page.read_text(encoding="utf-8")
    source = _Dom(html)
    assert not [tag for tag, _attrs in source.elements if tag in ("script", "link", "img", "iframe", "object")]
    assert not [attrs for _tag, attrs in source.elements if {"src", "href", "srcset"} & set(attrs)]
    style = html.split("<style>", 1)[1].split("</style>", 1)[0]
    assert not re.search(r"url\(|@import|https?:", style, re.IGNORECASE)
    dom_text, console = _open(page, tmp_path, "--dump-dom")
    assert console == [], "\n".join(console)
    dom = _Dom(dom_text)

    # each account's cell has the colour of the success rate computed from the items
    cells = {attrs["data-account-id"]: attrs for attrs in dom.with_class("account-cell")}
    expected = _expected_bands(reported)
    assert set(cells) == set(expected) == {PROD, SHARED, RETAIL, SANDBOX}
    for account_id, (rate, band) in expected.items():
        classes = cells[account_id]["class"].split()
        assert f"status-{band}" in classes, (account_id, classes)
        assert [name for name in classes if name.startswith("status-")] == [f"status-{band}"]
        shown = cells[account_id]["data-success-rate"]
        assert (shown == "") if rate is None else float(shown) == pytest.approx(float(rate)), (account_id, shown)
    assert {account_id: band for account_id, (_rate, band) in expected.items()} == {
        PROD: "green", SHARED: "yellow", RETAIL: "red", SANDBOX: "none"}

    # summary, failures grouped by account, timeline, filters
    stats = {attrs["data-stat"]: attrs for attrs in dom.with_class("stat")}
    attempted = sum(item["attempted"] for item in reported)
    succeeded = sum(item["installed"] + item["already_registered"] for item in reported)
    assert float(stats["success_rate"]["data-success-rate"]) == pytest.approx(succeeded / attempted)
    groups = [attrs["data-account-id"] for attrs in dom.with_class("failure-group")]
    assert groups == sorted({item["source_account_id"] for item in reported if item["failed_instances"]})
    assert sorted(attrs["data-instance-id"] for attrs in dom.with_class("failure")) == \
        sorted(row["instance_id"] for row in rows)
    assert len(dom.with_class("deployment")) == len(reported)
    text = "".join(dom.text)
    assert "all accounts" in text and "all patterns" in text and "all statuses" in text
    assert since in text and until in text
    # untrusted text is shown as text, never run or parsed as markup
    assert HOSTILE_NAME in text and HOSTILE_MESSAGE in text and "Retail <script>" in text
    assert not [tag for tag, _attrs in dom.elements if tag in ("script", "img")]
    assert "Check the agent's installation log" in text

    # a screenshot next to the report, for people to look at
    screenshot = output / "report.png"
    _stdout, console = _open(page, tmp_path, f"--screenshot={screenshot}", "--window-size=1280,2000",
                             "--hide-scrollbars")
    assert console == [], "\n".join(console)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 20_000


def test_filters_select_the_deployments_and_are_shown(history, tmp_path):
    _lab, _table_name, items = history
    output = tmp_path / "filtered"
    since = (datetime.now(timezone.utc) - timedelta(days=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    _report(history, output, drs_report_since=since, drs_report_account_id=PROD, drs_report_status="failed")
    generated = json.loads((output / "deployments.json").read_text(encoding="utf-8"))
    expected = [item for item in items if item["source_account_id"] == PROD and item["status"] == "failed"]
    assert len(expected) == 1  # the deployment of three days ago
    assert [entry["deployment_id"] for entry in generated["deployments"]] == [expected[0]["deployment_id"]]
    assert generated["filters"]["account_id"] == PROD and generated["filters"]["status"] == "failed"
    assert generated["filters"]["since"] == since
    with (output / "failures.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(row["instance_id"] for row in rows) == sorted(f["instance_id"] for f in expected[0]["failed_instances"])

    dom_text, console = _open(output / "report.html", tmp_path, "--dump-dom")
    assert console == [], "\n".join(console)
    dom = _Dom(dom_text)
    cells = dom.with_class("account-cell")
    assert [(cell["data-account-id"], cell["data-band"]) for cell in cells] == [(PROD, "red")]
    text = "".join(dom.text)
    assert PROD in text and "failed" in text and since in text
    assert "all accounts" not in text and "all statuses" not in text and "all patterns" in text


def test_an_empty_period_gives_an_empty_report(history, tmp_path):
    output = tmp_path / "empty"
    _report(history, output, drs_report_since="2020-01-01T00:00:00Z", drs_report_until="2020-01-02T00:00:00Z")
    generated = json.loads((output / "deployments.json").read_text(encoding="utf-8"))
    assert generated["deployments"] == [] and generated["count"] == 0
    assert (output / "failures.csv").read_text(encoding="utf-8").splitlines() == [",".join(CSV_COLUMNS)]
    html = (output / "report.html").read_text(encoding="utf-8")
    assert "No deployment in this period." in html and "account-cell" not in html.split("</style>", 1)[1]
