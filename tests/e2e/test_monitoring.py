"""playbooks/setup_monitoring.yml against the lab: the alarms and dashboard exist as configured, and a
second run changes nothing."""

import json

import pytest

from tests.e2e.conftest import run_playbook

PLAYBOOK = "playbooks/setup_monitoring.yml"
SETTINGS = {
    "drs_monitoring_metrics_namespace": "Lab/AgentDeployment",
    "drs_monitoring_failure_rate_threshold": 0.2,
    "drs_monitoring_duration_threshold_seconds": 1800,
    "drs_monitoring_drill_recovery_threshold_seconds": 900,
    "drs_monitoring_dashboard_name": "lab-deployments",
}


@pytest.fixture(scope="module")
def lab(lab_factory):
    return lab_factory("demo")


@pytest.fixture(scope="module")
def runs(lab):
    checked = run_playbook(lab, PLAYBOOK, extra_vars=SETTINGS, check=True)
    stacks_after_check = [stack["StackName"] for stack in lab.client("cloudformation").describe_stacks()["Stacks"]]
    first = run_playbook(lab, PLAYBOOK, extra_vars=SETTINGS)
    second = run_playbook(lab, PLAYBOOK, extra_vars=SETTINGS)
    return checked, stacks_after_check, first, second


def test_check_mode_creates_nothing(runs):
    checked, stacks_after_check, _first, _second = runs
    assert checked.returncode == 0, checked.stdout[-3000:]
    assert "drs-agent-deployment-monitoring" not in stacks_after_check


def test_the_alarms_watch_the_failure_rate_and_the_duration(lab, runs):
    _checked, _stacks, first, _second = runs
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-2000:]
    alarms = {alarm["AlarmName"]: alarm
              for alarm in lab.client("cloudwatch").describe_alarms(AlarmNamePrefix="lab-deployments-")["MetricAlarms"]}

    failure_rate = alarms["lab-deployments-failure-rate"]
    assert failure_rate["Threshold"] == 0.2
    stats = {query["Id"]: (query["MetricStat"]["Metric"]["Namespace"], query["MetricStat"]["Metric"]["MetricName"])
             for query in failure_rate["Metrics"] if "MetricStat" in query}
    assert stats == {"failed": ("Lab/AgentDeployment", "Failed"), "attempted": ("Lab/AgentDeployment", "Attempted")}
    assert [query["Expression"] for query in failure_rate["Metrics"] if "Expression" in query] == [
        "IF(attempted > 0, failed / attempted, 0)"]
    duration = alarms["lab-deployments-duration"]
    assert (duration["Namespace"], duration["MetricName"], duration["Threshold"]) == ("Lab/AgentDeployment", "DurationSeconds", 1800)
    assert duration["AlarmActions"] == []
    stalled = alarms["lab-deployments-stalled-servers"]
    assert (stalled["Namespace"], stalled["MetricName"], stalled["Threshold"]) == ("Lab/AgentDeployment", "UnhealthyServers", 0)
    drill = alarms["lab-deployments-drill-recovery-time"]
    assert (drill["Namespace"], drill["MetricName"], drill["Threshold"]) == ("Lab/AgentDeployment", "DrillRecoverySeconds", 900)


def test_the_dashboard_charts_the_namespace_and_shows_the_alarms(lab, runs):
    body = json.loads(lab.client("cloudwatch").get_dashboard(DashboardName="lab-deployments")["DashboardBody"])
    text = json.dumps(body)
    assert "Lab/AgentDeployment" in text and "SuccessRate" in text
    alarm_widget = [widget for widget in body["widgets"] if widget["type"] == "alarm"][0]
    assert all(arn.startswith("arn:aws:cloudwatch:us-east-1:111111111111:alarm:lab-deployments-")
               for arn in alarm_widget["properties"]["alarms"])


def test_a_second_run_changes_nothing(runs):
    _checked, _stacks, _first, second = runs
    assert second.returncode == 0
    assert second.task("drs_orchestration.agent_deployer.drs_monitoring : Deploy the deployment alarms and dashboard")["changed"] is False


def test_a_threshold_out_of_range_is_refused_before_any_aws_call(lab):
    calls = lab.stats()["total_calls"]
    run = run_playbook(lab, PLAYBOOK, extra_vars=dict(SETTINGS, drs_monitoring_failure_rate_threshold=5))
    assert run.returncode != 0
    assert "drs_monitoring_failure_rate_threshold must be from 0 to 1" in run.stdout
    assert lab.stats()["total_calls"] == calls
