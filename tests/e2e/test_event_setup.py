"""playbooks/setup_events.yml against fresh lab accounts: the orchestration account's bus and queue, the source
accounts' forwarding rules, and the events that then reach the queue a rulebook reads."""

import json
import re

import botocore.exceptions
import pytest

from tests.e2e.conftest import run_playbook
from tests.e2e.test_setup_accounts import task_results, write_calls
from tests.lab_fixture import REPO_ROOT

SCENARIO = REPO_ROOT / "tests" / "e2e" / "scenarios" / "event-setup.yml"
PLAYBOOK = REPO_ROOT / "playbooks" / "setup_events.yml"
ORCHESTRATION, APPS, LEGACY = "111111111111", "222222222222", "555555555555"
REGION = "us-east-1"
BOOTSTRAP_EXTERNAL_ID = "lab-bootstrap-external-id"
BUS = "drs-orchestration-events"
BUS_ARN = f"arn:aws:events:{REGION}:{ORCHESTRATION}:event-bus/{BUS}"
QUEUE, DLQ = "drs-orchestration-instance-events", "drs-orchestration-instance-events-dlq"
QUEUE_RULE_ARN = f"arn:aws:events:{REGION}:{ORCHESTRATION}:rule/{BUS}/{BUS}-to-queue"
SOURCE_REGIONS = {APPS: ["us-east-1", "us-west-2"], LEGACY: ["us-east-1"]}
RUNNING = {"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"], "detail": {"state": ["running"]}}
DR_TAGS = {"source": ["aws.tag"], "detail-type": ["Tag Change on Resource"],
           "detail": {"service": ["ec2"], "resource-type": ["instance"], "changed-tag-keys": [{"prefix": "dr:"}]}}
CREATE_TAGS = {"source": ["aws.ec2"], "detail-type": ["AWS API Call via CloudTrail"],
               "detail": {"eventSource": ["ec2.amazonaws.com"], "eventName": ["CreateTags"]}}


def bootstrap_role(account):
    return f"arn:aws:iam::{account}:role/DRSSetupBootstrapRole"


def event_vars(**overrides):
    variables = {
        "drs_event_setup_orchestration": {"account_id": ORCHESTRATION},
        "drs_event_setup_source_accounts": [
            {"account_id": APPS, "regions": SOURCE_REGIONS[APPS], "assume_role_arn": bootstrap_role(APPS),
             "external_id": BOOTSTRAP_EXTERNAL_ID},
            {"account_id": LEGACY, "regions": SOURCE_REGIONS[LEGACY], "assume_role_arn": bootstrap_role(LEGACY),
             "external_id": BOOTSTRAP_EXTERNAL_ID, "tag_change_events": False},
        ],
    }
    variables.update(overrides)
    return variables


def as_bootstrap(lab, account, service, region=REGION):
    return lab.client(service, region, lab.assume(bootstrap_role(account), BOOTSTRAP_EXTERNAL_ID))


@pytest.fixture(scope="module")
def lab(lab_factory):
    # simulated time moves only when a test advances it
    return lab_factory(SCENARIO, time_scale=0.001)


@pytest.fixture(scope="module")
def configured(lab):
    """The first setup run and a second, verbose one."""
    lab.reset()
    first = run_playbook(lab, PLAYBOOK, event_vars())
    second = run_playbook(lab, PLAYBOOK, event_vars(), extra_args=["-vvv"])
    return {"first": first, "second": second}


@pytest.fixture
def queue(lab, configured):
    """The orchestration queue, emptied of what earlier tests left (pending instances' running events included)."""
    lab.control("clock", {"advance_seconds": 10})
    sqs = lab.client("sqs", REGION)
    url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    reader = {"sqs": sqs, "url": url}
    received(reader)
    return reader


def received(queue):
    """Every event in the queue, oldest first, deleted as read (without a long poll: it would hold the lab)."""
    events = []
    while True:
        messages = queue["sqs"].receive_message(QueueUrl=queue["url"], MaxNumberOfMessages=10,
                                                WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            return events
        for message in messages:
            events.append(json.loads(message["Body"]))
            queue["sqs"].delete_message(QueueUrl=queue["url"], ReceiptHandle=message["ReceiptHandle"])


def outputs(stack):
    return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}


