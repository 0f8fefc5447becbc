"""drs_replication_health run by ansible-playbook against the lab: verdicts from DRS's own answers, a wait that
ends when nothing can change any more or at its deadline, and calls that do not grow with the servers."""

import json

import pytest
from boto3.dynamodb.types import TypeDeserializer

from tests.e2e.conftest import run_playbook
from tests.lab_fixture import REPO_ROOT

SCENARIO = REPO_ROOT / "tests" / "e2e" / "scenarios" / "replication.yml"
TASK = "Read the servers' replication health"


@pytest.fixture(scope="module")
def lab(lab_factory):
    return lab_factory(SCENARIO)


def _group_ids(lab, group):
    ec2 = lab.client("ec2", "us-east-1")
    pages = ec2.get_paginator("describe_instances").paginate(
        Filters=[{"Name": "tag:Name", "Values": [f"{group}-*"]}])
    return [instance["InstanceId"] for page in pages for reservation in page["Reservations"]
            for instance in reservation["Instances"]]


def health(lab, **options):
    run = run_playbook(lab, "replication_health.yml", extra_vars=options)
    return run, run.task(TASK)


def by_instance(result):
    return {server["instance_id"]: server for server in result["servers"]}


def test_each_server_gets_the_verdict_its_replication_earns(lab):
    lab.reset()
    run, result = health(lab, rpo_seconds=300)
    assert run.returncode == 0, run.stdout
    servers = by_instance(result)
    verdicts = {group: sorted(servers[iid]["verdict"] for iid in _group_ids(lab, group))
                for group in ("steady", "stuck", "behind", "fresh")}
    assert verdicts == {"steady": ["healthy"] * 3, "stuck": ["stalled", "stalled"], "behind": ["syncing"],
                        "fresh": ["syncing", "syncing"]}
    stuck = sorted((servers[iid] for iid in _group_ids(lab, "stuck")), key=lambda server: server["error"])
    assert [(server["error"], server["error_category"], server["failed_step"]) for server in stuck] == [
        ("FAILED_TO_CONNECT_AGENT_TO_REPLICATION_SERVER", "network", "CONNECT_AGENT_TO_REPLICATION_SERVER"),
        ("UNSTABLE_NETWORK", "network", None)]
    assert all("1500" in server["remediation"] for server in stuck)
    [behind] = [servers[iid] for iid in _group_ids(lab, "behind")]
    assert behind["lag_seconds"] == 900 and behind["backlog_bytes"] > 0 and "over the RPO of 300 s" in behind["reason"]
    # the lab's DRS says the same
    drs = lab.client("drs", "us-east-1")
    listed = {server["sourceServerID"]: server for page in drs.get_paginator("describe_source_servers").paginate(filters={})
              for server in page["items"]}
    for server in result["servers"]:
        assert server["replication_state"] == listed[server["source_server_id"]]["dataReplicationInfo"]["dataReplicationState"]
    # instances asked for without a source server are named, not dropped
    [unregistered] = _group_ids(lab, "unregistered")
    asked = health(lab, instance_ids=[unregistered] + _group_ids(lab, "steady"))[1]
    assert by_instance(asked)[unregistered]["verdict"] == "not_found"
    assert asked["counts"] == {"healthy": 3, "syncing": 0, "stalled": 0, "disconnected": 0, "stopped": 0,
                               "not_found": 1}


def test_a_wait_ends_at_its_deadline_with_the_initial_sync_still_running_and_fails_when_asked(lab):
    lab.reset()
    fresh = _group_ids(lab, "fresh")
    run, result = health(lab, instance_ids=fresh, wait=True, wait_timeout=120, poll_interval=30, fail_unhealthy=True)
    assert run.returncode != 0
    assert result["timed_out"] is True
    assert result["counts"]["syncing"] == 2
    assert "2 of 2 server(s) are not healthy after waiting 120 s: 2 syncing" in result["msg"]
    # a look every poll interval, each one recorded
    assert [round(entry["seconds"] / 30) * 30 for entry in result["progress"]] == [0, 30, 60, 90, 120]


def test_a_wait_lasts_until_the_syncing_servers_are_healthy_and_calls_do_not_grow_with_servers(lab):
    lab.reset()
    fresh = _group_ids(lab, "fresh")
    before = lab.stats()["calls"]
    run, result = health(lab, instance_ids=fresh + _group_ids(lab, "steady"), wait=True, wait_timeout=1800,
                         poll_interval=60)
    assert run.returncode == 0, run.stdout
    assert result["timed_out"] is False
    assert result["counts"]["healthy"] == 5
    assert 660 <= result["waited_seconds"] <= 720  # initiating 60 s + initial sync 600 s, noticed at the next look
    looks = len(result["progress"])
    calls = lab.stats()["calls"]["111111111111"]["drs"]["DescribeSourceServers"] - \
        before.get("111111111111", {}).get("drs", {}).get("DescribeSourceServers", 0)
    assert calls == looks  # one listing per look, whatever the number of servers


