# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The wave gate of a deployment whose waves ran in several runs: AWX job slices, or a workflow's wave nodes.

Each run records its own items (one per source account), so a wave's figures are the sum of that wave's
figures over every item of the deployment, added with the one arithmetic of ``outcomes``. The gate judges a
wave only once every run that recorded it has ended: a run still going, or killed without recording its end
(``interrupted``), leaves the wave unjudged, and so does a wave no run recorded.

A run started again with the same deployment id (a re-launched slice) records its own items next to the first
run's: its retried instances count in both, so the gate errs on the strict side.
"""

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import outcomes
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import INTERRUPTED
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import IN_PROGRESS
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.query import query_history

PAGE = 1000


def deployment_items(dynamodb, table_name, deployment_id, now):
    """Every item of one deployment, as readers see it (``interrupted`` once a lease passed), page by page."""
    params = {"table_name": table_name, "deployment_id": deployment_id, "limit": PAGE, "next_token": None}
    items = []
    while True:
        answer = query_history(dynamodb, params, now)
        items.extend(answer["deployments"])
        if not answer["next_token"]:
            return items
        params["next_token"] = answer["next_token"]


def judge_wave(items, wave, max_failure_rate):
    """The gate's verdict on ``wave`` over ``items`` (the deployment's items, as ``deployment_items`` reads them).

    Returns ``passed``, ``reason`` (one line), ``figures`` (the wave's tally over every run), ``runs`` (each run
    that recorded the wave: run id, account, status, its own figures of the wave) and ``unsettled_runs`` (those
    still going or interrupted).
    """
    runs = []
    for item in items:
        for entry in item.get("waves") or []:
            if entry.get("wave") == wave:
                runs.append({"run_id": item.get("run_id"), "source_account_id": item.get("source_account_id"),
                             "status": item.get("status"), "figures": outcomes.tally(entry.get("by_status"))})
    figures = outcomes.tally(outcomes.add(*(run["figures"]["by_status"] for run in runs)))
    unsettled = [run for run in runs if run["status"] in (IN_PROGRESS, INTERRUPTED)]
    verdict = {"figures": figures, "runs": runs, "unsettled_runs": unsettled, "passed": False}
    if not runs:
        verdict["reason"] = (f"no run of this deployment recorded wave {wave} ({len(items)} item(s) found): "
                             "nothing to judge, so the gate does not pass")
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
