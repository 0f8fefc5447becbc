"""Extending staging source servers into a target account, end to end against the lab: deploy_agents.yml
with and without auto_extend_source_servers, and extend_source_servers.yml on its own, judged by what the
target account holds afterwards and by the calls the lab saw."""

import json
import re

import pytest
from boto3.dynamodb.types import TypeDeserializer

from tests.e2e.conftest import run_playbook

DEPLOY = "playbooks/deploy_agents.yml"
EXTEND = "playbooks/extend_source_servers.yml"
SETUP = "playbooks/setup_accounts.yml"
HISTORY_SETUP = "playbooks/setup_history.yml"
HISTORY_TABLE = "drs-deployment-history"
EXTERNAL_ID = "lab-demo-external-id"
SOURCE, STAGING, TARGET, UNINITIALIZED_TARGET = "222222222222", "333333333333", "444444444444", "777777777777"
TARGET_ROLE = f"arn:aws:iam::{TARGET}:role/DRSOrchestrationTargetRole"
DENIED_TARGET_ROLE = f"arn:aws:iam::{TARGET}:role/DRSOrchestrationTargetRoleDenied"
EXTENSION_CALLS = ("CreateExtendedSourceServer", "ListExtensibleSourceServers")


def _role(account_id, name):
    return f"arn:aws:iam::{account_id}:role/{name}"


def _target_servers(lab, target_role=TARGET_ROLE):
    """The target account's source servers extended from the staging account: staging ARN -> server."""
    drs = lab.client("drs", "us-east-1", lab.assume(target_role, EXTERNAL_ID))
    servers = [server for page in drs.get_paginator("describe_source_servers").paginate(filters={})
               for server in page["items"]]
    return {server["stagingArea"]["stagingSourceServerArn"]: server for server in servers
            if server["stagingArea"].get("stagingAccountID") == STAGING}, len(servers)


def _staging_arns_of_instances(lab, instance_ids):
    drs = lab.client("drs", "us-east-1", lab.assume(_role(STAGING, "DRSOrchestrationStagingRole"), EXTERNAL_ID))
    servers = [server for page in drs.get_paginator("describe_source_servers").paginate(filters={})
               for server in page["items"]]
    return {server["arn"] for server in servers
            if server["sourceProperties"]["identificationHints"].get("awsInstanceID") in instance_ids}


def _extension_calls(lab):
    calls = lab.stats()["calls"].get(TARGET, {}).get("drs", {})
    return {operation: calls.get(operation, 0) for operation in EXTENSION_CALLS}


def _recap_changed(stdout):
    return int(re.search(r"localhost\s*:.*changed=(\d+)", stdout).group(1))


def _deploy(lab, tmp_path, auto_extend, target_role=TARGET_ROLE, history=False):
    summary_file = tmp_path / "summary.json"
    # the role creates the summary's folder with mode 0755; pytest's are 0700
    tmp_path.chmod(0o755)
    settings = {
        "drs_deploy_hosts": "localhost",
        "drs_agent_deploy_external_id": EXTERNAL_ID,
        "drs_agent_deploy_accounts": [{
            "account_id": SOURCE, "role_arn": _role(SOURCE, "DRSOrchestrationSourceRole"), "regions": ["us-east-1"],
            "staging_account_id": STAGING, "target_account_id": TARGET,
        }],
        "drs_agent_deploy_staging_accounts": [
            {"account_id": STAGING, "role_arn": _role(STAGING, "DRSOrchestrationStagingRole")}],
        "drs_agent_deploy_target_accounts": [{"account_id": TARGET, "role_arn": target_role}],
        "drs_agent_deploy_summary_file": str(summary_file),
        "drs_agent_deploy_ssm_online_timeout": 5,
        "drs_agent_deploy_poll_interval": 2,
        "drs_agent_deploy_registration_timeout": 60,
        "drs_agent_deploy_history_table": HISTORY_TABLE if history else "",
        "drs_agent_deploy_history_spool_dir": str(tmp_path / "spool"),
        "auto_extend_source_servers": auto_extend,
    }
    run = run_playbook(lab, DEPLOY, extra_vars=settings, env={"ANSIBLE_STDOUT_CALLBACK": "default"})
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
    return run, json.loads(summary_file.read_text())


def _extend(lab, check=False, target=TARGET, role=TARGET_ROLE, **variables):
    settings = {
        "drs_extension_target_account_id": target,
        "drs_extension_role_arn": role,
        "drs_extension_external_id": EXTERNAL_ID,
        "drs_extension_staging_accounts": [{"account_id": STAGING, "regions": ["us-east-1"]}],
        "drs_extension_wait_timeout": 30,
    }
    settings.update(variables)
    return run_playbook(lab, EXTEND, extra_vars=settings, check=check)


def _extension_result(run):
    return run.task("drs_orchestration.agent_deployer.drs_extension : "
                    "Extend the staging accounts' servers into the target account")["results"][0]


