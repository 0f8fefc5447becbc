"""The deployment history's parts: items through a run's life, query plans, tokens, revisioned writes and the spool."""

import datetime
import json
import os

import botocore.exceptions
import pytest

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import history
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import metrics
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history import query
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history import store
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history import tokens

NOW = datetime.datetime(2026, 6, 1, 12, 0, 0, tzinfo=datetime.timezone.utc)
STARTED = NOW - datetime.timedelta(hours=1)
SOURCE = "222222222222"
OTHER = "555555555555"
RUN = "0f8e4c1a-5b57-4a53-9d3f-2f0c3c5f1b6e"


def instance(number, status, account=SOURCE, wave=1, **extra):
    return dict({"instance_id": f"i-{number:017x}", "status": status, "account_id": account, "region": "us-east-1",
                 "wave": wave, "name": f"server-{number}", "priority": "high"}, **extra)


def record(instances, **overrides):
    base = {"deployment_id": "d-1", "run_id": RUN, "pattern": None, "started_at": STARTED, "finished_at": NOW,
            "final": True, "stopped": False, "accounts": [], "instances": instances, "waves": [],
            "unreachable": [], "extension": None, "in_flight": []}
    base.update(overrides)
    return base


def items(instances, **overrides):
    return history.build_items(record(instances, **overrides), {}, NOW, 90)


@pytest.mark.parametrize(("statuses", "status", "rate"), [
    (["installed", "already_registered"], "success", 1.0),
    (["installed", "failed", "skipped_ssm_offline"], "partial", 0.5),
    (["failed", "timed_out", "not_registered_after_success"], "failed", 0.0),
    (["installed", "installed", "installed", "timed_out"], "partial", 0.75),
    (["skipped_ssm_offline", "skipped_not_managed"], "failed", None),
    (["installed", "skipped_ssm_offline", "no_wave"], "success", 1.0),
])
def test_an_accounts_status_and_rates_come_from_the_outcome_model(statuses, status, rate):
    [item] = items([instance(n, s) for n, s in enumerate(statuses)])
    assert item["status"] == status and item["success_rate"] == rate
    judged = ("installed", "already_registered", "failed", "timed_out", "not_registered_after_success")
    assert item["attempted"] == sum(1 for s in statuses if s in judged)
    assert item["by_status"]["skipped_ssm_offline"] == statuses.count("skipped_ssm_offline")
    assert item["unprotected"] == sum(1 for s in statuses if s not in ("installed", "already_registered"))


def test_a_run_in_progress_carries_a_lease_and_no_end():
    [item] = items([instance(1, "installed"), instance(2, None, wave=2)], final=False, finished_at=None)
    assert item["status"] == "in_progress" and "finished_at" not in item
    assert history.parse_time("lease_until", item["lease_until"]) == NOW + datetime.timedelta(seconds=history.LEASE_SECONDS)
    assert item["planned"] == {"instances": 2, "waves": [1, 2]}
    # the instance of wave 2 is planned, not settled yet: it is in no figure
    assert item["attempted"] == 1 and sum(item["by_status"].values()) == 1


def test_an_in_progress_item_past_its_lease_reads_as_interrupted():
    [item] = items([instance(1, "installed")], final=False, finished_at=None)
    assert history.effective_status(item, NOW) == "in_progress"
    later = NOW + datetime.timedelta(seconds=history.LEASE_SECONDS + 1)
    shown = query.shown(dict(item), later)
    assert shown["status"] == "interrupted" and shown["recorded_status"] == "in_progress"


def test_a_stopped_run_keeps_its_running_installs_for_the_next_run():
    running = instance(2, "in_flight", command_id="c-1", reason="still running")
    [item] = items([instance(1, "installed"), running], stopped=True, stop_reason="interrupted (SIGINT, Ctrl-C)",
                   in_flight=[running])
    assert item["status"] == "stopped" and item["stop_reason"] == "interrupted (SIGINT, Ctrl-C)"
    assert item["in_flight"] == [{"instance_id": running["instance_id"], "command_id": "c-1", "region": "us-east-1",
                                  "wave": 1}]
    assert item["unprotected_instances"][0]["status"] == "in_flight" and item["unsettled"] == 1