def test_check_mode_on_fresh_accounts_reports_changes_and_makes_none(lab):
    lab.reset()
    run = run_playbook(lab, PLAYBOOK, event_vars(), check=True)

    assert run.returncode == 0, run.stdout + run.stderr
    assert write_calls(lab.stats()) == []
    would_change = {name for name, result in task_results(run) if result.get("changed")}
    assert {f"Deploy the event bus stack of account {ORCHESTRATION}",
            f"Deploy the forwarding rules in each region of account {APPS}",
            f"Deploy the forwarding rules in each region of account {LEGACY}"} <= would_change
    with pytest.raises(botocore.exceptions.ClientError, match="does not exist"):
        lab.client("cloudformation").describe_stacks(StackName="drs-orchestration-event-bus")
    assert lab.client("events").list_event_buses()["EventBuses"] == [
        {"Name": "default", "Arn": f"arn:aws:events:{REGION}:{ORCHESTRATION}:event-bus/default"}]


def test_the_orchestration_account_gets_a_bus_the_source_accounts_may_put_events_on(lab, configured):
    assert configured["first"].returncode == 0, configured["first"].stdout + configured["first"].stderr
    stack = lab.client("cloudformation").describe_stacks(StackName="drs-orchestration-event-bus")["Stacks"][0]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert outputs(stack) == {
        "EventBusArn": BUS_ARN,
        "QueueUrl": f"https://sqs.{REGION}.amazonaws.com/{ORCHESTRATION}/{QUEUE}",
        "QueueArn": f"arn:aws:sqs:{REGION}:{ORCHESTRATION}:{QUEUE}",
        "DeadLetterQueueUrl": f"https://sqs.{REGION}.amazonaws.com/{ORCHESTRATION}/{DLQ}",
    }
    policy = json.loads(lab.client("events").describe_event_bus(Name=BUS)["Policy"])
    assert policy["Statement"] == [{"Sid": "PutEventsFromSourceAccounts", "Effect": "Allow",
                                    "Principal": {"AWS": [APPS, LEGACY]}, "Action": "events:PutEvents",
                                    "Resource": BUS_ARN}]


def test_the_queue_takes_only_the_bus_rules_events_and_dead_letters_after_five_receives(lab, configured):
    sqs = lab.client("sqs")
    url = sqs.get_queue_url(QueueName=QUEUE)["QueueUrl"]
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert json.loads(attributes["RedrivePolicy"]) == {
        "deadLetterTargetArn": f"arn:aws:sqs:{REGION}:{ORCHESTRATION}:{DLQ}", "maxReceiveCount": 5}
    assert (attributes["MessageRetentionPeriod"], attributes["VisibilityTimeout"]) == ("345600", "300")
    assert json.loads(attributes["Policy"])["Statement"] == [{
        "Sid": "EventsFromTheQueueRule", "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
        "Action": "sqs:SendMessage", "Resource": attributes["QueueArn"],
        "Condition": {"ArnEquals": {"aws:SourceArn": QUEUE_RULE_ARN}}}]
    dlq_url = sqs.get_queue_url(QueueName=DLQ)["QueueUrl"]
    assert sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["MessageRetentionPeriod"])["Attributes"] == {
        "MessageRetentionPeriod": "1209600"}

    events = lab.client("events")
    [rule] = events.list_rules(EventBusName=BUS)["Rules"]
    assert rule["Arn"] == QUEUE_RULE_ARN and rule["State"] == "ENABLED"
    assert json.loads(rule["EventPattern"]) == {"$or": [RUNNING, DR_TAGS, CREATE_TAGS]}
    assert events.list_targets_by_rule(Rule=rule["Name"], EventBusName=BUS)["Targets"] == [
        {"Id": "Queue", "Arn": attributes["QueueArn"]}]


@pytest.mark.parametrize("account", [APPS, LEGACY])
def test_each_source_region_forwards_to_the_bus_through_its_own_role(lab, configured, account):
    for region in SOURCE_REGIONS[account]:
        cloudformation = as_bootstrap(lab, account, "cloudformation", region)
        stack = cloudformation.describe_stacks(StackName="drs-orchestration-event-forwarding")["Stacks"][0]
        role_name = f"DRSOrchestrationEventForwarding-{region}"
        role_arn = f"arn:aws:iam::{account}:role/{role_name}"
        assert (stack["StackStatus"], outputs(stack)) == ("CREATE_COMPLETE", {"RoleArn": role_arn})

        events = as_bootstrap(lab, account, "events", region)
        rules = {rule["Name"]: json.loads(rule["EventPattern"]) for rule in events.list_rules()["Rules"]}
        expected = {"drs-orchestration-instance-running": RUNNING, "drs-orchestration-dr-tag-change": DR_TAGS}
        if account == LEGACY:  # no tag change events: its CreateTags calls are forwarded too
            expected["drs-orchestration-create-tags"] = CREATE_TAGS
        assert rules == expected
        for name in rules:
            assert events.list_targets_by_rule(Rule=name)["Targets"] == [
                {"Id": "OrchestrationBus", "Arn": BUS_ARN, "RoleArn": role_arn}]

        iam = as_bootstrap(lab, account, "iam")
        trust = iam.get_role(RoleName=role_name)["Role"]["AssumeRolePolicyDocument"]
        assert trust["Statement"] == [{"Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"},
                                       "Action": ["sts:AssumeRole"],
                                       "Condition": {"StringEquals": {"aws:SourceAccount": account}}}]
        [policy_name] = iam.list_role_policies(RoleName=role_name)["PolicyNames"]
        document = iam.get_role_policy(RoleName=role_name, PolicyName=policy_name)["PolicyDocument"]
        assert [(s["Action"], s["Resource"]) for s in document["Statement"]] == [(["events:PutEvents"], BUS_ARN)]


