"""The deploy role's rollout under the conditions operators meet: Ctrl-C, a killed controller, two runs at
once, a hung install, nothing to do; and one account of each instance, the same in the wave gate, the
module and the history. Run with ansible-playbook against the lab's rollout scenario, judged by the lab's
own records of every install command (GET /_lab/invocations) and its DynamoDB."""

import json
import os
import signal
import subprocess
import time
import uuid
from collections import Counter

import pytest
import yaml
from boto3.dynamodb.types import TypeDeserializer

from tests.e2e.conftest import ANSIBLE_BIN, collection_environment, run_playbook
from tests.lab_fixture import REPO_ROOT

SCENARIO = REPO_ROOT / "tests" / "e2e" / "scenarios" / "rollout.yml"
WORKLOADS, APPS = "111111111111", "666666666666"
APPS_ROLE = f"arn:aws:iam::{APPS}:role/DRSOrchestrationSourceRole"
TABLE = "drs-deployment-history"
PROTECTED = ("installed", "already_registered")
# the slow installs of the interrupted runs take real seconds at this scale; the runs after them wait on the
# lab's clock
INTERRUPTED_TIME_SCALE = 20
STOP_SECONDS = 15


@pytest.fixture(scope="module")
def rollout_lab(lab_factory):
    lab = lab_factory(SCENARIO)
    assert run_playbook(lab, "playbooks/setup_history.yml").returncode == 0
    return lab


@pytest.fixture
def lab(rollout_lab):
    rollout_lab.reset()
    assert run_playbook(rollout_lab, "playbooks/setup_history.yml").returncode == 0
    return rollout_lab


def settings(tmp_path, name="summary", **overrides):
    variables = {
        "drs_deploy_hosts": "localhost",
        "drs_agent_deploy_accounts": [{"account_id": WORKLOADS, "regions": ["us-east-1"]}],
        "drs_agent_deploy_summary_file": str(tmp_path / f"{name}.json"),
        "drs_agent_deploy_history_spool_dir": str(tmp_path / "spool"),
        "drs_agent_deploy_max_failure_rate": 1,
        "drs_agent_deploy_ssm_online_timeout": 30,
        "drs_agent_deploy_install_timeout": 1800,
        "drs_agent_deploy_poll_interval": 15,
        "drs_agent_deploy_progress_interval": 5,
    }
    variables.update(overrides)
    return variables


def deploy(lab, tmp_path, name="summary", check=False, **overrides):
    variables = settings(tmp_path, name, **overrides)
    run = run_playbook(lab, "playbooks/deploy_agents.yml", extra_vars=variables, check=check,
                       env={"ANSIBLE_STDOUT_CALLBACK": "default"})
    summary_file = tmp_path / f"{name}.json"
    return run, json.loads(summary_file.read_text()) if summary_file.exists() else None


def start_deploy(lab, tmp_path, name, lab_clock, **overrides):
    """ansible-playbook in the background, its own process group (as a shell would start it), output to a file."""
    marker = uuid.uuid4().hex
    variables = dict(settings(tmp_path, name, **overrides), drs_test_marker=marker)
    log = open(tmp_path / f"{name}.log", "w", encoding="utf-8")  # pylint: disable=consider-using-with
    process = subprocess.Popen(  # pylint: disable=consider-using-with
        [str(ANSIBLE_BIN / "ansible-playbook"), "playbooks/deploy_agents.yml", "-e", json.dumps(variables)],
        cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env=lab.environment(**collection_environment(lab_clock=lab_clock), ANSIBLE_STDOUT_CALLBACK="default"))
    process.marker, process.log_path, process.log = marker, tmp_path / f"{name}.log", log
    return process


def wait_for(condition, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"waited {seconds} s for {what}")