def test_items_one_per_source_account_with_distinct_time_ordered_keys_and_no_secrets():
    built = history.build_items(record(
        [instance(1, "installed"),
         instance(2, "failed", wave=2, error_category="network", reason="blocked " * 200, remediation="open 443"),
         instance(3, "installed", account=OTHER)],
        accounts=[{"account_id": SOURCE, "name": "apps", "staging_account_id": "333333333333",
                   "regions": ["us-east-1"], "role_arn": "arn:aws:iam::222222222222:role/x"},
                  {"account_id": "666666666666", "regions": ["eu-west-1"]}],
        pattern="multi-account",
        extension={"target_account_id": "444444444444", "secret_key": "never", "nested": [{"session_token": "x"}]},
    ), {SOURCE: "apps", OTHER: OTHER, "666666666666": "idle"}, NOW, 90)

    assert [item["source_account_id"] for item in built] == [SOURCE, "666666666666", OTHER]
    assert len({item["timestamp"] for item in built}) == 3
    assert built[0]["timestamp"] == f"2026-06-01T11:00:00.000Z#{SOURCE}#{RUN[:8]}"
    first = built[0]
    assert (first["status"], first["attempted"], first["installed"], first["failed"]) == ("partial", 2, 1, 1)
    assert first["duration_seconds"] == 3600 and first["source_account_name"] == "apps"
    assert first["ttl"] == int(NOW.timestamp()) + 90 * 86400
    failure = history.failed_instances(first)[0]
    assert (failure["wave"], failure["priority"], failure["error_category"], failure["remediation"]) == \
        (2, "high", "network", "open 443")
    assert len(failure["error_message"]) <= 300
    assert built[1]["status"] == "success" and built[1]["attempted"] == 0 and built[1]["regions"] == ["eu-west-1"]
    assert first["extension"] == {"target_account_id": "444444444444", "nested": [{}]}
    assert "role_arn" not in json.dumps(built)


def test_unprotected_instances_are_capped_and_the_rest_counted():
    [item] = items([instance(n, "skipped_ssm_offline") for n in range(history.MAX_UNPROTECTED + 7)])
    assert len(item["unprotected_instances"]) == history.MAX_UNPROTECTED and item["unprotected_left_out"] == 7
    assert item["unprotected"] == history.MAX_UNPROTECTED + 7


def test_verified_replication_is_counted_and_each_unhealthy_server_kept_with_its_state_error_and_lag():
    def health(verdict, **extra):
        return {"replication": dict({"verdict": verdict, "reason": f"{verdict} reason", "replication_state": None,
                                     "error": None, "error_category": None, "remediation": None,
                                     "lag_seconds": None}, **extra)}
    [item] = items([
        instance(1, "installed", **health("healthy", replication_state="CONTINUOUS", lag_seconds=2.0)),
        instance(2, "installed", **health("syncing", replication_state="CONTINUOUS", lag_seconds=905.5)),
        instance(3, "installed", wave=2, **health("stalled", replication_state="STALLED",
                                                  error="UNSTABLE_NETWORK", error_category="network",
                                                  remediation="open TCP 1500")),
        instance(4, "failed"),
    ], waves=[{"wave": 1, "started_at": STARTED, "finished_at": NOW}, {"wave": 2, "started_at": STARTED}])
    assert item["replication"] == {"healthy": 1, "syncing": 1, "stalled": 1}
    assert [wave["replication"] for wave in item["waves"]] == [{"healthy": 1, "syncing": 1}, {"stalled": 1}]
    syncing, stalled = item["unhealthy_replication"]
    assert (syncing["instance_id"], syncing["verdict"], syncing["replication_state"], syncing["lag_seconds"]) == \
        ("i-00000000000000002", "syncing", "CONTINUOUS", 905.5)
    assert (stalled["wave"], stalled["error"], stalled["error_category"], stalled["remediation"],
            stalled["lag_seconds"]) == (2, "UNSTABLE_NETWORK", "network", "open TCP 1500", None)
    assert store.deserialize(store.serialize(item)) == item


