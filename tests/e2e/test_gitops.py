"""The example GitHub Actions pipeline, run as it is written: the shell lines of its plan step (on a pull
request) and its apply step (on merge) run in order against the lab, with the lab's inventory and variables
given through the environment variables the steps read. The plan is judged against the lab's own state (EC2
tags, SSM ping status, DRS source servers), the apply by what the plan said."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from tests.e2e.conftest import ANSIBLE_BIN, collection_environment, run_playbook
from tests.lab_fixture import REPO_ROOT

WORKFLOW = REPO_ROOT / "examples" / "github-actions" / "drs-rollout.yml"
GITLAB = REPO_ROOT / "examples" / "gitlab-ci" / "drs-rollout.gitlab-ci.yml"
SCENARIO = REPO_ROOT / "tests" / "e2e" / "scenarios" / "gitops.yml"
WORKLOADS, APPS = "111111111111", "666666666666"
APPS_ROLE = f"arn:aws:iam::{APPS}:role/DRSOrchestrationSourceRole"
STEP_TIMEOUT = 600


@pytest.fixture(scope="module")
def lab(lab_factory):
    lab = lab_factory(SCENARIO)
    assert run_playbook(lab, "playbooks/setup_history.yml").returncode == 0
    return lab


def step_script(job, step_id):
    """The shell lines of one step of the example workflow."""
    workflow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    steps = [step for step in workflow["jobs"][job]["steps"] if step.get("id") == step_id]
    assert len(steps) == 1, f"{WORKFLOW.name} has no single step {step_id!r} in job {job!r}"
    return steps[0]["run"]


def pipeline(lab, tmp_path, accounts, external_id=""):
    """Run a step of the workflow as its runner would: bash, in the checkout, with the workflow's variables."""
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(f"localhost ansible_connection=local ansible_python_interpreter={sys.executable}\n",
                         encoding="utf-8")
    variables = tmp_path / "accounts.yml"
    variables.write_text(yaml.safe_dump({
        "drs_deploy_hosts": "localhost",
        "drs_agent_deploy_accounts": accounts,
        "drs_agent_deploy_external_id": "{{ lookup('ansible.builtin.env', 'DRS_EXTERNAL_ID') }}",
        "drs_agent_deploy_history_spool_dir": str(tmp_path / "spool"),
        "drs_agent_deploy_ssm_online_timeout": 30,
        "drs_agent_deploy_poll_interval": 15,
        "drs_agent_deploy_progress_interval": 5,
    }), encoding="utf-8")
    # the runner's set-up steps put ansible-playbook on the PATH and the collection on ANSIBLE_COLLECTIONS_PATH
    environment = lab.environment(**collection_environment(), ANSIBLE_STDOUT_CALLBACK="default",
                                  PATH=f"{ANSIBLE_BIN}{os.pathsep}{os.environ['PATH']}",
                                  DRS_INVENTORY=str(inventory), DRS_VARS_FILE=str(variables),
                                  DRS_PLAN_DIR=str(tmp_path / "plan"), DRS_SUMMARY_FILE=str(tmp_path / "summary.json"),
                                  DRS_EXTERNAL_ID=external_id)

    def run(job, step_id):
        return subprocess.run(["bash", "-eo", "pipefail", "-c", step_script(job, step_id)], cwd=REPO_ROOT,
                              env=environment, capture_output=True, text=True, timeout=STEP_TIMEOUT, check=False)

    return run


def read_plan(tmp_path):
    directory = tmp_path / "plan"
    return json.loads((directory / "plan.json").read_text()), (directory / "plan.md").read_text()


def lab_state(lab):
    """What the lab holds in the workloads account: the DR-tagged instances' waves, SSM ping, DRS registrations."""
    pages = lab.client("ec2").get_paginator("describe_instances").paginate(
        Filters=[{"Name": "tag:dr:enabled", "Values": ["true"]}, {"Name": "instance-state-name", "Values": ["running"]}])
    waves = {}
    for page in pages:
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                tags = {tag["Key"]: tag["Value"] for tag in instance.get("Tags", [])}
                waves[instance["InstanceId"]] = int(tags["dr:wave"]) if "dr:wave" in tags else None
    pings = {entry["InstanceId"]: entry["PingStatus"] for page in
             lab.client("ssm").get_paginator("describe_instance_information").paginate()
             for entry in page["InstanceInformationList"]}
    registered = {server["sourceProperties"]["identificationHints"].get("awsInstanceID") for page in
                  lab.client("drs").get_paginator("describe_source_servers").paginate(filters={})
                  for server in page["items"]}
    return waves, pings, registered


