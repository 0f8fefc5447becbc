import datetime

import botocore.session
import pytest
from botocore.parsers import ResponseParserError
from botocore.utils import parse_timestamp

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.aws import ClientFactory
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.aws import ResponseParsers
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.aws import UnreadElements
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.aws import read_timestamp
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.discovery import ANSWERS_READ
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.discovery import INSTANCE_MEMBERS
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.discovery import describe_instance

DESCRIBE_INSTANCES_BODY = b"""<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>r-1</requestId>
  <reservationSet><item><reservationId>r-1</reservationId><instancesSet><item>
    <instanceId>i-0123456789abcdef0</instanceId>
    <launchTime>2026-11-26T04:23:40.000Z</launchTime>
  </item></instancesSet></item></reservationSet>
</DescribeInstancesResponse>"""


@pytest.mark.parametrize("value", [
    "2026-11-26T04:23:40.000Z",
    "2026-11-26T04:23:40Z",
    "2026-11-26T04:23:40.123456Z",
    "2026-11-26T04:23:40+02:00",
    "2026-11-26T04:23:40",
    "Thu, 26 Nov 2026 04:23:40 GMT",
    "1795667449.5",
    1795667449,
    1795667449.25,
])
def test_timestamps_read_as_botocore_reads_them(value):
    ours, botocores = read_timestamp(value), parse_timestamp(value)
    assert ours == botocores
    assert (ours.utcoffset() is None) == (botocores.utcoffset() is None)


def test_a_timestamp_that_no_parser_takes_is_refused_like_botocore():
    with pytest.raises(ValueError):
        parse_timestamp("not a time")
    with pytest.raises(ValueError):
        read_timestamp("not a time")


class FakeModule:
    """What get_aws_connection_info reads from an AnsibleAWSModule."""

    def __init__(self):
        self.params = {"region": "us-east-1", "endpoint_url": None, "profile": None, "access_key": "AKIDEXAMPLE",
                       "secret_key": "secret", "session_token": None, "validate_certs": True, "aws_ca_bundle": None,
                       "aws_config": None}
        self.check_mode = False

    def fail_json(self, **kwargs):
        raise AssertionError(kwargs)

    def deprecate(self, *args, **kwargs):
        pass

    def warn(self, *args, **kwargs):
        pass


def parse_launch_time(parser_factory, operation):
    parsed = parser_factory.create_parser("ec2").parse(
        {"body": DESCRIBE_INSTANCES_BODY, "headers": {}, "status_code": 200}, operation.output_shape)
    return parsed["Reservations"][0]["Instances"][0]["LaunchTime"]


def test_factory_clients_read_response_timestamps_with_read_timestamp():
    factory = ClientFactory(FakeModule())
    operation = factory.client("ec2").client.meta.service_model.operation_model("DescribeInstances")
    ours = parse_launch_time(factory.session._session.get_component("response_parser_factory"), operation)
    botocores = parse_launch_time(botocore.session.get_session().get_component("response_parser_factory"), operation)
    assert ours == botocores == datetime.datetime(2026, 11, 26, 4, 23, 40, tzinfo=datetime.timezone.utc)
    # the standard library's parser answers with its own UTC; botocore's default with dateutil's
    assert ours.tzinfo is datetime.timezone.utc
    assert botocores.tzinfo is not datetime.timezone.utc


FULL_INSTANCE_BODY = b"""<?xml version="1.0" encoding="UTF-8"?>
<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
  <requestId>r-2</requestId>
  <reservationSet><item><reservationId>r-2</reservationId><ownerId>111111111111</ownerId><instancesSet>
    <item>
      <instanceId>i-0aaaaaaaaaaaaaaa1</instanceId><imageId>ami-1</imageId>
      <instanceState><code>16</code><name>running</name></instanceState>
      <instanceType>m5.large</instanceType><platform>windows</platform>
      <launchTime>2026-11-26T04:23:40.000Z</launchTime><privateIpAddress>10.0.0.5</privateIpAddress>
      <blockDeviceMapping><item><deviceName>/dev/sda1</deviceName><ebs><volumeId>vol-1</volumeId>
        <attachTime>2026-11-26T04:23:41.000Z</attachTime></ebs></item></blockDeviceMapping>
      <networkInterfaceSet><item><networkInterfaceId>eni-1</networkInterfaceId>
        <privateIpAddress>10.0.0.5</privateIpAddress></item></networkInterfaceSet>
      <tagSet><item><key>Name</key><value>web-1</value></item><item><key>dr:wave</key><value>02</value></item>
        <item><key>dr:priority</key><value>high</value></item></tagSet>
    </item>
    <item>
      <instanceId>i-0aaaaaaaaaaaaaaa2</instanceId>
      <instanceState><code>16</code><name>running</name></instanceState>
      <instanceType>t3.small</instanceType><tagSet><item><key>dr:wave</key><value>x</value></item></tagSet>
    </item>
  </instancesSet></item></reservationSet>
</DescribeInstancesResponse>"""