def _prepare(lab, history=False):
    setup = run_playbook(lab, SETUP, extra_vars={
        "drs_account_setup_orchestration_account_id": "111111111111",
        "drs_account_setup_external_id": EXTERNAL_ID,
        "drs_account_setup_deploy_roles": False,
        "drs_account_setup_accounts": [{"account_id": SOURCE, "role": "source", "regions": ["us-east-1"],
                                        "assume_role_arn": _role(SOURCE, "DRSOrchestrationSourceRole"),
                                        "external_id": EXTERNAL_ID}],
    })
    assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-2000:]
    if history:
        assert run_playbook(lab, HISTORY_SETUP).returncode == 0
    return lab


@pytest.fixture(scope="module")
def extension_lab(lab_factory):
    return lab_factory("extension")


def _fresh(lab, history=False):
    """The lab as the scenario starts (faults cleared), with the install document (and history table)."""
    lab.reset()
    return _prepare(lab, history)


def test_auto_extension_extends_each_waves_servers_tags_them_and_is_recorded(extension_lab, tmp_path):
    _fresh(extension_lab, history=True)
    already_before, _count = _target_servers(extension_lab)

    run, summary = _deploy(extension_lab, tmp_path, auto_extend=True, history=True)

    assert summary["totals"]["installed"] == 12
    new_staging_arns = _staging_arns_of_instances(extension_lab, _dr_tagged_instances(extension_lab))
    assert len(new_staging_arns) == 12
    extended, _count = _target_servers(extension_lab)
    assert set(extended) == set(already_before) | new_staging_arns
    assert summary["extension"]["totals"] == {"extended": 12, "already_extended": 0, "failed": 0, "left_out": 0}
    assert [run_["wave"] for run_ in summary["extension"]["runs"]] == [1, 2]
    # each wave's servers were extended before the next wave was sent
    assert run.stdout.index("Extension after wave 1") < run.stdout.index("Wave 2: sent the install to")

    history = _history(extension_lab)[0]
    assert history["extension"]["totals"]["extended"] == 12
    for arn in new_staging_arns:
        assert extended[arn]["tags"] == {"ExtendedFrom": STAGING, "DeploymentId": history["deployment_id"]}


def test_a_second_auto_extension_run_changes_nothing(extension_lab, tmp_path):
    calls_before = _extension_calls(extension_lab)

    run, summary = _deploy(extension_lab, tmp_path, auto_extend=True)

    assert _recap_changed(run.stdout) == 0
    assert summary["extension"]["totals"] == {"extended": 0, "already_extended": 12, "failed": 0, "left_out": 0}
    assert _extension_calls(extension_lab)["CreateExtendedSourceServer"] == calls_before["CreateExtendedSourceServer"]


def test_a_denied_target_role_warns_without_failing_the_deployment(extension_lab, tmp_path):
    lab = _fresh(extension_lab)
    run, summary = _deploy(lab, tmp_path, auto_extend=True, target_role=DENIED_TARGET_ROLE)

    assert summary["totals"]["installed"] == 12
    assert summary["extension"]["totals"]["failed"] == 12 and summary["extension"]["totals"]["extended"] == 0
    assert "Access denied while listing the target account's source servers" in run.stdout
    assert "target-account-role.yml" in run.stdout
    assert _extension_calls(lab)["CreateExtendedSourceServer"] == 0


def test_without_auto_extension_nothing_is_extended(extension_lab, tmp_path):
    lab = extension_lab
    calls_before = _extension_calls(lab)

    _run, summary = _deploy(lab, tmp_path, auto_extend=False)

    assert "extension" not in summary
    assert _extension_calls(lab) == calls_before
    extended, _count = _target_servers(lab)
    assert len(extended) == 3


def test_the_extension_playbook_plans_in_check_mode_then_extends_once(extension_lab):
    lab = extension_lab
    # staging holds 8 servers from before, 12 deployed by the tests above, and 3 already extended
    planned = _extend(lab, check=True)
    assert planned.returncode == 0, planned.stdout[-3000:]
    plan = _extension_result(planned)
    assert len(plan["would_extend"]) == 20 and len(plan["already_extended"]) == 3
    assert _extension_calls(lab)["CreateExtendedSourceServer"] == 0

    first = _extend(lab, drs_extension_metrics_namespace="DRSOrchestration/Extension")
    assert first.returncode == 0, first.stdout[-3000:]
    result = _extension_result(first)
    assert result["changed"] is True and len(result["extended"]) == 20
    cloudwatch = lab.client("cloudwatch", "us-east-1", lab.assume(TARGET_ROLE, EXTERNAL_ID))
    published = {(metric["MetricName"], tuple(d["Value"] for d in metric["Dimensions"]))
                 for metric in cloudwatch.list_metrics(Namespace="DRSOrchestration/Extension")["Metrics"]}
    names = ("ExtendedSourceServers", "ExtensionFailures", "AlreadyExtendedCount", "ExtensionDuration")
    assert published == {(name, dimensions) for name in names for dimensions in ((), (STAGING,))}
    assert all(entry["confirmed"] for entry in result["extended"])
    extended, count = _target_servers(lab)
    assert {entry["staging_source_server_arn"] for entry in result["extended"]} <= set(extended)
    assert len(extended) == 23 and count == 23

    second = _extend(lab)
    assert second.returncode == 0
    again = _extension_result(second)
    assert again["changed"] is False and again["extended"] == [] and len(again["already_extended"]) == 23