def test_unreachable_accounts_get_a_failed_item_with_the_reason():
    [item] = items([], unreachable=[{"account_id": OTHER, "region": None, "reason": "AccessDenied"}])
    assert item["status"] == "failed" and item["unreachable"] == [{"region": None, "reason": "AccessDenied"}]
    assert item["deployment_pattern"] == "same-account" and item["source_account_name"] == OTHER


def recorded(**overrides):
    base = {
        "table_name": "drs-deployment-history", "results": [], "deployment_pattern": None, "started_at": None,
        "finished_at": None, "accounts": None, "unreachable": None, "stopped_after_wave": None, "extension": None,
        "deployment_id": None, "ttl_days": 90, "metrics_namespace": None, "spool_dir": "/nonexistent",
        "fail_on_error": False,
    }
    base.update(overrides)
    return base


@pytest.mark.parametrize(("overrides", "message"), [
    ({"started_at": "yesterday"}, "started_at 'yesterday' is not an ISO 8601"),
    ({"ttl_days": 0}, "ttl_days must be 1 or more"),
    ({"results": [{"instance_id": "i-1", "status": "done", "account_id": SOURCE, "region": "us-east-1"}]},
     "results[0].status 'done' is not one of"),
    ({"results": [{"instance_id": "i-1", "status": "installed"}]}, "results[0] lacks account_id, region"),
    ({"accounts": [{"account_id": "12"}]}, "accounts[0].account_id '12' is not an AWS account id"),
    ({"table_name": "x"}, "table_name 'x' must be"),
])
def test_record_option_errors_name_the_option(overrides, message):
    assert any(message in error for error in history.record_option_errors(recorded(**overrides)))


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


STORED = ("in_progress", "success", "partial", "failed", "stopped")


@pytest.mark.parametrize(("overrides", "queries", "statuses"), [
    ({"deployment_id": "d-1", "status": "failed"}, [(None, "deployment_id", "d-1")], ["failed"]),
    ({"account_id": SOURCE, "failures_only": True}, [("AccountIndex", "source_account_id", SOURCE)],
     ["partial", "failed", "stopped", "interrupted"]),
    ({"status": "partial", "deployment_pattern": "multi-account"},
     [("PatternIndex", "deployment_pattern", "multi-account")], ["partial"]),
    ({"failures_only": True}, [("StatusIndex", "status", s) for s in ("partial", "failed", "stopped", "in_progress")],
     ["partial", "failed", "stopped", "interrupted"]),
    ({"status": "interrupted"}, [("StatusIndex", "status", "in_progress")], ["interrupted"]),
    ({"since": "2026-01-01"}, [("StatusIndex", "status", s) for s in STORED], None),
    ({"status": "success", "failures_only": True}, [], []),
])
def test_every_filter_combination_is_planned_as_queries(overrides, queries, statuses):
    plan = query.plan_queries(info(**overrides))
    assert plan["queries"] == queries and plan["statuses"] == statuses


@pytest.mark.parametrize(("overrides", "queries"), [
    ({}, [("StatusIndex", "status", "finished"), ("StatusIndex", "status", "stopped")]),
    ({"since": "2026-01-01"}, [("StatusIndex", "status", "finished"), ("StatusIndex", "status", "stopped")]),
    ({"deployment_id": "drill#d-1"}, [(None, "deployment_id", "drill#d-1")]),
])
def test_drills_are_read_on_the_status_index_for_the_drill_statuses_or_by_their_id(overrides, queries):
    params_ = info(record_type="drill", **overrides)
    plan = query.plan_queries(params_)
    assert plan["queries"] == queries and plan["statuses"] is None
    request = query._query_request(params_, queries[0], None, *query.time_bounds(params_), NOW)
    assert request["FilterExpression"] == "#r = :type"
    assert request["ExpressionAttributeValues"][":type"] == {"S": "drill"}
    deployments = query._query_request(info(), ("StatusIndex", "status", "success"), None, None, None, NOW)
    assert deployments["ExpressionAttributeValues"][":type"] == {"S": "deployment"}


@pytest.mark.parametrize("overrides", [{"account_id": SOURCE}, {"status": "failed"},
                                       {"deployment_pattern": "same-account"}, {"failures_only": True}])
