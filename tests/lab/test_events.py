"""EventBridge events from the lab's EC2: launching, starting and tagging instances publishes the events
AWS publishes, and the rules clients create route them from a source account to a queue in the
orchestration account, as an Event-Driven Ansible rulebook would read them."""

import json
import subprocess
import sys
import urllib.error
import urllib.request

import boto3
import pytest
from moto.moto_api._internal.models import moto_api_backend

from lab.scenario import ScenarioError, expand
from lab.server import LabServer
from tests.lab_fixture import OPERATOR_KEYS, REPO_ROOT

REGION = "us-east-1"
ORCHESTRATION, SOURCE = "111111111111", "222222222222"
BUS = "dr-instance-events"
QUEUE = "dr-new-instances"
LATE_LAUNCH_AT, LATE_TAG_AT = 3600, 4000
SCENARIO = {
    "name": "events-tests",
    "seed": 99,
    "time_scale": 0.001,  # simulated time moves only when a test advances it
    "regions": [REGION],
    "operator": {"account": "orchestration", "user": "operator", **{
        "access_key_id": OPERATOR_KEYS["aws_access_key_id"], "secret_access_key": OPERATOR_KEYS["aws_secret_access_key"]}},
    "accounts": [
        {"id": ORCHESTRATION, "name": "orchestration"},
        {"id": SOURCE, "name": "source", "cloudtrail": True,
         "roles": [{"name": "SourceRole", "trusted_principals": [ORCHESTRATION]}]},
    ],
    "instance_groups": [
        {"name": "web", "account": "source", "region": REGION, "count": 3, "tags": {"Role": "web"}},
        {"name": "db", "account": "source", "region": REGION, "count": 1, "state": "stopped"},
    ],
    "changes": [
        {"at_seconds": LATE_LAUNCH_AT, "launch": {"name": "late", "account": "source", "region": REGION, "count": 2,
                                                  "tags": {"dr:enabled": "true"}}},
        {"at_seconds": LATE_TAG_AT, "tag": {"group": "web", "count": 1, "tags": {"dr:wave": "3"}}},
    ],
}
STATE_PATTERN = {"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"],
                 "detail": {"state": ["running"]}}
TAG_PATTERN = {"source": ["aws.tag"], "detail-type": ["Tag Change on Resource"],
               "detail": {"service": ["ec2"], "resource-type": ["instance"], "changed-tag-keys": [{"prefix": "dr:"}]}}
CLOUDTRAIL_PATTERN = {"source": ["aws.ec2"], "detail-type": ["AWS API Call via CloudTrail"],
                      "detail": {"eventSource": ["ec2.amazonaws.com"], "eventName": ["CreateTags"]}}
ENVELOPE = ["version", "id", "detail-type", "source", "account", "time", "region", "resources", "detail"]


@pytest.fixture(scope="module")
def lab():
    """The lab in this process; moto's backends are process-global, so it starts from and leaves them empty."""
    moto_api_backend.reset()
    server = LabServer(expand(SCENARIO)).start()
    yield server
    server.stop()
    moto_api_backend.reset()


