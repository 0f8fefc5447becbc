"""The lab's core fidelity: identities and trust, request validation, faults and the control API.

Everything goes over HTTP to a lab running the demo scenario, with boto3 or with raw signed
requests for what botocore itself would refuse to send.
"""

import datetime
import json
import re
import time
import urllib.error
import urllib.request

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from botocore.parsers import create_parser
from moto.core.serialize import get_serializer_class

from lab.protocol import serialize, service_model
from lab.scenario import load_scenario
from tests.lab.shapes import output_problems
from tests.lab_fixture import OPERATOR_KEYS

DEMO = load_scenario("demo")
ACCOUNTS = {account["name"]: account for account in DEMO["accounts"]}
EXTERNAL_ID = ACCOUNTS["source"]["roles"][0]["external_id"]
NO_RETRIES = Config(retries={"mode": "standard", "total_max_attempts": 1})
UNKNOWN_KEYS = {"aws_access_key_id": "AKIANOBODYKNOWSTHIS", "aws_secret_access_key": "not-a-secret"}


def role_arn(account_name):
    account = ACCOUNTS[account_name]
    return f"arn:aws:iam::{account['id']}:role/{account['roles'][0]['name']}"


def error_code(excinfo):
    return excinfo.value.response["Error"]["Code"]


def http_status(excinfo):
    return excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]


def scenario_instance_count(account_name, region):
    account_id = ACCOUNTS[account_name]["id"]
    return sum(g["count"] for g in DEMO["instance_groups"] if g["account"] == account_id and g["region"] == region)



def all_instances(ec2):
    pages = ec2.get_paginator("describe_instances").paginate()
    return [instance for page in pages for reservation in page["Reservations"] for instance in reservation["Instances"]]


@pytest.fixture(scope="module")
def lab(lab_factory):
    return lab_factory("demo")


# --- raw signed requests, for what botocore refuses to send ---------------------------------------

def signed_request(lab, service, body, headers, region="us-east-1"):
    """Send ``body`` signed with the operator's keys; returns (status, error code, message)."""
    request = AWSRequest(method="POST", url=lab.url + "/", data=body, headers=headers)
    credentials = Credentials(OPERATOR_KEYS["aws_access_key_id"], OPERATOR_KEYS["aws_secret_access_key"])
    SigV4Auth(credentials, service, region).add_auth(request)
    prepared = request.prepare()
    sent = urllib.request.Request(prepared.url, data=prepared.body, headers=dict(prepared.headers), method="POST")
    try:
        with urllib.request.urlopen(sent, timeout=30) as response:
            return response.status, None, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, *_error_of(error.read().decode())


def _error_of(text):
    if text.lstrip().startswith("{"):
        document = json.loads(text)
        return document.get("__type", "").rsplit("#", 1)[-1], document.get("message") or document.get("Message", "")
    code = re.search(r"<Code>(.*?)</Code>", text)
    message = re.search(r"<Message>(.*?)</Message>", text, re.DOTALL)
    return code and code.group(1), message and message.group(1)


def json_call(lab, service, target, document):
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target}
    return signed_request(lab, service, json.dumps(document).encode(), headers)