def test_the_filters_of_deployments_are_refused_for_drills(overrides):
    [name] = overrides
    assert f"{name} filters deployments, not drills (record_type drill)" in \
        history.info_option_errors(info(record_type="drill", **overrides))


class QueryDynamo:
    """Query over items held in memory, on the table or an index, with the key condition on the hash key and
    ``timestamp``, the filter on ``record_type`` and pages of at most ``Limit`` items."""

    def __init__(self, held):
        self.held = held
        self.requests = []

    def query(self, aws_retry, **request):
        self.requests.append(request)
        values = request["ExpressionAttributeValues"]
        attribute = request["ExpressionAttributeNames"]["#k"]
        found = sorted((item for item in self.held if item.get(attribute) == values[":k"]["S"]
                        and values.get(":since", {"S": ""})["S"] <= item["timestamp"] <= values.get(":until", {"S": "~"})["S"]),
                       key=lambda item: item["timestamp"], reverse=True)
        if "ExclusiveStartKey" in request:
            found = [item for item in found if item["timestamp"] < request["ExclusiveStartKey"]["timestamp"]["S"]]
        page, rest = found[:request["Limit"]], found[request["Limit"]:]
        page_items = [store.serialize(item) for item in page if item["record_type"] == values[":type"]["S"]]
        answer = {"Items": page_items}
        if rest:
            answer["LastEvaluatedKey"] = {key: {"S": page[-1][key]} for key in ("deployment_id", "timestamp", attribute)}
        return answer


def drill_item(hour, status="finished"):
    started = f"2026-05-31T{hour:02d}:00:00.000Z"
    return {"deployment_id": f"drill#d{hour}", "timestamp": started, "record_type": "drill", "run_id": f"d{hour}",
            "status": status, "started_at": started, "finished_at": f"2026-05-31T{hour:02d}:40:00.000Z",
            "waves": [{"wave": 1, "servers": 2, "launched": 2, "failed": 0, "timed_out": 0, "stopped": 0,
                       "not_protected": 0, "jobs": 1, "recovery_seconds": 812.5, "rto_seconds": 900,
                       "over_rto": False}],
            "totals": {"servers": 2, "launched": 2}}


def test_drills_page_newest_first_across_their_statuses_and_deployments_stay_out():
    [deployment] = items([instance(1, "installed")])
    deployment["timestamp"] = "2026-05-31T05:30:00.000Z#x"
    deployment["status"] = "finished"  # even a deployment item under a drill status is not a drill
    held = [drill_item(hour, "stopped" if hour == 4 else "finished") for hour in (1, 2, 4, 6, 7)] + [deployment]
    dynamo = QueryDynamo(held)
    pages, token = [], None
    while True:
        answer = query.query_history(dynamo, info(record_type="drill", limit=2, next_token=token,
                                                  since="2026-05-31T02:00:00Z"), NOW)
        pages.append(answer)
        token = answer["next_token"]
        if token is None:
            break
    found = [drill["run_id"] for page in pages for drill in page["drills"]]
    assert found == ["d7", "d6", "d4", "d2"]
    assert all(page["deployments"] == [] and page["count"] == len(page["drills"]) <= 2 for page in pages)
    assert pages[0]["drills"][0]["waves"][0]["recovery_seconds"] == 812.5
    assert {request.get("IndexName") for request in dynamo.requests} == {"StatusIndex"}
    # a drill query's token does not resume a deployment query
    with pytest.raises(history.HistoryInputError, match="for these filters"):
        query.query_history(dynamo, info(limit=2, next_token=pages[0]["next_token"], since="2026-05-31T02:00:00Z"), NOW)


def test_interrupted_and_in_progress_are_told_apart_by_the_lease_in_the_query():
    request = query._query_request(info(status="interrupted"), ("StatusIndex", "status", "in_progress"),
                                   ["interrupted"], None, None, NOW)
    assert "(#s = :running AND #l < :now)" in request["FilterExpression"]
    assert request["ExpressionAttributeValues"][":now"] == {"S": "2026-06-01T12:00:00.000Z"}
    request = query._query_request(info(status="success"), ("StatusIndex", "status", "success"), ["success"], None,
                                   None, NOW)
    assert "#l" not in request["ExpressionAttributeNames"]  # DynamoDB refuses names that no expression uses


