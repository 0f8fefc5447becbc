"""drs_ssm_install run by ansible-playbook against the lab, checked against what the lab's SSM and DRS say."""

import math
from collections import Counter

import pytest
import yaml

from tests.e2e.conftest import run_playbook
from tests.lab_fixture import REPO_ROOT

SCENARIO = REPO_ROOT / "tests" / "e2e" / "scenarios" / "ssm-install.yml"
CROSS_ACCOUNT_DOCUMENT = REPO_ROOT / "roles" / "drs_account_setup" / "files" / "DRSOrchestration-InstallDRAgentCrossAccount.yml"
TASK = "Install the agent"
DEMO_SOURCE_ROLE = "arn:aws:iam::222222222222:role/DRSOrchestrationSourceRole"
DEMO_STAGING_ROLE = "arn:aws:iam::333333333333:role/DRSOrchestrationStagingRole"
EXTERNAL_ID = "lab-demo-external-id"

# The failure table of the DRS troubleshooting guide: which category each kind of install failure
# belongs to, and a word its remediation must contain to be of use.
CATEGORY_OF_OUTCOME = {
    "account_not_initialized": "account_not_initialized",
    "credentials_invalid": "credentials",
    "registered_elsewhere": "registered_elsewhere",
    "reboot_required": "reboot_required",
    "kernel_unsupported": "unsupported_os",
    "disk_too_large": "disks",
    "secure_boot_blocked": "security_modules",
    "network_blocked": "network",
    "undeliverable": "ssm_delivery",
    "execution_timeout": "timeout",
}
REMEDIATION_WORD = {
    "account_not_initialized": "Initialize",
    "credentials": "AWSElasticDisasterRecoveryEc2InstancePolicy",
    "registered_elsewhere": "uninstall",
    "reboot_required": "Restart",
    "unsupported_os": "kernel",
    "disks": "16 TiB",
    "security_modules": "noexec",
    "network": "443",
    "ssm_delivery": "Online",
    "timeout": "timeout",
}


@pytest.fixture(scope="module")
def install_lab(lab_factory):
    return lab_factory(SCENARIO)


@pytest.fixture(scope="module")
def single(lab_factory):
    return lab_factory("single-account")


@pytest.fixture(scope="module")
def demo(lab_factory):
    return lab_factory("demo")


# --- what the lab says ---

def tagged_instances(lab, credentials=None, region="us-east-1", name_prefix=""):
    ec2 = lab.client("ec2", region, credentials)
    found = []
    for page in ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "tag:dr:enabled", "Values": ["true"]}]):
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                name = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}.get("Name", "")
                if name.startswith(name_prefix):
                    found.append(instance["InstanceId"])
    return sorted(found)


def ssm_ping_status(lab, instance_ids, credentials=None, region="us-east-1"):
    ssm = lab.client("ssm", region, credentials)
    status = {}
    for page in ssm.get_paginator("describe_instance_information").paginate(
            Filters=[{"Key": "InstanceIds", "Values": instance_ids}]):
        for info in page["InstanceInformationList"]:
            status[info["InstanceId"]] = info["PingStatus"]
    return status


def registered_instances(lab, credentials=None, region="us-east-1"):
    drs = lab.client("drs", region, credentials)
    return {server["sourceProperties"]["identificationHints"]["awsInstanceID"]
            for page in drs.get_paginator("describe_source_servers").paginate(filters={})
            for server in page["items"]
            if server["dataReplicationInfo"]["dataReplicationState"] != "DISCONNECTED"}


def invocation_statuses(lab, command_ids, credentials=None, region="us-east-1"):
    ssm = lab.client("ssm", region, credentials)
    return {invocation["InstanceId"]: invocation["Status"]
            for command_id in command_ids
            for page in ssm.get_paginator("list_command_invocations").paginate(CommandId=command_id)
            for invocation in page["CommandInvocations"]}


def send_command_calls(lab):
    return sum(services.get("ssm", {}).get("SendCommand", 0) for services in lab.stats()["calls"].values())