def processes_of(marker):
    """The pids of every process whose command line carries ``marker`` (ansible-playbook and its workers)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as stream:
                    if marker.encode() in stream.read():
                        found.append(int(entry))
            except OSError:
                continue
    return found


def install_commands(lab):
    """instance id -> the install commands the lab received for it."""
    per_instance = {}
    for command in lab.control("invocations")["commands"]:
        if command["installs_agent"]:
            for invocation in command["invocations"]:
                per_instance.setdefault(invocation["instance_id"], []).append(command["command_id"])
    return per_instance


def twice_installed(lab):
    """instance id -> its installs (command id, status, start, end in simulated seconds) when one began before
    the one before it ended, or after one before it succeeded."""
    per_instance = {}
    for command in lab.control("invocations")["commands"]:
        if command["installs_agent"]:
            for invocation in command["invocations"]:
                per_instance.setdefault(invocation["instance_id"], []).append(
                    (command["command_id"], invocation["status"], invocation["started_at"], invocation["ended_at"]))
    found = {}
    for instance_id, installs in per_instance.items():
        installs.sort(key=lambda install: (install[2] is None, install[2]))
        for earlier, later in zip(installs, installs[1:]):
            if earlier[3] is None or later[2] is None or later[2] < earlier[3] or earlier[1] == "Success":
                found[instance_id] = installs
    return found


def history(lab):
    """Every run's items (not the send locks), oldest run first."""
    pages = lab.client("dynamodb").get_paginator("scan").paginate(TableName=TABLE)
    items = [{key: TypeDeserializer().deserialize(value) for key, value in item.items()}
             for page in pages for item in page["Items"]]
    # DynamoDB's numbers as Python's
    items = json.loads(json.dumps(items, default=float))
    return sorted((item for item in items if item.get("record_type") == "deployment"), key=lambda item: item["timestamp"])


def registered(lab, credentials=None):
    drs = lab.client("drs", "us-east-1", credentials)
    return {server["sourceProperties"]["identificationHints"]["awsInstanceID"]
            for page in drs.get_paginator("describe_source_servers").paginate(filters={})
            for server in page["items"] if server["dataReplicationInfo"]["dataReplicationState"] != "DISCONNECTED"}


def names(lab, credentials=None):
    """instance id -> Name tag of the account's DR-tagged instances."""
    ec2 = lab.client("ec2", "us-east-1", credentials)
    found = {}
    for page in ec2.get_paginator("describe_instances").paginate(Filters=[{"Name": "tag:dr:enabled", "Values": ["true"]}]):
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                found[instance["InstanceId"]] = {tag["Key"]: tag["Value"] for tag in instance["Tags"]}["Name"]
    return found


def installable(lab):
    """The instances whose install can succeed (not failing, hung or offline)."""
    return {iid for iid, name in names(lab).items() if name.split("-")[0] in ("one", "two", "padded")}


# --- interrupted runs -------------------------------------------------------------------------------

@pytest.mark.parametrize("stop_with", [signal.SIGINT, signal.SIGKILL])
def test_an_interrupted_run_leaves_nothing_running_and_the_next_run_adopts_its_installs(lab, tmp_path, stop_with):
    before = registered(lab)
    lab.pin_time_scale(INTERRUPTED_TIME_SCALE)
    try:
        first = start_deploy(lab, tmp_path, "first", lab_clock=False)
        wait_for(lambda: "Wave 1: sent the install" in first.log_path.read_text(), 120, "wave 1 to be sent")
        os.kill(first.pid, stop_with)
        first.wait(timeout=STOP_SECONDS)
        # the task's own process (a worker Ansible detached into its own session) is gone within seconds too
        wait_for(lambda: not processes_of(first.marker), STOP_SECONDS, "the interrupted run's processes to end")
        first.log.close()
    finally:
        lab.pin_time_scale(1)
    output = first.log_path.read_text()
    stopped_item = history(lab)
    assert [item["status"] for item in stopped_item] == ["stopped"]
    left_running = {entry["instance_id"] for entry in stopped_item[0]["in_flight"]}
    sent = set(install_commands(lab))
    assert left_running and left_running <= sent
    if stop_with == signal.SIGINT:
        # the last lines say which installs go on, and that a re-run adopts them
        assert "still running on the instances" in output and "Run the deployment again: it adopts them" in output
        assert all(instance_id in output for instance_id in left_running)
        # ansible-playbook passes the SIGINT on, and a SIGTERM right after: either may come first
        assert stopped_item[0]["stop_reason"] in ("interrupted (SIGINT, Ctrl-C)", "terminated (SIGTERM)")
    else:
        assert stopped_item[0]["stop_reason"] == "ansible-playbook ended"
    # what the interrupted run knew is kept, and nothing temporary is left behind
    assert json.loads((tmp_path / "first.json").read_text())["stop_reason"] == stopped_item[0]["stop_reason"]
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []

    second, summary = deploy(lab, tmp_path, "second")
    assert second.returncode == 0, second.stdout[-4000:] + second.stderr[-2000:]
    assert f"stopped with {len(left_running)} install(s) running" in second.stdout

    # no instance ever got a second install command, and every instance that can be protected is
    commands = install_commands(lab)
    assert {iid: ids for iid, ids in commands.items() if len(ids) > 1} == {}
    assert installable(lab) <= registered(lab)
    # both runs are recorded; every install is counted once, by the run that saw it end
    first_item, second_item = history(lab)
    assert first_item["claimed_by"] == second_item["run_id"]
    assert (first_item["installed"], second_item["installed"]) == (0, summary["totals"]["installed"])
    assert first_item["installed"] + second_item["installed"] == len(registered(lab) - before)


