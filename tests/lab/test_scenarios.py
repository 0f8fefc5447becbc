"""The scenario files: each one loads, seeds what it declares, and has what it promises; broken
ones are refused with an error that names the field at fault."""

import re
import subprocess
import sys
from collections import Counter, defaultdict

import pytest
import yaml
from botocore.exceptions import ClientError
from moto.ec2.models import ec2_backends
from moto.moto_api._internal.models import moto_api_backend

from lab.scenario import SCENARIO_DIR, ScenarioError, expand, load_scenario, spread
from lab.server import LabApplication
from tests.lab.shapes import output_problems
from tests.lab_fixture import REPO_ROOT

SCENARIOS = sorted(SCENARIO_DIR.glob("*.yml"))
EXTERNAL_ID = "lab-demo-external-id"
STAGING_CAPACITY = 300  # DRS replicates at most 300 source servers per account and region


def source_role(account_id):
    return f"arn:aws:iam::{account_id}:role/DRSOrchestrationSourceRole"


def account_id_named(summary, name):
    return next(account["id"] for account in summary["accounts"] if account["name"] == name)


def tagged_instances(lab, account_id, region):
    """The account's instances in a region, as its own DescribeInstances pages show them."""
    ec2 = lab.client("ec2", region, lab.assume(source_role(account_id), EXTERNAL_ID))
    pages = ec2.get_paginator("describe_instances").paginate(Filters=[{"Name": "tag-key", "Values": ["dr:wave"]}])
    return [instance for page in pages for reservation in page["Reservations"] for instance in reservation["Instances"]]


def tag(instance, key):
    return next((t["Value"] for t in instance.get("Tags", []) if t["Key"] == key), None)


def instance_information(ssm):
    pages = ssm.get_paginator("describe_instance_information").paginate(PaginationConfig={"PageSize": 50})
    return [info for page in pages for info in page["InstanceInformationList"]]


def drs_as(lab, account_id, role):
    return lab.client("drs", credentials=lab.assume(f"arn:aws:iam::{account_id}:role/{role}", EXTERNAL_ID))


def every_source_server(drs):
    pages = drs.get_paginator("describe_source_servers").paginate(filters={})
    return [server for page in pages for server in page["items"]]


@pytest.fixture
def fresh_moto():
    """moto's backends are process-global: every in-process lab starts from and leaves them empty."""
    moto_api_backend.reset()
    yield
    moto_api_backend.reset()


# --- every scenario seeds what it declares ----------------------------------------------------------

@pytest.mark.parametrize("path", SCENARIOS, ids=lambda path: path.stem)
def test_every_scenario_seeds_the_instances_it_declares(path, fresh_moto):
    scenario = load_scenario(path)
    world = LabApplication(scenario).world

    declared = Counter()
    for group in scenario["instance_groups"]:
        declared[(group["account"], group["region"])] += group["count"]
        members = [i for i in world.instances.values() if i.group == group["name"]]
        assert Counter(i.ssm_state for i in members) == Counter(spread(group["ssm"], group["count"])), group["name"]
        assert Counter(i.install_outcome for i in members) == Counter(spread(group["install"]["outcome"], group["count"]))
    seeded = world.summary()["instances_by_account_region"]
    assert seeded == {f"{account}/{region}": count for (account, region), count in declared.items()}
    for (account, region), count in declared.items():
        reservations = ec2_backends[account][region].reservations.values()
        assert sum(len(r.instances) for r in reservations) == count


# --- what each scenario promises ----------------------------------------------------------------------

def test_demo_is_forty_instances_in_three_waves_with_trouble(lab_factory):
    lab = lab_factory("demo")
    summary = lab.control("scenario")
    source = account_id_named(summary, "source")
    by_region = {region: tagged_instances(lab, source, region) for region in summary["regions"]}
    assert all(by_region.values()), "every source region has instances"
    instances = [i for found in by_region.values() for i in found]
    assert 35 <= summary["instances"] <= 45
    assert {tag(i, "dr:wave") for i in instances} == {"1", "2", "3"}

    ssm = lab.client("ssm", "us-east-1", lab.assume(source_role(source), EXTERNAL_ID))
    page = ssm.describe_instance_information(MaxResults=50)
    assert output_problems(ssm, "DescribeInstanceInformation", page) == []
    managed = {info["InstanceId"]: info["PingStatus"] for info in instance_information(ssm)}
    east = {i["InstanceId"] for i in by_region["us-east-1"]}
    assert "ConnectionLost" in managed.values(), "some instances lost their SSM connection"
    assert east - set(managed), "some instances are not managed by SSM at all"


