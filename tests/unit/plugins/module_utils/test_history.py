"""The deployment history's pure parts: status and success rate, items, query plans, tokens, the spool."""

import datetime
import json
import os

import botocore.exceptions
import pytest

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import history

NOW = datetime.datetime(2026, 6, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
SOURCE = "222222222222"
OTHER = "555555555555"


def result(instance, status, account=SOURCE, **extra):
    return dict({"instance_id": instance, "status": status, "account_id": account, "region": "us-east-1"}, **extra)


def params(**overrides):
    base = {
        "table_name": "drs-deployment-history", "results": [], "deployment_pattern": None, "started_at": None,
        "finished_at": None, "accounts": None, "unreachable": None, "stopped_after_wave": None, "extension": None,
        "deployment_id": None, "ttl_days": 90, "metrics_namespace": None, "spool_dir": "/nonexistent",
        "fail_on_error": False,
    }
    base.update(overrides)
    return base


@pytest.mark.parametrize(("statuses", "status", "rate"), [
    (["installed", "already_registered"], "success", 1.0),
    (["installed", "failed", "skipped_ssm_offline"], "partial", 0.5),
    (["failed", "timed_out", "not_registered_after_success"], "failed", 0.0),
    (["installed", "installed", "installed", "timed_out"], "partial", 0.75),
    (["skipped_ssm_offline", "skipped_not_managed"], "failed", None),
    ([], "success", None),
])
def test_status_and_success_rate(statuses, status, rate):
    figures = history.figures([result(f"i-{n}", s) for n, s in enumerate(statuses)])

    assert figures["status"] == status
    assert figures["success_rate"] == rate
    assert figures["attempted"] == len([s for s in statuses if not s.startswith("skipped")])
    assert figures["skipped"] == len([s for s in statuses if s.startswith("skipped")])


def test_an_unreachable_account_has_failed_whatever_its_results():
    assert history.figures([result("i-1", "installed")], unreachable=True)["status"] == "failed"


def test_items_one_per_source_account_with_distinct_time_ordered_keys():
    items = history.build_items(params(
        results=[result("i-1", "installed"), result("i-2", "failed", error_category="network", wave=2,
                                                    priority="high", reason="blocked " * 200, remediation="open 443"),
                 result("i-3", "installed", account=OTHER)],
        accounts=[{"account_id": SOURCE, "name": "apps", "staging_account_id": "333333333333",
                   "regions": ["us-east-1"], "assume_role_arn": "arn:aws:iam::222222222222:role/x"},
                  {"account_id": "666666666666", "regions": ["eu-west-1"]}],
        started_at="2026-06-01T11:00:00Z", finished_at=1780315200, deployment_pattern="multi-account",
        extension={"target_account_id": "444444444444", "secret_key": "never", "nested": [{"session_token": "x"}]},
    ), {SOURCE: "apps", OTHER: OTHER, "666666666666": "idle"}, now=NOW)

    assert [item["source_account_id"] for item in items] == [SOURCE, "666666666666", OTHER]
    assert len({item["deployment_id"] for item in items}) == 1
    assert len({item["timestamp"] for item in items}) == 3
    assert items[0]["timestamp"] == f"2026-06-01T12:00:00.000Z#{SOURCE}"
    first = items[0]
    assert (first["status"], first["attempted"], first["installed"], first["failed"]) == ("partial", 2, 1, 1)
    assert first["duration_seconds"] == 3600
    assert first["staging_account_id"] == "333333333333"
    assert first["source_account_name"] == "apps"
    assert first["ttl"] == int(NOW.timestamp()) + 90 * 86400
    failure = first["failed_instances"][0]
    assert (failure["wave"], failure["priority"], failure["error_category"], failure["remediation"]) == \
        (2, "high", "network", "open 443")
    assert len(failure["error_message"]) == history.MAX_ERROR_MESSAGE
    assert items[1]["status"] == "success" and items[1]["attempted"] == 0 and items[1]["regions"] == ["eu-west-1"]
    assert items[0]["extension"] == {"target_account_id": "444444444444", "nested": [{}]}
    assert "assume_role_arn" not in json.dumps(items)
    assert all(item["deployment_pattern"] == "multi-account" for item in items)


def test_unreachable_accounts_get_a_failed_item_with_the_reason():
    items = history.build_items(params(unreachable=[{"account_id": OTHER, "reason": "AccessDenied"}]), {}, now=NOW)

    assert items[0]["status"] == "failed"
    assert items[0]["unreachable"] == [{"region": None, "reason": "AccessDenied"}]
    assert items[0]["deployment_pattern"] == "same-account"
    assert items[0]["source_account_name"] == OTHER


@pytest.mark.parametrize(("overrides", "message"), [
    ({"started_at": "yesterday"}, "started_at 'yesterday' is not an ISO 8601"),
    ({"ttl_days": 0}, "ttl_days must be 1 or more"),
    ({"results": [{"instance_id": "i-1", "status": "done", "account_id": SOURCE, "region": "us-east-1"}]},
     "results[0].status 'done' is not one of"),
    ({"results": [{"instance_id": "i-1", "status": "installed"}]}, "results[0] lacks account_id, region"),
    ({"accounts": [{"account_id": "12"}]}, "accounts[0].account_id must be 12 digits"),
    ({"table_name": "x"}, "table_name 'x' must be"),
])
def test_record_option_errors_name_the_option(overrides, message):
    assert any(message in error for error in history.record_option_errors(params(**overrides)))


def test_times_parse_iso_with_and_without_zone_and_epoch():
    assert history.parse_time("t", "2026-06-01T12:00:00Z") == NOW
    assert history.parse_time("t", "2026-06-01T14:00:00+02:00") == NOW
    assert history.parse_time("t", "2026-06-01T12:00:00") == NOW
    assert history.parse_time("t", NOW.timestamp()) == NOW
    assert history.parse_time("t", str(int(NOW.timestamp()))) == NOW
    assert history.iso(NOW) == "2026-06-01T12:00:00.000Z"


def info(**overrides):
    base = {"table_name": "t-able", "deployment_id": None, "account_id": None, "status": None,
            "deployment_pattern": None, "since": None, "until": None, "failures_only": False, "limit": 100,
            "next_token": None}
    base.update(overrides)
    return base


@pytest.mark.parametrize(("overrides", "queries", "filters"), [
    ({"deployment_id": "d-1", "status": "failed"}, [(None, "deployment_id", "d-1")], {"status": ["failed"]}),
    ({"account_id": SOURCE, "failures_only": True}, [("AccountIndex", "source_account_id", SOURCE)],
     {"status": ["partial", "failed"]}),
    ({"status": "partial", "deployment_pattern": "multi-account"}, [("PatternIndex", "deployment_pattern",
                                                                     "multi-account")], {"status": ["partial"]}),
    ({"failures_only": True}, [("StatusIndex", "status", "partial"), ("StatusIndex", "status", "failed")], {}),
    ({"since": "2026-01-01"}, [("StatusIndex", "status", s) for s in ("success", "partial", "failed")], {}),
    ({"status": "success", "failures_only": True}, [], {}),
])
def test_every_filter_combination_is_planned_as_queries(overrides, queries, filters):
    plan = history.plan_queries(info(**overrides))

    assert plan["queries"] == queries
    assert plan["filters"] == filters


def test_time_bounds_include_the_whole_until_instant():
    since, until = history.time_bounds(info(since="2026-06-01T00:00:00Z", until="2026-06-01T12:00:00Z"))

    assert since == "2026-06-01T00:00:00.000Z"
    assert since <= f"2026-06-01T12:00:00.000Z#{SOURCE}" <= until
    assert "2026-06-01T12:00:00.001Z#1" > until


def test_tokens_round_trip_and_are_tied_to_their_filters():
    params_ = info(failures_only=True)
    plan = history.plan_queries(params_)
    cursors = [{"status": {"S": "partial"}, "timestamp": {"S": "x"}, "deployment_id": {"S": "d"}}, "done"]
    token = history.encode_token(history.fingerprint(params_), cursors)

    assert history.decode_token(token, plan, history.fingerprint(params_)) == cursors
    with pytest.raises(history.HistoryInputError, match="other filters"):
        history.decode_token(token, plan, history.fingerprint(info(failures_only=True, account_id=SOURCE)))
    with pytest.raises(history.HistoryInputError, match="not a token"):
        history.decode_token("not-a-token!", plan)
    assert any("next_token" in error for error in history.info_option_errors(info(next_token="garbage")))


@pytest.mark.parametrize(("overrides", "message"), [
    ({"limit": 0}, "limit must be from 1 to 1000"),
    ({"since": "last tuesday"}, "since 'last tuesday' is not an ISO 8601"),
    ({"since": "2026-06-02", "until": "2026-06-01"}, "since is after until"),
    ({"account_id": "1234"}, "account_id '1234' must be 12 digits"),
])
def test_info_option_errors_name_the_option(overrides, message):
    assert any(message in error for error in history.info_option_errors(info(**overrides)))


def test_items_serialize_and_read_back_as_plain_numbers():
    item = history.build_items(params(results=[result("i-1", "installed"), result("i-2", "failed")]), {}, now=NOW)[0]

    assert history.deserialize(history.serialize(item)) == item


class FakeDynamo:
    def __init__(self, fail_with=None):
        self.table = {}
        self.fail_with = fail_with
        self.puts = 0

    def put_item(self, TableName, Item, ConditionExpression, aws_retry):
        self.puts += 1
        if self.fail_with:
            raise botocore.exceptions.ClientError({"Error": {"Code": self.fail_with, "Message": "no"},
                                                   "ResponseMetadata": {"HTTPStatusCode": 503}}, "PutItem")
        key = (Item["deployment_id"]["S"], Item["timestamp"]["S"])
        if key in self.table:
            raise botocore.exceptions.ClientError({"Error": {"Code": "ConditionalCheckFailedException"}}, "PutItem")
        self.table[key] = Item


def test_the_spool_round_trip_writes_each_item_once(tmp_path):
    warnings = []
    record_params = params(results=[result("i-1", "installed"), result("i-2", "installed", account=OTHER)],
                           spool_dir=str(tmp_path / "spool"))
    down = FakeDynamo(fail_with="ServiceUnavailable")
    spooled = history.record(record_params, down, {}, warnings.append, False)

    assert spooled["changed"] is True and spooled["spooled"]["count"] == 2 and spooled["written"] == 0
    assert warnings and "spooled" in warnings[0]
    assert len(os.listdir(tmp_path / "spool")) == 1

    up = FakeDynamo()
    # an item of the spool already written (a write that went through but whose answer was lost)
    history.put_item(up, "drs-deployment-history", spooled["items"][0])
    later = history.record(params(results=[result("i-9", "installed")], spool_dir=str(tmp_path / "spool")), up, {},
                           warnings.append, False)

    assert later["flushed"] == 2 and later["written"] == 1
    assert len(up.table) == 3
    assert os.listdir(tmp_path / "spool") == []
    again = history.record(params(results=[result("i-9", "installed")], deployment_id=later["deployment_id"],
                                  finished_at=later["items"][0]["finished_at"], spool_dir=str(tmp_path / "spool")),
                           up, {}, warnings.append, False, now=NOW)
    assert again["written"] == 0 and again["changed"] is False and len(up.table) == 3


def test_check_mode_writes_nothing_and_leaves_the_spool(tmp_path):
    history.spool(str(tmp_path), "drs-deployment-history",
                  history.build_items(params(results=[result("i-1", "installed")]), {}, now=NOW))
    dynamo = FakeDynamo()
    checked = history.record(params(results=[result("i-2", "failed")], spool_dir=str(tmp_path)), dynamo, {},
                             lambda message: None, True)

    assert checked["changed"] is False and checked["items"][0]["status"] == "failed"
    assert dynamo.puts == 0 and len(os.listdir(tmp_path)) == 1


def test_metrics_are_batched_within_put_metric_data_limits():
    calls = []

    class FakeCloudWatch:
        def put_metric_data(self, Namespace, MetricData, aws_retry):
            calls.append(MetricData)

    results = [result(f"i-{n}", "installed", account=f"{n:012d}") for n in range(1, 6)]
    items = history.build_items(params(results=results), {}, now=NOW)
    sent = history.put_metrics(FakeCloudWatch(), "DRS/Test", items)

    assert sent == 36 and [len(call) for call in calls] == [20, 16]
    names = {datum["MetricName"] for call in calls for datum in call}
    assert names == {"SuccessRate", "Attempted", "Installed", "Failed", "Skipped", "DurationSeconds"}
    assert {d["Name"] for d in calls[0][0]["Dimensions"]} == {"Account", "DeploymentPattern"}
    # the run's totals, without dimensions, for the alarms
    totals = {datum["MetricName"]: datum["Value"] for datum in calls[-1] if datum["Dimensions"] == []}
    assert totals["Attempted"] == 5 and totals["Installed"] == 5 and totals["SuccessRate"] == 100
