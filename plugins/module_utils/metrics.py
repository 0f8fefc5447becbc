# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""CloudWatch metrics of deployments and extensions.

A deployment sends each source account's figures (dimensions Account and DeploymentPattern) and the run's
totals without dimensions, which the alarms of the drs_monitoring role watch (an alarm reads one dimension
set only). The figures are those of the outcome model (``outcomes.tally``).
"""

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import outcomes
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import parse_time

BATCH_SIZE = 500  # within PutMetricData's limits (1,000 metrics and 1 MB a request); a metric is some 200 bytes
EXTENSION_METRICS = (
    ("ExtendedSourceServers", "extended", "Count"),
    ("ExtensionFailures", "failed_servers", "Count"),
    ("AlreadyExtendedCount", "already_extended", "Count"),
)


def deployment_metrics(items):
    """Each source account's figures, then the run's totals, from finished history items."""
    data = []
    for item in items:
        dimensions = [{"Name": "Account", "Value": item["source_account_id"]},
                      {"Name": "DeploymentPattern", "Value": item["deployment_pattern"]}]
        data.extend(_deployment_values(item, item, dimensions))
    if items:
        totals = outcomes.tally(outcomes.add(*(item["by_status"] for item in items)))
        when = {"duration_seconds": max(item["duration_seconds"] for item in items),
                "finished_at": max(item["finished_at"] for item in items)}
        data.extend(_deployment_values(totals, when, []))
        verified = [item["replication"] for item in items if item.get("replication")]
        if verified:
            unhealthy = sum(count for counts in verified for verdict, count in counts.items() if verdict != "healthy")
            data.append({"MetricName": "UnhealthyServers", "Dimensions": [],
                         "Timestamp": parse_time("finished_at", when["finished_at"]), "Value": float(unhealthy),
                         "Unit": "Count"})
    return data


def _deployment_values(figures, when, dimensions):
    moment = parse_time("finished_at", when["finished_at"])
    values = [("Attempted", figures["attempted"], "Count"), ("Installed", figures["installed"], "Count"),
              ("Failed", figures["failed"], "Count"), ("Skipped", figures["skipped"], "Count"),
              ("Unprotected", figures["unprotected"], "Count"),
              ("DurationSeconds", when["duration_seconds"], "Seconds")]
    if figures["success_rate"] is not None:
        values.insert(0, ("SuccessRate", round(figures["success_rate"] * 100, 2), "Percent"))
    return [{"MetricName": name, "Dimensions": dimensions, "Timestamp": moment, "Value": float(value), "Unit": unit}
            for name, value, unit in values]


def extension_metrics(result, staging_account_id):
    """An extension run's figures, per staging account and without dimensions (which alarms watch)."""
    data = []
    for dimensions in ([{"Name": "StagingAccountId", "Value": staging_account_id}], []):
        for name, key, unit in EXTENSION_METRICS:
            data.append({"MetricName": name, "Dimensions": dimensions, "Value": float(len(result[key])), "Unit": unit})
        data.append({"MetricName": "ExtensionDuration", "Dimensions": dimensions,
                     "Value": float(result["duration_seconds"]), "Unit": "Seconds"})
    return data


def drill_metrics(waves, when):
    """A drill's figures per wave (dimension Wave), which the drill alarm watches: recovery seconds and launch
    failures."""
    data = []
    timed = [wave["recovery_seconds"] for wave in waves if wave["recovery_seconds"] is not None]
    if timed:
        # without dimensions too: the drill alarm watches the slowest wave
        data.append({"MetricName": "DrillRecoverySeconds", "Dimensions": [], "Timestamp": when,
                     "Value": float(max(timed)), "Unit": "Seconds"})
    for wave in waves:
        dimensions = [{"Name": "Wave", "Value": str(wave["wave"])}]
        if wave["recovery_seconds"] is not None:
            data.append({"MetricName": "DrillRecoverySeconds", "Dimensions": dimensions, "Timestamp": when,
                         "Value": float(wave["recovery_seconds"]), "Unit": "Seconds"})
        data.append({"MetricName": "DrillLaunchFailures", "Dimensions": dimensions, "Timestamp": when,
                     "Value": float(wave["failed"] + wave["timed_out"]), "Unit": "Count"})
    return data


def put(cloudwatch, namespace, data):
    """Send ``data`` in batches; returns how many metrics were sent."""
    for start in range(0, len(data), BATCH_SIZE):
        cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[start:start + BATCH_SIZE], aws_retry=True)
    return len(data)