def test_demo_install_failures_span_several_categories(fresh_moto):
    world = LabApplication(load_scenario("demo")).world
    failures = {i.install_outcome for i in world.instances.values()} - {"success"}
    assert len(failures) >= 4


def test_single_account_runs_everything_in_the_operator_account(lab_factory):
    lab = lab_factory("single-account")
    summary = lab.control("scenario")
    assert len(summary["accounts"]) == 1
    operator = lab.client("sts").get_caller_identity()["Account"]
    ec2 = lab.client("ec2")
    pages = ec2.get_paginator("describe_instances").paginate(Filters=[{"Name": "tag-key", "Values": ["dr:wave"]}])
    instances = [i for page in pages for r in page["Reservations"] for i in r["Instances"]]
    assert 15 <= len(instances) <= 25
    assert {r["OwnerId"] for r in ec2.describe_instances()["Reservations"]} == {operator}
    assert len({tag(i, "dr:wave") for i in instances}) in (2, 3)
    drs = lab.client("drs")
    servers = drs.describe_source_servers(filters={})
    assert output_problems(drs, "DescribeSourceServers", servers) == []


def test_cross_account_staging_trusts_the_source_and_serves_the_target(lab_factory):
    lab = lab_factory("cross-account")
    summary = lab.control("scenario")
    source, staging, target = (account_id_named(summary, name) for name in ("source", "staging", "target"))
    assert tagged_instances(lab, source, "us-east-1")
    staging_keys = lab.assume(f"arn:aws:iam::{staging}:role/DRSOrchestrationStagingRole", EXTERNAL_ID)
    iam = lab.client("iam", credentials=staging_keys)
    role = iam.get_role(RoleName=f"DRSCrossAccountAgentRole_{source}")
    problems = output_problems(iam, "GetRole", role)
    # botocore decodes the role's trust policy (URL-encoded JSON on the wire) into a dict
    assert [p for p in problems if "AssumeRolePolicyDocument" not in p] == []
    assert role["Role"]["Arn"].startswith(f"arn:aws:iam::{staging}:role/")
    target_drs = lab.client("drs", credentials=lab.assume(f"arn:aws:iam::{target}:role/DRSOrchestrationTargetRole", EXTERNAL_ID))
    staging_accounts = target_drs.list_staging_accounts()
    assert output_problems(target_drs, "ListStagingAccounts", staging_accounts) == []


def test_multi_account_spreads_waves_and_holds_two_misconfigured_sources(lab_factory):
    lab = lab_factory("multi-account")
    summary = lab.control("scenario")
    staging_secondary = account_id_named(summary, "staging-secondary")
    hr, legacy = account_id_named(summary, "hr"), account_id_named(summary, "legacy")

    waves_by_account = defaultdict(set)
    regions_with_instances = set()
    for key in summary["instances_by_account_region"]:
        account, region = key.split("/")
        for instance in tagged_instances(lab, account, region):
            waves_by_account[account].add(tag(instance, "dr:wave"))
            regions_with_instances.add(region)
    assert len(waves_by_account) >= 3
    assert regions_with_instances == set(summary["regions"]) and len(regions_with_instances) == 2
    waves = set().union(*waves_by_account.values())
    assert {"1", "2", "10"} <= waves
    assert sum(1 for found in waves_by_account.values() if "10" in found) >= 1
    assert all(len(found) < len(waves) for found in waves_by_account.values()), "no account holds every wave"

    staging_keys = lab.assume(f"arn:aws:iam::{staging_secondary}:role/DRSOrchestrationStagingRole", EXTERNAL_ID)
    iam = lab.client("iam", credentials=staging_keys)
    assert iam.get_role(RoleName=f"DRSCrossAccountAgentRole_{hr}")["Role"]
    with pytest.raises(ClientError) as untrusted:
        iam.get_role(RoleName=f"DRSCrossAccountAgentRole_{legacy}")
    assert untrusted.value.response["Error"]["Code"] == "NoSuchEntity"
    with pytest.raises(ClientError) as uninitialized:
        lab.client("drs", "us-west-2", staging_keys).describe_source_servers(filters={})
    assert uninitialized.value.response["Error"]["Code"] == "UninitializedAccountException"
    initialized = lab.client("drs", "us-east-1", staging_keys).describe_source_servers(filters={})
    assert initialized["items"] == []