def test_time_bounds_include_the_whole_until_instant():
    since, until = query.time_bounds(info(since="2026-06-01T00:00:00Z", until="2026-06-01T12:00:00Z"))
    assert since == "2026-06-01T00:00:00.000Z"
    assert since <= f"2026-06-01T12:00:00.000Z#{SOURCE}#{RUN[:8]}" <= until
    assert "2026-06-01T12:00:00.001Z#1" > until


def test_tokens_round_trip_and_are_tied_to_their_filters():
    params_ = info(failures_only=True)
    cursors = [{"status": {"S": "partial"}, "timestamp": {"S": "x"}, "deployment_id": {"S": "d"}}, "done", None, None]
    token = tokens.encode_token(tokens.fingerprint(params_), cursors)
    assert tokens.decode_token(token, 4, tokens.fingerprint(params_)) == cursors
    with pytest.raises(history.HistoryInputError, match="other filters"):
        tokens.decode_token(token, 4, tokens.fingerprint(info(failures_only=True, account_id=SOURCE)))
    with pytest.raises(history.HistoryInputError, match="not a token"):
        tokens.decode_token("not-a-token!", 4)
    assert any("next_token" in error for error in history.info_option_errors(info(next_token="garbage")))


@pytest.mark.parametrize(("overrides", "message"), [
    ({"limit": 0}, "limit must be from 1 to 1000"),
    ({"since": "last tuesday"}, "since 'last tuesday' is not an ISO 8601"),
    ({"since": "2026-06-02", "until": "2026-06-01"}, "since is after until"),
    ({"account_id": "1234"}, "account_id '1234' is not an AWS account id"),
])
def test_info_option_errors_name_the_option(overrides, message):
    assert any(message in error for error in history.info_option_errors(info(**overrides)))


def test_items_serialize_and_read_back_as_plain_numbers():
    [item] = items([instance(1, "installed"), instance(2, "failed")])
    assert store.deserialize(store.serialize(item)) == item


class FakeDynamo:
    """PutItem with the revision condition of the store, or failing as an unavailable service."""

    def __init__(self, fail_with=None):
        self.table = {}
        self.fail_with = fail_with
        self.puts = 0

    def put_item(self, TableName, Item, ConditionExpression, ExpressionAttributeNames, ExpressionAttributeValues,
                 aws_retry):
        self.puts += 1
        if self.fail_with:
            raise botocore.exceptions.ClientError({"Error": {"Code": self.fail_with, "Message": "no"},
                                                   "ResponseMetadata": {"HTTPStatusCode": 503}}, "PutItem")
        key = (Item["deployment_id"]["S"], Item["timestamp"]["S"])
        held = self.table.get(key)
        if held is not None and (int(held["revision"]["N"]) >= int(Item["revision"]["N"]) or "claimed_by" in held):
            raise botocore.exceptions.ClientError({"Error": {"Code": "ConditionalCheckFailedException"}}, "PutItem")
        self.table[key] = Item


def revision(built, number):
    return [dict(item, revision=number) for item in built]


def test_a_run_spooled_while_dynamodb_is_down_is_written_once_its_latest_revision_first(tmp_path):
    warnings = []
    spool_dir = str(tmp_path / "spool")
    first = revision(items([instance(1, None)], final=False, finished_at=None), 1)
    final = revision(items([instance(1, "installed")]), 3)
    down = store.Store(FakeDynamo(fail_with="ServiceUnavailable"), "t-able", spool_dir, warnings.append)
    assert down.write(first)["error"].startswith("ServiceUnavailable") and down.write(final)["spooled"]
    # one file per item: the final revision replaced the first; an older one never replaces a newer one
    assert len(os.listdir(spool_dir)) == 1
    down.write(first)
    assert store.read_spool(store.spooled_files(spool_dir)[0])["item"]["status"] == "success"

    dynamo = FakeDynamo()
    up = store.Store(dynamo, "t-able", spool_dir, warnings.append)
    written = up.write(revision(items([instance(9, "installed")], run_id="another-run"), 1))
    assert (written["flushed"], written["written"]) == (1, 1) and os.listdir(spool_dir) == []
    assert {item["status"]["S"] for item in dynamo.table.values()} == {"success"}
    # the run's own late write of an older revision changes nothing
    assert up.write(first) == {"written": 0, "flushed": 0, "spooled": [], "error": None}
    assert warnings == []


