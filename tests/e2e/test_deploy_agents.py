"""playbooks/deploy_agents.yml end to end: the demo's cross-account rollout against the lab, run the
way an operator runs it (the aws_ec2 inventory, --check, --limit), judged by what the lab saw."""

import json
import subprocess

import pytest
from boto3.dynamodb.types import TypeDeserializer

from tests.e2e.conftest import ANSIBLE_BIN, collection_environment
from tests.e2e.test_report import _Dom, _open
from tests.lab_fixture import REPO_ROOT

SOURCE = "222222222222"
STAGING = "333333333333"
REGIONS = ("us-east-1", "us-west-2")
STAGING_ROLE = "arn:aws:iam::333333333333:role/DRSOrchestrationStagingRole"
SOURCE_ROLE = "arn:aws:iam::222222222222:role/DRSOrchestrationSourceRole"
EXTERNAL_ID = "lab-demo-external-id"
HISTORY_TABLE = "drs-deployment-history"
FAILED_STATUSES = ("failed", "timed_out", "not_registered_after_success")


@pytest.fixture(scope="module")
def lab(lab_factory):
    return lab_factory("demo")


@pytest.fixture
def fresh_lab(lab):
    lab.reset()
    _ansible(lab, "playbooks/setup_accounts.yml", "-e", "@playbooks/vars/lab_demo_setup.yml")
    _ansible(lab, "playbooks/setup_history.yml")
    return lab


def _ansible(lab, playbook, *args, verbosity=(), expect_success=True):
    env = lab.environment(
        AWS_CONFIG_FILE=str(REPO_ROOT / "inventories/lab/aws_config"),
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        AWS_PROFILE="lab-operator",
        ANSIBLE_FORCE_COLOR="0",
        **collection_environment(),
    )
    for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(key)
    command = [str(ANSIBLE_BIN / "ansible-playbook"), *verbosity, playbook, *args]
    completed = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    if expect_success:
        assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-2000:]
    return completed


def _deploy(lab, tmp_path, *args, verbosity=(), expect_success=True):
    summary = tmp_path / "summary.json"
    completed = _ansible(
        lab, "playbooks/deploy_agents.yml", "-i", "inventories/lab/", "-e", "@playbooks/vars/lab_demo_deploy.yml",
        "-e", f"drs_agent_deploy_summary_file={summary}", "-e", "drs_agent_deploy_ssm_online_timeout=2",
        "-e", f"drs_agent_deploy_history_spool_dir={tmp_path / 'spool'}",
        *args, verbosity=verbosity, expect_success=expect_success,
    )
    return completed, (json.loads(summary.read_text()) if summary.exists() else None)


def _source_instances(lab):
    """Instance id -> wave of the DR-tagged running instances the lab holds in the source account."""
    credentials = lab.assume(SOURCE_ROLE, EXTERNAL_ID)
    waves = {}
    for region in REGIONS:
        ec2 = lab.client("ec2", region, credentials)
        for page in ec2.get_paginator("describe_instances").paginate(Filters=[
            {"Name": "tag:dr:enabled", "Values": ["true"]}, {"Name": "instance-state-name", "Values": ["running"]},
        ]):
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    tags = {tag["Key"]: tag["Value"] for tag in instance.get("Tags", [])}
                    waves[instance["InstanceId"]] = int(tags["dr:wave"])
    return waves


def _commands(lab):
    """Every SSM command the source account received: (requested at, instance ids)."""
    credentials = lab.assume(SOURCE_ROLE, EXTERNAL_ID)
    commands = []
    for region in REGIONS:
        ssm = lab.client("ssm", region, credentials)
        for page in ssm.get_paginator("list_commands").paginate():
            for command in page["Commands"]:
                commands.append((command["RequestedDateTime"], command["InstanceIds"]))
    return sorted(commands)


def _registered_in_staging(lab):
    credentials = lab.assume(STAGING_ROLE, EXTERNAL_ID)
    registered = set()
    for region in REGIONS:
        drs = lab.client("drs", region, credentials)
        for page in drs.get_paginator("describe_source_servers").paginate(filters={}):
            for server in page["items"]:
                hints = server.get("sourceProperties", {}).get("identificationHints", {})
                if server["dataReplicationInfo"].get("dataReplicationState") != "DISCONNECTED":
                    registered.add(hints.get("awsInstanceID"))
    return registered