CROSS_ACCOUNT_INSTALL = """
schemaVersion: "2.2"
description: Install the AWS Replication Agent, registering it in another account.
parameters:
  Region: {type: String, allowedValues: [us-east-1, us-west-2]}
  AccountId: {type: String, default: "", allowedPattern: "^(\\\\d{12})?$"}
mainSteps:
  - action: aws:runShellScript
    name: InstallLinuxAgent
    precondition: {StringEquals: [platformType, Linux]}
    inputs:
      timeoutSeconds: 3600
      runCommand:
        - ./aws-replication-installer-init --region {{ Region }} --account-id {{ AccountId }} --no-prompt
"""


def test_multi_account_installs_succeed_or_fail_as_each_staging_account_is_set_up(lab_factory):
    lab = lab_factory("multi-account")
    summary = lab.control("scenario")
    pairs = {"retail": ("staging", "us-west-2"), "hr": ("staging-secondary", "us-west-2"),
             "legacy": ("staging-secondary", "us-east-1")}
    sent = {}
    for source_name, (staging_name, region) in pairs.items():
        source, staging = account_id_named(summary, source_name), account_id_named(summary, staging_name)
        ssm = lab.client("ssm", region, lab.assume(source_role(source), EXTERNAL_ID))
        ssm.create_document(Name="InstallDRAgentCrossAccount", Content=CROSS_ACCOUNT_INSTALL,
                            DocumentType="Command", DocumentFormat="YAML")
        online = [i["InstanceId"] for i in instance_information(ssm) if i["PingStatus"] == "Online"]
        command = ssm.send_command(InstanceIds=online[:1], DocumentName="InstallDRAgentCrossAccount",
                                   Parameters={"Region": [region], "AccountId": [staging]})
        sent[source_name] = (ssm, command["Command"]["CommandId"], online[0], staging, region)
    lab.control("clock", {"advance_seconds": 1800})

    results = {}
    for source_name, (ssm, command_id, instance_id, staging, region) in sent.items():
        result = ssm.get_command_invocation(CommandId=command_id, InstanceId=instance_id, PluginName="InstallLinuxAgent")
        assert output_problems(ssm, "GetCommandInvocation", result) == []
        results[source_name] = result
    assert results["retail"]["Status"] == "Success"
    assert results["hr"]["Status"] == "Failed"
    assert "account not being initialized" in results["hr"]["StandardErrorContent"]
    assert results["legacy"]["Status"] == "Failed"
    assert "AccessDenied" in results["legacy"]["StandardErrorContent"]

    _ssm, _command, retail_instance, staging, region = sent["retail"]
    staging_keys = lab.assume(f"arn:aws:iam::{staging}:role/DRSOrchestrationStagingRole", EXTERNAL_ID)
    registered = lab.client("drs", region, staging_keys).describe_source_servers(filters={"hardwareId": retail_instance})
    assert len(registered["items"]) == 1


def test_extension_deploy_brings_staging_to_23_servers_of_which_20_are_extensible(lab_factory):
    lab = lab_factory("extension")
    summary = lab.control("scenario")
    source, staging, target = (account_id_named(summary, name) for name in ("source", "staging", "target"))
    ssm = lab.client("ssm", "us-east-1", lab.assume(source_role(source), EXTERNAL_ID))
    try:
        ssm.create_document(Name="InstallDRAgentCrossAccount", Content=CROSS_ACCOUNT_INSTALL,
                            DocumentType="Command", DocumentFormat="YAML")
        instances = [info["InstanceId"] for info in instance_information(ssm)]
        assert len(instances) == 12
        ssm.send_command(InstanceIds=instances, DocumentName="InstallDRAgentCrossAccount",
                         Parameters={"Region": ["us-east-1"], "AccountId": [staging]})
        lab.control("clock", {"advance_seconds": 1800})

        staging_servers = every_source_server(drs_as(lab, staging, "DRSOrchestrationStagingRole"))
        assert len(staging_servers) == 8 + 3 + 12
        target_drs = drs_as(lab, target, "DRSOrchestrationTargetRole")
        extensible = target_drs.list_extensible_source_servers(stagingAccountID=staging)["items"]
        assert len(extensible) == 8 + 12
    finally:
        lab.reset()  # the lab is shared by the module's tests: leave it as seeded


def test_scale_is_thousands_of_instances_over_many_account_regions_and_waves(lab_factory):
    lab = lab_factory("scale")
    summary = lab.control("scenario")
    assert summary["instances"] >= 3000
    assert len(summary["instances_by_account_region"]) >= 6
    waves = Counter()
    for key in summary["instances_by_account_region"]:
        account, region = key.split("/")
        ec2 = lab.client("ec2", region, lab.assume(source_role(account), EXTERNAL_ID))
        pages = ec2.get_paginator("describe_tags").paginate(
            Filters=[{"Name": "key", "Values": ["dr:wave"]}, {"Name": "resource-type", "Values": ["instance"]}])
        pages = list(pages)
        assert output_problems(ec2, "DescribeTags", pages[0]) == []
        wave_tags = [t for page in pages for t in page["Tags"]]
        assert len(wave_tags) <= STAGING_CAPACITY, f"{key} holds more DR instances than one staging region replicates"
        waves.update(t["Value"] for t in wave_tags)
    assert sum(waves.values()) >= 3000
    assert len(waves) >= 5


