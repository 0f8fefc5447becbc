"""Reconcile, end to end against the lab: playbooks/reconcile.yml on an estate with every kind of drift, in check
mode (nothing changes), then for real with retirement (the missing agents installed, the servers of the untagged
and terminated instances deleted, except the one with a drill's recovery instance), then again (nothing changes).
Expectations come from the lab's own state."""

import json
import re
from pathlib import Path

import pytest

from tests.e2e.conftest import run_playbook

RECONCILE = "playbooks/reconcile.yml"
DEPLOY = "playbooks/deploy_agents.yml"
SETUP = "playbooks/setup_accounts.yml"
HISTORY_SETUP = "playbooks/setup_history.yml"
SCENARIO = Path(__file__).resolve().parent / "scenarios" / "reconcile.yml"
EXTERNAL_ID = "lab-reconcile-external-id"
SOURCE, STAGING, TARGET = "222222222222", "333333333333", "444444444444"
REGION = "us-east-1"
RECONCILE_TASK = "drs_orchestration.agent_deployer.drs_reconcile : Compare the DR-tagged instances with the DRS source servers"
DEPLOY_TASK = "Install the agents on the tagged instances that miss them"
DRS_CHANGES = ("DisconnectSourceServer", "DeleteSourceServer")
# the lab's job wait and the scenario's launch time for the recovered group
DRILL_SECONDS = 30 + 60


def _role(account_id, name):
    return f"arn:aws:iam::{account_id}:role/{name}"


SOURCE_ROLE = _role(SOURCE, "DRSOrchestrationSourceRole")
STAGING_ROLE = _role(STAGING, "DRSOrchestrationStagingRole")
TARGET_ROLE = _role(TARGET, "DRSOrchestrationTargetRole")


def _client(lab, service, role):
    return lab.client(service, REGION, lab.assume(role, EXTERNAL_ID))


def _instances(lab):
    """{Name: instance} of the source account, every state."""
    ec2 = _client(lab, "ec2", SOURCE_ROLE)
    found = {}
    for page in ec2.get_paginator("describe_instances").paginate():
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                tags = {tag["Key"]: tag["Value"] for tag in instance.get("Tags", [])}
                found[tags["Name"]] = instance
    return found


def _servers(lab, role):
    drs = _client(lab, "drs", role)
    return [server for page in drs.get_paginator("describe_source_servers").paginate(filters={})
            for server in page["items"]]


def _staging_by_instance(lab):
    """{instance id: [servers]} in the staging account."""
    found = {}
    for server in _servers(lab, STAGING_ROLE):
        instance_id = server["sourceProperties"]["identificationHints"].get("awsInstanceID")
        if instance_id:
            found.setdefault(instance_id, []).append(server)
    return found


def _ids(instances, prefix):
    return sorted(instance["InstanceId"] for name, instance in instances.items() if name.startswith(prefix))


def _install_commands(lab):
    return sum(1 for command in lab.control("invocations")["commands"] if command["installs_agent"])


def _drs_changes(lab):
    calls = lab.stats()["calls"]
    return {account: {operation: calls.get(account, {}).get("drs", {}).get(operation, 0) for operation in DRS_CHANGES}
            for account in (STAGING, TARGET)}


def _launch_drill(lab, server_id):
    """A drill from a staging server, with the lab's clock moved on until its recovery instance is up."""
    drs = _client(lab, "drs", STAGING_ROLE)
    job = drs.start_recovery(sourceServers=[{"sourceServerID": server_id}], isDrill=True)["job"]
    lab.control("clock", {"advance_seconds": DRILL_SECONDS + 10})
    [job] = drs.describe_jobs(filters={"jobIDs": [job["jobID"]]})["items"]
    assert [server["launchStatus"] for server in job["participatingServers"]] == ["LAUNCHED"], job
    [server] = drs.describe_source_servers(filters={"sourceServerIDs": [server_id]})["items"]
    assert server["recoveryInstanceId"], server
    return server["recoveryInstanceId"]


def _recap_changed(stdout):
    return int(re.search(r"localhost\s*:.*changed=(\d+)", stdout).group(1))