def query_call(lab, service, action, version, **params):
    body = "&".join(f"{name}={value}" for name, value in {"Action": action, "Version": version, **params}.items())
    return signed_request(lab, service, body.encode(), {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"})


# --- STS and IAM trust ------------------------------------------------------------------------------

def test_assumed_role_calls_land_in_the_role_account(lab):
    sts = lab.client("sts")
    issued = sts.assume_role(RoleArn=role_arn("source"), RoleSessionName="core-test", ExternalId=EXTERNAL_ID)
    assert output_problems(sts, "AssumeRole", issued) == []
    credentials = {
        "aws_access_key_id": issued["Credentials"]["AccessKeyId"],
        "aws_secret_access_key": issued["Credentials"]["SecretAccessKey"],
        "aws_session_token": issued["Credentials"]["SessionToken"],
    }
    role_sts = lab.client("sts", credentials=credentials)
    identity = role_sts.get_caller_identity()
    assert output_problems(role_sts, "GetCallerIdentity", identity) == []
    assert identity["Account"] == ACCOUNTS["source"]["id"]
    assert identity["Arn"] == f"arn:aws:sts::{ACCOUNTS['source']['id']}:assumed-role/DRSOrchestrationSourceRole/core-test"

    for region in DEMO["regions"]:
        ec2 = lab.client("ec2", region, credentials)
        page = ec2.describe_instances()
        assert output_problems(ec2, "DescribeInstances", page) == []
        instances = all_instances(ec2)
        assert len(instances) == scenario_instance_count("source", region)
        owners = {r["OwnerId"] for r in page["Reservations"]}
        assert owners == {ACCOUNTS["source"]["id"]}

    source_ids = {i["InstanceId"] for i in all_instances(lab.client("ec2", "us-east-1", credentials))}
    staging = lab.assume(role_arn("staging"), EXTERNAL_ID)
    staging_ids = {i["InstanceId"] for i in all_instances(lab.client("ec2", "us-east-1", staging))}
    operator_ids = {i["InstanceId"] for i in all_instances(lab.client("ec2", "us-east-1"))}
    assert source_ids and not source_ids & staging_ids and not source_ids & operator_ids


@pytest.mark.parametrize("external_id", ["wrong-external-id", None])
def test_assume_role_without_the_right_external_id_is_denied(lab, external_id):
    kwargs = {"RoleArn": role_arn("source"), "RoleSessionName": "core-test"}
    if external_id:
        kwargs["ExternalId"] = external_id
    with pytest.raises(ClientError) as excinfo:
        lab.client("sts").assume_role(**kwargs)
    assert error_code(excinfo) == "AccessDenied"
    assert http_status(excinfo) == 403
    assert role_arn("source") in excinfo.value.response["Error"]["Message"]


def test_a_role_that_does_not_trust_the_caller_is_denied(lab):
    source = lab.assume(role_arn("source"), EXTERNAL_ID)
    with pytest.raises(ClientError) as excinfo:
        lab.client("sts", credentials=source).assume_role(
            RoleArn=role_arn("staging"), RoleSessionName="core-test", ExternalId=EXTERNAL_ID)
    assert error_code(excinfo) == "AccessDenied"
    assert "assumed-role/DRSOrchestrationSourceRole" in excinfo.value.response["Error"]["Message"]


@pytest.mark.parametrize("service, call, expected", [
    ("sts", lambda c: c.get_caller_identity(), "InvalidClientTokenId"),
    ("iam", lambda c: c.list_roles(), "InvalidClientTokenId"),
    ("ec2", lambda c: c.describe_instances(), "AuthFailure"),
    ("ssm", lambda c: c.describe_instance_information(), "UnrecognizedClientException"),
    ("dynamodb", lambda c: c.list_tables(), "UnrecognizedClientException"),
])
def test_an_unknown_access_key_gets_the_service_own_error(lab, service, call, expected):
    with pytest.raises(ClientError) as excinfo:
        call(lab.client(service, credentials=UNKNOWN_KEYS, config=NO_RETRIES))
    assert error_code(excinfo) == expected


def test_duration_above_the_role_maximum_is_a_validation_error(lab):
    with pytest.raises(ClientError) as excinfo:
        lab.client("sts").assume_role(RoleArn=role_arn("source"), RoleSessionName="core-test",
                                      ExternalId=EXTERNAL_ID, DurationSeconds=7200)
    assert error_code(excinfo) == "ValidationError"
    assert "MaxSessionDuration" in excinfo.value.response["Error"]["Message"]


def test_roles_created_at_run_time_are_trusted_limited_by_chaining_and_gone_once_deleted(lab):
    orchestration, source = ACCOUNTS["orchestration"]["id"], ACCOUNTS["source"]["id"]
    iam = lab.client("iam")
    policy = {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"AWS": [f"arn:aws:iam::{orchestration}:root", f"arn:aws:iam::{source}:root"]},
        "Action": "sts:AssumeRole",
        "Condition": {"StringEquals": {"sts:ExternalId": "run-time-id"}},
    }]}
    created = iam.create_role(RoleName="RunTimeRole", AssumeRolePolicyDocument=json.dumps(policy), MaxSessionDuration=7200)
    assert output_problems(iam, "CreateRole", created) == []
    arn = created["Role"]["Arn"]
    sts = lab.client("sts")
    try:
        two_hours = sts.assume_role(RoleArn=arn, RoleSessionName="direct", ExternalId="run-time-id", DurationSeconds=7200)
        assert two_hours["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{orchestration}:assumed-role/RunTimeRole/direct"
        with pytest.raises(ClientError) as wrong_id:
            sts.assume_role(RoleArn=arn, RoleSessionName="direct", ExternalId="other-id")
        assert error_code(wrong_id) == "AccessDenied"

        chained_sts = lab.client("sts", credentials=lab.assume(role_arn("source"), EXTERNAL_ID))
        with pytest.raises(ClientError) as chained_too_long:
            chained_sts.assume_role(RoleArn=arn, RoleSessionName="chained", ExternalId="run-time-id", DurationSeconds=7200)
        assert error_code(chained_too_long) == "ValidationError"
        assert "chaining" in chained_too_long.value.response["Error"]["Message"]
        one_hour = chained_sts.assume_role(RoleArn=arn, RoleSessionName="chained", ExternalId="run-time-id", DurationSeconds=3600)
        assert one_hour["AssumedRoleUser"]["Arn"].endswith(":assumed-role/RunTimeRole/chained")
    finally:
        deleted = iam.delete_role(RoleName="RunTimeRole")
    assert output_problems(iam, "DeleteRole", deleted) == []
    with pytest.raises(ClientError) as after_delete:
        sts.assume_role(RoleArn=arn, RoleSessionName="direct", ExternalId="run-time-id")
    assert error_code(after_delete) == "AccessDenied"


# --- validation against the botocore models ---------------------------------------------------------

def test_out_of_range_max_results_names_the_field(lab):
    unchecked = lab.client("ssm", config=Config(parameter_validation=False, retries={"total_max_attempts": 1}))
    before = lab.stats()
    for value, bound in ((1, "greater than or equal to 5"), (500, "less than or equal to 50")):
        with pytest.raises(ClientError) as excinfo:
            unchecked.describe_instance_information(MaxResults=value)
        assert error_code(excinfo) == "ValidationException"
        message = excinfo.value.response["Error"]["Message"]
        assert f"Value '{value}' at 'maxResults'" in message and bound in message
    after = lab.stats()
    # a refused call still reached the service: it counts, as its error does
    assert _ssm_describe_calls(after) - _ssm_describe_calls(before) == 2
    error_key = "ssm:DescribeInstanceInformation:ValidationException"
    assert after["errors"].get(error_key, 0) - before["errors"].get(error_key, 0) == 2


def _ssm_describe_calls(stats):
    return stats["calls"].get("111111111111", {}).get("ssm", {}).get("DescribeInstanceInformation", 0)


def test_unknown_json_member_is_rejected(lab):
    status, code, message = json_call(lab, "ssm", "AmazonSSM.DescribeInstanceInformation", {"MaxResults": 10, "Colour": "blue"})
    assert status == 400
    assert code == "SerializationException"
    assert "Colour" in message


def test_unknown_query_parameters_are_rejected(lab):
    status, code, message = query_call(lab, "ec2", "DescribeInstances", "2016-11-15", Colour="blue")
    assert (status, code) == (400, "UnknownParameter")
    assert "Colour" in message
    for service, action, version in (("sts", "GetCallerIdentity", "2011-06-15"), ("iam", "ListRoles", "2010-05-08")):
        status, code, message = query_call(lab, service, action, version, Colour="blue")
        assert (status, code) == (400, "ValidationError")
        assert "Colour" in message
    status, code, _ = query_call(lab, "sts", "GetCallerIdentity", "2011-06-15")
    assert (status, code) == (200, None)


def test_values_outside_an_enum_are_rejected(lab):
    status, code, message = json_call(lab, "ssm", "AmazonSSM.DescribeInstanceInformation",
                                      {"InstanceInformationFilterList": [{"key": "Colour", "valueSet": ["blue"]}]})
    assert (status, code) == (400, "ValidationException")
    assert "Colour" in message and "enum value set" in message
    unchecked = lab.client("dynamodb", config=Config(parameter_validation=False, retries={"total_max_attempts": 1}))
    with pytest.raises(ClientError) as excinfo:
        unchecked.create_table(TableName="enum-check", BillingMode="FREE",
                               AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                               KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}])
    assert error_code(excinfo) == "ValidationException"
    assert "'billingMode'" in excinfo.value.response["Error"]["Message"]