def test_scale_mixes_ssm_states_and_install_outcomes_mostly_successful(fresh_moto):
    world = LabApplication(load_scenario("scale")).world
    instances = list(world.instances.values())
    states = Counter(i.ssm_state for i in instances)
    outcomes = Counter(i.install_outcome for i in instances)
    assert set(states) == {"online", "connection_lost", "not_managed"}
    assert states["online"] > 0.9 * len(instances)
    assert outcomes["success"] > 0.9 * len(instances)
    assert len(outcomes) >= 8
    durations = [i.install_duration_seconds for i in instances]
    assert 120 <= min(durations) and max(durations) <= 600


def test_extension_target_sees_the_legacy_staging_servers_and_holds_three_extended(lab_factory):
    lab = lab_factory("extension")
    summary = lab.control("scenario")
    staging, target = account_id_named(summary, "staging"), account_id_named(summary, "target")
    assert summary["instances_by_account_region"] == {f"{account_id_named(summary, 'source')}/us-east-1": 12}

    staging_servers = every_source_server(drs_as(lab, staging, "DRSOrchestrationStagingRole"))
    target_drs = drs_as(lab, target, "DRSOrchestrationTargetRole")
    extensible = target_drs.list_extensible_source_servers(stagingAccountID=staging)
    assert output_problems(target_drs, "ListExtensibleSourceServers", extensible) == []
    assert sorted(server["hostname"] for server in extensible["items"]) == [f"legacy-app-{index:02d}" for index in range(1, 9)]

    extended = every_source_server(target_drs)
    assert sorted(s["sourceProperties"]["identificationHints"]["hostname"] for s in extended) == [
        "extended-app-01", "extended-app-02", "extended-app-03"]
    assert {s["stagingArea"]["status"] for s in extended} == {"EXTENDED"}
    staging_arns = {s["stagingArea"]["stagingSourceServerArn"] for s in extended}
    assert staging_arns <= {server["arn"] for server in staging_servers}
    assert len(staging_servers) == 8 + 3
    assert staging_arns.isdisjoint(server["arn"] for server in extensible["items"])

    with pytest.raises(ClientError) as again:
        target_drs.create_extended_source_server(sourceServerArn=sorted(staging_arns)[0])
    assert again.value.response["Error"]["Code"] == "ConflictException"
    assert again.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
    assert "already extended" in again.value.response["Error"]["Message"]


def test_extension_denied_role_and_uninitialized_target_are_refused(lab_factory):
    lab = lab_factory("extension")
    summary = lab.control("scenario")
    staging, target = account_id_named(summary, "staging"), account_id_named(summary, "target")
    uninitialized = account_id_named(summary, "uninitialized-target")

    with pytest.raises(ClientError) as denied:
        drs_as(lab, target, "DRSOrchestrationTargetRoleDenied").describe_source_servers(filters={})
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert denied.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert denied.value.response["Error"]["Message"] == (
        f"User: arn:aws:sts::{target}:assumed-role/DRSOrchestrationTargetRoleDenied/lab-tests is not authorized to perform: "
        "drs:DescribeSourceServers because no identity-based policy allows the drs:DescribeSourceServers action")

    staging_drs = drs_as(lab, staging, "DRSOrchestrationStagingRole")
    legacy_arn = staging_drs.describe_source_servers(filters={}, maxResults=1)["items"][0]["arn"]
    uninitialized_drs = drs_as(lab, uninitialized, "DRSOrchestrationTargetRole")
    calls = {
        "DescribeSourceServers": lambda: uninitialized_drs.describe_source_servers(filters={}),
        "ListExtensibleSourceServers": lambda: uninitialized_drs.list_extensible_source_servers(stagingAccountID=staging),
        "CreateExtendedSourceServer": lambda: uninitialized_drs.create_extended_source_server(sourceServerArn=legacy_arn),
    }
    for name, call in calls.items():
        with pytest.raises(ClientError) as refused:
            call()
        assert refused.value.response["Error"]["Code"] == "UninitializedAccountException", name