def control(lab, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{lab.url}/_lab/{path}", data=data, method="GET" if body is None else "POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def client(lab, service, credentials=None):
    return boto3.client(service, endpoint_url=lab.url, region_name=REGION, **(credentials or OPERATOR_KEYS))


@pytest.fixture(scope="module")
def source_keys(lab):
    issued = client(lab, "sts").assume_role(RoleArn=f"arn:aws:iam::{SOURCE}:role/SourceRole",
                                            RoleSessionName="events-tests")["Credentials"]
    return {"aws_access_key_id": issued["AccessKeyId"], "aws_secret_access_key": issued["SecretAccessKey"],
            "aws_session_token": issued["SessionToken"]}


@pytest.fixture(scope="module")
def routes(lab, source_keys):
    """What the CloudFormation templates will create, through the APIs: in the orchestration account a bus that
    the source account may put events on, a rule on it sending everything to a queue the rule may write to;
    in the source account rules forwarding running instances, dr: tag changes and CreateTags calls to that bus."""
    events = client(lab, "events")
    bus_arn = events.create_event_bus(Name=BUS)["EventBusArn"]
    events.put_permission(EventBusName=BUS, Action="events:PutEvents", Principal=SOURCE, StatementId="source")
    rule_arn = events.put_rule(Name="to-queue", EventBusName=BUS, EventPattern=json.dumps({"account": [SOURCE]}))["RuleArn"]
    sqs = client(lab, "sqs")
    queue_url = sqs.create_queue(QueueName=QUEUE)["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sqs.set_queue_attributes(QueueUrl=queue_url, Attributes={"Policy": json.dumps({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sqs:SendMessage",
        "Resource": queue_arn, "Condition": {"ArnEquals": {"aws:SourceArn": rule_arn}}}]})})
    events.put_targets(Rule="to-queue", EventBusName=BUS, Targets=[{"Id": "queue", "Arn": queue_arn}])
    source_events = client(lab, "events", source_keys)
    for name, pattern in (("running", STATE_PATTERN), ("dr-tags", TAG_PATTERN), ("create-tags", CLOUDTRAIL_PATTERN)):
        source_events.put_rule(Name=name, EventPattern=json.dumps(pattern))
        source_events.put_targets(Rule=name, Targets=[{"Id": "orchestration", "Arn": bus_arn}])
    return {"sqs": sqs, "queue_url": queue_url, "bus_arn": bus_arn}


@pytest.fixture
def queue(lab, routes):
    """The queue, emptied before the test of what earlier tests left, pending instances' running events included."""
    advance(lab, 10)
    received(routes)
    return routes


def received(routes):
    """Every event in the queue, oldest first; they are deleted as they are read."""
    sqs, url, events = routes["sqs"], routes["queue_url"], []
    while True:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            return events
        for message in messages:
            events.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def advance(lab, seconds):
    control(lab, "clock", {"advance_seconds": seconds})


def test_a_launched_instance_arrives_in_the_queue_as_running_once_it_leaves_pending(lab, queue):
    launched = control(lab, "instances", {"name": "new-web", "account": "source", "region": REGION, "count": 1,
                                          "tags": {"dr:enabled": "true"}})
    [instance_id] = launched["instance_ids"]
    assert received(queue) == []  # pending: the source account's rule forwards running only

    advance(lab, 10)
    [event] = received(queue)
    assert list(event) == ENVELOPE
    assert event["version"] == "0"
    assert event["detail-type"] == "EC2 Instance State-change Notification"
    assert event["source"] == "aws.ec2"
    assert event["account"] == SOURCE  # the account the instance is in, not the bus's
    assert event["region"] == REGION
    assert event["resources"] == [f"arn:aws:ec2:{REGION}:{SOURCE}:instance/{instance_id}"]
    assert event["detail"] == {"instance-id": instance_id, "state": "running"}
    assert event["time"].endswith("Z") and len(event["time"]) == 20


def test_a_launched_instance_is_managed_by_ssm_and_named_after_its_group(lab, queue, source_keys):
    [instance_id] = control(lab, "instances", {"name": "batch", "account": "source", "region": REGION, "count": 1,
                                               "name_pattern": "batch-{index:02d}"})["instance_ids"]
    ssm = client(lab, "ssm", source_keys)
    managed = ssm.describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": [instance_id]}])
    assert [info["PingStatus"] for info in managed["InstanceInformationList"]] == ["Online"]
    ec2 = client(lab, "ec2", source_keys)
    [reservation] = ec2.describe_instances(InstanceIds=[instance_id])["Reservations"]
    assert {"Key": "Name", "Value": "batch-01"} in reservation["Instances"][0]["Tags"]