# --- faults, statistics, clock and reset ------------------------------------------------------------

@pytest.fixture
def faults(lab):
    yield lambda spec: lab.control("faults", spec)
    lab.control("faults", {"clear": True})


def test_throttling_answers_each_service_own_error(lab, faults):
    before = lab.stats()["faults"].get("throttled", {})
    faults({"throttle": {"ec2": {"DescribeInstances": 1.0}, "ssm": {"DescribeInstanceInformation": 1.0},
                         "sts": {"GetCallerIdentity": 1.0}}})
    calls = (
        ("ec2", lambda c: c.describe_instances(), "RequestLimitExceeded"),
        ("ssm", lambda c: c.describe_instance_information(), "ThrottlingException"),
        ("sts", lambda c: c.get_caller_identity(), "Throttling"),
    )
    for service, call, expected in calls:
        with pytest.raises(ClientError) as excinfo:
            call(lab.client(service, config=NO_RETRIES))
        assert error_code(excinfo) == expected
    assert lab.client("ec2").describe_regions()["Regions"]
    after = lab.stats()["faults"]["throttled"]
    for key in ("ec2:DescribeInstances", "ssm:DescribeInstanceInformation", "sts:GetCallerIdentity"):
        assert after[key] == before.get(key, 0) + 1


def test_botocore_retries_ride_out_partial_throttling(lab, faults):
    before = lab.stats()["faults"].get("throttled", {}).get("sts:GetCallerIdentity", 0)
    faults({"throttle": {"sts": {"GetCallerIdentity": 0.3}}})
    sts = lab.client("sts", config=Config(retries={"mode": "standard", "total_max_attempts": 10}))
    for _ in range(8):
        assert sts.get_caller_identity()["Account"] == ACCOUNTS["orchestration"]["id"]
    assert lab.stats()["faults"]["throttled"]["sts:GetCallerIdentity"] > before


