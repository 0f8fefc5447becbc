"""drs_source_server_info run by ansible-playbook against the lab, checked against the lab's DRS answers."""

import pytest

from tests.e2e.conftest import run_playbook
from tests.lab_fixture import REPO_ROOT, RunningLab

DEMO_STAGING = {
    "role_arn": "arn:aws:iam::333333333333:role/DRSOrchestrationStagingRole",
    "external_id": "lab-demo-external-id",
    "region": "us-west-2",
}
WAVES_SCENARIO = REPO_ROOT / "tests" / "e2e" / "scenarios" / "waves.yml"


@pytest.fixture(scope="module")
def demo(lab_factory):
    return lab_factory("demo")


@pytest.fixture(scope="module")
def waves_lab():
    lab = RunningLab(WAVES_SCENARIO)
    yield lab
    lab.stop()


def drs_servers(lab, region, credentials=None):
    """Every source server of the account and region, as the lab's DRS lists it."""
    client = lab.client("drs", region, credentials)
    return [server for page in client.get_paginator("describe_source_servers").paginate(filters={})
            for server in page["items"]]


def instance_of(server):
    return server["sourceProperties"]["identificationHints"].get("awsInstanceID")


def list_servers(lab, **options):
    run = run_playbook(lab, "source_server_info.yml", extra_vars=options)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.task("List source servers")


def demo_registered(demo):
    credentials = demo.assume(DEMO_STAGING["role_arn"], DEMO_STAGING["external_id"])
    return {instance_of(server): server for server in drs_servers(demo, DEMO_STAGING["region"], credentials)}


def test_servers_registered_from_instances_are_found_by_instance_id(demo):
    registered = demo_registered(demo)
    assert len(registered) == 2

    both = list_servers(demo, instance_ids=sorted(registered), **DEMO_STAGING)
    one_id = sorted(registered)[0]
    one = list_servers(demo, instance_ids=[one_id], **DEMO_STAGING)

    assert {s["instance_id"]: s["source_server_id"] for s in both["source_servers"]} == {
        instance_id: server["sourceServerID"] for instance_id, server in registered.items()
    }
    assert [s["instance_id"] for s in one["source_servers"]] == [one_id]
    server = one["source_servers"][0]
    expected = registered[one_id]
    assert server["data_replication_info"]["data_replication_state"] == expected["dataReplicationInfo"]["dataReplicationState"]
    assert server["life_cycle"]["added_to_service_date_time"] == expected["lifeCycle"]["addedToServiceDateTime"]
    assert server["staging_area"]["status"] == expected["stagingArea"]["status"]
    assert server["tags"] == expected.get("tags", {})
    assert server["stale"] is False


def test_an_instance_without_a_server_matches_nothing(demo):
    registered = demo_registered(demo)
    result = list_servers(demo, instance_ids=["i-0123456789abcdef0"], **DEMO_STAGING)

    assert registered and result["source_servers"] == []


def test_disconnected_servers_are_marked_stale(waves_lab):
    result = list_servers(waves_lab)

    states = {s["sourceServerID"]: s["dataReplicationInfo"]["dataReplicationState"] for s in drs_servers(waves_lab, "us-east-1")}
    assert {s["source_server_id"]: s["stale"] for s in result["source_servers"]} == {
        server_id: state == "DISCONNECTED" for server_id, state in states.items()
    }
    assert result["counts"] == {"source_servers": len(states), "stale": list(states.values()).count("DISCONNECTED")}
    assert result["counts"]["stale"] == 1


def test_servers_extended_from_a_staging_account_are_found_by_staging_account(waves_lab):
    result = list_servers(waves_lab, staging_account_ids=["555555555555"])

    extended = {s["sourceServerID"] for s in drs_servers(waves_lab, "us-east-1")
                if s["stagingArea"].get("stagingAccountID") == "555555555555" and s["stagingArea"]["status"] == "EXTENDED"}
    assert len(extended) == 2
    assert {s["source_server_id"] for s in result["source_servers"]} == extended
    assert {s["staging_area"]["status"] for s in result["source_servers"]} == {"EXTENDED"}


def test_servers_are_found_by_source_server_id(waves_lab):
    wanted = sorted(s["sourceServerID"] for s in drs_servers(waves_lab, "us-east-1"))[:2]
    result = list_servers(waves_lab, source_server_ids=wanted)

    assert sorted(s["source_server_id"] for s in result["source_servers"]) == wanted


def test_an_uninitialized_region_fails_and_says_how_to_initialize(waves_lab):
    run = run_playbook(waves_lab, "source_server_info.yml", extra_vars={"region": "us-west-2"})

    assert run.returncode != 0
    message = run.task("List source servers")["msg"]
    assert "not initialized" in message and "us-west-2" in message
    assert "playbooks/setup_accounts.yml" in message


def test_a_malformed_id_fails_before_any_aws_call(waves_lab):
    calls_before = waves_lab.stats()["total_calls"]
    run = run_playbook(waves_lab, "source_server_info.yml", extra_vars={"staging_account_ids": ["55555"]})

    assert run.returncode != 0
    assert "staging_account_ids: '55555' is not a 12-digit account id" in run.task("List source servers")["msg"]
    assert waves_lab.stats()["total_calls"] == calls_before


def test_listing_is_complete_under_drs_throttling(demo):
    registered = demo_registered(demo)
    demo.control("faults", {"throttle": {"drs": {"*": 0.3}}})
    try:
        throttled_before = sum(demo.stats()["faults"].get("throttled", {}).values())
        results = [list_servers(demo, **DEMO_STAGING) for _attempt in range(3)]
        throttled_after = sum(demo.stats()["faults"].get("throttled", {}).values())
    finally:
        demo.control("faults", {"clear": True})

    assert throttled_after > throttled_before
    for result in results:
        assert {s["instance_id"] for s in result["source_servers"]} == set(registered)