def test_a_launched_instance_arrives_in_the_queue_once_running_from_either_region(lab, queue):
    for region in SOURCE_REGIONS[APPS]:
        [instance_id] = lab.control("instances", {"account": "apps", "region": region, "count": 1,
                                                  "tags": {"dr:enabled": "true"}})["instance_ids"]
        assert received(queue) == []  # pending
        lab.control("clock", {"advance_seconds": 10})
        [event] = received(queue)
        assert (event["detail-type"], event["account"], event["region"]) == (
            "EC2 Instance State-change Notification", APPS, region)
        assert event["detail"] == {"instance-id": instance_id, "state": "running"}


def test_a_dr_tag_reaches_the_queue_and_another_tag_does_not(lab, queue):
    instance_id = _instance(lab, APPS)
    lab.control("tags", {"instance_ids": [instance_id], "tag": {"dr:wave": "2"}})
    [event] = received(queue)
    assert (event["detail-type"], event["account"]) == ("Tag Change on Resource", APPS)
    assert event["resources"] == [f"arn:aws:ec2:{REGION}:{APPS}:instance/{instance_id}"]
    assert event["detail"]["changed-tag-keys"] == ["dr:wave"] and event["detail"]["tags"]["dr:wave"] == "2"

    lab.control("tags", {"instance_ids": [instance_id], "tag": {"Owner": "payments"}})
    assert received(queue) == []


def test_an_account_without_tag_events_forwards_its_create_tags_calls(lab, queue):
    instance_id = _instance(lab, LEGACY)
    lab.control("tags", {"instance_ids": [instance_id], "tag": {"dr:enabled": "true"}})
    # the lab publishes tag change events everywhere: this account forwards both
    events = {event["detail-type"]: event for event in received(queue)}
    assert set(events) == {"Tag Change on Resource", "AWS API Call via CloudTrail"}
    call = events["AWS API Call via CloudTrail"]
    assert call["account"] == LEGACY and call["detail"]["eventName"] == "CreateTags"
    assert call["detail"]["requestParameters"]["resourcesSet"] == {"items": [{"resourceId": instance_id}]}


def test_a_second_run_changes_nothing_and_shows_no_credentials(configured):
    second = configured["second"]
    assert second.returncode == 0, second.stdout + second.stderr
    assert [name for name, result in task_results(second) if result.get("changed")] == []
    output = second.stdout + second.stderr
    assert "sts_creds" not in output
    for secret_option in ("secret_key", "session_token"):
        shown = re.findall(rf'"{secret_option}": "([^"]*)"', output)
        assert set(shown) <= {"VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"}, shown


@pytest.mark.parametrize("overrides, words", [
    ({"drs_event_setup_orchestration": {"account_id": "11111111111"}}, "12 digits"),
    ({"drs_event_setup_source_accounts": [{"account_id": APPS, "regions": []}]}, "at least one region"),
    ({"drs_event_setup_source_accounts": [{"account_id": APPS, "regions": [REGION]}] * 2}, "listed once"),
    ({"drs_event_setup_source_accounts": []}, "drs_event_setup_organization_id"),
    ({"drs_event_setup_organization_id": "org-1"}, "o- and 10 to 32"),
    ({"drs_event_setup_bus_name": "default"}, "not default"),
    ({"drs_event_setup_source_accounts": [{"account_id": APPS, "regions": [REGION], "tag_change_events": "maybe"}]},
     "tag_change_events"),
])
def test_bad_input_is_refused_before_any_aws_call(lab, overrides, words):
    before = lab.stats()["total_calls"]
    run = run_playbook(lab, PLAYBOOK, event_vars(**overrides))
    assert run.returncode != 0
    assert words in run.stdout + run.stderr
    assert lab.stats()["total_calls"] == before


def _instance(lab, account):
    ec2 = as_bootstrap(lab, account, "ec2")
    return ec2.describe_instances()["Reservations"][0]["Instances"][0]["InstanceId"]
