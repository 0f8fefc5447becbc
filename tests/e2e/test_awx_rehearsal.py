"""The controller configuration's workflow "DRS rollout" run the way AWX runs it (scripts/awx_rehearsal.py: one job
per slice by ansible-runner, the slices of a node at once, artifacts passed on), against the lab's demo scenario:
the deploy must be correct when its hosts are split into slices."""

import json
import subprocess
import sys

import pytest
import yaml

from tests.e2e.conftest import collection_environment
from tests.e2e.conftest import run_playbook
from tests.e2e.test_rollout import history
from tests.e2e.test_rollout import install_commands
from tests.lab_fixture import REPO_ROOT

LAB_VARS = REPO_ROOT / "playbooks" / "vars" / "lab_controller.yml"
REHEARSAL = REPO_ROOT / "scripts" / "awx_rehearsal.py"
STAGING_ROLE = "arn:aws:iam::333333333333:role/DRSOrchestrationStagingRole"
SOURCE_ROLE = "arn:aws:iam::222222222222:role/DRSOrchestrationSourceRole"
EXTERNAL_ID = "lab-demo-external-id"


@pytest.fixture(scope="module")
def demo_lab(lab_factory):
    return lab_factory("demo")


@pytest.fixture
def lab(demo_lab):
    demo_lab.reset()
    for playbook, extra in (("playbooks/setup_accounts.yml", ["-e", "@playbooks/vars/lab_demo_setup.yml"]),
                            ("playbooks/setup_history.yml", [])):
        assert run_playbook(demo_lab, playbook, extra_args=extra).returncode == 0
    return demo_lab


def rehearse(lab, tmp_path, *args, **overrides):
    """Run the rehearsal with the lab's controller variables (changed by ``overrides``); its results and output."""
    variables = yaml.safe_load(LAB_VARS.read_text())
    variables["report_output_dir"] = str(tmp_path / "report")
    variables.update(overrides)
    vars_file = tmp_path / "controller.yml"
    vars_file.write_text(yaml.safe_dump(variables))
    result_file = tmp_path / "result.json"
    completed = subprocess.run(
        [sys.executable, str(REHEARSAL), "--vars", str(vars_file), "--json", str(result_file), *args],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=900, check=False,
        env=lab.environment(**collection_environment(), LAB_ENDPOINT_URL=lab.url))
    assert result_file.exists(), completed.stdout + completed.stderr
    return completed, json.loads(result_file.read_text()), variables


def registered(lab):
    """The instances with a live source server in the demo's staging account, both regions."""
    staging = lab.assume(STAGING_ROLE, EXTERNAL_ID)
    found = set()
    for region in ("us-east-1", "us-west-2"):
        drs = lab.client("drs", region, staging)
        found |= {server["sourceProperties"]["identificationHints"]["awsInstanceID"]
                  for page in drs.get_paginator("describe_source_servers").paginate(filters={})
                  for server in page["items"] if server["dataReplicationInfo"]["dataReplicationState"] != "DISCONNECTED"}
    return found


def nodes_by_identifier(result):
    return {node["identifier"]: node for node in result["nodes"]}