def install(lab, instance_ids, check=False, extra_args=(), **options):
    run = run_playbook(lab, "ssm_install.yml", dict(options, instance_ids=instance_ids), check=check,
                       extra_args=extra_args)
    return run, run.task(TASK)


def statuses(result):
    found = {}
    for entry in result["results"]:
        found.setdefault(entry["status"], set()).add(entry["instance_id"])
    return found


def group_ids(lab, group):
    """A scenario group's instances (their Name tags are ``<group>-NNN``)."""
    return tagged_instances(lab, name_prefix=f"{group}-")


# --- single account ---

def test_single_account_install_reaches_every_online_instance_and_a_rerun_changes_nothing(single):
    single.reset()
    ids = tagged_instances(single)
    ping = ssm_ping_status(single, ids)
    online = {i for i, status in ping.items() if status == "Online"}

    run, result = install(single, ids, agent_tags={"Application": "billing"})

    assert run.returncode == 0, run.stdout + run.stderr
    assert result["changed"] is True
    found = statuses(result)
    assert found["installed"] == registered_instances(single)
    assert found["installed"] | found["failed"] == online
    command_ids = [command["command_id"] for command in result["commands"]]
    ssm_says = invocation_statuses(single, command_ids)
    assert {i for i, status in ssm_says.items() if status == "Success"} == found["installed"]
    assert {i for i, status in ssm_says.items() if status == "Failed"} == found["failed"]
    assert send_command_calls(single) == math.ceil(len(online) / 50)
    assert found["skipped_ssm_offline"] == {i for i, status in ping.items() if status == "ConnectionLost"}
    assert found["skipped_not_managed"] == set(ids) - set(ping)
    declared = yaml.safe_load((REPO_ROOT / "lab" / "scenarios" / "single-account.yml").read_text())
    possible = {CATEGORY_OF_OUTCOME[outcome] for group in declared["instance_groups"]
                for outcome in (group.get("install", {}).get("outcome") or {}) if outcome != "success"}
    for entry in result["results"]:
        if entry["status"] == "failed":
            assert entry["error_category"] in possible
            assert REMEDIATION_WORD[entry["error_category"]] in entry["remediation"]
            assert entry["stderr_tail"] and entry["response_code"] == 1
        if entry["status"].startswith("skipped"):
            assert entry["reason"]
        if entry["status"] == "installed":
            assert entry["source_server_id"].startswith("s-") and entry["error_category"] is None
    figures = result["figures"]
    assert figures["by_status"]["installed"] == figures["installed"] == len(found["installed"])
    assert figures["success_rate"] == round(len(found["installed"]) / len(online), 4)

    sent_before = send_command_calls(single)
    rerun, again = install(single, sorted(found["installed"]))
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert again["changed"] is False
    assert again["figures"]["by_status"]["already_registered"] == len(found["installed"])
    assert send_command_calls(single) == sent_before


def test_check_mode_plans_from_the_lab_and_sends_nothing(single):
    single.reset()
    ids = tagged_instances(single)
    ping = ssm_ping_status(single, ids)

    run, result = install(single, ids, check=True)

    assert run.returncode == 0, run.stdout + run.stderr
    assert result["changed"] is False
    assert send_command_calls(single) == 0
    assert set(result["plan"]["would_install"]) == {i for i, status in ping.items() if status == "Online"}
    skipped = {entry["instance_id"]: entry["status"] for entry in result["plan"]["would_skip"]}
    assert skipped == {**{i: "skipped_ssm_offline" for i, s in ping.items() if s != "Online"},
                       **{i: "skipped_not_managed" for i in set(ids) - set(ping)}}


# --- scale, every failure, unregistered, unreachable, throttling ---