def _settings(tmp_path, **more):
    settings = {
        "drs_reconcile_accounts": [{"account_id": SOURCE, "role_arn": SOURCE_ROLE, "regions": [REGION],
                                    "staging_account_id": STAGING, "target_account_id": TARGET}],
        "drs_reconcile_staging_accounts": [{"account_id": STAGING, "role_arn": STAGING_ROLE}],
        "drs_reconcile_target_accounts": [{"account_id": TARGET, "role_arn": TARGET_ROLE}],
        "drs_reconcile_external_id": EXTERNAL_ID,
        "drs_agent_deploy_history_spool_dir": str(tmp_path / "spool"),
        "drs_agent_deploy_ssm_online_timeout": 5,
        "drs_agent_deploy_poll_interval": 2,
        "drs_agent_deploy_registration_timeout": 60,
    }
    settings.update(more)
    return settings


@pytest.fixture(scope="module")
def estate(lab_factory, tmp_path_factory):
    """The scenario after a deployment whose install failed on the failing instance (recorded in the history),
    with one leaving instance untagged, the other terminated (its server extended into the target first), the
    recovered instance untagged after a drill launched a recovery instance from its server, and the orphan's
    staging server deleted."""
    lab = lab_factory(SCENARIO)
    lab.reset()
    setup = run_playbook(lab, SETUP, extra_vars={
        "drs_account_setup_orchestration_account_id": "111111111111",
        "drs_account_setup_external_id": EXTERNAL_ID,
        "drs_account_setup_deploy_roles": False,
        "drs_account_setup_accounts": [{"account_id": SOURCE, "role": "source", "regions": [REGION],
                                        "assume_role_arn": SOURCE_ROLE, "external_id": EXTERNAL_ID}],
    })
    assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-2000:]
    assert run_playbook(lab, HISTORY_SETUP).returncode == 0
    instances = _instances(lab)
    failing = _ids(instances, "failing-")
    spool = tmp_path_factory.mktemp("spool")
    deploy = run_playbook(lab, DEPLOY, extra_vars={
        "drs_deploy_hosts": "localhost",
        "drs_agent_deploy_accounts": [{"account_id": SOURCE, "role_arn": SOURCE_ROLE, "regions": [REGION],
                                       "staging_account_id": STAGING}],
        "drs_agent_deploy_staging_accounts": [{"account_id": STAGING, "role_arn": STAGING_ROLE}],
        "drs_agent_deploy_external_id": EXTERNAL_ID,
        "drs_agent_deploy_instance_ids": failing,
        "drs_agent_deploy_limit_to_instance_ids": True,
        "drs_agent_deploy_max_failure_rate": 1.0,
        "drs_agent_deploy_ssm_online_timeout": 5,
        "drs_agent_deploy_poll_interval": 2,
        "drs_agent_deploy_history_spool_dir": str(spool),
    })
    assert deploy.returncode == 0, deploy.stdout[-3000:] + deploy.stderr[-2000:]

    untagged, terminated = instances["leaving-01"]["InstanceId"], instances["leaving-02"]["InstanceId"]
    ec2 = _client(lab, "ec2", SOURCE_ROLE)
    ec2.delete_tags(Resources=[untagged], Tags=[{"Key": "dr:enabled"}])
    staging = _staging_by_instance(lab)
    [terminated_server] = staging[terminated]
    target_drs = _client(lab, "drs", TARGET_ROLE)
    extended = target_drs.create_extended_source_server(sourceServerArn=terminated_server["arn"])["sourceServer"]
    ec2.terminate_instances(InstanceIds=[terminated])
    [recovered] = _ids(instances, "recovered-")
    [recovered_server] = staging[recovered]
    recovery_instance = _launch_drill(lab, recovered_server["sourceServerID"])
    ec2.delete_tags(Resources=[recovered], Tags=[{"Key": "dr:enabled"}])
    [orphan] = [server for server in _servers(lab, TARGET_ROLE)
                if server["sourceProperties"]["identificationHints"]["hostname"] == "orphan-01"]
    staging_drs = _client(lab, "drs", STAGING_ROLE)
    orphan_staging_id = orphan["stagingArea"]["stagingSourceServerArn"].rsplit("/", 1)[1]
    staging_drs.disconnect_source_server(sourceServerID=orphan_staging_id)
    staging_drs.delete_source_server(sourceServerID=orphan_staging_id)
    return {"lab": lab, "instances": _instances(lab), "untagged": untagged, "terminated": terminated,
            "terminated_server": terminated_server["sourceServerID"], "extended": extended["sourceServerID"],
            "orphan": orphan["sourceServerID"], "failing": failing, "recovered": recovered,
            "recovered_server": recovered_server["sourceServerID"], "recovery_instance": recovery_instance}