def test_a_sliced_rollout_installs_each_instance_once_and_records_one_deployment(lab, tmp_path):
    before = registered(lab)
    completed, result, variables = rehearse(lab, tmp_path, "--relaunch", "deploy_wave_2:2")
    assert completed.returncode == 0, completed.stdout + completed.stderr
    nodes = nodes_by_identifier(result)
    waves = variables["waves"]
    assert [node["identifier"] for node in result["nodes"]] == \
        [name for wave in waves for name in (f"deploy_wave_{wave}", f"gate_wave_{wave}")] + ["report"]

    # AWX's slicing: each deploy node ran job_slice_count jobs on the wave's own inventory, each planning exactly
    # its own hosts of the wave
    for wave in waves:
        node = nodes[f"deploy_wave_{wave}"]
        assert node["slices"] == variables["job_slice_count"]
        inventory = result["inventories"][node["inventory"]]
        assert set(inventory["hosts"]) == set(inventory["groups"][f"wave_{wave}"]) == tagged_in_wave(lab, wave)
        slice_hosts = [set(job["hosts"]) for job in node["jobs"]]
        assert sum(len(hosts) for hosts in slice_hosts) == len(set().union(*slice_hosts)), "slices overlap"
        # a slice loads its share of its wave, never the other waves' hosts
        assert set().union(*slice_hosts) == set(inventory["hosts"])
        for job in node["jobs"]:
            summary = job["rollout"]["summary"]
            assert summary["planned_waves"] in ([wave], [])
            assert summary["planned_instances"] == len(job["limited_hosts"])
            # the slice's hosts say where they are (drs_fleet): only they were looked for, nothing else was found
            assert summary["excluded"] == 0
        assert set().union(*(job["limited_hosts"] for job in node["jobs"])) == tagged_in_wave(lab, wave)
        assert node["duplicate_installs"] == 0

    # one deployment for every slice of every wave: the first node's workflow id, passed on as an artifact
    deployment_id = nodes["deploy_wave_1"]["artifacts"]["drs_agent_deploy_deployment_id"]
    assert deployment_id.startswith("awx-workflow-")
    for node in result["nodes"][2:]:
        if node["playbook"] == "playbooks/deploy_agents.yml":
            assert {job["rollout"]["deployment_id"] for job in node["jobs"]} == {deployment_id}
    items = history(lab)
    assert {item["deployment_id"] for item in items} == {deployment_id}
    runs = {item["run_id"] for item in items}
    assert len(runs) == len(waves) * variables["job_slice_count"] + 1  # and the relaunched slice

    # the items of every slice add up to what DRS shows: each instance installed once, by one slice
    newly_registered = registered(lab) - before
    assert sum(item["installed"] for item in items) == len(newly_registered)
    assert sum(nodes[f"deploy_wave_{wave}"]["installed"] for wave in waves) == len(newly_registered)
    assert {iid: ids for iid, ids in install_commands(lab).items() if len(ids) > 1 and iid in newly_registered} == {}

    # the relaunched slice found its instances registered or failing and sent nothing twice
    relaunched = nodes["deploy_wave_2"]["relaunched"]
    assert relaunched["installed"] == 0 and relaunched["duplicate_installs"] == 0
    assert relaunched["jobs"][0]["rollout"]["deployment_id"] == deployment_id

    # the gate judged wave 2 over all its runs, the relaunched slice's too: its verdict adds them up
    gate_output = nodes["gate_wave_2"]["jobs"][0]["output"]
    wave_items = [entry for item in items for entry in item["waves"] if entry["wave"] == 2]
    failed = int(sum(entry["failed"] for entry in wave_items))
    attempted = int(sum(entry["attempted"] for entry in wave_items))
    assert f"wave 2 passed over {variables['job_slice_count'] + 1} run(s)" in gate_output
    assert f"{attempted} attempted" in gate_output and f"{failed} failed" in gate_output
    assert (tmp_path / "report" / "report.html").exists()


def tagged_in_wave(lab, wave):
    """The demo's running DR-tagged instances of ``wave``, as the lab holds them."""
    filters = [{"Name": "tag:dr:enabled", "Values": ["true"]}, {"Name": "tag:dr:recovery-strategy", "Values": ["drs"]},
               {"Name": "tag:dr:wave", "Values": [str(wave)]}, {"Name": "instance-state-name", "Values": ["running"]}]
    found = set()
    for region in ("us-east-1", "us-west-2"):
        ec2 = lab.client("ec2", region, lab.assume(SOURCE_ROLE, EXTERNAL_ID, region))
        found |= {instance["InstanceId"] for page in ec2.get_paginator("describe_instances").paginate(Filters=filters)
                  for reservation in page["Reservations"] for instance in reservation["Instances"]}
    assert found
    return found


def test_the_gate_stops_the_workflow_on_the_whole_wave_failure_rate(lab, tmp_path):
    # wave 1 of the demo fails one install of eight: over a limit of 10% once its slices are added up
    completed, result, _variables = rehearse(lab, tmp_path, max_failure_rate=0.1)
    assert completed.returncode == 1
    assert [node["identifier"] for node in result["nodes"]] == ["deploy_wave_1", "gate_wave_1"]
    deploy, gate = result["nodes"]
    assert deploy["status"] == "successful" and gate["status"] == "failed"
    figures = [job["rollout"]["summary"]["totals"] for job in deploy["jobs"]]
    failed, attempted = sum(total["failed"] for total in figures), sum(total["attempted"] for total in figures)
    assert failed / attempted > 0.1
    assert f"wave 1 failure rate {failed / attempted:.0%} is over the limit 10%" in gate["jobs"][0]["output"]


def test_configure_controller_refuses_missing_input_before_reaching_a_controller(demo_lab):
    run = run_playbook(demo_lab, REPO_ROOT / "playbooks" / "configure_controller.yml",
                       env={"ANSIBLE_STDOUT_CALLBACK": "default", "CONTROLLER_HOST": "https://controller.invalid"})
    assert run.returncode != 0
    assert "missing required arguments: drs_controller_execution_environment_image, drs_controller_project_scm_url" \
        in run.stdout
    assert "controller.invalid" not in run.stdout