def test_capacity_limit_target_fits_65_of_the_70_extensible_servers(lab_factory):
    lab = lab_factory("capacity-limit")
    summary = lab.control("scenario")
    staging, target = account_id_named(summary, "staging"), account_id_named(summary, "target")
    assert summary["instances"] == 0
    target_drs = drs_as(lab, target, "DRSOrchestrationTargetRole")
    assert len(every_source_server(target_drs)) == 235

    arns, token, pages = [], None, 0
    while True:
        page = target_drs.list_extensible_source_servers(stagingAccountID=staging, maxResults=50, **({"nextToken": token} if token else {}))
        assert output_problems(target_drs, "ListExtensibleSourceServers", page) == []
        assert len(page["items"]) <= 50
        arns += [server["arn"] for server in page["items"]]
        pages += 1
        token = page.get("nextToken")
        if not token:
            break
    assert pages == 2
    assert len(arns) == len(set(arns)) == 70
    assert {server["arn"] for server in target_drs.list_extensible_source_servers(stagingAccountID=staging)["items"]} == set(arns)

    try:
        for arn in arns[:65]:
            target_drs.create_extended_source_server(sourceServerArn=arn)
        assert len(every_source_server(target_drs)) == 300
        with pytest.raises(ClientError) as full:
            target_drs.create_extended_source_server(sourceServerArn=arns[65])
        assert full.value.response["Error"]["Code"] == "ServiceQuotaExceededException"
        assert len(target_drs.list_extensible_source_servers(stagingAccountID=staging)["items"]) == 5
    finally:
        lab.reset()  # the lab is shared by the module's tests: leave it as seeded


# --- broken scenarios are refused, naming the field ---------------------------------------------------

def demo_document():
    return yaml.safe_load((SCENARIO_DIR / "demo.yml").read_text())


def broken(change):
    document = demo_document()
    change(document)
    return document


@pytest.mark.parametrize("change, expected", [
    (lambda d: d["instance_groups"][0].update(account="nowhere"),
     ["instance_groups[0] (db).account", "'nowhere'"]),
    (lambda d: d["instance_groups"][1].update(ssm={"online": 10, "connection_lost": 1}),
     ["instance_groups[1] (app).ssm", "add up to 11", "14 instances"]),
    (lambda d: d["instance_groups"][0]["install"].update(outcome={"success": 7, "kernel_unsupported": 2}),
     ["instance_groups[0] (db).install.outcome", "add up to 9"]),
    (lambda d: d.update(colour="blue"),
     ["(top level)", "'colour' was unexpected"]),
    (lambda d: d["accounts"][2]["drs"]["us-east-1"].update(trusted_accounts=["source", "elsewhere"]),
     ["accounts[staging].drs.us-east-1.trusted_accounts", "'elsewhere'"]),
    (lambda d: d["instance_groups"][0].update(region="eu-west-1"),
     ["instance_groups[0] (db).region", "eu-west-1"]),
    (lambda d: d["accounts"][1]["roles"][0].update(denied_actions=["DescribeSourceServers"]),
     ["accounts.1.roles.0.denied_actions.0", "'DescribeSourceServers' does not match"]),
])
def test_invalid_scenarios_name_the_field_at_fault(change, expected):
    with pytest.raises(ScenarioError) as excinfo:
        expand(broken(change), "broken.yml")
    for fragment in expected:
        assert fragment in str(excinfo.value)


def test_an_unknown_install_outcome_is_refused_before_the_lab_starts(tmp_path):
    document = broken(lambda d: d["instance_groups"][2]["install"].update(outcome={"success": 5, "gremlins": 1}))
    path = tmp_path / "gremlins.yml"
    path.write_text(yaml.safe_dump(document))
    result = subprocess.run([sys.executable, "-m", "lab", "serve", "--scenario", str(path), "--port", "0"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "lab ready" not in result.stdout
    assert "instance_groups[2] (win).install.outcome" in result.stderr
    assert "gremlins" in result.stderr



def test_the_readme_documents_every_scenario_field():
    schema = yaml.safe_load((SCENARIO_DIR.parent / "scenario_schema.yml").read_text())
    readme = (SCENARIO_DIR.parent / "README.md").read_text()
    documented = set(re.findall(r"`([a-z_.]+)`", readme))
    documented_parts = {part for name in documented for part in name.split(".")}
    missing = sorted(field for field in _schema_fields(schema) if field not in documented_parts)
    assert missing == []


def _schema_fields(node):
    if isinstance(node, dict):
        for name, value in node.get("properties", {}).items():
            yield name
            yield from _schema_fields(value)
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                yield from _schema_fields(node[key])
        for definition in node.get("$defs", {}).values():
            yield from _schema_fields(definition)
        for option in node.get("oneOf", []):
            yield from _schema_fields(option)
