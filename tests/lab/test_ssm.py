"""Systems Manager in the lab: managed instances, Run Command lifecycles, and DRS agent installs."""

from pathlib import Path

import pytest
import yaml
from botocore.exceptions import ClientError

from lab.scenario import ScenarioError, expand
from tests.lab.shapes import output_problems

SCENARIO = Path(__file__).with_name("scenarios") / "ssm.yml"
INSTALL_DOCUMENT = "AWSDisasterRecovery-InstallDRAgentOnInstance"
STAGING_READER = "arn:aws:iam::333333333333:role/StagingReader"
CROSS_ACCOUNT_DOCUMENT = """
schemaVersion: "2.2"
description: Install the AWS Replication Agent into another account.
parameters:
  Region: {type: String, allowedValues: [us-east-1, us-west-2]}
  AccountId: {type: String, default: "", allowedPattern: "^(\\\\d{12})?$"}
  Tags: {type: String, default: "", allowedPattern: "^([A-Za-z0-9_.:/+-]+=[A-Za-z0-9_.:/+ -]*)?(,[A-Za-z0-9_.:/+-]+=[A-Za-z0-9_.:/+ -]*)*$"}
mainSteps:
  - action: aws:runShellScript
    name: InstallLinuxAgent
    precondition: {StringEquals: [platformType, Linux]}
    inputs:
      timeoutSeconds: 3600
      runCommand:
        - ./aws-replication-installer-init --region {{ Region }} --account-id {{ AccountId }} --no-prompt
"""


@pytest.fixture(scope="module")
def lab(lab_factory):
    return lab_factory(SCENARIO)


@pytest.fixture(scope="module")
def ssm(lab):
    return lab.client("ssm")


@pytest.fixture(scope="module")
def groups(lab):
    """Instance ids by the scenario's Role tag, in launch order."""
    found = {}
    for region in ("us-east-1", "us-west-2"):
        for reservation in lab.client("ec2", region).describe_instances()["Reservations"]:
            for instance in reservation["Instances"]:
                role = {tag["Key"]: tag["Value"] for tag in instance.get("Tags", [])}["Role"]
                found.setdefault(role, []).append(instance["InstanceId"])
    return found


@pytest.fixture(scope="module")
def spare(groups):
    """Hands out fleet instances, so that no two tests install on the same one."""
    pool = list(groups["fleet"])

    def take(count):
        taken, pool[:] = pool[:count], pool[count:]
        assert len(taken) == count, "the scenario's fleet group is too small for the tests"
        return taken

    return take


def advance(lab, seconds):
    lab.control("clock", {"advance_seconds": seconds})


def error_code(call, **kwargs):
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return caught.value.response["Error"]["Code"], caught.value.response["Error"]["Message"]


def install(ssm, instance_ids, **extra):
    response = ssm.send_command(InstanceIds=instance_ids, DocumentName=INSTALL_DOCUMENT,
                                Parameters={"Region": ["us-east-1"]}, **extra)
    assert output_problems(ssm, "SendCommand", response) == []
    return response["Command"]


def invocation(ssm, command_id, instance_id, plugin="InstallLinuxAgent"):
    response = ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id, PluginName=plugin)
    assert output_problems(ssm, "GetCommandInvocation", response) == []
    return response


def statuses(ssm, command_id):
    response = ssm.list_command_invocations(CommandId=command_id)
    assert output_problems(ssm, "ListCommandInvocations", response) == []
    return {item["InstanceId"]: item["StatusDetails"] for item in response["CommandInvocations"]}


def command_summary(ssm, command_id):
    response = ssm.list_commands(CommandId=command_id)
    assert output_problems(ssm, "ListCommands", response) == []
    return response["Commands"][0]


def test_describe_instance_information_pages_through_every_managed_instance_once(ssm, groups):
    seen = []
    token = {}
    while True:
        page = ssm.describe_instance_information(MaxResults=5, **token)
        assert output_problems(ssm, "DescribeInstanceInformation", page) == []
        assert len(page["InstanceInformationList"]) <= 5
        seen.extend(page["InstanceInformationList"])
        if "NextToken" not in page:
            break
        token = {"NextToken": page["NextToken"]}
    ids = [item["InstanceId"] for item in seen]
    expected = groups["fleet"] + groups["kernel"] + groups["win"] + groups["offline"] + groups["stopped"]
    assert len(ids) == len(set(ids)) == len(expected) > 10
    assert set(ids) == set(expected)
    by_id = {item["InstanceId"]: item for item in seen}
    assert {i for i, item in by_id.items() if item["PingStatus"] == "ConnectionLost"} == set(groups["offline"] + groups["stopped"])
    windows = by_id[groups["win"][0]]
    assert (windows["PlatformType"], windows["PlatformName"]) == ("Windows", "Microsoft Windows Server 2022 Datacenter")
    linux = by_id[groups["fleet"][0]]
    assert (linux["PlatformType"], linux["PlatformName"], linux["PlatformVersion"]) == ("Linux", "Amazon Linux", "2023")
    assert linux["ResourceType"] == "EC2Instance" and linux["SourceId"] == groups["fleet"][0]


