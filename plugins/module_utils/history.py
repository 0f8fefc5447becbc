# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The deployment history: the record of every run, one DynamoDB item per source account and run.

The public face of the ``_history`` package: the items and their lifecycle (``_history.items``), writing
them with the spool, hand-overs and send locks (``_history.store``), account names (``_history.names``) and
queries (``_history.query``, ``_history.tokens``). The deploy action writes a run's items when it starts,
after each wave and at its end; ``drs_history_record`` records a finished deployment in one call;
``drs_history_info`` reads them.
"""

import datetime
import uuid

try:
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass  # AnsibleAWSModule reports a missing botocore

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import inputs
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import metrics
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import outcomes
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import DEPLOYMENT_STATUSES
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import FAILURE_STATUSES
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import FILTER_STATUSES
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import HistoryInputError
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.gate import judge_wave
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.gate import wave_runs
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import INTERRUPTED
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import IN_PROGRESS
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import LEASE_RENEWAL
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import LEASE_SECONDS
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import MAX_UNPROTECTED
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import EVENT_PATTERN
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import PATTERNS
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import RECORDED_PATTERNS
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import STOPPED
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import build_items
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import build_wave_items
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import derive_pattern
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import effective_status
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import failed_instances
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import iso
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import job_deployment_id
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import names_of
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import parse_time
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import time_range_errors
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.names import AccountNames
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.query import flatten
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.query import info_option_errors
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.query import query_history
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.query import RECORD_TYPES
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.store import DEFAULT_SPOOL_DIR
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.store import WRITE_RETRY
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.store import Store
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.store import error_text
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.store import spooled_files

__all__ = (
    "AccountNames", "DEFAULT_SPOOL_DIR", "DEPLOYMENT_STATUSES", "FAILURE_STATUSES", "FILTER_STATUSES",
    "EVENT_PATTERN", "HistoryInputError", "INTERRUPTED", "IN_PROGRESS", "LEASE_RENEWAL", "LEASE_SECONDS", "MAX_UNPROTECTED",
    "PATTERNS", "RECORDED_PATTERNS", "RECORD_TYPES", "STOPPED", "Store", "WRITE_RETRY", "build_items", "build_wave_items",
    "derive_pattern",
    "effective_status", "error_text", "failed_instances", "flatten", "info_option_errors", "iso",
    "job_deployment_id", "judge_wave", "names_of", "parse_time", "query_history", "record_finished",
    "record_option_errors", "spooled_files", "time_range_errors", "wave_runs",
)


def record_option_errors(params):
    """Every problem with drs_history_record's options, found before any AWS call."""
    errors = [inputs.table_name_error("table_name", params["table_name"])]
    if params.get("deployment_id") is not None:
        errors.append(inputs.deployment_id_error("deployment_id", params["deployment_id"]))
    if params["ttl_days"] < 1:
        errors.append(f"ttl_days must be 1 or more days, not {params['ttl_days']}")
    if params.get("metrics_namespace") is not None:
        errors.append(inputs.metrics_namespace_error("metrics_namespace", params["metrics_namespace"]))
    errors.extend(time_range_errors(params, "started_at", "finished_at"))
    for index, result in enumerate(params["results"] or []):
        where = f"results[{index}]"
        if not isinstance(result, dict):
            errors.append(f"{where} must be a mapping with instance_id, status, account_id and region")
            continue
        missing = [key for key in ("instance_id", "status", "account_id", "region") if not result.get(key)]
        if missing:
            errors.append(f"{where} lacks {', '.join(missing)}")
        if result.get("status") and result["status"] not in outcomes.STATUSES:
            errors.append(f"{where}.status {result['status']!r} is not one of {', '.join(outcomes.STATUSES)}")
        if result.get("account_id"):
            errors.append(inputs.account_id_error(f"{where}.account_id", str(result["account_id"])))
    for index, account in enumerate(params.get("accounts") or []):
        value = account.get("account_id") if isinstance(account, dict) else account
        errors.append(inputs.account_id_error(f"accounts[{index}].account_id", str(value)))
    for index, entry in enumerate(params.get("unreachable") or []):
        value = entry.get("account_id") if isinstance(entry, dict) else entry
        errors.append(inputs.account_id_error(f"unreachable[{index}].account_id", str(value)))
    return [error for error in errors if error]


def record_finished(params, store, names, warn, check_mode, cloudwatch=None, now=None):
    """Record one finished deployment in one call (drs_history_record): its items, written or spooled, and its
    metrics. Returns the module's result."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    finished = parse_time("finished_at", params["finished_at"]) if params.get("finished_at") is not None else now
    started = parse_time("started_at", params["started_at"]) if params.get("started_at") is not None else finished
    # the same deployment id recorded again gets the same keys, and the conditional write keeps one item
    run_id = params.get("deployment_id") or str(uuid.uuid4())
    record = {
        "deployment_id": run_id,
        "run_id": run_id,
        "pattern": params.get("deployment_pattern"),
        "started_at": started,
        "finished_at": finished,
        "final": True,
        "stopped_after_wave": params.get("stopped_after_wave"),
        "accounts": params.get("accounts") or [],
        "instances": [dict(result, account_id=str(result["account_id"])) for result in params.get("results") or []],
        "unreachable": [dict(entry, account_id=str(entry["account_id"])) for entry in params.get("unreachable") or []],
        "extension": params.get("extension"),
    }
    items = build_items(record, names, now, params["ttl_days"])
    for item in items:
        item["revision"] = 1
    result = {"deployment_id": record["deployment_id"], "items": items, "spooled": {"count": 0, "paths": []},
              "flushed": 0, "written": 0, "changed": False}
    if check_mode:
        return result
    written = store.write(items)
    result.update(written=written["written"], flushed=written["flushed"],
                  spooled={"count": len(written["spooled"]), "paths": written["spooled"]})
    if written["spooled"]:
        result["error"] = written["error"]
        warn(f"The deployment history could not be written to the DynamoDB table {store.table_name} "
             f"({written['error']}): {len(written['spooled'])} item(s) were spooled to {store.spool_dir}, and the "
             "next write to the table writes them.")
    if params.get("metrics_namespace") and cloudwatch is not None and items:
        try:
            metrics.put(cloudwatch, params["metrics_namespace"], metrics.deployment_metrics(items))
        except (BotoCoreError, ClientError) as error:
            warn(f"The deployment's CloudWatch metrics could not be sent: {error_text(error)}")
    result["changed"] = bool(result["written"] or result["flushed"] or result["spooled"]["count"])
    return result
