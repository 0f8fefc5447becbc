# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Reading the history: every question is a Query on the table or an index, never a Scan, page by page.

``deployment_id`` queries the table; else ``account_id`` queries AccountIndex; else ``deployment_pattern``
PatternIndex; else StatusIndex once per status wanted, the answers merged by time. A time range is a key
condition on ``timestamp``; the other filters are a filter expression. ``interrupted`` is not stored: it is an
``in_progress`` item whose ``lease_until`` has passed, so it is asked for as such (and ``in_progress`` as one
whose lease has not).

Drills (``record_type`` ``drill``, written by the drill action: one item per drill, no source account or
pattern) are read with ``record_type="drill"``: ``deployment_id`` (``drill#<id>``) queries the table, else
StatusIndex is queried for each drill status (``finished``, ``stopped``); a filter on ``record_type`` keeps
the other kind out either way.
"""

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import inputs
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import FAILURE_STATUSES
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import HistoryInputError
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import INTERRUPTED
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import IN_PROGRESS
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import WAVE_KEYS
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import effective_status
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import failed_instances
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import iso
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import parse_time
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import time_range_errors
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.store import deserialize
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.tokens import decode_token
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.tokens import encode_token
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.tokens import fingerprint

ACCOUNT_INDEX = "AccountIndex"
STATUS_INDEX = "StatusIndex"
PATTERN_INDEX = "PatternIndex"
STORED_STATUSES = (IN_PROGRESS, "success", "partial", "failed", "stopped")
DEPLOYMENT = "deployment"
DRILL = "drill"
RECORD_TYPES = (DEPLOYMENT, DRILL)
DRILL_STATUSES = ("finished", "stopped")
# The filters that only deployments have.
DEPLOYMENT_FILTERS = ("account_id", "status", "deployment_pattern")
CONTEXT_FIELDS = ("deployment_id", "timestamp", "source_account_id", "source_account_name", "deployment_pattern")


def info_option_errors(params):
    """Every problem with drs_history_info's options, found before any AWS call."""
    errors = [inputs.table_name_error("table_name", params["table_name"])]
    if params.get("account_id") is not None:
        errors.append(inputs.account_id_error("account_id", params["account_id"]))
    if params.get("deployment_id") is not None:
        errors.append(inputs.deployment_id_error("deployment_id", params["deployment_id"]))
    if not 1 <= params["limit"] <= 1000:
        errors.append(f"limit must be from 1 to 1000, not {params['limit']}")
    errors.extend(time_range_errors(params, "since", "until"))
    if params.get("record_type") == DRILL:
        errors.extend(f"{name} filters deployments, not drills (record_type drill)"
                      for name in DEPLOYMENT_FILTERS if params.get(name) is not None)
        if params.get("failures_only"):
            errors.append("failures_only filters deployments, not drills (record_type drill)")
    if params.get("next_token") is not None:
        try:
            decode_token(params["next_token"], len(plan_queries(params)["queries"]))
        except HistoryInputError as e:
            errors.append(str(e))
    return [error for error in errors if error]


def plan_queries(params):
    """The Queries that answer the filters, (index or None, key attribute, key value), and the statuses asked
    for (None: any), which become filter conditions where the key does not decide them."""
    if params.get("record_type") == DRILL:
        if params.get("deployment_id"):
            return {"queries": [(None, "deployment_id", params["deployment_id"])], "statuses": None}
        return {"queries": [(STATUS_INDEX, "status", status) for status in DRILL_STATUSES], "statuses": None}
    statuses = [params["status"]] if params.get("status") else None
    if params.get("failures_only"):
        statuses = [status for status in (statuses or FAILURE_STATUSES) if status in FAILURE_STATUSES]
    if params.get("deployment_id"):
        queries = [(None, "deployment_id", params["deployment_id"])]
    elif params.get("account_id"):
        queries = [(ACCOUNT_INDEX, "source_account_id", params["account_id"])]
    elif params.get("deployment_pattern"):
        queries = [(PATTERN_INDEX, "deployment_pattern", params["deployment_pattern"])]
    else:
        wanted = statuses if statuses is not None else STORED_STATUSES
        stored = list(dict.fromkeys(IN_PROGRESS if status == INTERRUPTED else status for status in wanted))
        queries = [(STATUS_INDEX, "status", status) for status in stored]
    if statuses is not None and not statuses:
        queries = []  # failures only, and a status that is not a failure: nothing can match
    return {"queries": queries, "statuses": statuses}


def time_bounds(params):
    since = iso(parse_time("since", params["since"])) if params.get("since") is not None else None
    # Sort keys carry "#<account>#<run>" after the time; "~" sorts after it, so an until of a whole instant
    # includes the items of that instant.
    until = iso(parse_time("until", params["until"])) + "~" if params.get("until") is not None else None
    return since, until


def _query_request(params, query, statuses, since, until, now):
    index, attribute, value = query
    if index is None and until is None:
        # a deployment's wave items sort after its items; only the wave gate reads them
        until = WAVE_KEYS
    names = {"#k": attribute, "#r": "record_type"}
    values = {":k": {"S": value}, ":type": {"S": params.get("record_type") or DEPLOYMENT}}
    condition = "#k = :k"
    if since or until:
        names["#t"] = "timestamp"
    if since and until:
        condition += " AND #t BETWEEN :since AND :until"
        values.update({":since": {"S": since}, ":until": {"S": until}})
    elif since:
        condition += " AND #t >= :since"
        values[":since"] = {"S": since}
    elif until:
        condition += " AND #t <= :until"
        values[":until"] = {"S": until}
    clauses = ["#r = :type"]
    if params.get("account_id") and attribute != "source_account_id":
        names["#a"] = "source_account_id"
        values[":a"] = {"S": params["account_id"]}
        clauses.append("#a = :a")
    if params.get("deployment_pattern") and attribute != "deployment_pattern":
        names["#p"] = "deployment_pattern"
        values[":p"] = {"S": params["deployment_pattern"]}
        clauses.append("#p = :p")
    if statuses is not None:
        names["#s"] = "status"
        alternatives = []
        for number, status in enumerate(statuses):
            if attribute == "status" and status not in (value, INTERRUPTED):
                continue
            if status in (INTERRUPTED, IN_PROGRESS):
                # DynamoDB refuses names and values that no expression uses, so these come only with their use
                names["#l"] = "lease_until"
                values.update({":now": {"S": iso(now)}, ":running": {"S": IN_PROGRESS}})
                alternatives.append(f"(#s = :running AND #l {'<' if status == INTERRUPTED else '>='} :now)")
            else:
                values[f":s{number}"] = {"S": status}
                alternatives.append(f"#s = :s{number}")
        # DynamoDB also refuses redundant parentheses around a single alternative
        clauses.append(alternatives[0] if len(alternatives) == 1 else "(" + " OR ".join(alternatives) + ")")
    request = {"TableName": params["table_name"], "KeyConditionExpression": condition, "ScanIndexForward": False,
               "Limit": params["limit"], "FilterExpression": " AND ".join(clauses),
               "ExpressionAttributeNames": names, "ExpressionAttributeValues": values}
    if index:
        request["IndexName"] = index
    return request


def _cursor_key(raw, query):
    index, attribute, _value = query
    names = {"deployment_id", "timestamp", attribute} if index else {"deployment_id", "timestamp"}
    return {name: raw[name] for name in names}


def query_history(dynamodb, params, now):
    """The deployments (or, with ``record_type`` ``drill``, the drills) that match ``params``, newest first, at
    most ``limit``, and the token for the rest.

    Each Query reads forward from its cursor until it has ``limit`` matches or ends; the matches are merged by
    time and the first ``limit`` returned; each Query's cursor moves to its last returned item, so the next
    call resumes exactly there.
    """
    plan = plan_queries(params)
    finger = fingerprint(params)
    limit = params["limit"]
    cursors = [None] * len(plan["queries"])
    if params.get("next_token"):
        cursors = decode_token(params["next_token"], len(plan["queries"]), finger)
    since, until = time_bounds(params)
    candidates = []  # (sort key, deployment id, query number, position, raw item)
    more_after = {}
    for number, query in enumerate(plan["queries"]):
        cursor = cursors[number]
        if cursor == "done":
            continue
        request = _query_request(params, query, plan["statuses"], since, until, now)
        if cursor:
            request["ExclusiveStartKey"] = cursor
        found = []
        while True:
            page = dynamodb.query(aws_retry=True, **request)
            found.extend(page.get("Items", []))
            last = page.get("LastEvaluatedKey")
            if not last or len(found) >= limit:
                break
            request["ExclusiveStartKey"] = last
        more_after[number] = last
        candidates.extend((raw["timestamp"]["S"], raw["deployment_id"]["S"], number, position, raw)
                          for position, raw in enumerate(found))
    # Newest first; the sort is stable, so each Query's items keep their order and the ones taken are a prefix.
    candidates.sort(key=lambda entry: entry[0], reverse=True)
    taken, left = candidates[:limit], candidates[limit:]
    new_cursors = list(cursors)
    for number in more_after:
        own_taken = [entry for entry in taken if entry[2] == number]
        own_left = [entry for entry in left if entry[2] == number]
        if own_left:
            if own_taken:
                last_taken = max(own_taken, key=lambda entry: entry[3])
                new_cursors[number] = _cursor_key(last_taken[4], plan["queries"][number])
        elif more_after[number]:
            new_cursors[number] = more_after[number]
        else:
            new_cursors[number] = "done"
    next_token = encode_token(finger, new_cursors) if any(cursor != "done" for cursor in new_cursors) else None
    if params.get("record_type") == DRILL:
        drills = [deserialize(entry[4]) for entry in taken]
        return {"drills": drills, "deployments": [], "failed_instances": [], "unprotected_instances": [],
                "next_token": next_token, "count": len(drills)}
    deployments = [shown(deserialize(entry[4]), now) for entry in taken]
    return {
        "deployments": deployments,
        "failed_instances": flatten(deployments, "failed_instances"),
        "unprotected_instances": flatten(deployments, "unprotected_instances"),
        "next_token": next_token,
        "count": len(deployments),
    }


def shown(item, now):
    """An item as readers see it: its effective status (``interrupted`` when its lease passed) and its failed
    instances picked out of its unprotected ones."""
    status = effective_status(item, now)
    if status != item.get("status"):
        item["recorded_status"] = item["status"]
        item["status"] = status
    item["failed_instances"] = failed_instances(item)
    return item


def flatten(deployments, field):
    """The entries of ``field`` of every deployment, each with its deployment's id, time and account."""
    flattened = []
    for deployment in deployments:
        for instance in deployment.get(field) or []:
            entry = {key: deployment.get(key) for key in CONTEXT_FIELDS}
            entry.update(instance)
            flattened.append(entry)
    return flattened