def test_a_wait_does_not_wait_for_servers_that_waiting_cannot_change(lab):
    lab.reset()
    run, result = health(lab, instance_ids=_group_ids(lab, "stuck"), wait=True, wait_timeout=1800)
    assert run.returncode == 0
    assert result["waited_seconds"] == 0 and result["counts"]["stalled"] == 2


def test_replication_changed_while_the_lab_runs_shows_at_the_next_look(lab):
    lab.reset()
    first = _group_ids(lab, "steady")[0]
    lab.control("replication", {"instance_ids": [first], "replication": "stalled:AGENT_NOT_SEEN"})
    result = health(lab, instance_ids=[first])[1]
    [server] = result["servers"]
    assert (server["verdict"], server["error"], server["error_category"]) == ("stalled", "AGENT_NOT_SEEN", "agent")
    lab.control("replication", {"instance_ids": [first], "replication": "healthy"})
    result = health(lab, instance_ids=[first])[1]
    assert result["servers"][0]["verdict"] == "healthy"


def test_bad_input_is_refused_before_any_call(lab):
    lab.reset()
    run, result = health(lab, instance_ids=["i-nothing"], poll_interval=300)
    assert run.returncode != 0
    assert "instance_ids[0] 'i-nothing' is not an EC2 instance id" in result["msg"]
    assert "poll_interval must be between 1 and 60 seconds" in result["msg"]
    assert lab.stats()["calls"].get("111111111111", {}).get("drs") is None


# --- the deploy verifies each wave's replication ------------------------------------------------------------

def deploy(lab, tmp_path, **overrides):
    assert run_playbook(lab, "playbooks/setup_history.yml").returncode == 0
    variables = {
        "drs_deploy_hosts": "localhost",
        "drs_agent_deploy_accounts": [{"account_id": "111111111111", "regions": ["us-east-1"]}],
        "drs_agent_deploy_tag_filters": {"dr:enabled": "true"},
        "drs_agent_deploy_summary_file": str(tmp_path / "summary.json"),
        "drs_agent_deploy_history_spool_dir": str(tmp_path / "spool"),
        "drs_agent_deploy_ssm_online_timeout": 30,
        "drs_agent_deploy_poll_interval": 15,
        "drs_agent_deploy_progress_interval": 60,
        "drs_agent_deploy_verify_replication": True,
    }
    variables.update(overrides)
    run = run_playbook(lab, "playbooks/deploy_agents.yml", extra_vars=variables, env={"ANSIBLE_STDOUT_CALLBACK": "default"})
    return run, json.loads((tmp_path / "summary.json").read_text())


def test_a_deploy_waits_for_its_wave_to_replicate_healthy_then_goes_on(lab, tmp_path):
    lab.reset()
    run, summary = deploy(lab, tmp_path, drs_agent_deploy_waves=[2], drs_agent_deploy_verify_replication_timeout=1800)
    assert run.returncode == 0, run.stdout
    [wave] = summary["waves"]
    # two servers were initiating and one install registered a new one: all three replicate within the wait
    assert wave["replication"] == {"healthy": 3}
    assert "Wave 2 replication: 3 syncing" in run.stdout and "Wave 2 replication: 3 healthy" in run.stdout
    items = history_items(lab)
    assert [item["replication"] for item in items] == [{"healthy": 3}]
    assert items[0]["waves"][0]["replication"] == {"healthy": 3}


def test_a_stalled_server_stops_the_rollout_before_the_next_wave_with_its_remediation(lab, tmp_path):
    lab.reset()
    run, summary = deploy(lab, tmp_path, drs_agent_deploy_verify_replication_timeout=600)
    assert run.returncode != 0
    assert [wave["wave"] for wave in summary["waves"]] == [1]  # wave 2 was not started
    assert summary["waves"][0]["replication"] == {"healthy": 3, "stalled": 2, "syncing": 1}
    assert "The rollout stopped after wave 1: 3 of its servers did not replicate healthy" in run.stdout
    assert "UNSTABLE_NETWORK" in run.stdout and "TCP 1500" in run.stdout
    # the lagging server was waited for until the deadline, then reported
    assert "Wave 1 replication: 3 healthy, 1 syncing, 2 stalled (600 s of at most 600 s)" in run.stdout
    unhealthy = history_items(lab)[0]["unhealthy_replication"]
    assert sorted(entry["verdict"] for entry in unhealthy) == ["stalled", "stalled", "syncing"]
    assert all(entry["remediation"] for entry in unhealthy if entry["verdict"] == "stalled")


def history_items(lab):
    dynamodb = lab.client("dynamodb", "us-east-1")
    deserialize = TypeDeserializer().deserialize
    items = [{key: deserialize(value) for key, value in item.items()}
             for page in dynamodb.get_paginator("scan").paginate(TableName="drs-deployment-history")
             for item in page["Items"] if "source_account_id" in item]
    return sorted(items, key=lambda item: item["timestamp"])