def test_run_instances_and_start_instances_publish_running(lab, queue, source_keys):
    ec2 = client(lab, "ec2", source_keys)
    [instance] = ec2.run_instances(ImageId="ami-0labtest", MinCount=1, MaxCount=1)["Instances"]
    advance(lab, 10)
    assert [(e["detail"]["instance-id"], e["detail"]["state"]) for e in received(queue)] == [(instance["InstanceId"], "running")]

    ec2.stop_instances(InstanceIds=[instance["InstanceId"]])
    advance(lab, 10)
    assert received(queue) == []  # stopping and stopped match no rule
    ec2.start_instances(InstanceIds=[instance["InstanceId"]])
    advance(lab, 10)
    assert [e["detail"]["state"] for e in received(queue)] == ["running"]


def test_a_dr_tag_publishes_a_tag_change_and_the_create_tags_call(lab, queue, source_keys):
    ec2 = client(lab, "ec2", source_keys)
    instance_id = _group_instance(lab, "web")
    ec2.create_tags(Resources=[instance_id], Tags=[{"Key": "dr:wave", "Value": "2"}])
    events = received(queue)
    assert [e["detail-type"] for e in events] == ["Tag Change on Resource", "AWS API Call via CloudTrail"]
    tag_change, api_call = events
    assert tag_change["source"] == "aws.tag" and tag_change["account"] == SOURCE
    assert tag_change["resources"] == [f"arn:aws:ec2:{REGION}:{SOURCE}:instance/{instance_id}"]
    detail = tag_change["detail"]
    assert detail["changed-tag-keys"] == ["dr:wave"]
    assert (detail["service"], detail["resource-type"]) == ("ec2", "instance")
    assert detail["tags"]["dr:wave"] == "2" and detail["tags"]["Role"] == "web"  # every tag after the change
    assert api_call["source"] == "aws.ec2" and api_call["resources"] == []
    call = api_call["detail"]
    assert call["eventName"] == "CreateTags" and call["eventSource"] == "ec2.amazonaws.com"
    assert call["requestParameters"] == {"resourcesSet": {"items": [{"resourceId": instance_id}]},
                                         "tagSet": {"items": [{"key": "dr:wave", "value": "2"}]}}
    assert call["userIdentity"]["type"] == "AssumedRole"
    assert call["userIdentity"]["sessionContext"]["sessionIssuer"]["arn"] == f"arn:aws:iam::{SOURCE}:role/SourceRole"


def test_a_change_no_rule_matches_reaches_no_queue(lab, queue, source_keys):
    instance_id = _group_instance(lab, "web")
    control(lab, "tags", {"instance_ids": [instance_id], "tag": {"Owner": "payments"}})
    assert [e["detail-type"] for e in received(queue)] == ["AWS API Call via CloudTrail"]  # the call; no dr: tag change
    last_tag_change = [r for r in control(lab, "events")["events"] if r["event"]["detail-type"] == "Tag Change on Resource"][-1]
    assert last_tag_change["event"]["detail"]["changed-tag-keys"] == ["Owner"]
    assert last_tag_change["deliveries"] == []

    ec2 = client(lab, "ec2", source_keys)
    ec2.create_tags(Resources=[instance_id], Tags=[{"Key": "Owner", "Value": "payments"}])  # no change at all
    assert [r["event"]["detail-type"] for r in control(lab, "events")["events"]][-1] == "AWS API Call via CloudTrail"


def test_untagging_publishes_the_removed_keys(lab, queue):
    instance_id = _group_instance(lab, "web", 1)
    control(lab, "tags", {"instance_ids": [instance_id], "tag": {"dr:enabled": "true"}})
    received(queue)
    control(lab, "tags", {"instance_ids": [instance_id], "untag": ["dr:enabled"]})
    [event] = [e for e in received(queue) if e["detail-type"] == "Tag Change on Resource"]
    assert event["detail"]["changed-tag-keys"] == ["dr:enabled"]
    assert "dr:enabled" not in event["detail"]["tags"]