def _result(run):
    return run.task(RECONCILE_TASK)


def test_check_mode_lists_every_kind_of_drift_and_changes_nothing(estate, tmp_path):
    lab, instances = estate["lab"], estate["instances"]
    staging_before = _staging_by_instance(lab)
    commands_before, changes_before = _install_commands(lab), _drs_changes(lab)
    report_file = tmp_path / "drift.json"

    run = run_playbook(lab, RECONCILE, check=True, extra_vars=_settings(
        tmp_path, reconcile_retire=True, drs_reconcile_report_file=str(report_file)))

    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
    result = _result(run)
    reasons = {entry["instance_id"]: entry["reason"] for entry in result["drift"]["tagged_not_protected"]}
    expected = {instance_id: "never_installed" for instance_id in _ids(instances, "fresh-")}
    expected.update({instance_id: "failed" for instance_id in estate["failing"]})
    expected.update({instance_id: "stale_record" for instance_id in _ids(instances, "stale-")})
    assert reasons == expected
    [failed] = [entry for entry in result["drift"]["tagged_not_protected"] if entry["reason"] == "failed"]
    assert failed["last_recorded"]["status"] == "failed" and failed["installable"] is False
    [stale] = [entry for entry in result["drift"]["tagged_not_protected"] if entry["reason"] == "stale_record"]
    assert stale["source_server_id"] == staging_before[stale["instance_id"]][0]["sourceServerID"]
    assert sorted(entry["instance_id"] for entry in result["drift"]["untagged"]) == sorted(
        [estate["untagged"], estate["recovered"]])
    [terminated] = result["drift"]["terminated"]
    assert (terminated["instance_id"], terminated["state"]) == (estate["terminated"], "terminated")
    assert [server["source_server_id"] for server in terminated["extended_servers"]] == [estate["extended"]]
    assert [entry["source_server_id"] for entry in result["drift"]["extension_errors"]] == [estate["orphan"]]
    # the protected instances are no drift
    assert result["counts"]["protected"] == len(_ids(instances, "protected-"))
    assert result["install_instance_ids"] == sorted(_ids(instances, "fresh-") + _ids(instances, "stale-"))
    assert sorted(entry["instance_id"] for entry in result["retire"]["would_retire"]) == sorted(
        [estate["untagged"], estate["terminated"]])
    # the server with a recovery instance is not even proposed
    assert [entry["source_server_id"] for entry in result["retire"]["kept"]] == [estate["recovered_server"]]
    assert result["changed"] is True
    # nothing was sent, disconnected or deleted, and the deploy did not run
    assert run.task(DEPLOY_TASK).get("skipped") is True
    assert _install_commands(lab) == commands_before
    assert _drs_changes(lab) == changes_before
    assert {key: [server["sourceServerID"] for server in value] for key, value in _staging_by_instance(lab).items()} \
        == {key: [server["sourceServerID"] for server in value] for key, value in staging_before.items()}
    report = json.loads(report_file.read_text())
    assert report["drift"] == result["drift"] and report["check_mode"] is True