def test_drs_history_record_in_check_mode_writes_nothing_and_leaves_the_spool(tmp_path):
    store.spool(str(tmp_path), "drs-deployment-history", revision(items([instance(1, "installed")]), 1)[0])
    dynamo = FakeDynamo()
    checked = history.record_finished(
        recorded(results=[instance(2, "failed")], spool_dir=str(tmp_path)),
        store.Store(dynamo, "drs-deployment-history", str(tmp_path), lambda message: None), {}, lambda message: None,
        True)
    assert checked["changed"] is False and checked["items"][0]["status"] == "failed"
    assert dynamo.puts == 0 and len(os.listdir(tmp_path)) == 1


def test_recording_the_same_deployment_again_keeps_one_item():
    dynamo = FakeDynamo()
    target = store.Store(dynamo, "drs-deployment-history", "/nonexistent", lambda message: None)
    once = recorded(results=[instance(1, "installed")], deployment_id="d-7", finished_at="2026-06-01T12:00:00Z")
    assert history.record_finished(once, target, {}, print, False)["written"] == 1
    assert history.record_finished(once, target, {}, print, False)["written"] == 0
    assert len(dynamo.table) == 1


def test_metrics_are_batched_within_put_metric_data_limits():
    calls = []

    class FakeCloudWatch:
        def put_metric_data(self, Namespace, MetricData, aws_retry):
            calls.append(MetricData)

    built = items([instance(n, "installed", account=f"{n:012d}") for n in range(1, 81)])
    sent = metrics.put(FakeCloudWatch(), "DRS/Test", metrics.deployment_metrics(built))

    # 80 accounts and the totals, seven metrics each: two calls, none over 500 metrics (PutMetricData takes 1,000)
    assert sent == 81 * 7 and [len(call) for call in calls] == [500, 67]
    names = {datum["MetricName"] for call in calls for datum in call}
    assert names == {"SuccessRate", "Attempted", "Installed", "Failed", "Skipped", "Unprotected", "DurationSeconds"}
    assert {d["Name"] for d in calls[0][0]["Dimensions"]} == {"Account", "DeploymentPattern"}
    # the run's totals, without dimensions, for the alarms
    totals = {datum["MetricName"]: datum["Value"] for call in calls for datum in call if datum["Dimensions"] == []}
    assert totals["Attempted"] == 80 and totals["Installed"] == 80 and totals["SuccessRate"] == 100


# --- the wave gate over several runs (AWX job slices) ---------------------------------------------

class WaveTable:
    """A history table's Query of one deployment, holding the wave items and the account items of some runs;
    it answers a key condition on the sort key's prefix, ``page`` items a page, and keeps every request."""

    def __init__(self, items, page=2):
        self.items = sorted((store.serialize(item) for item in items), key=lambda item: item["timestamp"]["S"])
        self.page = page
        self.requests = []

    def query(self, aws_retry, **request):
        self.requests.append(request)
        assert request["KeyConditionExpression"] == "deployment_id = :deployment AND begins_with(#t, :wave)"
        values = request["ExpressionAttributeValues"]
        matching = [item for item in self.items if item["deployment_id"] == values[":deployment"]
                    and item["timestamp"]["S"].startswith(values[":wave"]["S"])]
        start = request.get("ExclusiveStartKey", {}).get("timestamp", {}).get("S", "")
        after = [item for item in matching if item["timestamp"]["S"] > start]
        answer = {"Items": after[:self.page]}
        if len(after) > self.page:
            answer["LastEvaluatedKey"] = {key: after[self.page - 1][key] for key in ("deployment_id", "timestamp")}
        return answer