def test_an_unavailable_service_answers_503_while_others_work(lab, faults):
    faults({"unavailable": ["dynamodb"]})
    with pytest.raises(ClientError) as excinfo:
        lab.client("dynamodb", config=NO_RETRIES).list_tables()
    assert error_code(excinfo) == "ServiceUnavailable"
    assert http_status(excinfo) == 503
    assert lab.client("sts").get_caller_identity()["Account"] == ACCOUNTS["orchestration"]["id"]
    assert lab.stats()["faults"]["unavailable"]["dynamodb:*"] >= 1


def test_latency_delays_only_the_named_operation(lab, faults):
    faults({"latency_ms": {"sts": {"GetCallerIdentity": 800}}})
    sts = lab.client("sts")
    started = time.monotonic()
    sts.get_caller_identity()
    slow = time.monotonic() - started
    ec2 = lab.client("ec2")
    started = time.monotonic()
    regions = ec2.describe_regions()
    fast = time.monotonic() - started
    assert output_problems(ec2, "DescribeRegions", regions) == []
    assert slow >= 0.8
    assert fast < 0.8


def test_stats_count_calls_per_account_service_and_operation(lab):
    lab.reset()
    source = lab.assume(role_arn("source"), EXTERNAL_ID)
    ec2 = lab.client("ec2", "us-west-2", source)
    for _ in range(3):
        ec2.describe_instances()
    lab.client("sts", credentials=source).get_caller_identity()
    stats = lab.stats()
    orchestration, source_id = ACCOUNTS["orchestration"]["id"], ACCOUNTS["source"]["id"]
    assert stats["calls"] == {
        orchestration: {"sts": {"AssumeRole": 1}},
        source_id: {"ec2": {"DescribeInstances": 3}, "sts": {"GetCallerIdentity": 1}},
    }
    assert stats["total_calls"] == 5
    source_role = f"arn:aws:iam::{source_id}:role/DRSOrchestrationSourceRole"
    assert stats["principals"][source_role] == {"ec2:DescribeInstances": 3, "sts:GetCallerIdentity": 1}


