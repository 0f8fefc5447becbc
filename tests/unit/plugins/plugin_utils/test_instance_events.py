"""What the rulebook's event source makes of EventBridge events: the instance and its tags, the windows per
account-region, the last event of an instance deciding, the throttle and redeliveries, and its arguments."""

import json

import pytest

from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils import instance_events as events

FILTERS = {"dr:enabled": ["true"], "dr:recovery-strategy": ["drs"]}
APPS, OTHER = "222222222222", "333333333333"


def state_change(instance_id, state="running", event_id="e-1", account=APPS, region="us-east-1"):
    return json.dumps({"version": "0", "id": event_id, "detail-type": events.STATE_CHANGE, "source": "aws.ec2",
                       "account": account, "time": "2026-12-04T10:00:00Z", "region": region,
                       "resources": [f"arn:aws:ec2:{region}:{account}:instance/{instance_id}"],
                       "detail": {"instance-id": instance_id, "state": state}})


def tag_change(instance_id, tags, version=1, event_id="t-1", moment="2026-12-04T10:00:00Z", account=APPS):
    return json.dumps({"version": "0", "id": event_id, "detail-type": events.TAG_CHANGE, "source": "aws.tag",
                       "account": account, "time": moment, "region": "us-east-1",
                       "resources": [f"arn:aws:ec2:us-east-1:{account}:instance/{instance_id}"],
                       "detail": {"changed-tag-keys": sorted(tags), "service": "ec2", "resource-type": "instance",
                                  "version": version, "tags": tags}})


def tag_call(event_name, instance_ids, tags, event_id="c-1"):
    parameters = {"resourcesSet": {"items": [{"resourceId": instance_id} for instance_id in instance_ids]}}
    if tags is not None:
        parameters["tagSet"] = {"items": [{"key": key, **({} if value is None else {"value": value})}
                                          for key, value in tags.items()]}
    return json.dumps({"version": "0", "id": event_id, "detail-type": events.API_CALL, "source": "aws.ec2",
                       "account": APPS, "time": "2026-12-04T10:00:00Z", "region": "us-east-1", "resources": [],
                       "detail": {"eventSource": "ec2.amazonaws.com", "eventName": event_name,
                                  "requestParameters": parameters}})


def tagged_of(body):
    observations, reason = events.observe(body, FILTERS)
    assert reason is None, reason
    return {observation.instance_id: observation.tagged for observation in observations}


def test_a_running_instance_is_kept_for_the_discovery_to_judge_its_tags():
    assert tagged_of(state_change("i-1")) == {"i-1": None}


def test_other_states_and_other_events_are_dropped_with_a_reason():
    assert events.observe(state_change("i-1", "stopped"), FILTERS) == ([], "instance i-1 is stopped, not running")
    assert events.observe("{not json", FILTERS) == ([], "not JSON")
    scheduled = json.dumps({"id": "x", "account": APPS, "region": "us-east-1", "detail-type": "Scheduled Event",
                            "detail": {}})
    assert "does not make an instance need the agent" in events.observe(scheduled, FILTERS)[1]


def test_a_tag_change_says_whether_the_instance_now_matches_the_filters():
    assert tagged_of(tag_change("i-1", {"dr:enabled": "true", "dr:recovery-strategy": "drs"})) == {"i-1": True}
    assert tagged_of(tag_change("i-1", {"dr:recovery-strategy": "drs"})) == {"i-1": False}
    wildcard = events.observe(tag_change("i-1", {"dr:enabled": "yes-please"}), {"dr:enabled": ["yes*"]})[0]
    assert wildcard[0].tagged is True


def test_cloudtrail_tag_calls_untag_or_leave_the_verdict_to_the_discovery():
    assert tagged_of(tag_call("CreateTags", ["i-1", "i-2"], {"dr:enabled": "true"})) == {"i-1": None, "i-2": None}
    assert tagged_of(tag_call("CreateTags", ["i-1"], {"dr:enabled": "false"})) == {"i-1": False}
    assert tagged_of(tag_call("DeleteTags", ["i-1"], {"dr:enabled": None})) == {"i-1": False}
    assert tagged_of(tag_call("DeleteTags", ["i-1"], None)) == {"i-1": False}
    assert events.observe(tag_call("CreateTags", ["i-1"], {"Owner": "me"}), FILTERS) == (
        [], "a CreateTags call that sets none of the tag filters' keys")
    assert events.observe(tag_call("CreateTags", ["vol-1"], {"dr:enabled": "true"}), FILTERS)[1] == (
        "a CreateTags call on no instance")


def observed(body):
    return events.observe(body, FILTERS)[0]


