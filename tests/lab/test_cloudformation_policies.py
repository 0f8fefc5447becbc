"""Queue and event bus policies created by CloudFormation stacks (lab/models/cloudformation.py), and the
EventBridge delivery that follows them: what a stack declares is what the lab's event routing honours."""

import json

import boto3
import botocore.exceptions
import pytest
from moto.moto_api._internal.models import moto_api_backend

from lab.scenario import expand
from lab.server import LabServer
from tests.lab.test_events import control
from tests.lab_fixture import OPERATOR_KEYS

REGION = "us-east-1"
ORCHESTRATION, SOURCE = "111111111111", "222222222222"
BUS = "central"
BUS_ARN = f"arn:aws:events:{REGION}:{ORCHESTRATION}:event-bus/{BUS}"
SCENARIO = {
    "name": "cloudformation-policies",
    "seed": 7,
    "time_scale": 0.001,
    "regions": [REGION],
    "operator": {"account": "orchestration", "user": "operator", **{
        "access_key_id": OPERATOR_KEYS["aws_access_key_id"], "secret_access_key": OPERATOR_KEYS["aws_secret_access_key"]}},
    "accounts": [
        {"id": ORCHESTRATION, "name": "orchestration"},
        {"id": SOURCE, "name": "source", "roles": [{"name": "Deployer", "trusted_principals": [ORCHESTRATION]}]},
    ],
}
RUNNING = {"source": ["aws.ec2"], "detail-type": ["EC2 Instance State-change Notification"], "detail": {"state": ["running"]}}


