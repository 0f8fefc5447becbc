"""EC2 in the lab: DescribeInstances answers, written directly to XML, are the ones moto writes.

The lab runs in this process, so that each answer a boto3 client receives can be set beside the
answer moto's own serializer gives to the same request: the bytes must be the same, and the client
must read from them what it reads from moto's.
"""

import boto3
import pytest
from botocore.parsers import create_parser
from moto.core.responses import ActionResult
from moto.moto_api._internal.models import moto_api_backend

from lab.models.ec2 import DirectXmlResult
from lab.scenario import expand
from lab.server import LabServer
from tests.lab_fixture import OPERATOR_KEYS

REGION = "us-east-1"
SCENARIO = {
    "name": "ec2-tests",
    "seed": 7,
    "regions": [REGION, "us-west-2"],
    "operator": {"account": "source", "user": "operator", **{
        "access_key_id": OPERATOR_KEYS["aws_access_key_id"], "secret_access_key": OPERATOR_KEYS["aws_secret_access_key"]}},
    "accounts": [{"id": "222222222222", "name": "source"}],
    "instance_groups": [
        # a tag value with XML's special characters, which the answer must escape
        {"name": "web", "account": "source", "region": REGION, "count": 7,
         "tags": {"dr:enabled": "true", "dr:wave": "1", "Owner": "R&D <ops> \"web\""}},
        {"name": "db", "account": "source", "region": REGION, "count": 4, "platform": "windows", "instance_type": "m5.large",
         "tags": {"dr:enabled": "true", "dr:wave": "2"}},
        {"name": "old", "account": "source", "region": REGION, "count": 3, "state": "stopped",
         "tags": {"dr:enabled": "false", "dr:wave": "2"}},
        {"name": "bare", "account": "source", "region": REGION, "count": 2},
        # one reservation per group: more than a page of 5 (EC2's smallest MaxResults)
        {"name": "cache", "account": "source", "region": REGION, "count": 2, "tags": {"dr:enabled": "true", "dr:wave": "3"}},
        {"name": "batch", "account": "source", "region": REGION, "count": 1, "state": "stopped", "tags": {"dr:wave": "3"}},
        {"name": "edge", "account": "source", "region": REGION, "count": 2, "platform": "windows"},
        {"name": "west", "account": "source", "region": "us-west-2", "count": 2, "tags": {"dr:enabled": "true"}},
    ],
}
FLEET_SIZE = 21  # in REGION


@pytest.fixture(scope="module")
def lab():
    """The lab in this process; moto's backends are process-global, so it starts from and leaves them empty."""
    moto_api_backend.reset()
    server = LabServer(expand(SCENARIO)).start()
    yield server
    server.stop()
    moto_api_backend.reset()


@pytest.fixture(scope="module")
def ec2(lab):
    return boto3.client("ec2", endpoint_url=lab.url, region_name=REGION, **OPERATOR_KEYS)


@pytest.fixture
def moto_answers(monkeypatch):
    """The bodies the lab answered and the ones moto's own serializer writes for the same results."""
    answers = []
    answer_directly = DirectXmlResult.execute_result

    def answer_both(result, context):
        status, headers, body = answer_directly(result, context)
        # moto adds its response headers to the dict it is given: keep the one written here as it was
        answers.append(((status, dict(headers), body), ActionResult.execute_result(result, context)))
        return status, headers, body

    monkeypatch.setattr(DirectXmlResult, "execute_result", answer_both)
    return answers


def moto_parsed(ec2, answer):
    """What botocore reads from one of moto's answers, as a client returns it (without its metadata)."""
    status, headers, body = answer
    shape = ec2.meta.service_model.operation_model("DescribeInstances").output_shape
    parsed = create_parser("ec2").parse({"status_code": status, "headers": headers, "body": body.encode()}, shape)
    parsed.pop("ResponseMetadata", None)
    return parsed


def without_metadata(response):
    return {key: value for key, value in response.items() if key != "ResponseMetadata"}


def instance_ids(response):
    return [i["InstanceId"] for reservation in response["Reservations"] for i in reservation["Instances"]]


def every_id(ec2):
    return sorted(instance_ids(ec2.describe_instances()))


REQUESTS = {
    "everything": {},
    "tag filters": {"Filters": [{"Name": "tag:dr:enabled", "Values": ["true"]}, {"Name": "tag:dr:wave", "Values": ["1", "2"]}]},
    "tag and state filters": {"Filters": [{"Name": "tag:dr:enabled", "Values": ["true", "false"]},
                                          {"Name": "instance-state-name", "Values": ["running"]}]},
    "stopped": {"Filters": [{"Name": "instance-state-name", "Values": ["stopped"]}]},
    "tag key": {"Filters": [{"Name": "tag-key", "Values": ["dr:wave"]}]},
    "nothing matches": {"Filters": [{"Name": "tag:dr:wave", "Values": ["99"]}]},
}


@pytest.mark.parametrize("request_kwargs", REQUESTS.values(), ids=REQUESTS.keys())
def test_describe_instances_reads_as_moto_wrote_it(ec2, moto_answers, request_kwargs):
    response = ec2.describe_instances(**request_kwargs)

    (direct, moto), = moto_answers
    assert direct == moto
    assert without_metadata(response) == moto_parsed(ec2, moto)


def test_instance_ids_select_with_and_without_filters(ec2, moto_answers):
    ids = every_id(ec2)
    chosen = ids[:3] + ids[-2:]
    by_id = ec2.describe_instances(InstanceIds=chosen)
    filtered = ec2.describe_instances(InstanceIds=chosen, Filters=[{"Name": "instance-state-name", "Values": ["stopped"]}])

    assert sorted(instance_ids(by_id)) == sorted(chosen)
    for response, (direct, moto) in zip((by_id, filtered), moto_answers[1:]):
        assert direct == moto
        assert without_metadata(response) == moto_parsed(ec2, moto)


def test_pages_follow_next_token_as_moto_pages(ec2, moto_answers):
    pages = [ec2.describe_instances(MaxResults=5)]
    while pages[-1].get("NextToken"):
        pages.append(ec2.describe_instances(MaxResults=5, NextToken=pages[-1]["NextToken"]))

    assert len(pages) > 1, "moto pages by reservation: the fleet has more than 5"
    assert sorted(i for page in pages for i in instance_ids(page)) == every_id(ec2)
    for page, (direct, moto) in zip(pages, moto_answers):
        assert direct == moto
        assert without_metadata(page) == moto_parsed(ec2, moto)


def test_the_members_discovery_reads_are_there(ec2):
    instances = [i for reservation in ec2.describe_instances()["Reservations"] for i in reservation["Instances"]]

    assert len(instances) == FLEET_SIZE
    by_owner = {tag["Value"] for i in instances for tag in i.get("Tags", []) if tag["Key"] == "Owner"}
    assert by_owner == {"R&D <ops> \"web\""}
    assert sum(i.get("Platform") == "windows" for i in instances) == 6
    assert sum(i["State"]["Name"] == "stopped" for i in instances) == 4
    assert all(i["InstanceType"] and i["PrivateIpAddress"] for i in instances)
    assert {i["InstanceType"] for i in instances if i.get("Platform") == "windows"} == {"m5.large", "t3.medium"}


def test_unknown_instance_ids_get_moto_error(ec2):
    with pytest.raises(ec2.exceptions.ClientError) as caught:
        ec2.describe_instances(InstanceIds=["i-0123456789abcdef0"])

    assert caught.value.response["Error"]["Code"] == "InvalidInstanceID.NotFound"