def test_describe_instance_information_filters(ssm, groups):
    offline = ssm.describe_instance_information(Filters=[{"Key": "PingStatus", "Values": ["ConnectionLost"]}])
    assert output_problems(ssm, "DescribeInstanceInformation", offline) == []
    assert {i["InstanceId"] for i in offline["InstanceInformationList"]} == set(groups["offline"] + groups["stopped"])
    windows = ssm.describe_instance_information(
        InstanceInformationFilterList=[{"key": "PlatformTypes", "valueSet": ["Windows"]}])
    assert [i["InstanceId"] for i in windows["InstanceInformationList"]] == groups["win"]
    asked = groups["kernel"] + groups["unmanaged"]
    by_id = ssm.describe_instance_information(Filters=[{"Key": "InstanceIds", "Values": asked}])
    assert {i["InstanceId"] for i in by_id["InstanceInformationList"]} == set(groups["kernel"])
    assert error_code(ssm.describe_instance_information, Filters=[{"Key": "Colour", "Values": ["x"]}])[0] == "InvalidFilterKey"
    assert error_code(ssm.describe_instance_information,
                      Filters=[{"Key": "PingStatus", "Values": ["Asleep"]}])[0] == "InvalidInstanceInformationFilterValue"


def test_other_regions_instances_are_not_listed(lab, groups):
    west = lab.client("ssm", "us-west-2").describe_instance_information()
    assert {i["InstanceId"] for i in west["InstanceInformationList"]} == set(groups["west"])


def test_send_command_rejects_more_than_fifty_instances(ssm, groups):
    many = (groups["fleet"] * 4)[:51]
    code, message = error_code(ssm.send_command, InstanceIds=many, DocumentName="AWS-RunShellScript",
                               Parameters={"commands": ["true"]})
    assert code == "ValidationException"
    assert "less than or equal to 50" in message


@pytest.mark.parametrize("role", ["unmanaged", "west"])
def test_send_command_rejects_instances_ssm_does_not_manage_here(ssm, groups, role):
    code, message = error_code(ssm.send_command, InstanceIds=[groups["fleet"][0], groups[role][0]],
                               DocumentName=INSTALL_DOCUMENT, Parameters={"Region": ["us-east-1"]})
    assert code == "InvalidInstanceId"
    assert groups[role][0] in message


@pytest.mark.parametrize("parameters", [
    {"Region": ["moon-base-1"]},
    {"Region": ["us-east-1"], "AccountId": ["333333333333"]},
    {"Tags": ["Team=dr"]},
])
def test_send_command_checks_parameters_against_the_document(ssm, groups, parameters):
    code, _ = error_code(ssm.send_command, InstanceIds=groups["fleet"][:1], DocumentName=INSTALL_DOCUMENT,
                         Parameters=parameters)
    assert code == "InvalidParameters"


def test_customer_document_patterns_and_unknown_documents(ssm, groups):
    ssm.create_document(Name="Lab-InstallDRAgentCrossAccount", Content=CROSS_ACCOUNT_DOCUMENT,
                        DocumentType="Command", DocumentFormat="YAML")
    code, message = error_code(ssm.send_command, InstanceIds=groups["fleet"][:1], DocumentName="Lab-InstallDRAgentCrossAccount",
                               Parameters={"Region": ["us-east-1"], "AccountId": ["not-an-account"]})
    assert code == "InvalidParameters" and "AccountId" in message
    assert error_code(ssm.send_command, InstanceIds=groups["fleet"][:1], DocumentName="No-Such-Document")[0] == "InvalidDocument"
    assert error_code(ssm.send_command, InstanceIds=groups["win"], DocumentName="AWS-RunShellScript",
                      Parameters={"commands": ["uptime"]})[0] == "UnsupportedPlatformType"