def test_a_wave_of_120_instances_goes_out_in_batches_of_50(install_lab):
    install_lab.reset()
    ids = group_ids(install_lab, "fleet")
    assert len(ids) == 120

    run, result = install(install_lab, ids, poll_interval=30)
    calls = install_lab.stats()["calls"]["111111111111"]

    assert run.returncode == 0, run.stdout + run.stderr
    assert statuses(result) == {"installed": set(ids)}
    assert registered_instances(install_lab) == set(ids)
    assert calls["ssm"]["SendCommand"] == 3
    assert sorted(len(command["instance_ids"]) for command in result["commands"]) == [20, 50, 50]
    # calls grow with looks, not with instances: a look lists the commands once (the two listings of installs in
    # flight before sending aside), reads a command's invocations only when its counts moved, and lists DRS once
    looks = calls["ssm"]["ListCommands"] - 2
    slowest = max(entry["duration_seconds"] for entry in result["results"])
    assert 1 < looks <= slowest / 30 + 10
    assert calls["drs"]["DescribeSourceServers"] <= looks + 1
    assert calls["ssm"]["ListCommandInvocations"] <= 3 * looks
    assert "GetCommandInvocation" not in calls["ssm"]


def test_every_failure_is_categorized_with_a_remediation_and_fails_the_task(install_lab):
    install_lab.reset()
    ids = group_ids(install_lab, "failing")
    declared = yaml.safe_load(SCENARIO.read_text())
    outcomes = next(g for g in declared["instance_groups"] if g["name"] == "failing")["install"]["outcome"]

    # the overall timeout is longer than the step timeout of the hung install, so SSM times it out itself
    run, result = install(install_lab, ids, max_failure_rate=0, timeout=4200)

    assert run.returncode != 0
    assert result["failed"] is True
    assert f"{len(ids)} of {len(ids)} attempted instances did not install" in result["msg"]
    assert Counter(entry["error_category"] for entry in result["results"]) == Counter(
        {CATEGORY_OF_OUTCOME[outcome]: count for outcome, count in outcomes.items()})
    for entry in result["results"]:
        assert entry["status"] == "failed"
        assert REMEDIATION_WORD[entry["error_category"]] in entry["remediation"]
        assert "\n" not in entry["remediation"]
    timed_out = next(e for e in result["results"] if e["error_category"] == "timeout")
    assert timed_out["ssm_status_details"] == "Execution Timed Out"


def test_ssm_success_that_never_registers_is_reported(install_lab):
    install_lab.reset()
    ids = group_ids(install_lab, "unregistered")

    run, result = install(install_lab, ids, registration_timeout=6)

    assert run.returncode == 0, run.stdout + run.stderr
    assert statuses(result) == {"not_registered_after_success": set(ids)}
    assert registered_instances(install_lab) == set()
    assert set(invocation_statuses(install_lab, [c["command_id"] for c in result["commands"]]).values()) == {"Success"}
    for entry in result["results"]:
        assert "no source server" in entry["remediation"] and "checksum" in entry["stdout_tail"]


def test_offline_and_unmanaged_instances_are_skipped_with_reasons(install_lab):
    install_lab.reset()
    ids = group_ids(install_lab, "unreachable")
    ping = ssm_ping_status(install_lab, ids)

    run, result = install(install_lab, ids, ssm_online_timeout=3)

    assert run.returncode == 0, run.stdout + run.stderr
    assert result["changed"] is False and send_command_calls(install_lab) == 0
    found = {entry["instance_id"]: entry for entry in result["results"]}
    offline = next(i for i, status in ping.items() if status == "ConnectionLost")
    unmanaged = next(i for i in ids if i not in ping)
    assert found[offline]["status"] == "skipped_ssm_offline" and "ConnectionLost" in found[offline]["reason"]
    assert found[unmanaged]["status"] == "skipped_not_managed" and "not managed" in found[unmanaged]["reason"]


def test_throttling_of_a_third_of_drs_and_ssm_calls_still_completes(install_lab):
    install_lab.reset()
    ids = group_ids(install_lab, "fleet")[:60]
    install_lab.control("faults", {"throttle": {"drs": {"*": 0.3}, "ssm": {"*": 0.3}}})
    try:
        run, result = install(install_lab, ids)
    finally:
        throttled = install_lab.stats()["faults"].get("throttled", {})
        install_lab.control("faults", {"clear": True})

    assert run.returncode == 0, run.stdout + run.stderr
    assert statuses(result) == {"installed": set(ids)}
    assert registered_instances(install_lab) == set(ids)
    assert any(key.startswith("ssm:") for key in throttled) and any(key.startswith("drs:") for key in throttled)