@pytest.fixture
def slow_listing_lab(lab_factory, tmp_path_factory):
    """The rollout scenario where SSM lists a new command only a simulated minute after SendCommand."""
    scenario = yaml.safe_load(SCENARIO.read_text())
    scenario["ssm"] = dict(scenario.get("ssm") or {}, visibility_delay_seconds=60)
    path = tmp_path_factory.mktemp("slow-listing") / "rollout-slow-listing.yml"
    path.write_text(yaml.safe_dump(scenario))
    lab = lab_factory(path)
    assert run_playbook(lab, "playbooks/setup_history.yml").returncode == 0
    return lab


@pytest.mark.parametrize("listing", ["prompt", "slow"])
def test_runs_started_together_on_overlapping_accounts_never_install_twice(listing, request, tmp_path):
    """Also when SSM lists a new command late: the send lock is held until it does."""
    lab = request.getfixturevalue("lab" if listing == "prompt" else "slow_listing_lab")
    before = registered(lab)
    both = [{"account_id": WORKLOADS, "regions": ["us-east-1"]},
            {"account_id": APPS, "regions": ["us-east-1"], "role_arn": APPS_ROLE}]
    runs = [start_deploy(lab, tmp_path, "left", lab_clock=True, drs_agent_deploy_accounts=both,
                         drs_agent_deploy_external_id="lab-rollout-external-id", drs_agent_deploy_waves=[1]),
            start_deploy(lab, tmp_path, "right", lab_clock=True, drs_agent_deploy_accounts=both[:1],
                         drs_agent_deploy_waves=[1])]
    for run in runs:
        run.wait(timeout=600)
        run.log.close()
    outputs = [run.log_path.read_text() for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs

    # never two installs of one instance at once, nor one after an install that succeeded: a run that starts its
    # wave only after the other run's install of an instance failed (the lab's clock runs ahead of a run still
    # starting) may try it again, as any later deployment would
    assert twice_installed(lab) == {}
    apps = lab.assume(APPS_ROLE, "lab-rollout-external-id")
    assert {iid for iid, name in names(lab).items() if name.split("-")[0] in ("one", "padded")} <= registered(lab)
    assert set(names(lab, apps)) <= registered(lab, apps)
    # the install of each instance is counted by the run that sent it; the other one waited for it
    summaries = [json.loads((tmp_path / f"{name}.json").read_text()) for name in ("left", "right")]
    workloads_installed = sum(summary["accounts"][WORKLOADS]["installed"] for summary in summaries)
    assert workloads_installed == len(registered(lab) - before)


# --- one account of each instance ---------------------------------------------------------------------

def test_the_wave_gate_the_module_and_the_history_read_a_wave_alike(lab, tmp_path):
    """One wave with installed, already registered, failed, timed out (cancelled) and skipped instances."""
    run, summary = deploy(lab, tmp_path, drs_agent_deploy_max_failure_rate=0.2, drs_agent_deploy_install_timeout=900)
    wave = summary["waves"][0]
    assert {status for status, count in wave["by_status"].items() if count} == {
        "installed", "already_registered", "failed", "timed_out", "skipped_ssm_offline"}
    # the gate's reading: the failed and the hung install of the wave's attempted instances (all but the offline
    # one): 2 of 9, above 0.2, so the rollout stopped after wave 1
    in_wave = [name for name in names(lab).values() if name.split("-")[0] in ("one", "padded", "failing", "hung")]
    assert (wave["failed"], wave["attempted"], wave["failure_rate"]) == (2, len(in_wave), round(2 / len(in_wave), 4))
    assert run.returncode != 0 and summary["stopped_after_wave"] == 1
    assert "The rollout stopped after wave 1" in run.stdout and summary["waves"][1:] == []
    # the history's reading
    [item] = history(lab)
    assert item["waves"][0]["by_status"] == wave["by_status"] and item["waves"][0]["failure_rate"] == wave["failure_rate"]
    assert item["stopped_after_wave"] == 1 and item["status"] == "partial"
    assert item["by_status"]["not_started"] == len([n for n in names(lab).values() if n.startswith("two-")])
    # the module's reading, on the same instances from the same start
    wave_one = sorted(iid for iid, name in names(lab).items() if name.split("-")[0] in (
        "one", "padded", "failing", "hung", "offline"))
    lab.reset()
    module = run_playbook(lab, "ssm_install.yml", extra_vars={
        "instance_ids": wave_one, "install_timeout": 900, "ssm_online_timeout": 30, "max_failure_rate": 0.2})
    result = module.task("Install the agent")
    assert module.returncode != 0 and f"failure rate {wave['failure_rate']} > max_failure_rate 0.2" in result["msg"]
    figures = result["figures"]
    assert figures["by_status"] == wave["by_status"] and figures["failure_rate"] == wave["failure_rate"]
    assert Counter(entry["status"] for entry in result["results"]) == Counter(
        {status: count for status, count in wave["by_status"].items() if count})


def test_a_hung_install_is_cancelled_at_its_deadline_and_the_next_wave_starts(lab, tmp_path):
    run, summary = deploy(lab, tmp_path, drs_agent_deploy_install_timeout=1200)
    assert run.returncode == 0, run.stdout[-4000:]
    hung = next(entry for entry in summary["unprotected"] if entry["name"] == "hung-01")
    assert hung["status"] == "timed_out" and "install_timeout (1200 s)" in hung["remediation"]
    timeline = lab.control("invocations")["commands"]
    [invocation] = [i for c in timeline for i in c["invocations"] if i["instance_id"] == hung["instance_id"]]
    assert invocation["status"] == "Cancelled" and invocation["ended_at"] - invocation["started_at"] <= 1200 + 30
    # wave 2 went out once the cancel made wave 1 end, not after the hour the step would have run
    second_wave = min(c["requested_at"] for c in timeline for i in c["invocations"]
                      if names(lab)[i["instance_id"]].startswith("two-"))
    assert second_wave < invocation["ended_at"] + 120
    assert [wave["wave"] for wave in summary["waves"]] == [1, 2]


def test_every_unprotected_instance_is_listed_by_id_with_its_reason(lab, tmp_path):
    run, summary = deploy(lab, tmp_path, drs_agent_deploy_waves=[1])
    by_name = {names(lab)[entry["instance_id"]]: entry for entry in summary["unprotected"]}
    assert set(by_name) == {"failing-01", "hung-01", "offline-01"}
    for name, status in (("failing-01", "failed"), ("hung-01", "timed_out"), ("offline-01", "skipped_ssm_offline")):
        entry = by_name[name]
        assert entry["status"] == status and entry["reason"] and entry["remediation"]
        assert entry["instance_id"] in run.stdout
    [item] = history(lab)
    assert {entry["instance_id"] for entry in item["unprotected_instances"]} == {e["instance_id"] for e in by_name.values()}
    # the padded wave tag "01" is wave 1
    padded = next(iid for iid, name in names(lab).items() if name == "padded-01")
    assert padded in registered(lab)


# --- nothing to do ------------------------------------------------------------------------------------

def test_a_run_where_everything_is_protected_succeeds_unchanged_and_says_so(lab, tmp_path):
    first, _summary = deploy(lab, tmp_path, "first", drs_agent_deploy_waves=[2])
    assert first.returncode == 0, first.stdout[-3000:]
    again, summary = deploy(lab, tmp_path, "again", drs_agent_deploy_waves=[2])
    assert again.returncode == 0, again.stdout[-3000:]
    assert "changed=0" in again.stdout.split("PLAY RECAP")[-1]
    assert "Nothing to do: every one of the 5 instance(s) is already protected" in again.stdout
    assert summary["totals"]["already_registered"] == 5 and summary["totals"]["unprotected"] == 0


def playbook(lab, variables, *args):
    """deploy_agents.yml as an operator runs it: with the inventory they give (or none), the lab's credentials."""
    env = lab.environment(**collection_environment(), ANSIBLE_STDOUT_CALLBACK="default")
    return subprocess.run([str(ANSIBLE_BIN / "ansible-playbook"), "playbooks/deploy_agents.yml", "-e",
                           json.dumps(variables), *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                          timeout=600, check=False)


def inventory(tmp_path, body):
    path = tmp_path / "rollout.aws_ec2.yml"
    path.write_text(body)
    return str(path)


# the lab's inventory of the demo account, reading this scenario's account with the environment's credentials
WORKLOADS_INVENTORY = (REPO_ROOT / "inventories" / "lab" / "demo_source.aws_ec2.yml").read_text().replace(
    "profile: lab-source\n", "")


@pytest.mark.parametrize("case, message", [
    ("missing", "does not exist: give an inventory with -i"),
    ("broken", "could not be parsed or lists no instance"),
    ("waves", "drs_agent_deploy_waves [9] matches no wave of the instances in scope; their waves are: 1, 2"),
])
def test_a_run_with_nothing_to_deploy_fails_and_says_why(lab, tmp_path, case, message):
    variables = settings(tmp_path)
    del variables["drs_deploy_hosts"]
    if case == "missing":
        args = ("-i", str(tmp_path / "nowhere.aws_ec2.yml"))
    elif case == "broken":
        args = ("-i", inventory(tmp_path, WORKLOADS_INVENTORY + "regions: [unclosed\n"))
    else:
        args = ("-i", inventory(tmp_path, WORKLOADS_INVENTORY), "-e", '{"drs_agent_deploy_waves": [9]}')
    calls_before = lab.stats()["total_calls"]
    run = playbook(lab, variables, *args)
    if case == "missing":
        assert lab.stats()["total_calls"] == calls_before
    assert run.returncode != 0
    assert message in " ".join(run.stdout.split()), run.stdout[-3000:] + run.stderr[-2000:]
    assert install_commands(lab) == {} and history(lab) == []


def test_inventory_groups_follow_the_deployments_reading_of_the_wave_tag(lab, tmp_path):
    path = inventory(tmp_path, WORKLOADS_INVENTORY)
    listed = subprocess.run([str(ANSIBLE_BIN / "ansible-inventory"), "-i", path, "--list"], cwd=REPO_ROOT,
                            env=lab.environment(**collection_environment()), capture_output=True, text=True, check=False)
    groups = json.loads(listed.stdout)
    padded = next(iid for iid, name in names(lab).items() if name == "padded-01")
    # the wave tag "01" is wave 1 for the deployment, so the inventory groups the instance as wave_1
    assert padded in groups["wave_1"]["hosts"] and "wave_01" not in groups
    assert groups["_meta"]["hostvars"][padded]["dr_wave"] == 1
    # and --limit wave_1 deploys it with the rest of wave 1; a limit that matches nothing is refused
    variables = settings(tmp_path)
    del variables["drs_deploy_hosts"]
    limited = playbook(lab, variables, "-i", path, "--limit", "wave_7")
    assert limited.returncode != 0 and install_commands(lab) == {}
    run = playbook(lab, variables, "-i", path, "--limit", "wave_1")
    assert run.returncode == 0, run.stdout[-3000:]
    assert padded in install_commands(lab)
    assert {names(lab)[iid].split("-")[0] for iid in install_commands(lab)} == {"one", "padded", "failing", "hung"}