def test_a_real_run_installs_what_is_missing_and_retires_untagged_and_terminated_unless_recovered(estate, tmp_path):
    lab, instances = estate["lab"], estate["instances"]
    extended_before = {server["sourceServerID"] for server in _servers(lab, TARGET_ROLE)}
    changes_before = _drs_changes(lab)

    run = run_playbook(lab, RECONCILE, extra_vars=_settings(tmp_path, reconcile_retire=True))

    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
    result = _result(run)
    staging = _staging_by_instance(lab)
    # one live server each: the stale record was reconnected, not duplicated
    for instance_id in _ids(instances, "fresh-") + _ids(instances, "stale-"):
        assert [server["dataReplicationInfo"]["dataReplicationState"] != "DISCONNECTED"
                for server in staging[instance_id]] == [True], instance_id
    # the failed install is not sent again until its cause is fixed
    assert estate["failing"][0] not in staging
    assert estate["failing"][0] not in result["install_instance_ids"]
    assert estate["untagged"] not in staging and estate["terminated"] not in staging
    extended_after = {server["sourceServerID"] for server in _servers(lab, TARGET_ROLE)}
    assert extended_before - extended_after == {estate["extended"]}
    assert sorted(entry["instance_id"] for entry in result["retire"]["retired"]) == sorted(
        [estate["untagged"], estate["terminated"]])
    [retired] = [entry for entry in result["retire"]["retired"] if entry["instance_id"] == estate["terminated"]]
    assert retired["deleted"] == [estate["extended"], estate["terminated_server"]]
    # the protected instances' servers are untouched
    for instance_id in _ids(instances, "protected-"):
        assert len(staging[instance_id]) == 1
    # the untagged instance's server with a recovery instance is kept, connected, and the result says why; only
    # the retired servers were disconnected (two in staging, the extended one in the target)
    [kept] = result["retire"]["kept"]
    assert (kept["instance_id"], kept["source_server_id"]) == (estate["recovered"], estate["recovered_server"])
    assert kept["reason"] == f"it has the recovery instance {estate['recovery_instance']}"
    [server] = staging[estate["recovered"]]
    assert server["sourceServerID"] == estate["recovered_server"]
    assert server["recoveryInstanceId"] == estate["recovery_instance"]
    assert server["dataReplicationInfo"]["dataReplicationState"] != "DISCONNECTED"
    changes = _drs_changes(lab)
    assert {account: {operation: changes[account][operation] - changes_before[account][operation]
                      for operation in DRS_CHANGES} for account in changes} == {
        STAGING: {"DisconnectSourceServer": 2, "DeleteSourceServer": 2},
        TARGET: {"DisconnectSourceServer": 1, "DeleteSourceServer": 1}}


def test_a_second_run_changes_nothing(estate, tmp_path):
    lab, instances = estate["lab"], estate["instances"]
    commands_before, changes_before = _install_commands(lab), _drs_changes(lab)

    run = run_playbook(lab, RECONCILE, extra_vars=_settings(tmp_path, reconcile_retire=True),
                       env={"ANSIBLE_STDOUT_CALLBACK": "default"})

    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-2000:]
    assert _recap_changed(run.stdout) == 0
    assert _install_commands(lab) == commands_before
    assert _drs_changes(lab) == changes_before
    # what is left is what a run cannot fix: the failed install, the orphan extended server to delete by hand, and
    # the untagged instance's server kept for its recovery instance (the only one no longer tagged)
    assert f"{estate['failing'][0]} (failing-01" in run.stdout and ": failed:" in run.stdout
    assert estate["orphan"] in run.stdout
    assert f"Kept {estate['recovered_server']} ({estate['recovered']}, running) in {STAGING}/{REGION}: it has the " \
           f"recovery instance {estate['recovery_instance']}" in run.stdout
    assert "Protected but no longer tagged:\n" in run.stdout and "1 no longer tagged" in run.stdout
    assert "Protected but the instance is terminated" not in run.stdout
    assert len(_ids(instances, "protected-")) + 3 == int(
        re.search(r"(\d+) tagged instance\(s\), (\d+) protected", run.stdout).group(2))


def test_bad_input_is_refused_by_name_before_any_aws_call(estate, tmp_path):
    lab = estate["lab"]
    calls_before = lab.stats()["total_calls"]
    settings = _settings(tmp_path, drs_reconcile_retier=True)
    settings["drs_reconcile_accounts"][0]["regions"] = ["us-east-1", "mars-1"]

    run = run_playbook(lab, RECONCILE, extra_vars=settings, env={"ANSIBLE_STDOUT_CALLBACK": "default"})

    assert run.returncode != 0
    assert "drs_reconcile_accounts[0] (222222222222) regions[1] 'mars-1' is not an AWS region name" in run.stdout
    assert "drs_reconcile_retier is not a variable of this role (did you mean drs_reconcile_retire?)" in run.stdout
    assert EXTERNAL_ID not in run.stdout + run.stderr
    assert lab.stats()["total_calls"] == calls_before