# --- cross-account ---

def create_cross_account_document(lab, credentials, region):
    ssm = lab.client("ssm", region, credentials)
    ssm.create_document(Name="DRSOrchestration-InstallDRAgentCrossAccount", DocumentType="Command",
                        DocumentFormat="YAML", Content=CROSS_ACCOUNT_DOCUMENT.read_text())


def test_cross_account_install_registers_in_the_staging_account_and_keeps_secrets_out_of_the_output(demo):
    demo.reset()
    source = demo.assume(DEMO_SOURCE_ROLE, EXTERNAL_ID)
    staging = demo.assume(DEMO_STAGING_ROLE, EXTERNAL_ID)
    create_cross_account_document(demo, source, "us-east-1")
    ids = tagged_instances(demo, source)
    online = {i for i, status in ssm_ping_status(demo, ids, source).items() if status == "Online"}

    def keys(credentials):
        return {"access_key": credentials["aws_access_key_id"], "secret_key": credentials["aws_secret_access_key"],
                "session_token": credentials["aws_session_token"]}

    run, result = install(demo, ids, extra_args=("-vvv",), source_credentials=keys(source),
                          staging_credentials=keys(staging), staging_account_id="333333333333",
                          agent_tags={"Application": "orders"})

    assert run.returncode == 0, run.stdout + run.stderr
    found = statuses(result)
    assert found["installed"] == registered_instances(demo, staging)
    assert found["installed"] | found["failed"] == online
    assert all(c["document_name"] == "DRSOrchestration-InstallDRAgentCrossAccount" and
               c["parameters"]["AccountId"] == ["333333333333"] for c in result["commands"])
    declared = yaml.safe_load((REPO_ROOT / "lab" / "scenarios" / "demo.yml").read_text())
    possible = {CATEGORY_OF_OUTCOME[outcome] for group in declared["instance_groups"] if group["region"] == "us-east-1"
                for outcome in (group.get("install", {}).get("outcome") or {}) if outcome != "success"}
    assert {entry["error_category"] for entry in result["results"] if entry["status"] == "failed"} <= possible
    output = run.stdout + run.stderr
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in output  # the arguments are shown, masked
    for secret in (source["aws_secret_access_key"], source["aws_session_token"],
                   staging["aws_secret_access_key"], staging["aws_session_token"]):
        assert secret not in output


def test_cross_account_without_staging_credentials_is_refused_before_anything_is_sent(demo):
    demo.reset()
    source = demo.assume(DEMO_SOURCE_ROLE, EXTERNAL_ID)
    ids = tagged_instances(demo, source)
    keys = {"access_key": source["aws_access_key_id"], "secret_key": source["aws_secret_access_key"],
            "session_token": source["aws_session_token"]}

    run, result = install(demo, ids, source_credentials=keys, staging_account_id="333333333333")

    assert run.returncode != 0
    assert "staging_access_key" in result["msg"] and "222222222222" in result["msg"]
    assert send_command_calls(demo) == 0


def test_cross_account_without_the_collection_document_says_how_to_create_it(demo):
    demo.reset()
    source = demo.assume(DEMO_SOURCE_ROLE, EXTERNAL_ID)
    staging = demo.assume(DEMO_STAGING_ROLE, EXTERNAL_ID)
    ids = tagged_instances(demo, source)

    def keys(credentials):
        return {"access_key": credentials["aws_access_key_id"], "secret_key": credentials["aws_secret_access_key"],
                "session_token": credentials["aws_session_token"]}

    run, result = install(demo, ids, source_credentials=keys(source), staging_credentials=keys(staging),
                          staging_account_id="333333333333")

    assert run.returncode != 0
    assert "drs_account_setup" in result["msg"] and result["changed"] is False
    assert send_command_calls(demo) == 1  # the refused one
