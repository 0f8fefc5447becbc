"""The deployment history against the lab: the table role, drs_history_record and drs_history_info run by
ansible-playbook, checked against the lab's own DynamoDB and call statistics."""

import time
import uuid

import pytest

from tests.e2e.conftest import run_playbook

ROLE = "drs_orchestration.agent_deployer.drs_history_table"
TABLE = "drs-deployment-history"
QUERY_TABLE = "drs-history-queries"
SOURCE = "222222222222"
OTHER = "555555555555"
STAGING = "333333333333"
NINETY_DAYS = 90 * 86400


@pytest.fixture(scope="module")
def lab(lab_factory):
    return lab_factory("demo")


@pytest.fixture(scope="module")
def table_runs(lab):
    """The role run twice on a fresh lab."""
    return [run_playbook(lab, "history_table.yml") for _run in range(2)]


@pytest.fixture(scope="module")
def table(lab, table_runs):
    assert table_runs[0].returncode == 0, table_runs[0].stdout + table_runs[0].stderr
    return lab.client("dynamodb")


def result(instance, status, account=SOURCE, region="us-east-1", **extra):
    return dict({"instance_id": instance, "status": status, "account_id": account, "region": region,
                 "name": f"name-{instance}", "wave": 1, "priority": "high"}, **extra)


FAILED = dict(ssm_status="Failed", error_category="network", remediation="Allow outbound TCP 443, then re-run.",
              reason="urlopen error [Errno 110] Connection timed out")


def record(lab, *records, check=False, **common):
    """Run drs_history_record once per record; returns (the run, the results in order)."""
    options = [dict({"table_name": TABLE}, **common, **one) for one in records]
    run = run_playbook(lab, "history_record.yml", extra_vars={"records": options}, check=check)
    if run.returncode != 0:
        return run, None
    return run, run.task("Record the deployment")["results"]


def items_of(dynamodb, deployment_id, table_name=TABLE):
    answer = dynamodb.query(TableName=table_name, KeyConditionExpression="deployment_id = :d",
                            ExpressionAttributeValues={":d": {"S": deployment_id}}, ConsistentRead=True)
    return answer["Items"]


def number(item, key):
    return float(item[key]["N"])


def query(lab, **options):
    run = run_playbook(lab, "history_info.yml",
                       extra_vars={"history_query": dict({"table_name": QUERY_TABLE}, **options)})
    assert run.returncode == 0, run.stdout + run.stderr
    return run.task("Report the pages")["msg"]