def test_extension_completes_with_30_percent_of_drs_calls_throttled(extension_lab):
    lab = extension_lab
    lab.reset()
    lab.control("faults", {"throttle": {"drs": 0.3}})

    run = _extend(lab)

    assert run.returncode == 0, run.stdout[-3000:]
    assert len(_extension_result(run)["extended"]) == 8
    assert sum(lab.stats()["faults"]["throttled"].values()) > 0
    extended, _count = _target_servers(lab)
    assert len(extended) == 11


@pytest.mark.parametrize("target, role, expected", [
    (UNINITIALIZED_TARGET, _role(UNINITIALIZED_TARGET, "DRSOrchestrationTargetRole"),
     ["Elastic Disaster Recovery is not initialized in target account 777777777777", "playbooks/setup_accounts.yml"]),
    (TARGET, DENIED_TARGET_ROLE,
     ["Access denied while listing the target account's source servers", "is not authorized to perform: drs:",
      "target-account-role.yml"]),
])
def test_a_target_that_cannot_extend_fails_with_the_setup_step(extension_lab, target, role, expected):
    lab = extension_lab
    lab.reset()

    run = _extend(lab, target=target, role=role)

    assert run.returncode != 0
    message = _extension_result(run)["msg"]
    for fragment in expected:
        assert fragment in message
    assert lab.stats()["calls"].get(target, {}).get("drs", {}).get("CreateExtendedSourceServer", 0) == 0


@pytest.fixture(scope="module")
def capacity_lab(lab_factory):
    return lab_factory("capacity-limit")


def _extensible(lab):
    drs = lab.client("drs", "us-east-1", lab.assume(TARGET_ROLE, EXTERNAL_ID))
    return [item["arn"] for page in drs.get_paginator("list_extensible_source_servers").paginate(stagingAccountID=STAGING)
            for item in page["items"]]


def test_capacity_warnings_come_at_80_then_90_percent_and_the_limit_is_never_passed(capacity_lab):
    # the target holds 235 of 300 (78%); 10 more make 245 (81.7%): only the 80% warning
    first = _extend(capacity_lab, drs_extension_staging_accounts=[
        {"account_id": STAGING, "regions": ["us-east-1"], "source_server_arns": _extensible(capacity_lab)[:10]}])
    assert first.returncode == 0, first.stdout[-3000:]
    result = _extension_result(first)
    assert result["capacity"]["after"] == 245
    assert [w for w in result["extension_warnings"] if "warning threshold" in w] == [
        "After extension target account 444444444444 in us-east-1 holds 245 of its 300 source servers (81.7%), "
        "at or above the 80% warning threshold"]

    # the other 60 would make 305: 55 fit, 5 are left out, and both thresholds warn
    second = _extend(capacity_lab)
    assert second.returncode == 0, second.stdout[-3000:]
    result = _extension_result(second)
    assert len(result["extended"]) == 55 and len(result["left_out"]) == 5
    assert result["capacity"]["after"] == 300 and result["capacity"]["thresholds_reached"] == [80, 90]
    assert "90% warning threshold" in second.stdout and "5 server(s) were not extended" in second.stdout
    _extended, count = _target_servers(capacity_lab)
    assert count == 300
    assert not any(key.endswith("ServiceQuotaExceededException") for key in capacity_lab.stats()["errors"])


def test_a_capacity_limit_above_the_service_quota_stops_at_the_quota(capacity_lab):
    run = _extend(capacity_lab, drs_extension_capacity_limit=310)

    assert run.returncode == 0, run.stdout[-3000:]
    result = _extension_result(run)
    assert result["extended"] == [] and len(result["left_out"]) == 5
    assert all("the service refused more source servers" in entry["reason"] for entry in result["left_out"])
    assert capacity_lab.stats()["errors"]["drs:CreateExtendedSourceServer:ServiceQuotaExceededException"] == 1


def _dr_tagged_instances(lab):
    ec2 = lab.client("ec2", "us-east-1", lab.assume(_role(SOURCE, "DRSOrchestrationSourceRole"), EXTERNAL_ID))
    pages = ec2.get_paginator("describe_instances").paginate(Filters=[{"Name": "tag:dr:enabled", "Values": ["true"]}])
    return {instance["InstanceId"] for page in pages for reservation in page["Reservations"]
            for instance in reservation["Instances"]}


def _history(lab):
    pages = lab.client("dynamodb").get_paginator("scan").paginate(TableName=HISTORY_TABLE)
    items = [{key: TypeDeserializer().deserialize(value) for key, value in item.items()}
             for page in pages for item in page["Items"]]
    # the runs' account items, not their wave items (which the wave gate reads)
    return sorted((item for item in items if item.get("record_type") == "deployment"),
                  key=lambda item: item["timestamp"], reverse=True)