def slice_items(run_id, statuses, wave=2, **overrides):
    """What one slice (its own run) recorded for ``wave``: its account items and its wave items."""
    wave_times = [{"wave": wave, "started_at": STARTED, "finished_at": NOW}]
    built = history.build_items(record([instance(number, status, wave=wave, account=f"{number % 3 + 1:012d}")
                                        for number, status in statuses],
                                       run_id=run_id, waves=wave_times, **overrides), {}, NOW, 90)
    return built + history.build_wave_items(built)


def gate_runs(items, wave=2):
    return history.wave_runs(WaveTable(items), "history", "d-1", wave, NOW)


def test_the_gate_adds_up_a_wave_over_every_slice_before_judging_it():
    # 1 failed of 4 in one slice, 2 of 6 in the other: the wave is 3 of 10
    first = slice_items("run-a", [(1, "installed"), (2, "installed"), (3, "failed"), (4, "already_registered"),
                                  (5, "skipped_ssm_offline")])
    second = slice_items("run-b", [(6, "installed"), (7, "timed_out"), (8, "installed"), (9, "failed"),
                                   (10, "installed"), (11, "installed")])
    assert history.judge_wave(gate_runs(first), 2, 0.25)["passed"]
    assert not history.judge_wave(gate_runs(second), 2, 0.3)["passed"]
    verdict = history.judge_wave(gate_runs(first + second), 2, 0.25)
    assert not verdict["passed"]
    assert verdict["figures"]["attempted"] == 10 and verdict["figures"]["failed"] == 3
    assert verdict["figures"]["skipped"] == 1
    assert "30%" in verdict["reason"] and "25%" in verdict["reason"]
    assert {run["run_id"] for run in verdict["runs"]} == {"run-a", "run-b"}
    # each run's figures are kept per source account, as its account items have them
    assert sorted((run["run_id"], run["source_account_id"], run["figures"]["attempted"]) for run in verdict["runs"]) == [
        ("run-a", "000000000001", 1), ("run-a", "000000000002", 2), ("run-a", "000000000003", 1),
        ("run-b", "000000000001", 2), ("run-b", "000000000002", 2), ("run-b", "000000000003", 2)]
    assert history.judge_wave(gate_runs(first + second), 2, 0.3)["passed"]


def test_the_gate_does_not_judge_a_wave_a_slice_has_not_finished_or_no_run_recorded():
    done = slice_items("run-a", [(1, "installed")])
    going = slice_items("run-b", [(2, "installed")], final=False, finished_at=None)
    verdict = history.judge_wave(gate_runs(done + going), 2, 1.0)
    assert not verdict["passed"]
    assert [run["run_id"] for run in verdict["unsettled_runs"]] == ["run-b"]
    assert "run-b (in_progress)" in verdict["reason"]
    # a run killed without recording its end reads as interrupted once its lease passed
    later = NOW + datetime.timedelta(seconds=history.LEASE_SECONDS + 1)
    killed = history.judge_wave(history.wave_runs(WaveTable(done + going), "history", "d-1", 2, later), 2, 1.0)
    assert "run-b (interrupted)" in killed["reason"]
    nothing = history.judge_wave(gate_runs(done, wave=3), 3, 1.0)
    assert not nothing["passed"] and "no run of this deployment recorded wave 3" in nothing["reason"]


def test_the_gate_reads_only_its_waves_items_with_a_key_condition_page_by_page():
    # five runs of waves 1 to 12 (wave 12's key begins like wave 1's), each run in three accounts
    recorded_items = [item for number, wave in enumerate([1, 2, 2, 2, 12]) for item in
                      slice_items(f"run-{number}", [(number * 10 + 1, "installed"), (number * 10 + 2, "installed"),
                                                    (number * 10 + 3, "failed")], wave=wave)]
    table = WaveTable(recorded_items, page=2)
    runs = history.wave_runs(table, "history", "d-1", 2, NOW)
    assert {run["run_id"] for run in runs} == {"run-1", "run-2", "run-3"} and len(runs) == 9
    # three wave items of wave 2 in two pages; no account item and no other wave's item was read
    assert [request["ExpressionAttributeValues"][":wave"]["S"] for request in table.requests] == ["wave#2#"] * 2
    assert all(request["ConsistentRead"] and "FilterExpression" not in request for request in table.requests)
    assert "ExclusiveStartKey" in table.requests[1]
    assert {run["run_id"] for run in history.wave_runs(table, "history", "d-1", 1, NOW)} == {"run-0"}