def test_advancing_the_clock_moves_simulated_time(lab):
    before = lab.control("clock")
    after = lab.control("clock", {"advance_seconds": 7200})
    assert after["elapsed_seconds"] - before["elapsed_seconds"] >= 7200
    assert after["now"] > before["now"]
    with pytest.raises(urllib.error.HTTPError) as excinfo:
        lab.control("clock", {"advance_seconds": -5})
    assert excinfo.value.code == 400


def test_reset_restores_the_seeded_state(lab):
    dynamodb = lab.client("dynamodb")
    created = dynamodb.create_table(
        TableName="reset-check", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}])
    assert output_problems(dynamodb, "CreateTable", created) == []
    iam = lab.client("iam")
    iam.create_role(RoleName="ResetCheck", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}))
    listed = dynamodb.list_tables()
    assert output_problems(dynamodb, "ListTables", listed) == []
    assert "reset-check" in listed["TableNames"]
    source_before = {i["InstanceId"] for i in all_instances(lab.client("ec2", "us-east-1", lab.assume(role_arn("source"), EXTERNAL_ID)))}

    summary = lab.reset()

    assert summary["name"] == "demo"
    assert "reset-check" not in dynamodb.list_tables()["TableNames"]
    with pytest.raises(ClientError) as excinfo:
        iam.get_role(RoleName="ResetCheck")
    assert error_code(excinfo) == "NoSuchEntity"
    stats = lab.stats()
    orchestration = ACCOUNTS["orchestration"]["id"]
    assert stats["calls"] == {orchestration: {"dynamodb": {"ListTables": 1}, "iam": {"GetRole": 1}}}
    assert stats["faults"] == {}
    source_after = {i["InstanceId"] for i in all_instances(lab.client("ec2", "us-east-1", lab.assume(role_arn("source"), EXTERNAL_ID)))}
    assert len(source_after) == len(source_before) == scenario_instance_count("source", "us-east-1")


# --- CloudFormation resources moto lacks ------------------------------------------------------------