def _history(lab):
    """The deployment history items in the operator's account (not the send locks), newest first."""
    pages = lab.client("dynamodb").get_paginator("scan").paginate(TableName=HISTORY_TABLE)
    items = [{key: TypeDeserializer().deserialize(value) for key, value in item.items()}
             for page in pages for item in page["Items"]]
    return sorted((item for item in items if item.get("record_type") == "deployment"),
                  key=lambda item: item["timestamp"], reverse=True)


def test_waves_run_in_order_and_the_summary_matches_the_lab(fresh_lab, tmp_path):
    before = _registered_in_staging(fresh_lab)
    completed, summary = _deploy(fresh_lab, tmp_path)
    waves = _source_instances(fresh_lab)

    # every command of a wave was sent after every command of the waves before it
    sent_waves = [{waves[instance] for instance in instances} for _at, instances in _commands(fresh_lab)]
    assert all(len(wave) == 1 for wave in sent_waves)
    order = [wave.pop() for wave in sent_waves]
    assert order == sorted(order) and set(order) == set(waves.values())

    newly_registered = _registered_in_staging(fresh_lab) - before
    assert summary["deployment_pattern"] == "cross-account"
    assert [wave["wave"] for wave in summary["waves"]] == sorted(set(waves.values()))
    assert summary["totals"]["installed"] == len(newly_registered & set(waves)) > 0
    assert summary["totals"]["already_registered"] == len(before & set(waves))
    assert summary["totals"]["failed"] > 0 and summary["accounts"][SOURCE]["failed"] == summary["totals"]["failed"]
    # the operator saw progress while each wave ran, and each failure with its category
    assert all(f"wave {wave}: " in completed.stdout for wave in set(waves.values()))
    assert "failed [" in completed.stdout
    # the run is recorded: one item for the source account, with the summary's figures and each failure
    [item] = _history(fresh_lab)
    assert (item["source_account_id"], item["deployment_pattern"], item["status"]) == (SOURCE, "cross-account", "partial")
    for figure in ("attempted", "installed", "already_registered", "failed", "skipped"):
        assert item[figure] == summary["totals"][figure]
    failed = [entry for entry in item["unprotected_instances"] if entry["status"] in FAILED_STATUSES]
    assert len(failed) == summary["totals"]["failed"]
    assert all(entry["error_category"] and entry["remediation"] and entry["wave"] in waves.values() for entry in failed)
    # every instance that is not protected is in the record with its reason and remediation, as in the summary file
    assert sorted((e["instance_id"], e["status"]) for e in item["unprotected_instances"]) == sorted(
        (e["instance_id"], e["status"]) for e in summary["unprotected"])
    assert all(entry["reason"] and entry["remediation"] for entry in item["unprotected_instances"])
    # every server registered in staging by this run, or before it, was extended into the target account
    extension = summary["extension"]["totals"]
    assert (extension["extended"], extension["failed"]) == (summary["totals"]["installed"] + summary["totals"]["already_registered"], 0)
    assert item["extension"]["totals"] == extension


def test_a_second_run_changes_nothing(fresh_lab, tmp_path):
    # wave 3 of the demo has no failing install: once deployed, there is nothing left to do
    _completed, first = _deploy(fresh_lab, tmp_path, "--limit", "wave_3")
    sent_before = len(_commands(fresh_lab))
    completed, second = _deploy(fresh_lab, tmp_path, "--limit", "wave_3")
    assert "changed=0" in completed.stdout.split("PLAY RECAP")[-1]
    assert len(_commands(fresh_lab)) == sent_before
    assert second["totals"]["installed"] == 0
    assert second["totals"]["already_registered"] == first["totals"]["installed"] + first["totals"]["already_registered"]


def test_a_second_run_retries_only_the_failed_instances(fresh_lab, tmp_path):
    _completed, first = _deploy(fresh_lab, tmp_path)
    sent_before = len(_commands(fresh_lab))
    _completed, second = _deploy(fresh_lab, tmp_path)
    resent = [instances for _at, instances in _commands(fresh_lab)[sent_before:]]
    assert sum(len(instances) for instances in resent) == first["totals"]["failed"]
    assert second["totals"]["installed"] == 0
    assert second["totals"]["failed"] == first["totals"]["failed"]


