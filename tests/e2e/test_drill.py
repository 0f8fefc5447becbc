"""playbooks/drill.yml against the lab: waves recovered in wave order within DRS's job limits, each wave's
recovery time from DRS's job times against the RTO, a launch failure explained, the recovery instances
terminated, and the drill recorded; judged by the lab's own DRS jobs and DynamoDB."""

import json

import pytest
from boto3.dynamodb.types import TypeDeserializer

from tests.e2e.conftest import run_playbook
from tests.lab_fixture import REPO_ROOT

SCENARIO = REPO_ROOT / "tests" / "e2e" / "scenarios" / "drill.yml"
ACCOUNT = "111111111111"
TABLE = "drs-deployment-history"
RTO = 900


@pytest.fixture(scope="module")
def lab(lab_factory):
    lab = lab_factory(SCENARIO)
    assert run_playbook(lab, "playbooks/setup_history.yml").returncode == 0
    return lab


def settings(tmp_path, **overrides):
    values = {"drs_drill_accounts": [{"account_id": ACCOUNT, "regions": ["us-east-1"]}],
              "drs_drill_rto_seconds": RTO, "drs_drill_poll_interval": 15, "drs_drill_progress_interval": 30,
              "drs_drill_summary_file": str(tmp_path / "drill.json"),
              "drs_drill_history_spool_dir": str(tmp_path / "spool")}
    values.update(overrides)
    return values


def names(lab):
    ec2 = lab.client("ec2")
    return {instance["InstanceId"]: tag["Value"] for page in ec2.get_paginator("describe_instances").paginate()
            for reservation in page["Reservations"] for instance in reservation["Instances"]
            for tag in instance.get("Tags", []) if tag["Key"] == "Name"}


def jobs(lab):
    drs = lab.client("drs")
    return [job for page in drs.get_paginator("describe_jobs").paginate(filters={}) for job in page["items"]]


def recovery_instances(lab):
    drs = lab.client("drs")
    return [item for page in drs.get_paginator("describe_recovery_instances").paginate(filters={})
            for item in page["items"]]


@pytest.fixture(scope="module")
def drilled(lab, tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("drill")
    lab.reset()
    assert run_playbook(lab, "playbooks/setup_history.yml").returncode == 0
    run = run_playbook(lab, "playbooks/drill.yml", extra_vars=settings(tmp_path))
    summary = json.loads((tmp_path / "drill.json").read_text())
    return run, summary


def test_the_waves_are_recovered_in_order_within_drs_job_limits(lab, drilled):
    _run, summary = drilled
    launch_jobs = [job for job in jobs(lab) if job["type"] == "LAUNCH"]
    assert all(len(job["participatingServers"]) <= 100 for job in launch_jobs)
    assert all(job["initiatedBy"] == "START_DRILL" for job in launch_jobs)
    by_wave = {}
    for job in launch_jobs:
        by_wave.setdefault(int(job["tags"]["drs-drill-wave"]), []).append(job)
    assert sorted(by_wave) == [1, 2, 3] and len(by_wave[3]) == 2
    for earlier, later in ((1, 2), (2, 3)):
        assert max(job["endDateTime"] for job in by_wave[earlier]) <= min(job["creationDateTime"] for job in by_wave[later])
    waves = {wave["wave"]: wave for wave in summary["waves"]}
    assert [(waves[n]["servers"], waves[n]["launched"], waves[n]["jobs"]) for n in (1, 2, 3)] == [
        (4, 3, 1), (2, 2, 1), (120, 120, 2)]


def test_a_launch_failure_is_explained_and_a_slow_wave_misses_its_rto(lab, drilled):
    run, summary = drilled
    waves = {wave["wave"]: wave for wave in summary["waves"]}
    named = names(lab)
    [failure] = [entry for entry in waves[1]["problems"] if entry["status"] == "failed"]
    assert named[failure["instance_id"]].startswith("quota-")
    assert failure["error_category"] == "quota" and "VcpuLimitExceeded" in failure["reason"]
    assert "quota" in failure["remediation"]
    # wave 2's launches take 30 simulated minutes: over the RTO; the others are within it
    assert waves[2]["recovery_seconds"] >= 1800 and waves[2]["over_rto"]
    assert not waves[1]["over_rto"] and not waves[3]["over_rto"] and waves[3]["recovery_seconds"] < RTO
    [unprotected] = [entry for entry in waves[2]["problems"] if entry["status"] == "not_protected"]
    assert named[unprotected["instance_id"]].startswith("unprotected-")
    assert run.returncode != 0
    assert "Wave(s) 2 took longer than the RTO (900 s)" in run.stdout and "1 server(s) did not launch" in run.stdout


def test_the_drill_terminates_its_recovery_instances_and_is_recorded(lab, drilled):
    _run, summary = drilled
    assert summary["termination"] == "done" and summary["terminated"] == 125
    assert recovery_instances(lab) == []
    table = lab.client("dynamodb").scan(TableName=TABLE)["Items"]
    records = [{key: TypeDeserializer().deserialize(value) for key, value in item.items()} for item in table]
    [record] = [item for item in records if item["record_type"] == "drill"]
    assert record["run_id"] == summary["drill_id"]
    assert [(int(wave["wave"]), int(wave["launched"]), int(wave["failed"]), bool(wave["over_rto"]))
            for wave in record["waves"]] == [(1, 3, 1, False), (2, 2, 0, True), (3, 120, 0, False)]


def test_check_mode_counts_the_jobs_and_launches_nothing(lab, tmp_path):
    lab.reset()
    run = run_playbook(lab, "playbooks/drill.yml", extra_vars=settings(tmp_path), check=True)
    assert run.returncode == 0, run.stdout[-3000:]
    result = run.task("drs_orchestration.agent_deployer.drs_drill : Drill recovery wave by wave, from the controller")
    assert [(wave["wave"], wave["servers"], wave["jobs"]) for wave in result["drill"]["waves"]] == [
        (1, 4, 1), (2, 2, 1), (3, 120, 2)]
    assert jobs(lab) == []


def test_bad_input_is_refused_before_any_aws_call(lab, tmp_path):
    calls = lab.stats()["total_calls"]
    run = run_playbook(lab, "playbooks/drill.yml", extra_vars=settings(tmp_path, drs_drill_rto_seconds=-5,
                                                                       drs_drill_wavez=[1]))
    assert run.returncode != 0
    assert "drs_drill_rto_seconds -5 must be from 0 or more seconds" in run.stdout
    assert "drs_drill_wavez is not a variable of this role (did you mean drs_drill_waves?)" in run.stdout
    assert lab.stats()["total_calls"] == calls