def test_stacks_create_and_delete_cloudwatch_alarms(lab):
    metric = {"Namespace": "DRSAgentDeployment", "MetricName": "Failed"}
    template = {"Resources": {
        "FailureRate": {"Type": "AWS::CloudWatch::Alarm", "Properties": {
            "AlarmName": "lab-failure-rate", "ComparisonOperator": "GreaterThanThreshold", "EvaluationPeriods": 1,
            "Threshold": 0.1, "TreatMissingData": "notBreaching", "Metrics": [
                {"Id": "failed", "ReturnData": False, "MetricStat": {"Metric": metric, "Period": 3600, "Stat": "Sum"}},
                {"Id": "rate", "Expression": "failed / 10", "Label": "failure rate", "ReturnData": True},
            ]}},
        "Duration": {"Type": "AWS::CloudWatch::Alarm", "Properties": {
            "ComparisonOperator": "GreaterThanThreshold", "EvaluationPeriods": 1, "Threshold": 3600,
            "Namespace": "DRSAgentDeployment", "MetricName": "DurationSeconds", "Statistic": "Maximum", "Period": 3600}},
    }, "Outputs": {"FailureRateAlarmArn": {"Value": {"Fn::GetAtt": ["FailureRate", "Arn"]}}}}
    cloudformation, cloudwatch = lab.client("cloudformation"), lab.client("cloudwatch")

    cloudformation.create_stack(StackName="lab-alarms", TemplateBody=json.dumps(template))
    stack = cloudformation.describe_stacks(StackName="lab-alarms")["Stacks"][0]
    alarms = {alarm["AlarmName"]: alarm for alarm in cloudwatch.describe_alarms(AlarmNamePrefix="lab-")["MetricAlarms"]}
    named = cloudwatch.describe_alarms(AlarmNamePrefix="lab-alarms-Duration-")["MetricAlarms"]
    cloudformation.delete_stack(StackName="lab-alarms")
    remaining = cloudwatch.describe_alarms(AlarmNamePrefix="lab-")["MetricAlarms"]

    assert stack["StackStatus"] == "CREATE_COMPLETE"
    assert stack["Outputs"][0]["OutputValue"] == alarms["lab-failure-rate"]["AlarmArn"]
    assert [query["Id"] for query in alarms["lab-failure-rate"]["Metrics"]] == ["failed", "rate"]
    assert len(named) == 1 and named[0]["MetricName"] == "DurationSeconds"
    assert remaining == []


def test_each_answer_carries_its_own_request_id_in_its_header_and_where_its_body_names_one(lab):
    answers = [lab.client("iam").list_roles(MaxItems=1), lab.client("iam").list_roles(MaxItems=1),
               lab.client("ec2").describe_instances(MaxResults=5)]
    ids = [answer["ResponseMetadata"]["HTTPHeaders"]["x-amzn-requestid"] for answer in answers]
    assert len(set(ids)) == 3
    # IAM's body holds a RequestId, which the lab sets to the header's; EC2's holds its own requestId
    assert [answer["ResponseMetadata"]["RequestId"] for answer in answers[:2]] == ids[:2]


def test_service_times_say_how_long_the_lab_worked_on_each_call(lab):
    lab.reset()
    before = time.time()
    lab.client("sts").get_caller_identity()
    [(started_at, seconds, operation)] = lab.control("service-times")["service_times"]
    assert operation == "sts:GetCallerIdentity"
    assert before <= started_at <= time.time()
    assert seconds >= 0


def _history_like_table(dynamodb, name):
    dynamodb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}])


def _items(dynamodb, name):
    return sorted((item["pk"]["S"], item["sk"]["S"], item.get("v", {}).get("S"))
                  for item in dynamodb.scan(TableName=name)["Items"])