def bus_template(allowed_account=SOURCE, queue_policy=True):
    """A bus whose policy lets ``allowed_account`` put events, a rule on it sending running instances to a
    queue, and (with ``queue_policy``) the queue's policy letting that rule send."""
    resources = {
        "Bus": {"Type": "AWS::Events::EventBus", "Properties": {"Name": BUS}},
        "BusPolicy": {"Type": "AWS::Events::EventBusPolicy", "DependsOn": "Bus", "Properties": {
            "EventBusName": BUS, "StatementId": "FromSource",
            "Statement": {"Effect": "Allow", "Principal": {"AWS": [allowed_account]}, "Action": "events:PutEvents",
                          "Resource": {"Fn::GetAtt": ["Bus", "Arn"]}}}},
        "Queue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "arrivals"}},
        "Rule": {"Type": "AWS::Events::Rule", "DependsOn": "Bus", "Properties": {
            "Name": "to-queue", "EventBusName": BUS, "EventPattern": RUNNING,
            "Targets": [{"Id": "queue", "Arn": {"Fn::GetAtt": ["Queue", "Arn"]}}]}},
    }
    if queue_policy:
        resources["QueuePolicy"] = {"Type": "AWS::SQS::QueuePolicy", "Properties": {
            "Queues": [{"Ref": "Queue"}],
            "PolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": "events.amazonaws.com"}, "Action": "sqs:SendMessage",
                "Resource": {"Fn::GetAtt": ["Queue", "Arn"]},
                "Condition": {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": ["Rule", "Arn"]}}}}]}}}
    return json.dumps({"Resources": resources})


def forwarding_template(trusted_service="events.amazonaws.com"):
    """A rule on the source account's default bus forwarding running instances to the central bus, as a role
    trusting ``trusted_service``."""
    return json.dumps({"Resources": {
        "Role": {"Type": "AWS::IAM::Role", "Properties": {
            "RoleName": "Forwarder",
            "AssumeRolePolicyDocument": {"Version": "2012-10-17", "Statement": [{
                "Effect": "Allow", "Principal": {"Service": trusted_service}, "Action": "sts:AssumeRole",
                "Condition": {"StringEquals": {"aws:SourceAccount": SOURCE}}}]},
            "Policies": [{"PolicyName": "Forward", "PolicyDocument": {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Action": "events:PutEvents", "Resource": BUS_ARN}]}}]}},
        "Rule": {"Type": "AWS::Events::Rule", "Properties": {
            "Name": "forward", "EventPattern": RUNNING,
            "Targets": [{"Id": "central", "Arn": BUS_ARN, "RoleArn": {"Fn::GetAtt": ["Role", "Arn"]}}]}},
    }})


@pytest.fixture(scope="module")
def lab():
    moto_api_backend.reset()
    server = LabServer(expand(json.loads(json.dumps(SCENARIO)))).start()
    yield server
    server.stop()
    moto_api_backend.reset()


def client(lab, service, credentials=None):
    return boto3.client(service, endpoint_url=lab.url, region_name=REGION, **(credentials or OPERATOR_KEYS))


@pytest.fixture(scope="module")
def source_keys(lab):
    issued = client(lab, "sts").assume_role(RoleArn=f"arn:aws:iam::{SOURCE}:role/Deployer",
                                            RoleSessionName="policy-tests")["Credentials"]
    return {"aws_access_key_id": issued["AccessKeyId"], "aws_secret_access_key": issued["SecretAccessKey"],
            "aws_session_token": issued["SessionToken"]}


@pytest.fixture
def stacks(lab, source_keys):
    """Creates stacks (name, template, account keys) and deletes them after the test."""
    created = []

    def create(name, template, credentials=None):
        cloudformation = client(lab, "cloudformation", credentials)
        cloudformation.create_stack(StackName=name, TemplateBody=template, Capabilities=["CAPABILITY_NAMED_IAM"])
        created.append((cloudformation, name))
        return cloudformation

    yield create
    for cloudformation, name in reversed(created):
        cloudformation.delete_stack(StackName=name)


def launch_and_read(lab):
    """Launch an instance in the source account, let it reach running, and return the central queue's events
    and what happened to the running event at the bus target and the queue target."""
    control(lab, "instances", {"account": "source", "region": REGION, "count": 1})
    control(lab, "clock", {"advance_seconds": 10})
    sqs = client(lab, "sqs")
    url = sqs.get_queue_url(QueueName="arrivals")["QueueUrl"]
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
    running = [r for r in control(lab, "events")["events"] if r["event"]["detail"].get("state") == "running"][-1]
    return [json.loads(m["Body"]) for m in messages], {d["target"].split(":")[2]: d["outcome"] for d in running["deliveries"]}


def test_the_stacks_policies_are_set_and_events_flow_through_them(lab, stacks, source_keys):
    stacks("central", bus_template())
    stacks("forward", forwarding_template(), source_keys)

    bus_policy = json.loads(client(lab, "events").describe_event_bus(Name=BUS)["Policy"])
    assert [s["Sid"] for s in bus_policy["Statement"]] == ["FromSource"]
    assert bus_policy["Statement"][0]["Principal"] == {"AWS": [SOURCE]}
    sqs = client(lab, "sqs")
    url = sqs.get_queue_url(QueueName="arrivals")["QueueUrl"]
    queue_policy = json.loads(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"])["Attributes"]["Policy"])
    assert queue_policy["Statement"][0]["Condition"] == {
        "ArnEquals": {"aws:SourceArn": f"arn:aws:events:{REGION}:{ORCHESTRATION}:rule/{BUS}/to-queue"}}

    events, outcomes = launch_and_read(lab)
    assert [(e["account"], e["detail"]["state"]) for e in events] == [(SOURCE, "running")]
    assert outcomes == {"events": "delivered", "sqs": "delivered"}
    # the role's inline policy reads back as the document the stack gave
    document = client(lab, "iam", source_keys).get_role_policy(RoleName="Forwarder", PolicyName="Forward")["PolicyDocument"]
    assert document["Statement"] == [{"Effect": "Allow", "Action": "events:PutEvents", "Resource": BUS_ARN}]
    # EventBridge put the event on the central bus as the target's role
    principals = control(lab, "stats")["principals"]
    assert principals[f"arn:aws:iam::{SOURCE}:role/Forwarder"] == {"events:PutEvents": 1}


def test_without_the_queue_policy_the_queue_gets_nothing(lab, stacks, source_keys):
    stacks("central", bus_template(queue_policy=False))
    stacks("forward", forwarding_template(), source_keys)
    events, outcomes = launch_and_read(lab)
    assert events == []
    assert outcomes["events"] == "delivered"
    assert outcomes["sqs"].startswith("refused: the policy of queue")


def test_a_bus_policy_for_another_account_refuses_the_source_account(lab, stacks, source_keys):
    stacks("central", bus_template(allowed_account="999999999999"))
    stacks("forward", forwarding_template(), source_keys)
    events, outcomes = launch_and_read(lab)
    assert events == []
    assert outcomes == {"events": f"refused: the policy of event bus {BUS_ARN} does not allow account {SOURCE}"
                                  f" events:PutEvents for rule arn:aws:events:{REGION}:{SOURCE}:rule/forward"}


def test_a_target_role_eventbridge_may_not_assume_forwards_nothing(lab, stacks, source_keys):
    stacks("central", bus_template())
    stacks("forward", forwarding_template(trusted_service="lambda.amazonaws.com"), source_keys)
    before = control(lab, "stats")["principals"].get(f"arn:aws:iam::{SOURCE}:role/Forwarder", {})
    events, outcomes = launch_and_read(lab)
    assert events == []
    assert outcomes == {"events": f"refused: EventBridge cannot assume arn:aws:iam::{SOURCE}:role/Forwarder: its trust"
                                  f" policy does not allow events.amazonaws.com for rule"
                                  f" arn:aws:events:{REGION}:{SOURCE}:rule/forward"}
    assert control(lab, "stats")["principals"].get(f"arn:aws:iam::{SOURCE}:role/Forwarder", {}) == before


def test_updating_and_deleting_a_stack_replaces_and_removes_its_policies(lab, stacks):
    events = client(lab, "events")
    events.create_event_bus(Name="kept")
    events.put_permission(EventBusName="kept", Action="events:PutEvents", Principal="333333333333", StatementId="other")
    sqs = client(lab, "sqs")
    url = sqs.create_queue(QueueName="kept")["QueueUrl"]

    def template(account):
        return json.dumps({"Resources": {
            "BusPolicy": {"Type": "AWS::Events::EventBusPolicy", "Properties": {
                "EventBusName": "kept", "StatementId": "FromStack",
                "Statement": {"Effect": "Allow", "Principal": {"AWS": account}, "Action": "events:PutEvents"}}},
            "QueuePolicy": {"Type": "AWS::SQS::QueuePolicy", "Properties": {"Queues": [url], "PolicyDocument": {
                "Statement": [{"Effect": "Allow", "Principal": {"AWS": account}, "Action": "sqs:SendMessage"}]}}},
        }})

    def policies():
        bus = json.loads(events.describe_event_bus(Name="kept").get("Policy") or "{}")
        queue = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["Policy"]).get("Attributes", {}).get("Policy")
        return ({s["Sid"]: s["Principal"] for s in bus.get("Statement", [])},
                json.loads(queue)["Statement"][0]["Principal"] if queue else None)

    cloudformation = client(lab, "cloudformation")
    cloudformation.create_stack(StackName="policies", TemplateBody=template(SOURCE))
    # the stack's statement joins the bus's own, which has another principal
    assert policies() == ({"other": {"AWS": "arn:aws:iam::333333333333:root"}, "FromStack": {"AWS": SOURCE}}, {"AWS": SOURCE})

    cloudformation.update_stack(StackName="policies", TemplateBody=template("444444444444"))
    assert policies() == ({"other": {"AWS": "arn:aws:iam::333333333333:root"}, "FromStack": {"AWS": "444444444444"}},
                          {"AWS": "444444444444"})

    cloudformation.delete_stack(StackName="policies")
    assert policies() == ({"other": {"AWS": "arn:aws:iam::333333333333:root"}}, None)
    with pytest.raises(botocore.exceptions.ClientError):
        cloudformation.describe_stacks(StackName="policies")