def test_a_window_gathers_an_account_region_until_it_closes():
    windows = events.Windows(window_seconds=60, throttle_seconds=600)
    assert windows.take(observed(state_change("i-1", event_id="a")), "r-a", now=0) == (True, [])
    assert windows.take(observed(state_change("i-2", event_id="b")), "r-b", now=30) == (True, [])
    assert windows.take(observed(state_change("i-3", event_id="c", account=OTHER)), "r-c", now=40) == (True, [])
    assert windows.next_due() == 60
    assert windows.due(59) == []
    [window] = windows.due(60)
    assert window.closed() == {"drs_instances": {"account_id": APPS, "region": "us-east-1",
                                                 "instance_ids": ["i-1", "i-2"], "untagged_instance_ids": [],
                                                 "messages": 2}}
    assert window.receipts == ["r-a", "r-b"]
    assert [w.account_id for w in windows.due(100)] == [OTHER]


def test_the_last_event_of_an_instance_decides():
    windows = events.Windows(window_seconds=60, throttle_seconds=600)
    tagged = {"dr:enabled": "true", "dr:recovery-strategy": "drs"}
    # delivered out of order: the untagging (version 2) arrives first
    windows.take(observed(tag_change("i-1", {"dr:recovery-strategy": "drs"}, version=2, event_id="b")), "r-b", now=1)
    windows.take(observed(tag_change("i-1", tagged, version=1, event_id="a")), "r-a", now=2)
    windows.take(observed(tag_change("i-2", {"dr:recovery-strategy": "drs"}, version=1, event_id="c")), "r-c", now=3)
    windows.take(observed(tag_change("i-2", tagged, version=2, event_id="d")), "r-d", now=4)
    [window] = windows.due(61)
    assert window.closed()["drs_instances"]["instance_ids"] == ["i-2"]
    assert window.closed()["drs_instances"]["untagged_instance_ids"] == ["i-1"]
    # every message of the window is deleted once it is queued, the untagging ones too
    assert sorted(window.receipts) == ["r-a", "r-b", "r-c", "r-d"]


def test_an_instance_handed_on_is_throttled_and_a_redelivered_event_counts_once():
    windows = events.Windows(window_seconds=60, throttle_seconds=600)
    windows.take(observed(state_change("i-1", event_id="a")), "r-a", now=0)
    held, reasons = windows.take(observed(state_change("i-1", event_id="a")), "r-a2", now=10)
    assert (held, reasons) == (True, ["event a for i-1 was delivered before"])
    [window] = windows.due(60)
    assert window.receipts == ["r-a", "r-a2"]

    held, reasons = windows.take(observed(state_change("i-1", event_id="b")), "r-b", now=100)
    assert (held, reasons) == (False, ["instance i-1 was handed to a deploy 40 s ago (throttle 600 s)"])
    assert windows.take(observed(state_change("i-1", event_id="a")), "r-a3", now=120) == (
        False, ["event a for i-1 was delivered before"])
    assert windows.take(observed(state_change("i-1", event_id="c")), "r-c", now=661) == (True, [])


def test_an_untagged_instance_is_not_throttled_afterwards():
    windows = events.Windows(window_seconds=60, throttle_seconds=600)
    windows.take(observed(tag_change("i-1", {"dr:recovery-strategy": "drs"}, event_id="a")), "r-a", now=0)
    windows.due(60)
    assert windows.take(observed(state_change("i-1", event_id="b")), "r-b", now=70) == (True, [])


def test_arguments_get_defaults_and_bad_ones_are_refused_by_name():
    checked = events.check_arguments({"queue_url": "https://sqs.us-east-1.amazonaws.com/1/q", "region": None,
                                      "window_seconds": "30", "tag_filters": None})
    assert checked["window_seconds"] == 30 and checked["throttle_seconds"] == 600 and checked["wait_seconds"] == 20
    assert checked["tag_filters"] == FILTERS
    assert checked["region"] is None
    with pytest.raises(events.EventSourceInputError, match="queue_url is required"):
        events.check_arguments({})
    with pytest.raises(events.EventSourceInputError, match="wait_seconds must be a whole number of seconds from 0 to 20"):
        events.check_arguments({"queue_url": "q", "wait_seconds": 21})
    with pytest.raises(events.EventSourceInputError, match="window_seconds .* not True"):
        events.check_arguments({"queue_url": "q", "window_seconds": True})
    with pytest.raises(events.EventSourceInputError, match=r"tag_filters\['dr:enabled'\]: the list of values is empty"):
        events.check_arguments({"queue_url": "q", "tag_filters": {"dr:enabled": []}})
    with pytest.raises(events.EventSourceInputError, match="unknown argument.*queue_name"):
        events.check_arguments({"queue_url": "q", "queue_name": "x"})