def test_a_cancelled_transaction_leaves_every_item_as_it_was(lab):
    dynamodb = lab.client("dynamodb")
    _history_like_table(dynamodb, "transactions")
    dynamodb.put_item(TableName="transactions", Item={"pk": {"S": "run"}, "sk": {"S": "a"}, "v": {"S": "old"}})
    dynamodb.put_item(TableName="transactions", Item={"pk": {"S": "lock"}, "sk": {"S": "x"}, "v": {"S": "held"}})
    dynamodb.put_item(TableName="transactions", Item={"pk": {"S": "lock"}, "sk": {"S": "y"}, "v": {"S": "held"}})
    with pytest.raises(ClientError) as excinfo:
        dynamodb.transact_write_items(TransactItems=[
            {"Put": {"TableName": "transactions", "Item": {"pk": {"S": "run"}, "sk": {"S": "a"}, "v": {"S": "new"}}}},
            {"Put": {"TableName": "transactions", "Item": {"pk": {"S": "run"}, "sk": {"S": "b"}, "v": {"S": "new"}}}},
            {"Update": {"TableName": "transactions", "Key": {"pk": {"S": "lock"}, "sk": {"S": "x"}},
                        "UpdateExpression": "SET v = :v", "ExpressionAttributeValues": {":v": {"S": "taken"}}}},
            # another lock is held: the whole transaction is cancelled
            {"ConditionCheck": {"TableName": "transactions", "Key": {"pk": {"S": "lock"}, "sk": {"S": "y"}},
                                "ConditionExpression": "attribute_not_exists(pk)"}},
        ])
    assert error_code(excinfo) == "TransactionCanceledException"
    assert _items(dynamodb, "transactions") == [("lock", "x", "held"), ("lock", "y", "held"), ("run", "a", "old")]
    dynamodb.transact_write_items(TransactItems=[
        {"Put": {"TableName": "transactions", "Item": {"pk": {"S": "run"}, "sk": {"S": "a"}, "v": {"S": "new"}}}},
        {"Delete": {"TableName": "transactions", "Key": {"pk": {"S": "lock"}, "sk": {"S": "x"}}}},
    ])
    assert _items(dynamodb, "transactions") == [("lock", "y", "held"), ("run", "a", "new")]


def test_an_item_over_400_kb_is_refused_and_one_under_is_kept(lab):
    dynamodb = lab.client("dynamodb")
    _history_like_table(dynamodb, "sizes")
    entries = {"L": [{"M": {"instance_id": {"S": f"i-{n:017x}"}, "reason": {"S": "x" * 180}}} for n in range(1700)]}
    dynamodb.put_item(TableName="sizes", Item={"pk": {"S": "run"}, "sk": {"S": "a"}, "entries": entries})
    bigger = {"L": entries["L"] * 2}
    with pytest.raises(ClientError) as excinfo:
        dynamodb.put_item(TableName="sizes", Item={"pk": {"S": "run"}, "sk": {"S": "b"}, "entries": bigger})
    assert error_code(excinfo) == "ValidationException" and "maximum allowed size" in str(excinfo.value)
    assert [key for _pk, key, _v in _items(dynamodb, "sizes")] == ["a"]


def test_plain_json_answers_read_as_the_model_driven_serializer_writes_them():
    """A JSON answer written straight by json.dumps parses, for a botocore client, into exactly what the
    model-driven serializer's answer parses into."""
    class Operation:
        def __init__(self, service, name):
            self.service, self.protocol = service, service_model(service).protocol
            self.model = service_model(service).operation_model(name)

    moment = datetime.datetime(2026, 12, 4, 8, 30, 15, 123456, tzinfo=datetime.timezone.utc)
    answers = [
        (Operation("ssm", "ListCommands"), {"Commands": [{"CommandId": "c-1", "RequestedDateTime": moment,
                                                          "InstanceIds": ["i-0123456789abcdef0"], "CompletedCount": 3}],
                                            "NextToken": "t"}),
        (Operation("drs", "DescribeSourceServers"), {"items": [{"sourceServerID": "s-0123456789abcdef0", "tags": {"a": "b"},
                                                                "dataReplicationInfo": {"lagDuration": "PT5S"}}]}),
    ]
    for operation, result in answers:
        status, headers, body = serialize(operation, result)
        modeled = get_serializer_class(operation.service, operation.protocol)(operation.model).serialize(result)
        parser = create_parser(operation.protocol)

        def parsed(answer_headers, answer_body):
            return parser.parse({"status_code": 200, "headers": answer_headers, "body": answer_body},
                                operation.model.output_shape)

        assert status == modeled["status_code"] == 200
        assert headers["Content-Type"] == modeled["headers"]["Content-Type"]
        expected = parsed(modeled["headers"], modeled["body"].encode() if isinstance(modeled["body"], str) else modeled["body"])
        expected.pop("ResponseMetadata", None)
        got = parsed(headers, body)
        got.pop("ResponseMetadata", None)
        assert got == expected
