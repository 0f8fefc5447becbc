"""drs_discover run by ansible-playbook against the lab, checked against the lab's own EC2 and SSM answers."""

import os
import subprocess

import pytest

from tests.e2e.conftest import ANSIBLE_BIN, run_playbook
from tests.lab_fixture import REPO_ROOT, RunningLab

DEMO_SOURCE = {
    "role_arn": "arn:aws:iam::222222222222:role/DRSOrchestrationSourceRole",
    "external_id": "lab-demo-external-id",
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


def tags_of(instance):
    return {tag["Key"]: tag["Value"] for tag in instance.get("Tags", [])}


def ec2_instances(lab, region, credentials=None):
    """Every instance of the account and region, as the lab's EC2 lists it."""
    client = lab.client("ec2", region, credentials)
    return [
        instance
        for page in client.get_paginator("describe_instances").paginate()
        for reservation in page["Reservations"]
        for instance in reservation["Instances"]
    ]


def dr_tagged_running(instances, strategy="drs"):
    return {
        i["InstanceId"]: tags_of(i) for i in instances
        if tags_of(i).get("dr:enabled") == "true" and tags_of(i).get("dr:recovery-strategy") == strategy
        and i["State"]["Name"] == "running"
    }


def ssm_view(lab, region, credentials=None):
    client = lab.client("ssm", region, credentials)
    return {
        info["InstanceId"]: info
        for page in client.get_paginator("describe_instance_information").paginate()
        for info in page["InstanceInformationList"]
    }


def discover(lab, check=False, env=None, **options):
    run = run_playbook(lab, "discover.yml", extra_vars=options, check=check, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    return run.task("Discover")


@pytest.mark.parametrize("region", ["us-east-1", "us-west-2"])
def test_discovery_in_a_source_account_finds_exactly_its_dr_tagged_running_instances(demo, region):
    result = discover(demo, region=region, **DEMO_SOURCE)

    credentials = demo.assume(DEMO_SOURCE["role_arn"], DEMO_SOURCE["external_id"])
    expected = dr_tagged_running(ec2_instances(demo, region, credentials))
    assert result["changed"] is False
    assert result["account_id"] == "222222222222"
    assert {i["instance_id"] for i in result["instances"]} == set(expected)
    for instance in result["instances"]:
        tags = expected[instance["instance_id"]]
        assert instance["tags"] == tags
        assert instance["name"] == tags["Name"]
        assert instance["wave"] == int(tags["dr:wave"])
        assert instance["priority"] == tags["dr:priority"]
        assert (instance["account_id"], instance["region"], instance["state"]) == ("222222222222", region, "running")


@pytest.mark.parametrize("region", ["us-east-1", "us-west-2"])
def test_ssm_status_of_every_instance_is_what_ssm_reports(demo, region):
    result = discover(demo, region=region, **DEMO_SOURCE)

    managed = ssm_view(demo, region, demo.assume(DEMO_SOURCE["role_arn"], DEMO_SOURCE["external_id"]))
    for instance in result["instances"]:
        info = managed.get(instance["instance_id"])
        if info is None:
            assert instance["ssm"] == {"managed": False, "ping_status": "NotManaged"}
        else:
            assert instance["ssm"]["ping_status"] == info["PingStatus"]
            assert instance["ssm"]["platform_type"] == info["PlatformType"]
            assert instance["ssm"]["agent_version"] == info["AgentVersion"]
    pings = [i["ssm"]["ping_status"] for i in result["instances"]]
    assert result["counts"]["ssm_online"] == pings.count("Online")
    assert result["counts"]["ssm_not_managed"] == pings.count("NotManaged")


def test_waves_come_in_numeric_order_with_their_instances(waves_lab):
    result = discover(waves_lab)

    expected = dr_tagged_running(ec2_instances(waves_lab, "us-east-1"))
    by_wave = {}
    for instance_id, tags in expected.items():
        if tags.get("dr:wave", "").isdigit():
            by_wave.setdefault(int(tags["dr:wave"]), set()).add(instance_id)
    assert [wave["wave"] for wave in result["waves"]] == [1, 2, 10]
    assert {wave["wave"]: set(wave["instance_ids"]) for wave in result["waves"]} == by_wave
    assert [i["wave"] for i in result["instances"] if i["wave"] is not None] == sorted(
        i["wave"] for i in result["instances"] if i["wave"] is not None
    )


def test_instances_without_a_usable_wave_are_listed_with_the_reason(waves_lab):
    result = discover(waves_lab)

    reasons = {entry["name"]: entry["reason"] for entry in result["invalid_wave_instances"]}
    assert set(reasons) == {"nowave-01", "word-01", "negative-01"}
    assert "missing" in reasons["nowave-01"]
    assert "'two' is not an integer" in reasons["word-01"]
    assert "negative" in reasons["negative-01"]
    assert result["counts"]["invalid_wave"] == 3
    assert result["counts"]["instances"] == result["counts"]["in_waves"] + 3


def test_wave_and_state_filters_narrow_the_result(waves_lab):
    everything = discover(waves_lab, instance_states=["running", "stopped"])
    only_ten = discover(waves_lab, waves=["10"])

    stopped = {i["InstanceId"] for i in ec2_instances(waves_lab, "us-east-1") if i["State"]["Name"] == "stopped"}
    assert stopped and stopped <= {i["instance_id"] for i in everything["instances"]}
    assert [wave["wave"] for wave in only_ten["waves"]] == [10]
    assert len(only_ten["invalid_wave_instances"]) == 3


def test_tag_filters_and_tag_keys_default_from_the_environment(waves_lab):
    result = discover(waves_lab, env={
        "DRS_TAG_FILTERS": '{"dr:enabled": "true", "dr:recovery-strategy": "backup"}',
        "DRS_PRIORITY_TAG_KEY": "Name",
    })

    expected = dr_tagged_running(ec2_instances(waves_lab, "us-east-1"), strategy="backup")
    assert {i["instance_id"] for i in result["instances"]} == set(expected)
    assert {i["priority"] for i in result["instances"]} == {tags["Name"] for tags in expected.values()}


def test_check_mode_reports_the_same_without_changes(waves_lab):
    normal = discover(waves_lab)
    checked = discover(waves_lab, check=True)

    assert checked["changed"] is False
    assert checked["waves"] == normal["waves"]
    assert checked["invalid_wave_instances"] == normal["invalid_wave_instances"]


@pytest.mark.parametrize(("options", "message"), [
    ({"tag_filters": {"": "true"}}, "tag_filters: a tag key is empty"),
    ({"tag_filters": {"k" * 129: "true"}}, "is 129 characters long; EC2 tag keys have at most 128"),
    ({"tag_filters": {"dr:enabled": "v" * 257}}, "is 257 characters long; EC2 tag values have at most 256"),
    ({"tag_filters": {"dr:enabled": True}}, "tag_filters['dr:enabled']: the value True is a bool"),
    ({"tag_filters": {"dr:enabled": []}}, "tag_filters['dr:enabled']: the list of values is empty"),
    ({"tag_filters": {"dr:enabled": ["true", ""]}}, "tag_filters['dr:enabled']: the value is empty"),
    ({"waves": ["two"]}, "waves: 'two' is not a wave number"),
    ({"waves": [-1]}, "waves: -1 is negative"),
    ({"wave_tag_key": ""}, "wave_tag_key: a tag key is empty"),
])
def test_bad_input_fails_with_a_clear_message_before_any_aws_call(waves_lab, options, message):
    calls_before = waves_lab.stats()["total_calls"]
    run = run_playbook(waves_lab, "discover.yml", extra_vars=options)

    assert run.returncode != 0
    result = run.task("Discover")
    assert result["failed"] is True
    assert message in result["msg"]
    assert waves_lab.stats()["total_calls"] == calls_before


def test_discovery_is_complete_under_throttling(demo):
    unthrottled = discover(demo, region="us-east-1", **DEMO_SOURCE)
    demo.control("faults", {"throttle": {"ec2": {"*": 0.3}, "ssm": {"*": 0.3}, "drs": {"*": 0.3}}})
    try:
        throttled_before = sum(demo.stats()["faults"].get("throttled", {}).values())
        results = [discover(demo, region="us-east-1", **DEMO_SOURCE) for _attempt in range(3)]
        throttled_after = sum(demo.stats()["faults"].get("throttled", {}).values())
    finally:
        demo.control("faults", {"clear": True})

    assert throttled_after > throttled_before
    expected_pings = {i["instance_id"]: i["ssm"]["ping_status"] for i in unthrottled["instances"]}
    for result in results:
        assert result["waves"] == unthrottled["waves"]
        assert {i["instance_id"]: i["ssm"]["ping_status"] for i in result["instances"]} == expected_pings


@pytest.mark.parametrize(("module", "expected"), [
    ("drs_discover", ("tag_filters", "wave_tag_key", "priority_tag_key", "waves", "instance_states",
                      "include_ssm_status", "DRS_TAG_FILTERS", "invalid_wave_instances")),
    ("drs_source_server_info", ("instance_ids", "source_server_ids", "staging_account_ids", "stale")),
    ("drs_history_record", ("table_name", "results", "spool_dir", "fail_on_error", "ttl_days", "sort key",
                            "unprotected_instances", "flushed")),
    ("drs_history_info", ("table_name", "failures_only", "next_token", "StatusIndex", "deployments",
                          "failed_instances", "unprotected_instances", "interrupted", "lease_until")),
    ("drs_ssm_install", ("instance_ids", "install_timeout", "would_adopt", "figures", "failure_rate")),
    ("drs_rollout", ("accounts", "install_timeout", "variable_prefix", "in_flight", "interrupted", "success rate",
                     "DRS_AGENT_DEPLOYER_CLOCK")),
    ("drs_drill", ("rto_seconds", "launch_timeout", "keep_recovery_instances", "StartRecovery", "recovery_seconds",
                   "no_point_in_time")),
])
def test_the_module_documentation_renders(collection_env, module, expected):
    env = dict(os.environ, **collection_env)
    shown = subprocess.run(
        [str(ANSIBLE_BIN / "ansible-doc"), f"drs_orchestration.agent_deployer.{module}"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert shown.returncode == 0, shown.stderr
    for name in expected:
        assert name in shown.stdout