def test_scheduled_changes_happen_when_the_clock_passes_their_time(lab, queue):
    elapsed = control(lab, "clock")["elapsed_seconds"]
    assert elapsed < LATE_LAUNCH_AT
    assert _group_instances(lab, "late") == []
    advance(lab, LATE_LAUNCH_AT - elapsed + 11)  # the clock's answer is rounded: a second to spare
    running = received(queue)
    assert [e["detail"]["state"] for e in running] == ["running", "running"]
    late = {e["detail"]["instance-id"] for e in running}
    assert late == set(_group_instances(lab, "late"))
    # the events carry the simulated time the change was due at, not the time the clock was read
    assert all(e["time"] == running[0]["time"] for e in running)

    advance(lab, LATE_TAG_AT - LATE_LAUNCH_AT)
    [tag_change] = [e for e in received(queue) if e["detail-type"] == "Tag Change on Resource"]
    assert tag_change["detail"]["changed-tag-keys"] == ["dr:wave"]
    assert tag_change["detail"]["tags"]["dr:wave"] == "3"


def test_a_bus_that_does_not_allow_the_source_account_gets_nothing(lab, queue):
    events = client(lab, "events")
    events.remove_permission(EventBusName=BUS, StatementId="source")
    try:
        control(lab, "instances", {"name": "refused", "account": "source", "region": REGION, "count": 1})
        advance(lab, 10)
        assert received(queue) == []
        running = [r for r in control(lab, "events")["events"] if r["event"]["detail"].get("state") == "running"][-1]
        [delivery] = running["deliveries"]
        assert delivery["target"] == queue["bus_arn"]
        assert delivery["outcome"].startswith("refused: the policy of event bus")
    finally:
        events.put_permission(EventBusName=BUS, Action="events:PutEvents", Principal=SOURCE, StatementId="source")


def test_the_control_api_refuses_a_launch_the_scenario_would_refuse(lab):
    for body, words in (({"account": "nobody", "region": REGION, "count": 1}, "names account 'nobody'"),
                        ({"account": "source", "region": REGION, "count": 0}, "count"),
                        ({"account": "source", "region": REGION, "count": 1, "install": {"outcome": "gcc_missing"},
                          "platform": "windows"}, "cannot happen on windows")):
        with pytest.raises(urllib.error.HTTPError) as refused:
            control(lab, "instances", body)
        assert refused.value.code == 400
        assert words in json.loads(refused.value.read())["error"]


def test_changes_draw_nothing_at_seeding():
    """A scenario's seeded fleet is the same with or without changes: they draw only when they happen. Seeded in
    a child process, as moto's backends are process-global and this module's lab uses them."""
    script = (
        "import json, sys\n"
        "from moto.moto_api._internal.models import moto_api_backend\n"
        "from lab.scenario import expand\n"
        "from lab.server import LabApplication\n"
        "fleets = []\n"
        "for scenario in json.load(sys.stdin):\n"
        "    moto_api_backend.reset()\n"
        "    world = LabApplication(expand(scenario)).world\n"
        "    fleets.append([[i.instance_id, i.install_duration_seconds, i.private_ip, i.ssm_state] for i in world.instances.values()]"
        " + [len(world.events.describe()['events'])])\n"
        "print(json.dumps(fleets))\n"
    )
    without = {key: value for key, value in SCENARIO.items() if key != "changes"}
    seeded = subprocess.run([sys.executable, "-c", script], input=json.dumps([SCENARIO, without]), capture_output=True,
                            text=True, cwd=REPO_ROOT, check=True)
    with_changes, without_changes = json.loads(seeded.stdout)
    assert with_changes == without_changes
    assert with_changes[-1] == 0  # seeding publishes nothing
    assert len(with_changes) == 5


def test_a_change_naming_an_unknown_group_is_refused():
    broken = {**SCENARIO, "changes": [{"at_seconds": 5, "tag": {"group": "nope", "tags": {"a": "b"}}}]}
    with pytest.raises(ScenarioError, match="changes\\[0\\] names group 'nope'"):
        expand(json.loads(json.dumps(broken)))


def _group_instances(lab, group):
    world = lab.app.world
    return world.group_members(group)


def _group_instance(lab, group, index=0):
    return _group_instances(lab, group)[index]