def planned(document, key):
    return {item["instance_id"]: item for wave in document["waves"] for place in wave["places"] for item in place[key]}


def test_the_pipeline_plans_applies_and_then_plans_nothing(lab, tmp_path):
    lab.reset()
    run = pipeline(lab, tmp_path, [{"account_id": WORKLOADS, "regions": ["us-east-1"]}])
    waves, pings, registered = lab_state(lab)
    in_a_wave = {iid for iid, wave in waves.items() if wave is not None}
    to_install = {iid for iid in in_a_wave - registered if pings.get(iid) == "Online"}
    offline = {iid for iid in in_a_wave - registered if pings.get(iid) != "Online"}
    assert to_install and offline and in_a_wave & registered  # the scenario has each case

    plan = run("plan", "plan")
    assert plan.returncode == 0, plan.stdout + plan.stderr
    document, text = read_plan(tmp_path)
    assert document["clean"] is True and document["changed"] is True and document["unreachable"] == []
    assert set(planned(document, "install")) == to_install
    skips = planned(document, "skip")
    assert {iid: item["status"] for iid, item in skips.items()} == {
        **{iid: "already_registered" for iid in in_a_wave & registered},
        **{iid: "skipped_ssm_offline" for iid in offline}}
    assert all(item["reason"] for item in skips.values())
    assert {item["instance_id"] for item in document["no_wave"]} == {iid for iid, wave in waves.items() if wave is None}
    for wave in document["waves"]:
        for place in wave["places"]:
            assert {waves[item["instance_id"]] for item in place["install"] + place["skip"]} == {wave["wave"]}
    totals = document["totals"]
    assert (totals["install"], totals["skip"]) == (len(to_install), len(skips))
    assert f"Would install {len(to_install)}, reinstall 0, adopt 0 install(s) already running, skip {len(skips)}" in text
    assert "Clean: every account-region was reached." in text
    assert "## DRS agent rollout plan" in plan.stdout  # --diff shows the plan

    apply = run("apply", "apply")
    assert apply.returncode == 0, apply.stdout + apply.stderr
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["totals"]["installed"] == len(to_install)

    again = run("plan", "plan")
    assert again.returncode == 0, again.stdout + again.stderr
    document, text = read_plan(tmp_path)
    assert document["clean"] is True and document["changed"] is False
    assert document["totals"]["install"] == 0
    assert {iid for iid, item in planned(document, "skip").items() if item["status"] == "already_registered"} == \
        in_a_wave & (registered | to_install)
    assert "Would install 0," in text


def test_an_account_out_of_reach_makes_the_plan_fail_and_says_which(lab, tmp_path):
    lab.reset()
    wrong = "not-the-agreed-external-id"
    run = pipeline(lab, tmp_path, [{"account_id": WORKLOADS, "regions": ["us-east-1"]},
                                   {"account_id": APPS, "regions": ["us-east-1"], "role_arn": APPS_ROLE}],
                   external_id=wrong)
    plan = run("plan", "plan")
    assert plan.returncode != 0
    assert f"The plan is not clean: could not be reached or planned: {APPS}" in plan.stdout
    document, text = read_plan(tmp_path)
    assert document["clean"] is False
    assert [(entry["account_id"], entry["region"]) for entry in document["unreachable"]] == [(APPS, None)]
    assert planned(document, "install")  # the reachable account is planned all the same
    assert f"| {APPS} | all |" in text and "**Not clean**" in text
    assert wrong not in plan.stdout + plan.stderr + json.dumps(document) + text


def test_the_gitlab_pipeline_runs_the_same_plan_and_apply_commands():
    gitlab = yaml.safe_load(GITLAB.read_text(encoding="utf-8"))
    assert gitlab["drs-plan"]["script"] == step_script("plan", "plan").splitlines()
    assert gitlab["drs-apply"]["script"] == step_script("apply", "apply").splitlines()