def parse_instances(parsers):
    operation = botocore.session.get_session().get_service_model("ec2").operation_model("DescribeInstances")
    parsed = parsers.create_parser("ec2").parse({"body": FULL_INSTANCE_BODY, "headers": {}, "status_code": 200},
                                                operation.output_shape)
    return parsed["Reservations"][0]["Instances"]


def test_discovery_reads_the_same_instances_from_trimmed_answers_as_from_full_ones():
    loader = botocore.session.get_session().get_component("data_loader")
    full = parse_instances(ResponseParsers(loader))
    trimmed = parse_instances(ResponseParsers(loader, ANSWERS_READ))
    assert "LaunchTime" in full[0] and "BlockDeviceMappings" in full[0]
    assert all(set(instance) <= set(INSTANCE_MEMBERS) for instance in trimmed)
    assert trimmed[0]["Platform"] == "windows" and trimmed[0]["PrivateIpAddress"] == "10.0.0.5"
    described = [[describe_instance(raw, "111111111111", "us-east-1", "dr:wave", "dr:priority") for raw in instances]
                 for instances in (full, trimmed)]
    assert described[0] == described[1]
    assert [(entry["wave"], entry["priority"], entry["platform"]) for entry in described[1]] == [
        (2, "high", "windows"), (None, None, "linux")]


def test_trimmed_parsers_read_every_other_answer_whole():
    loader = botocore.session.get_session().get_component("data_loader")
    parsers = ResponseParsers(loader, ANSWERS_READ)
    operation = botocore.session.get_session().get_service_model("ec2").operation_model("DescribeInstanceStatus")
    body = (b'<DescribeInstanceStatusResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>r</requestId>'
            b'<instanceStatusSet><item><instanceId>i-1</instanceId><availabilityZone>us-east-1a</availabilityZone>'
            b'</item></instanceStatusSet></DescribeInstanceStatusResponse>')
    parsed = parsers.create_parser("ec2").parse({"body": body, "headers": {}, "status_code": 200},
                                                operation.output_shape)
    assert parsed["InstanceStatuses"] == [{"InstanceId": "i-1", "AvailabilityZone": "us-east-1a"}]


def test_the_elements_a_trimmed_answer_leaves_out_are_cut_before_it_is_parsed():
    # no tree is built for a cut element: what it holds, even XML no parser could read, never reaches the parser
    broken = FULL_INSTANCE_BODY.replace(b"<networkInterfaceId>eni-1</networkInterfaceId>", b"<unclosed>eni-1")
    loader = botocore.session.get_session().get_component("data_loader")
    operation = botocore.session.get_session().get_service_model("ec2").operation_model("DescribeInstances")
    with pytest.raises(ResponseParserError):
        ResponseParsers(loader).create_parser("ec2").parse(
            {"body": broken, "headers": {}, "status_code": 200}, operation.output_shape)
    parsed = ResponseParsers(loader, ANSWERS_READ).create_parser("ec2").parse(
        {"body": broken, "headers": {}, "status_code": 200}, operation.output_shape)
    assert parsed["Reservations"][0]["Instances"] == parse_instances(ResponseParsers(loader, ANSWERS_READ))


@pytest.mark.parametrize(("body", "expected"), [
    (b"<a><placement><zone>z</zone></placement><b>1</b></a>", b"<a><b>1</b></a>"),
    (b"<a><monitoring/><b>1</b></a>", b"<a><b>1</b></a>"),
    # an element with attributes, holding one of its own name (the inner one is whole) or not closed is left for
    # the parser to skip
    (b'<a><placement kind="x"><zone>z</zone></placement></a>', b'<a><placement kind="x"><zone>z</zone></placement></a>'),
    (b"<a><placement><placement>z</placement></placement></a>", b"<a><placement></placement></a>"),
    (b"<a><placement><zone>z</zone></a>", b"<a><placement><zone>z</zone></a>"),
])
def test_an_unread_element_is_cut_only_when_it_is_plainly_whole(body, expected):
    assert UnreadElements({"placement", "monitoring"}).cut(body) == expected


def test_an_error_answer_is_read_whole():
    loader = botocore.session.get_session().get_component("data_loader")
    operation = botocore.session.get_session().get_service_model("ec2").operation_model("DescribeInstances")
    body = (b"<Response><Errors><Error><Code>UnauthorizedOperation</Code><Message>not allowed</Message></Error>"
            b"</Errors><RequestID>r</RequestID></Response>")
    parsed = ResponseParsers(loader, ANSWERS_READ).create_parser("ec2").parse(
        {"body": body, "headers": {}, "status_code": 403}, operation.output_shape)
    assert parsed["Error"] == {"Code": "UnauthorizedOperation", "Message": "not allowed"}