def test_the_role_deploys_the_table_and_a_second_run_changes_nothing(lab, table_runs, table):
    first, second = table_runs
    assert first.task(f"{ROLE} : Create or update the history table stack")["changed"] is True
    assert second.returncode == 0, second.stdout + second.stderr
    assert second.task(f"{ROLE} : Create or update the history table stack")["changed"] is False
    assert second.report["stats"]["localhost"]["changed"] == 0

    described = table.describe_table(TableName=TABLE)["Table"]
    assert described["KeySchema"] == [{"AttributeName": "deployment_id", "KeyType": "HASH"},
                                      {"AttributeName": "timestamp", "KeyType": "RANGE"}]
    indexes = {index["IndexName"]: index for index in described["GlobalSecondaryIndexes"]}
    assert {name: [key["AttributeName"] for key in index["KeySchema"]] for name, index in indexes.items()} == {
        "AccountIndex": ["source_account_id", "timestamp"],
        "StatusIndex": ["status", "timestamp"],
        "PatternIndex": ["deployment_pattern", "timestamp"],
    }
    assert {index["Projection"]["ProjectionType"] for index in indexes.values()} == {"ALL"}
    assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"

    cloudformation = lab.client("cloudformation")
    stack = cloudformation.describe_stacks(StackName="drs-history-table")["Stacks"][0]
    assert {o["OutputKey"]: o["OutputValue"] for o in stack["Outputs"]}["TableName"] == TABLE
    exports = {export["Name"]: export["Value"] for export in cloudformation.list_exports()["Exports"]}
    assert exports["drs-history-table-TableName"] == TABLE
    ttl = table.describe_time_to_live(TableName=TABLE)["TimeToLiveDescription"]
    assert (ttl["TimeToLiveStatus"], ttl["AttributeName"]) == ("ENABLED", "ttl")
    backups = table.describe_continuous_backups(TableName=TABLE)["ContinuousBackupsDescription"]
    assert backups["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"


def test_successful_partial_and_failed_deployments_are_recorded(lab, table):
    run, recorded = record(
        lab,
        {"results": [result("i-01", "installed"), result("i-02", "already_registered"),
                     result("i-03", "skipped_ssm_offline")],
         "deployment_pattern": "same-account"},
        {"results": [result("i-11", "installed"), result("i-12", "failed", wave=2, priority="critical", **FAILED)],
         "deployment_pattern": "same-account", "stopped_after_wave": 2},
        {"results": [result("i-21", "timed_out", error_category="timeout", remediation="raise timeout"),
                     result("i-22", "failed", **FAILED)],
         "accounts": [{"account_id": SOURCE, "name": "apps", "staging_account_id": STAGING, "regions": ["us-east-1"]}],
         "deployment_pattern": "cross-account"},
        started_at="2026-06-01T10:00:00Z", finished_at="2026-06-01T10:30:00Z",
    )
    assert run.returncode == 0, run.stdout + run.stderr

    now = time.time()
    stored = [items_of(table, one["deployment_id"]) for one in recorded]
    assert [len(items) for items in stored] == [1, 1, 1]
    success, partial, failed = (items[0] for items in stored)
    assert [item["status"]["S"] for item in (success, partial, failed)] == ["success", "partial", "failed"]
    assert (number(success, "attempted"), number(success, "skipped"), number(success, "success_rate")) == (2, 1, 1)
    assert number(partial, "success_rate") == 0.5 and number(partial, "stopped_after_wave") == 2
    assert number(failed, "success_rate") == 0 and failed["staging_account_id"]["S"] == STAGING
    assert failed["source_account_name"]["S"] == "apps"
    assert number(partial, "duration_seconds") == 1800
    for item in (success, partial, failed):
        assert abs(int(item["ttl"]["N"]) - (now + NINETY_DAYS)) < 600
        # the sort key: the run's start, its source account and its run
        assert item["timestamp"]["S"].startswith(f"2026-06-01T10:00:00.000Z#{SOURCE}#")
    detail = partial["unprotected_instances"]["L"][0]["M"]
    assert float(detail["wave"]["N"]) == 2
    assert {key: detail[key]["S"] for key in
            ("instance_id", "priority", "status", "error_category", "remediation", "ssm_status", "reason")} == {
        "instance_id": "i-12", "priority": "critical", "status": "failed", "error_category": "network",
        "remediation": FAILED["remediation"], "ssm_status": "Failed", "reason": FAILED["reason"]}
    assert len(failed["unprotected_instances"]["L"]) == 2
    # a skipped instance is unprotected too: it is listed with the failed ones
    assert [entry["M"]["status"]["S"] for entry in success["unprotected_instances"]["L"]] == ["skipped_ssm_offline"]
    assert recorded[1]["items"][0]["unprotected_instances"][0]["wave"] == 2


def test_a_multi_account_run_is_found_from_each_of_its_accounts(lab, table):
    run, recorded = record(lab, {
        "results": [result("i-31", "installed"), result("i-32", "installed", account=OTHER)],
        "accounts": [{"account_id": SOURCE, "staging_account_id": STAGING, "regions": ["us-east-1"]},
                     {"account_id": OTHER, "staging_account_id": STAGING, "regions": ["us-east-1"]},
                     {"account_id": "666666666666", "regions": ["eu-west-1"]}],
        "unreachable": [{"account_id": "666666666666", "reason": "AccessDenied: the role could not be assumed"}],
    })
    assert run.returncode == 0, run.stdout + run.stderr
    deployment_id = recorded[0]["deployment_id"]
    uuid.UUID(deployment_id, version=4)
    assert {item["deployment_pattern"] for item in recorded[0]["items"]} == {"multi-account"}

    for account in (SOURCE, OTHER, "666666666666"):
        pages = query(lab, table_name=TABLE, account_id=account, limit=100)
        mine = [d for d in pages[0]["deployments"] if d["deployment_id"] == deployment_id]
        assert len(mine) == 1 and mine[0]["source_account_id"] == account
    unreachable = [i for i in recorded[0]["items"] if i["source_account_id"] == "666666666666"][0]
    assert unreachable["status"] == "failed" and "AccessDenied" in unreachable["unreachable"][0]["reason"]
    assert len(items_of(table, deployment_id)) == 3


def test_unavailable_dynamodb_spools_the_record_and_the_next_call_writes_it_once(lab, table, tmp_path):
    spool_dir = str(tmp_path / "spool")
    lab.control("faults", {"unavailable": ["dynamodb"]})
    try:
        run, spooled = record(lab, {"results": [result("i-41", "installed")]}, spool_dir=spool_dir)
    finally:
        lab.control("faults", {"clear": True})
    assert run.returncode == 0, run.stdout + run.stderr
    first = spooled[0]
    assert first["changed"] is True and first["spooled"]["count"] == 1
    warnings = first.get("warnings", []) + run.task("Record the deployment").get("warnings", [])
    assert any("spooled" in warning for warning in warnings) or "spooled to" in run.stderr, run.stdout + run.stderr
    # warned through the module's own warnings, which Ansible does not flag as deprecated
    assert "Passing warnings" not in run.stdout + run.stderr
    assert items_of(table, first["deployment_id"]) == []

    run, later = record(lab, {"results": [result("i-42", "installed")]}, {"results": [result("i-43", "installed")]},
                        spool_dir=spool_dir)
    assert run.returncode == 0, run.stdout + run.stderr
    assert later[0]["flushed"] == 1 and later[1]["flushed"] == 0
    assert len(items_of(table, first["deployment_id"])) == 1
    assert [len(items_of(table, one["deployment_id"])) for one in later] == [1, 1]
    assert list((tmp_path / "spool").glob("*.json")) == []


def test_fail_on_error_fails_the_task_but_keeps_the_record(lab, table, tmp_path):
    lab.control("faults", {"unavailable": ["dynamodb"]})
    try:
        run, _results = record(lab, {"results": [result("i-51", "installed")]}, spool_dir=str(tmp_path),
                               fail_on_error=True)
    finally:
        lab.control("faults", {"clear": True})
    assert run.returncode != 0
    assert len(list(tmp_path.glob("*.json"))) == 1


def test_check_mode_writes_nothing(lab, table):
    before = lab.stats()["calls"].get("111111111111", {}).get("dynamodb", {}).get("PutItem", 0)
    run, checked = record(lab, {"results": [result("i-61", "failed", **FAILED)]}, check=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert checked[0]["changed"] is False
    assert checked[0]["items"][0]["status"] == "failed"
    assert items_of(table, checked[0]["deployment_id"]) == []
    assert lab.stats()["calls"].get("111111111111", {}).get("dynamodb", {}).get("PutItem", 0) == before


# --- queries ---------------------------------------------------------------------------------------

DEPLOYMENTS = [
    # (hour, account, status, pattern)
    (1, SOURCE, "success", "same-account"),
    (2, SOURCE, "partial", "same-account"),
    (3, OTHER, "failed", "cross-account"),
    (4, SOURCE, "success", "cross-account"),
    (5, OTHER, "partial", "cross-account"),
    (6, SOURCE, "failed", "same-account"),
    (7, SOURCE, "success", "same-account"),
]
OUTCOME = {"success": ["installed"], "partial": ["installed", "failed"], "failed": ["failed"]}


@pytest.fixture(scope="module")
def history(lab):
    run = run_playbook(lab, "history_table.yml", extra_vars={"drs_history_table_name": QUERY_TABLE,
                                                             "drs_history_table_stack_name": "drs-history-queries"})
    assert run.returncode == 0, run.stdout + run.stderr
    records = []
    for hour, account, status, pattern in DEPLOYMENTS:
        results = [result(f"i-{hour}{n}", outcome, account=account, **(FAILED if outcome == "failed" else {}))
                   for n, outcome in enumerate(OUTCOME[status])]
        records.append({"table_name": QUERY_TABLE, "results": results, "deployment_pattern": pattern,
                        "started_at": f"2026-03-01T{hour:02d}:00:00Z", "finished_at": f"2026-03-01T{hour:02d}:30:00Z",
                        "deployment_id": f"query-{hour}"})
    run, recorded = record(lab, *records)
    assert run.returncode == 0, run.stdout + run.stderr
    return {one["items"][0]["deployment_id"]: one["items"][0] for one in recorded}


def expected_ids(account=None, status=None, pattern=None, since=None, until=None, failures_only=False):
    chosen = [(hour, f"query-{hour}") for hour, acct, stat, pat in DEPLOYMENTS
              if (account is None or acct == account) and (status is None or stat == status)
              and (pattern is None or pat == pattern) and (since is None or hour >= since)
              and (until is None or hour <= until) and (not failures_only or stat in ("partial", "failed"))]
    return [deployment_id for _hour, deployment_id in sorted(chosen, reverse=True)]


@pytest.mark.parametrize("filters", [
    {},
    {"account_id": SOURCE},
    {"status": "success"},
    {"deployment_pattern": "cross-account"},
    {"since": "2026-03-01T02:00:00Z", "until": "2026-03-01T06:00:00Z"},
    {"failures_only": True},
    {"account_id": SOURCE, "failures_only": True, "since": "2026-03-01T02:00:00Z"},
    {"deployment_pattern": "same-account", "status": "success"},
])
def test_queries_page_through_the_right_items_with_index_queries_only(lab, history, filters):
    calls_before = lab.stats()["calls"].get("111111111111", {}).get("dynamodb", {})
    pages = query(lab, limit=2, **filters)
    calls_after = lab.stats()["calls"].get("111111111111", {}).get("dynamodb", {})

    hours = {key: int(value[11:13]) for key, value in filters.items() if key in ("since", "until")}
    expected = expected_ids(account=filters.get("account_id"), status=filters.get("status"),
                            pattern=filters.get("deployment_pattern"), failures_only=filters.get("failures_only", False),
                            **hours)
    found = [d["deployment_id"] for page in pages for d in page["deployments"]]
    assert found == expected
    assert len(pages) >= (len(expected) + 1) // 2 and pages[-1]["next_token"] is None
    if len(expected) > 2:
        assert len(pages) > 1
    assert all(page["count"] == len(page["deployments"]) <= 2 for page in pages)
    assert calls_after.get("Scan", 0) == calls_before.get("Scan", 0) == 0
    # the queries made DynamoDB calls of one kind only
    assert {operation for operation, count in calls_after.items() if count > calls_before.get(operation, 0)} == {"Query"}
    failures = [f for page in pages for f in page["failed_instances"]]
    assert {f["deployment_id"] for f in failures} == {d for d in expected if history[d]["failed"]}
    for failure in failures:
        assert failure["error_category"] == "network" and failure["wave"] == 1
        assert failure["source_account_id"] == history[failure["deployment_id"]]["source_account_id"]


def test_one_deployment_by_its_id(lab, history):
    pages = query(lab, deployment_id="query-5")

    assert pages[0]["count"] == 1 and pages[0]["next_token"] is None
    deployment = pages[0]["deployments"][0]
    assert deployment["status"] == "partial" and isinstance(deployment["success_rate"], float)
    assert isinstance(deployment["attempted"], int) and deployment["attempted"] == 2


# --- bad input -------------------------------------------------------------------------------------

@pytest.mark.parametrize(("playbook", "options", "message"), [
    ("info", {"since": "last tuesday"}, "since 'last tuesday' is not an ISO 8601"),
    ("info", {"limit": 0}, "limit must be from 1 to 1000"),
    ("info", {"status": "done"},
     "value of status must be one of: in_progress, success, partial, failed, stopped, interrupted"),
    ("info", {"account_id": "12345"}, "account_id '12345' is not an AWS account id (12 digits)"),
    ("info", {"next_token": "bogus"}, "next_token is not a token"),
    ("record", {"results": [result("i-71", "done")]}, "results[0].status 'done' is not one of"),
    ("record", {"results": [result("i-72", "installed")], "finished_at": "soon"}, "finished_at 'soon' is not"),
    ("record", {"results": [result("i-73", "installed")], "ttl_days": 0}, "ttl_days must be 1 or more"),
])
def test_bad_input_fails_with_a_clear_message_before_any_aws_call(lab, playbook, options, message):
    calls_before = lab.stats()["total_calls"]
    if playbook == "info":
        run = run_playbook(lab, "history_info.yml", extra_vars={"history_query": dict({"table_name": QUERY_TABLE}, **options)})
        task = run.task("Query a page")
    else:
        run = run_playbook(lab, "history_record.yml", extra_vars={"records": [dict({"table_name": TABLE}, **options)]})
        task = run.task("Record the deployment")["results"][0]

    assert run.returncode != 0
    assert task["failed"] is True
    assert message in task["msg"]
    assert lab.stats()["total_calls"] == calls_before


def test_metrics_are_sent_per_account_and_for_the_whole_run(lab, table):
    run, recorded = record(lab, {"results": [result("i-81", "installed"), result("i-82", "failed", **FAILED)],
                                 "metrics_namespace": "DRS/HistoryTest", "deployment_pattern": "same-account"})
    assert run.returncode == 0, run.stdout + run.stderr

    metrics = lab.client("cloudwatch").list_metrics(Namespace="DRS/HistoryTest")["Metrics"]
    assert {metric["MetricName"] for metric in metrics} == {
        "SuccessRate", "Attempted", "Installed", "Failed", "Skipped", "Unprotected", "DurationSeconds"}
    dimension_sets = {tuple(sorted((d["Name"], d["Value"]) for d in metric["Dimensions"])) for metric in metrics}
    # per account, and the run's totals without dimensions (what the monitoring alarms watch)
    assert dimension_sets == {(("Account", SOURCE), ("DeploymentPattern", "same-account")), ()}
    assert recorded[0]["items"][0]["success_rate"] == 0.5
