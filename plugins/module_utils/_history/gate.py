# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The wave gate of a deployment whose waves ran in several runs: AWX job slices, or a workflow's wave nodes.

Each run records, next to its account items, one wave item per wave it recorded (``build_wave_items``), so a
wave's figures are the sum of that wave's figures over the wave items of the deployment, added with the one
arithmetic of ``outcomes``, and reading them costs the wave's runs, not the deployment's. The gate judges a
wave only once every run that recorded it has ended: a run still going, or killed without recording its end
(``interrupted``), leaves the wave unjudged, and so does a wave no run recorded.

A run started again with the same deployment id (a re-launched slice) records its own items next to the first
run's: its retried instances count in both, so the gate errs on the strict side.
"""

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import outcomes
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import INTERRUPTED
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import IN_PROGRESS
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import effective_status
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import wave_key_prefix
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.store import deserialize


def wave_runs(dynamodb, table_name, deployment_id, wave, now):
    """Each run's figures of ``wave`` per source account (run id, account, status as readers see it, figures),
    from the deployment's wave items of that wave: one Query with a key condition, page by page, strongly
    consistent so that the slices' last writes before the gate are read."""
    request = {"TableName": table_name, "ConsistentRead": True,
               "KeyConditionExpression": "deployment_id = :deployment AND begins_with(#t, :wave)",
               "ExpressionAttributeNames": {"#t": "timestamp"},
               "ExpressionAttributeValues": {":deployment": {"S": deployment_id}, ":wave": {"S": wave_key_prefix(wave)}}}
    runs = []
    while True:
        page = dynamodb.query(aws_retry=True, **request)
        for wave_item in map(deserialize, page.get("Items", [])):
            for account in wave_item["accounts"]:
                status = effective_status({"status": account["status"], "lease_until": wave_item.get("lease_until")}, now)
                runs.append({"run_id": wave_item["run_id"], "source_account_id": account["source_account_id"],
                             "status": status, "figures": outcomes.tally(account["by_status"])})
        if not page.get("LastEvaluatedKey"):
            return runs
        request["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def judge_wave(runs, wave, max_failure_rate):
    """The gate's verdict on ``wave`` over ``runs`` (as ``wave_runs`` reads them).

    Returns ``passed``, ``reason`` (one line), ``figures`` (the wave's tally over every run), ``runs`` (each run
    that recorded the wave: run id, account, status, its own figures of the wave) and ``unsettled_runs`` (those
    still going or interrupted).
    """
    figures = outcomes.tally(outcomes.add(*(run["figures"]["by_status"] for run in runs)))
    unsettled = [run for run in runs if run["status"] in (IN_PROGRESS, INTERRUPTED)]
    verdict = {"figures": figures, "runs": runs, "unsettled_runs": unsettled, "passed": False}
    if not runs:
        verdict["reason"] = f"no run of this deployment recorded wave {wave}: nothing to judge, so the gate does not pass"
    elif unsettled:
        verdict["reason"] = (f"wave {wave} is not over: run(s) " +
                             ", ".join(sorted({f"{run['run_id']} ({run['status']})" for run in unsettled})) +
                             " have not recorded their end")
    elif figures["failure_rate"] > max_failure_rate:
        verdict["reason"] = (f"wave {wave} failure rate {figures['failure_rate']:.0%} is over the limit "
                             f"{max_failure_rate:.0%}: " + outcomes.figure_text(figures))
    else:
        verdict["passed"] = True
        verdict["reason"] = (f"wave {wave} passed over {len({run['run_id'] for run in runs})} run(s) "
                             f"(failure rate {figures['failure_rate']:.0%}, limit {max_failure_rate:.0%}): "
                             + outcomes.figure_text(figures))
    return verdict