def test_check_mode_prints_the_plan_and_sends_nothing(fresh_lab, tmp_path):
    completed, summary = _deploy(fresh_lab, tmp_path, "--check")
    assert _commands(fresh_lab) == []
    assert summary is None
    for wave in sorted(set(_source_instances(fresh_lab).values())):
        assert f"Wave {wave}: " in completed.stdout
    assert "Deployment pattern: cross-account" in completed.stdout


def test_limit_to_an_inventory_group_restricts_the_targets(fresh_lab, tmp_path):
    _completed, summary = _deploy(fresh_lab, tmp_path, "--limit", "wave_1")
    waves = _source_instances(fresh_lab)
    sent = {instance for _at, instances in _commands(fresh_lab) for instance in instances}
    assert sent and {waves[instance] for instance in sent} == {1}
    assert [wave["wave"] for wave in summary["waves"]] == [1]


def test_the_wave_gate_stops_the_rollout_after_a_failing_wave(fresh_lab, tmp_path):
    completed, summary = _deploy(fresh_lab, tmp_path, "-e", "drs_agent_deploy_max_failure_rate=0", expect_success=False)
    assert completed.returncode != 0
    first_wave = summary["planned_waves"][0]
    assert summary["stopped_after_wave"] == first_wave
    assert [wave["wave"] for wave in summary["waves"]] == [first_wave]
    waves = _source_instances(fresh_lab)
    assert {waves[instance] for _at, instances in _commands(fresh_lab) for instance in instances} == {first_wave}
    assert f"The rollout stopped after wave {first_wave}" in completed.stdout
    # a stopped rollout is recorded all the same
    [item] = _history(fresh_lab)
    assert item["stopped_after_wave"] == first_wave and item["status"] == "partial"


def test_no_secret_reaches_verbose_output(fresh_lab, tmp_path):
    completed, _summary = _deploy(fresh_lab, tmp_path, verbosity=("-vvv",))
    output = completed.stdout + completed.stderr
    sessions = fresh_lab.control("sessions")["sessions"]
    assert len(sessions) >= 2  # the source and staging sessions of this run, at least
    for session in sessions:
        assert session["secret_access_key"] not in output
        assert session["session_token"] not in output
    assert "lab-operator-secret" not in output


def test_the_report_of_the_demo_run_opens_in_a_browser_with_the_right_colours(fresh_lab, tmp_path):
    _completed, summary = _deploy(fresh_lab, tmp_path)
    report_dir = tmp_path / "report"
    _ansible(fresh_lab, "playbooks/report.yml", "-e", f"drs_report_output_dir={report_dir}")

    dom_text, console = _open(report_dir / "report.html", tmp_path, "--dump-dom")
    _open(report_dir / "report.html", tmp_path, f"--screenshot={report_dir / 'report.png'}", "--window-size=1280,2000")

    assert console == []
    assert (report_dir / "report.png").stat().st_size > 0
    [cell] = [attrs for attrs in _Dom(dom_text).with_class("account-cell") if attrs.get("data-account-id") == SOURCE]
    totals = summary["totals"]
    rate = (totals["installed"] + totals["already_registered"]) / totals["attempted"]
    expected = "green" if rate >= 0.95 else "yellow" if rate >= 0.80 else "red"
    assert f"status-{expected}" in cell["class"].split()
    # the page shows the run's own success rate, the one the summary holds
    assert float(cell["data-success-rate"]) == totals["success_rate"] == pytest.approx(rate, abs=1e-4)


def test_a_deployment_recorded_while_dynamodb_is_down_is_written_once_by_the_next_run(fresh_lab, tmp_path):
    fresh_lab.control("faults", {"unavailable": ["dynamodb"]})
    try:
        completed, _first = _deploy(fresh_lab, tmp_path, "--limit", "wave_3")
    finally:
        fresh_lab.control("faults", {"clear": True})
    spooled = list((tmp_path / "spool").iterdir())
    assert completed.returncode == 0
    assert "kept in the spool until the table can be written" in completed.stdout
    # the run's one account item and its wave item
    assert len(spooled) == 2 and _history(fresh_lab) == []

    _deploy(fresh_lab, tmp_path, "--limit", "wave_3")
    _deploy(fresh_lab, tmp_path, "--limit", "wave_3")

    items = _history(fresh_lab)
    assert len(items) == 3 and len({item["deployment_id"] for item in items}) == 3
    assert list((tmp_path / "spool").iterdir()) == []
    # the spooled run is the oldest, with what it installed
    assert items[-1]["installed"] > 0 and items[0]["installed"] == 0