def test_invocation_moves_from_invisible_to_pending_to_in_progress_to_success(lab, ssm, spare):
    instance_id, = spare(1)
    command = install(ssm, [instance_id])
    assert command["Status"] == "Pending" and command["TargetCount"] == 1
    assert error_code(ssm.get_command_invocation, CommandId=command["CommandId"], InstanceId=instance_id,
                      PluginName="InstallLinuxAgent")[0] == "InvocationDoesNotExist"
    advance(lab, 2.5)
    assert invocation(ssm, command["CommandId"], instance_id)["Status"] == "Pending"
    advance(lab, 3)
    running = invocation(ssm, command["CommandId"], instance_id)
    assert (running["Status"], running["StatusDetails"]) == ("InProgress", "In Progress")
    assert running["ExecutionStartDateTime"] and not running["ExecutionEndDateTime"]
    assert command_summary(ssm, command["CommandId"])["Status"] == "InProgress"
    advance(lab, 100)
    done = invocation(ssm, command["CommandId"], instance_id)
    assert (done["Status"], done["ResponseCode"]) == ("Success", 0)
    assert "The AWS Replication Agent was successfully installed." in done["StandardOutputContent"]
    summary = command_summary(ssm, command["CommandId"])
    assert (summary["Status"], summary["CompletedCount"], summary["ErrorCount"]) == ("Success", 1, 0)


def test_successful_install_registers_the_server_in_drs_when_the_invocation_ends(lab, ssm, spare):
    instance_id, = spare(1)
    drs = lab.client("drs")
    command = install(ssm, [instance_id])

    def timeline_entry():
        return next(entry for sent in lab.control("invocations")["commands"] if sent["command_id"] == command["CommandId"]
                    for entry in sent["invocations"])

    advance(lab, 50)
    assert drs.describe_source_servers(filters={"hardwareId": instance_id})["items"] == []
    assert timeline_entry()["registers_source_server"] is False
    advance(lab, 60)
    assert invocation(ssm, command["CommandId"], instance_id)["Status"] == "Success"
    servers = drs.describe_source_servers(filters={"hardwareId": instance_id})["items"]
    assert len(servers) == 1
    assert timeline_entry()["registers_source_server"] is True


def test_cross_account_install_registers_in_the_staging_account(lab, ssm, spare):
    instance_id, = spare(1)
    response = ssm.send_command(InstanceIds=[instance_id], DocumentName="Lab-InstallDRAgentCrossAccount",
                                Parameters={"Region": ["us-east-1"], "AccountId": ["333333333333"], "Tags": ["Team=dr"]})
    advance(lab, 110)
    assert invocation(ssm, response["Command"]["CommandId"], instance_id)["Status"] == "Success"
    staging = lab.client("drs", credentials=lab.assume(STAGING_READER))
    servers = staging.describe_source_servers(filters={"hardwareId": instance_id})["items"]
    assert len(servers) == 1
    assert lab.client("drs").describe_source_servers(filters={"hardwareId": instance_id})["items"] == []


def test_max_concurrency_keeps_the_rest_pending(lab, ssm, spare):
    instance_ids = spare(3)
    command = install(ssm, instance_ids, MaxConcurrency="1")
    advance(lab, 10)
    assert list(statuses(ssm, command["CommandId"]).values()) == ["In Progress", "Pending", "Pending"]
    advance(lab, 105)
    assert list(statuses(ssm, command["CommandId"]).values()) == ["Success", "In Progress", "Pending"]


def test_max_errors_terminates_invocations_not_yet_started(lab, ssm, groups, spare):
    targets = groups["kernel"] + spare(1)
    command = install(ssm, targets, MaxConcurrency="1", MaxErrors="0")
    advance(lab, 200)
    assert list(statuses(ssm, command["CommandId"]).values()) == ["Failed", "Terminated", "Terminated"]
    summary = command_summary(ssm, command["CommandId"])
    assert (summary["Status"], summary["ErrorCount"], summary["CompletedCount"]) == ("Failed", 1, 3)
    failed = invocation(ssm, command["CommandId"], groups["kernel"][0])
    assert failed["ResponseCode"] == 1
    assert "Your Linux kernel version is not supported" in failed["StandardErrorContent"]