def test_wave_items_are_kept_out_of_every_index_and_of_the_deployment_reads():
    built = slice_items("run-a", [(1, "installed"), (2, "failed")])
    wave_items = [item for item in built if item["record_type"] == "wave"]
    assert len(wave_items) == 1 and wave_items[0]["timestamp"].startswith("wave#2#")
    # no index key: no AccountIndex, StatusIndex or PatternIndex query reads them
    assert not {"source_account_id", "status", "deployment_pattern"} & set(wave_items[0])
    # and past every time, so a time range on the deployment never reaches them
    assert wave_items[0]["timestamp"] > query.time_bounds({"until": NOW + datetime.timedelta(days=3650)})[1]
    # a read of the deployment's items stops before them, with no time range too
    request = query._query_request(info(deployment_id="d-1"), (None, "deployment_id", "d-1"), None, None, None, NOW)
    assert request["KeyConditionExpression"] == "#k = :k AND #t <= :until"
    assert wave_items[0]["timestamp"] > request["ExpressionAttributeValues"][":until"]["S"] > built[0]["timestamp"]


@pytest.mark.parametrize(("job_vars", "expected"), [
    ({"awx_workflow_job_id": 41, "awx_job_id": 42}, "awx-workflow-41"),
    ({"awx_job_id": 42}, "awx-job-42"),
    ({"awx_workflow_job_id": "", "awx_job_id": 7}, "awx-job-7"),
    ({}, None),
])
def test_an_awx_job_names_its_deployment_after_its_workflow_else_itself(job_vars, expected):
    assert history.job_deployment_id(job_vars) == expected
    if expected:
        assert history.inputs.deployment_id_error("deployment_id", expected) is None


# --- hand-overs ---------------------------------------------------------------------------------------

class StatusIndexTable:
    """StatusIndex as the hand-over read sees it: each status's items that pass the filter, one page each."""

    def __init__(self, by_status):
        self.by_status = by_status
        self.requests = []

    def query(self, aws_retry, **request):
        self.requests.append(request)
        status = request["ExpressionAttributeValues"][":status"]["S"]
        return {"Items": [store.serialize(item) for item in self.by_status.get(status, [])]}


def test_handovers_are_read_in_two_status_queries_whatever_the_number_of_accounts_and_kept_to_those_asked():
    def handed_over(account, status, hour):
        return {"deployment_id": f"d-{account}", "timestamp": f"2026-06-01T{hour:02d}:00:00.000Z#{account}#run",
                "source_account_id": account, "status": status, "record_type": "deployment",
                "in_flight": [{"instance_id": "i-0123456789abcdef0"}]}

    table = StatusIndexTable({"stopped": [handed_over(OTHER, "stopped", 9), handed_over(SOURCE, "stopped", 10)],
                              "in_progress": [handed_over(SOURCE, "in_progress", 8), handed_over("777777777777",
                                                                                                 "in_progress", 7)]})
    accounts = [SOURCE, OTHER] + [f"{number:012d}" for number in range(1, 99)]
    found = store.Store(table, "history", "spool", None).handovers(accounts[:1], NOW)
    assert [(item["source_account_id"], item["status"]) for item in found] == [(SOURCE, "in_progress"), (SOURCE, "stopped")]
    assert len(store.Store(table, "history", "spool", None).handovers(accounts, NOW)) == 3
    assert len(table.requests) == 4
    for request in table.requests:
        assert request["IndexName"] == "StatusIndex"
        assert request["KeyConditionExpression"] == "#s = :status AND #t >= :since"
        # what hands nothing over stays in DynamoDB: claimed, nothing in flight, drills, live leases
        assert "attribute_not_exists(claimed_by)" in request["FilterExpression"]
        assert "size(in_flight) > :none" in request["FilterExpression"]
        assert "record_type = :deployment" in request["FilterExpression"]
    running = [request for request in table.requests if request["ExpressionAttributeValues"][":status"]["S"] == "in_progress"]
    assert all("lease_until < :now" in request["FilterExpression"] for request in running)
