"""playbooks/configure_controller.yml as an operator runs it, where no controller can run: its syntax, and the bad
input it refuses before any call to a controller, naming the variable and never printing a secret; and the deploy
survey's answers as playbooks/deploy_agents.yml maps them, against the lab."""

import json
import os
import subprocess

import pytest
import yaml

from tests.e2e.conftest import ANSIBLE_BIN
from tests.e2e.conftest import collection_environment
from tests.e2e.conftest import run_playbook
from tests.e2e.test_rollout import install_commands
from tests.lab_fixture import REPO_ROOT

CONFIGURE = "playbooks/configure_controller.yml"
SECRET = "very-secret-access-key"
EXTERNAL_ID = "ext-id-not-to-be-shown"
GOOD = {
    "drs_controller_execution_environment_image": "registry.example.com/dr/ee:1",
    "drs_controller_project_scm_url": "https://git.example.com/dr.git",
    "drs_controller_credential_inputs": {"access_key_id": "AKIAEXAMPLE", "secret_access_key": SECRET,
                                         "external_id": EXTERNAL_ID},
    # a port nothing listens on: a run that reaches its first module fails there
    "drs_controller_host": "https://127.0.0.1:9",
}


def ansible_playbook(playbook, *args, extra_vars=None):
    command = [str(ANSIBLE_BIN / "ansible-playbook"), playbook, *args]
    if extra_vars is not None:
        command += ["-e", json.dumps(extra_vars)]
    completed = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
                               env=dict(os.environ, **collection_environment(lab_clock=False)))
    return completed.returncode, completed.stdout + completed.stderr


@pytest.mark.parametrize("playbook", [CONFIGURE, "playbooks/deploy_agents.yml", "playbooks/wave_gate.yml",
                                      "playbooks/protect_instances.yml"])
def test_the_playbooks_of_the_controller_pass_the_syntax_check(playbook):
    returncode, output = ansible_playbook(playbook, "--syntax-check")
    assert returncode == 0, output


@pytest.mark.parametrize("change, message", [
    ({"drs_controller_execution_environment_image": None},
     "missing required arguments: drs_controller_execution_environment_image"),
    ({"drs_controller_waves": ["one"]}, "drs_controller_waves"),
    ({"drs_controller_job_slice_count": "four"}, "drs_controller_job_slice_count"),
    # past the argument spec, the definitions' own rules: shown, not hidden behind no_log
    ({"drs_controller_waves": [1, 2, 1]}, "drs_controller_waves [1, 2, 1] lists a wave twice"),
    ({"drs_controller_extra_vars": {"drs_deploy_check": "yes"}},
     "drs_controller_extra_vars.drs_deploy_check cannot be fixed: the deploy survey sets it"),
    # Event-Driven Ansible's settings are checked with the rest, before any call, their secrets hidden
    ({"drs_controller_eda_enabled": True, "drs_controller_eda_password": SECRET,
      "drs_controller_eda_queue_credential_inputs": {"access_key_id": "AKIAQUEUE", "secret_access_key": SECRET},
      "drs_controller_eda_controller_credential_inputs": {"host": "https://gateway.example.com/api/controller/",
                                                          "oauth_token": EXTERNAL_ID}},
     "drs_controller_eda_decision_environment_image is required when drs_controller_eda_enabled is true"),
])
def test_bad_input_is_refused_before_any_call_to_a_controller(change, message):
    extra_vars = {key: value for key, value in dict(GOOD, **change).items() if value is not None}
    returncode, output = ansible_playbook(CONFIGURE, "-vvv", extra_vars=extra_vars)
    assert returncode != 0
    assert message in output, output
    assert "Connection refused" not in output
    assert SECRET not in output and EXTERNAL_ID not in output


def test_a_run_that_reaches_the_controller_shows_no_secret_even_at_vvv():
    returncode, output = ansible_playbook(CONFIGURE, "-vvv", extra_vars=GOOD)
    assert returncode != 0
    assert "Create the execution environment" in output and "Connection refused" in output, output
    assert SECRET not in output and EXTERNAL_ID not in output


@pytest.fixture(scope="module")
def demo_lab(lab_factory):
    return lab_factory("demo")


def survey_launch(lab, tmp_path, answers):
    """deploy_agents.yml with the deploy template's variables (the demo's, its accounts as drs_deploy_accounts)
    and the survey's ``answers``, on localhost, against the lab."""
    variables = yaml.safe_load((REPO_ROOT / "playbooks/vars/lab_demo_deploy.yml").read_text())
    variables["drs_deploy_accounts"] = variables.pop("drs_agent_deploy_accounts")
    variables.update(drs_deploy_hosts="localhost", drs_agent_deploy_plan_dir=str(tmp_path / "plan"),
                     drs_agent_deploy_summary_file="", drs_agent_deploy_history_table="", **answers)
    return run_playbook(lab, REPO_ROOT / "playbooks/deploy_agents.yml", extra_vars=variables)


def test_the_survey_check_answer_plans_only_the_chosen_regions_and_waves_and_sends_nothing(demo_lab, tmp_path):
    demo_lab.reset()
    run = survey_launch(demo_lab, tmp_path, {"drs_deploy_check": "yes", "drs_deploy_regions": ["us-west-2"],
                                             "drs_deploy_waves": ["2"], "drs_deploy_pattern": "cross-account"})
    plan = json.loads((tmp_path / "plan" / "plan.json").read_text())
    assert install_commands(demo_lab) == {}, run.stdout
    assert [wave["wave"] for wave in plan["waves"]] == [2]
    assert {place["region"] for wave in plan["waves"] for place in wave["places"]} == {"us-west-2"}
    assert plan["totals"]["install"] > 0


def test_a_survey_pattern_the_accounts_do_not_make_stops_before_any_aws_call(demo_lab, tmp_path):
    demo_lab.reset()
    before = demo_lab.control("stats")
    run = survey_launch(demo_lab, tmp_path, {"drs_deploy_pattern": "same-account"})
    assert run.returncode != 0
    assert ("drs_deploy_pattern is same-account, but the chosen accounts make a cross-account deployment"
            in run.stdout + run.stderr)
    assert demo_lab.control("stats")["total_calls"] == before["total_calls"]