def test_windows_failure_and_plugin_names(lab, ssm, groups):
    windows_id = groups["win"][0]
    command = install(ssm, [windows_id])
    advance(lab, 80)
    failed = invocation(ssm, command["CommandId"], windows_id, plugin="InstallWindowsAgent")
    assert (failed["Status"], failed["StatusDetails"]) == ("Failed", "Failed")
    assert "Failed to validate AWS credentials" in failed["StandardErrorContent"]
    skipped = invocation(ssm, command["CommandId"], windows_id, plugin="InstallLinuxAgent")
    assert skipped["Status"] == "Success"
    assert "Step execution skipped due to unsatisfied preconditions" in skipped["StandardOutputContent"]
    assert error_code(ssm.get_command_invocation, CommandId=command["CommandId"], InstanceId=windows_id)[0] == "InvalidPluginName"
    assert error_code(ssm.get_command_invocation, CommandId=command["CommandId"], InstanceId=windows_id,
                      PluginName="Reboot")[0] == "InvalidPluginName"
    detailed = ssm.list_command_invocations(CommandId=command["CommandId"], Details=True)
    assert output_problems(ssm, "ListCommandInvocations", detailed) == []
    plugins = {p["Name"]: p for p in detailed["CommandInvocations"][0]["CommandPlugins"]}
    assert set(plugins) == {"InstallWindowsAgent", "InstallLinuxAgent"}
    assert "Failed to validate AWS credentials" in plugins["InstallWindowsAgent"]["Output"]
    assert len(plugins["InstallWindowsAgent"]["Output"]) <= 2500


def test_offline_and_stopped_instances_end_delivery_timed_out(lab, ssm, groups):
    targets = groups["offline"] + groups["stopped"]
    command = install(ssm, targets, TimeoutSeconds=60)
    advance(lab, 10)
    assert set(statuses(ssm, command["CommandId"]).values()) == {"Delayed"}
    advance(lab, 3700)
    assert set(statuses(ssm, command["CommandId"]).values()) == {"Delivery Timed Out"}
    summary = command_summary(ssm, command["CommandId"])
    assert (summary["Status"], summary["DeliveryTimedOutCount"], summary["ErrorCount"]) == ("TimedOut", 2, 0)


def test_cancel_command_cancels_unfinished_invocations(lab, ssm, spare):
    instance_ids = spare(2)
    command = install(ssm, instance_ids, MaxConcurrency="1")
    advance(lab, 10)
    assert ssm.cancel_command(CommandId=command["CommandId"])["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert set(statuses(ssm, command["CommandId"]).values()) == {"Cancelled"}
    assert command_summary(ssm, command["CommandId"])["Status"] == "Cancelled"
    advance(lab, 300)
    assert lab.client("drs").describe_source_servers(filters={"hardwareId": instance_ids[0]})["items"] == []


def test_listing_commands_and_invocations_pages_by_instance_and_overall(lab, ssm, spare):
    instance_ids = spare(3)
    sent = ssm.send_command(InstanceIds=instance_ids, DocumentName="AWS-RunShellScript", Parameters={"commands": ["uptime"]})
    advance(lab, 20)
    command_id = sent["Command"]["CommandId"]
    by_instance = ssm.list_commands(InstanceId=instance_ids[1])
    assert output_problems(ssm, "ListCommands", by_instance) == []
    assert [c["CommandId"] for c in by_instance["Commands"]] == [command_id]
    seen, token = [], {}
    while True:
        page = ssm.list_command_invocations(MaxResults=2, **token)
        assert output_problems(ssm, "ListCommandInvocations", page) == []
        seen.extend((item["CommandId"], item["InstanceId"]) for item in page["CommandInvocations"])
        if "NextToken" not in page:
            break
        token = {"NextToken": page["NextToken"]}
    assert len(seen) == len(set(seen))
    assert {(command_id, i) for i in instance_ids} <= set(seen)
    assert error_code(ssm.list_command_invocations, NextToken="garbage")[0] == "InvalidNextToken"
    assert error_code(ssm.list_commands, CommandId="00000000-0000-4000-8000-000000000000")[0] == "InvalidCommandId"
    assert error_code(ssm.get_command_invocation, CommandId=command_id, InstanceId="i-0123456789abcdef0")[0] == "InvocationDoesNotExist"


@pytest.mark.parametrize("outcome, complaint", [
    ("kernel_panic", "unknown install outcome 'kernel_panic'; valid outcomes: success, "),
    ({"success": 13, "bitlocker_enabled": 1}, "'bitlocker_enabled' cannot happen on linux instances"),
])
def test_scenarios_may_only_name_catalogue_outcomes(outcome, complaint):
    document = yaml.safe_load(SCENARIO.read_text())
    document["instance_groups"][0]["install"]["outcome"] = outcome
    with pytest.raises(ScenarioError) as caught:
        expand(document)
    assert "instance_groups[0] (fleet).install.outcome" in str(caught.value)
    assert complaint in str(caught.value)
