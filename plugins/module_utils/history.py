# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The deployment history: one DynamoDB item per source account and deployment.

Item layout (table keys ``deployment_id`` + ``timestamp``): ``timestamp`` is the deployment's end
as fixed-width ISO 8601 UTC with milliseconds, then ``#`` and the source account id, so the items
of one multi-account deployment have distinct keys and every index sorts them by time. The indexes
``AccountIndex`` (source_account_id), ``StatusIndex`` (status) and ``PatternIndex``
(deployment_pattern) all use ``timestamp`` as their sort key, so every question drs_history_info
answers is a Query, never a Scan.

Writes are conditional (``attribute_not_exists``), so a retried or re-flushed write is never
duplicated; items that cannot be written are spooled to local JSON files and flushed first by the
next call.
"""

import base64
import binascii
import datetime
import hashlib
import json
import os
import re
import tempfile
import time
import uuid
from decimal import Decimal

try:
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass  # AnsibleAWSModule reports a missing boto3 / botocore

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.aws import retry_decorator

RESULT_STATUSES = (
    "installed", "already_registered", "failed", "timed_out", "not_registered_after_success",
    "skipped_ssm_offline", "skipped_not_managed",
)
SKIPPED_STATUSES = ("skipped_ssm_offline", "skipped_not_managed")
FAILED_STATUSES = ("failed", "timed_out", "not_registered_after_success")
DEPLOYMENT_STATUSES = ("success", "partial", "failed")
FAILURE_STATUSES = ("partial", "failed")
PATTERNS = ("same-account", "cross-account", "multi-account")

ACCOUNT_INDEX = "AccountIndex"
STATUS_INDEX = "StatusIndex"
PATTERN_INDEX = "PatternIndex"

MAX_ERROR_MESSAGE = 500
DEFAULT_SPOOL_DIR = "~/.ansible/drs_history_spool"
METRICS_BATCH_SIZE = 20  # well within PutMetricData's limits (1,000 metrics and 1 MB a request)
TOKEN_VERSION = 1

# A history write must not hold up the end of a deployment for minutes: a few quick retries, then the
# items go to the spool and the next call writes them.
WRITE_RETRY = retry_decorator(retries=3, delay=1, max_delay=4)

TABLE_NAME_PATTERN = re.compile(r"^[a-zA-Z0-9_.-]{3,255}$")
ACCOUNT_ID_PATTERN = re.compile(r"^\d{12}$")
REGION_PATTERN = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
DEPLOYMENT_ID_PATTERN = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
# Keys that look like credentials are never stored, wherever they are in the extension data.
SECRET_KEY_PATTERN = re.compile(r"(access_key|secret|session_token|password|external_id|sts_creds|credentials)", re.I)
TRANSIENT_ERROR_CODES = (
    "ServiceUnavailable", "Unavailable", "InternalServerError", "InternalFailure", "InternalError",
    "ProvisionedThroughputExceededException", "ThrottlingException", "Throttling", "RequestLimitExceeded",
    "RequestLimitExceededException", "TooManyRequestsException", "LimitExceededException",
)


class HistoryInputError(Exception):
    """An option is wrong; the message names it."""


# --- time ---------------------------------------------------------------------------------------

def parse_time(name, value):
    """An ISO 8601 date-time (naive means UTC) or epoch seconds, as an aware UTC datetime."""
    if isinstance(value, datetime.datetime):
        moment = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        moment = datetime.datetime.fromtimestamp(value, tz=datetime.timezone.utc)
    elif isinstance(value, str) and re.match(r"^\d+(\.\d+)?$", value.strip()):
        moment = datetime.datetime.fromtimestamp(float(value), tz=datetime.timezone.utc)
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.datetime.fromisoformat(text)
        except ValueError:
            raise HistoryInputError(
                f"{name} {value!r} is not an ISO 8601 date-time (such as 2025-06-01T12:00:00Z) or epoch seconds"
            ) from None
    else:
        raise HistoryInputError(f"{name} {value!r} is not an ISO 8601 date-time or epoch seconds")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.astimezone(datetime.timezone.utc)


def iso(moment):
    """Fixed-width ISO 8601 UTC with milliseconds, so that text order is time order."""
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def sort_key(finished, account_id):
    return f"{iso(finished)}#{account_id}"


# --- recording: validation ----------------------------------------------------------------------

def time_range_errors(params, start, end):
    """What is wrong with the optional times ``params[start]`` and ``params[end]``, as messages."""
    errors = []
    times = {}
    for name in (start, end):
        if params.get(name) is not None:
            try:
                times[name] = parse_time(name, params[name])
            except HistoryInputError as e:
                errors.append(str(e))
    if len(times) == 2 and times[start] > times[end]:
        errors.append(f"{start} is after {end}")
    return errors


def record_option_errors(params):
    """Every problem with drs_history_record's options, found before any AWS call."""
    errors = []
    if not TABLE_NAME_PATTERN.match(params["table_name"] or ""):
        errors.append(f"table_name {params['table_name']!r} must be 3 to 255 letters, digits, _ . or -")
    deployment_id = params.get("deployment_id")
    if deployment_id is not None and not DEPLOYMENT_ID_PATTERN.match(deployment_id):
        errors.append(f"deployment_id {deployment_id!r} must be 1 to 128 letters, digits, _ . : or -")
    if params["ttl_days"] < 1:
        errors.append(f"ttl_days must be 1 or more days, not {params['ttl_days']}")
    namespace = params.get("metrics_namespace")
    if namespace is not None and (not 1 <= len(namespace) <= 255 or namespace.startswith("AWS/")):
        errors.append(f"metrics_namespace {namespace!r} must be 1 to 255 characters and not start with AWS/")
    errors.extend(time_range_errors(params, "started_at", "finished_at"))
    for index, result in enumerate(params["results"] or []):
        where = f"results[{index}]"
        if not isinstance(result, dict):
            errors.append(f"{where} must be a mapping with instance_id, status, account_id and region")
            continue
        missing = [key for key in ("instance_id", "status", "account_id", "region") if not result.get(key)]
        if missing:
            errors.append(f"{where} lacks {', '.join(missing)}")
        if result.get("status") and result["status"] not in RESULT_STATUSES:
            errors.append(f"{where}.status {result['status']!r} is not one of {', '.join(RESULT_STATUSES)}")
        if result.get("account_id") and not ACCOUNT_ID_PATTERN.match(str(result["account_id"])):
            errors.append(f"{where}.account_id {result['account_id']!r} must be 12 digits (quote it in YAML)")
    for index, account in enumerate(params.get("accounts") or []):
        if not isinstance(account, dict) or not ACCOUNT_ID_PATTERN.match(str(account.get("account_id", ""))):
            errors.append(f"accounts[{index}].account_id must be 12 digits (quote it in YAML)")
    for index, entry in enumerate(params.get("unreachable") or []):
        if not isinstance(entry, dict) or not ACCOUNT_ID_PATTERN.match(str(entry.get("account_id", ""))):
            errors.append(f"unreachable[{index}].account_id must be 12 digits (quote it in YAML)")
    return errors


# --- recording: figures and items ---------------------------------------------------------------

def figures(results, unreachable=False):
    """Counts, success rate and status of one account's results.

    Skipped instances are counted apart and are not attempted. ``success``: every attempted instance
    installed or already registered; ``failed``: none of them, or the account was unreachable, or
    every instance was skipped; ``partial`` otherwise. With nothing attempted the success rate is
    ``None``.
    """
    counts = dict.fromkeys(RESULT_STATUSES, 0)
    for result in results:
        counts[result["status"]] += 1
    skipped = sum(counts[status] for status in SKIPPED_STATUSES)
    failed = sum(counts[status] for status in FAILED_STATUSES)
    succeeded = counts["installed"] + counts["already_registered"]
    attempted = succeeded + failed
    if unreachable:
        status = "failed"
    elif attempted == 0:
        status = "failed" if skipped else "success"
    elif failed == 0:
        status = "success"
    elif succeeded == 0:
        status = "failed"
    else:
        status = "partial"
    return {
        "attempted": attempted,
        "installed": counts["installed"],
        "already_registered": counts["already_registered"],
        "failed": failed,
        "skipped": skipped,
        "success_rate": round(succeeded / attempted, 4) if attempted else None,
        "status": status,
    }


def trim(text, length=MAX_ERROR_MESSAGE):
    text = " ".join(str(text).split())
    return text if len(text) <= length else text[:length - 3] + "..."


def failed_instance(result):
    message = result.get("error_message") or result.get("reason")
    if not message and result.get("stderr_tail"):
        lines = str(result["stderr_tail"]).strip().splitlines()
        message = lines[-1] if lines else ""
    return {
        "instance_id": result["instance_id"],
        "name": result.get("name"),
        "account_id": str(result["account_id"]),
        "region": result["region"],
        "status": result["status"],
        "wave": result.get("wave"),
        "priority": result.get("priority"),
        "ssm_status": result.get("ssm_status"),
        "error_category": result.get("error_category") or "unknown",
        "error_message": trim(message or "no message"),
        "remediation": result.get("remediation"),
    }


def scrub(value):
    """``value`` without any mapping key that looks like a credential."""
    if isinstance(value, dict):
        return {key: scrub(item) for key, item in value.items() if not SECRET_KEY_PATTERN.search(str(key))}
    if isinstance(value, (list, tuple)):
        return [scrub(item) for item in value]
    return value


def derive_pattern(accounts):
    """same-account, cross-account or multi-account, from the source accounts and their staging accounts."""
    if len(accounts) > 1:
        return "multi-account"
    if accounts:
        account = accounts[0]
        if account.get("staging_account_id") not in (None, "", account["account_id"]):
            return "cross-account"
    return "same-account"


def account_entries(params):
    """Every source account of the deployment, in a stable order: those listed, then those only in results
    or unreachable."""
    entries = {}
    for account in params.get("accounts") or []:
        entries[str(account["account_id"])] = {
            "account_id": str(account["account_id"]),
            "name": account.get("name"),
            "staging_account_id": str(account["staging_account_id"]) if account.get("staging_account_id") else None,
            "regions": list(account.get("regions") or []),
        }
    for source in (params.get("results") or [], params.get("unreachable") or []):
        for entry in source:
            account_id = str(entry["account_id"])
            entries.setdefault(account_id, {"account_id": account_id, "name": None, "staging_account_id": None,
                                            "regions": []})
    return list(entries.values())


def build_items(params, names, now=None):
    """The items of one deployment, one per source account; ``names`` maps account ids to names."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    finished = parse_time("finished_at", params["finished_at"]) if params.get("finished_at") is not None else now
    started = parse_time("started_at", params["started_at"]) if params.get("started_at") is not None else finished
    deployment_id = params.get("deployment_id") or str(uuid.uuid4())
    accounts = account_entries(params)
    pattern = params.get("deployment_pattern") or derive_pattern(accounts)
    ttl = int(now.timestamp()) + params["ttl_days"] * 86400
    results = params.get("results") or []
    unreachable = params.get("unreachable") or []
    items = []
    for account in accounts:
        account_id = account["account_id"]
        own = [result for result in results if str(result["account_id"]) == account_id]
        lost = [{"region": entry.get("region"), "reason": trim(entry.get("reason") or "not reached")}
                for entry in unreachable if str(entry["account_id"]) == account_id]
        regions = set(account["regions"]) | {result["region"] for result in own}
        regions |= {entry["region"] for entry in lost if entry["region"]}
        item = {
            "deployment_id": deployment_id,
            "timestamp": sort_key(finished, account_id),
            "source_account_id": account_id,
            "source_account_name": names.get(account_id) or account_id,
            "deployment_pattern": pattern,
            "regions": sorted(regions),
            "staging_account_id": account["staging_account_id"] or account_id,
            "started_at": iso(started),
            "finished_at": iso(finished),
            "duration_seconds": round((finished - started).total_seconds(), 3),
            "stopped_after_wave": params.get("stopped_after_wave"),
            "failed_instances": [failed_instance(result) for result in own if result["status"] in FAILED_STATUSES],
            "unreachable": lost,
            "ttl": ttl,
        }
        item.update(figures(own, unreachable=bool(lost)))
        if params.get("extension") is not None:
            item["extension"] = scrub(params["extension"])
        items.append(item)
    return items


def resolve_names(params, resolver):
    """Each source account's name: accounts[].name when given, else what ``resolver`` (AccountNames) finds."""
    return {entry["account_id"]: entry["name"] or resolver.name(entry["account_id"]) for entry in account_entries(params)}


# --- recording: account names -------------------------------------------------------------------

class AccountNames:
    """Account names, each resolved once per run: Organizations, then the IAM alias of the caller's own
    account, then the id. Never fatal."""

    def __init__(self, client_factory, given=None):
        self._client = client_factory
        self._names = {key: value for key, value in (given or {}).items() if value}
        self._own_account = None
        self._own_alias = None

    def name(self, account_id):
        if account_id not in self._names:
            self._names[account_id] = self._resolve(account_id)
        return self._names[account_id]

    def _resolve(self, account_id):
        try:
            answer = self._client("organizations").describe_account(AccountId=account_id, aws_retry=True)
            if answer.get("Account", {}).get("Name"):
                return answer["Account"]["Name"]
        except (BotoCoreError, ClientError):
            pass  # not in an organization, not its management account, or not allowed: fall through
        try:
            if self._own_account is None:
                self._own_account = self._client("sts").get_caller_identity(aws_retry=True)["Account"]
            if self._own_account == account_id:
                if self._own_alias is None:
                    aliases = self._client("iam").list_account_aliases(aws_retry=True).get("AccountAliases") or []
                    self._own_alias = aliases[0] if aliases else ""
                if self._own_alias:
                    return self._own_alias
        except (BotoCoreError, ClientError):
            pass
        return account_id


# --- DynamoDB conversion ------------------------------------------------------------------------

def _to_dynamo(value):
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        return Decimal(str(value))
    if isinstance(value, int):
        return value
    if isinstance(value, dict):
        return {str(key): _to_dynamo(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_dynamo(item) for item in value]
    return str(value)


def serialize(item):
    serializer = TypeSerializer()
    return {key: serializer.serialize(_to_dynamo(value)) for key, value in item.items()}


def plain(value):
    """DynamoDB's Decimals (and sets) as int, float and list."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(item) for item in value]
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode()
    return value


def deserialize(item):
    deserializer = TypeDeserializer()
    return {key: plain(deserializer.deserialize(value)) for key, value in item.items()}


def is_transient(error):
    """Whether an AWS error means DynamoDB is unavailable or throttling (beyond the retries)."""
    if isinstance(error, BotoCoreError):
        return True
    code = error.response.get("Error", {}).get("Code", "")
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    return code in TRANSIENT_ERROR_CODES or status >= 500


def error_text(error):
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        return f"{details.get('Code', 'error')}: {details.get('Message', '')}".strip()
    return str(error)


# --- recording: writes and the spool ------------------------------------------------------------

def put_item(dynamodb, table_name, item):
    """Write ``item`` unless an item with its key exists: True if written, False if it was already there."""
    try:
        dynamodb.put_item(
            TableName=table_name,
            Item=serialize(item),
            ConditionExpression="attribute_not_exists(deployment_id)",
            aws_retry=True,
        )
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise
    return True


def spool_path(spool_dir, deployment_id):
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", deployment_id)
    return os.path.join(spool_dir, f"{safe}-{int(time.time() * 1000)}.json")


def spool(spool_dir, table_name, items):
    """Write ``items`` to a new spool file (atomically, readable by the owner only); returns its path."""
    os.makedirs(spool_dir, mode=0o700, exist_ok=True)
    path = spool_path(spool_dir, items[0]["deployment_id"])
    descriptor, temporary = tempfile.mkstemp(dir=spool_dir, prefix=".spool-", suffix=".tmp")
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump({"version": 1, "table_name": table_name, "items": items}, handle, sort_keys=True)
    os.replace(temporary, path)
    return path


def spooled_files(spool_dir):
    if not os.path.isdir(spool_dir):
        return []
    return sorted(os.path.join(spool_dir, name) for name in os.listdir(spool_dir)
                  if name.endswith(".json") and not name.startswith("."))


def read_spool(path):
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def flush_spool(dynamodb, table_name, spool_dir, warn):
    """Write the spooled items of ``table_name``; each file is removed once all its items are in the table.

    Returns (items written or found already written, whether DynamoDB answered). Files of other tables
    are left for calls that name those tables; an unreadable file is reported and left in place.
    """
    flushed = 0
    for path in spooled_files(spool_dir):
        try:
            document = read_spool(path)
        except (OSError, ValueError) as e:
            warn(f"Spool file {path} cannot be read and was left in place: {e}")
            continue
        if document.get("table_name") != table_name:
            continue
        try:
            for item in document.get("items", []):
                put_item(dynamodb, table_name, item)
                flushed += 1
        except (BotoCoreError, ClientError) as error:
            if is_transient(error):
                return flushed, False
            warn(f"Spool file {path} could not be written to {table_name} and was left in place: {error_text(error)}")
            continue
        os.remove(path)
    return flushed, True


def record(module_params, dynamodb, names, warn, check_mode, cloudwatch=None, now=None):
    """Record one deployment: flush the spool, write (or spool) its items, send its metrics.

    ``dynamodb`` and ``cloudwatch`` are clients made with a retry decorator; ``names`` maps account ids to
    names. Returns the module's result; ``error`` is set when items had to be spooled.
    """
    items = build_items(module_params, names, now=now)
    result = {"deployment_id": items[0]["deployment_id"] if items else module_params.get("deployment_id"),
              "items": items, "spooled": {"count": 0, "paths": []}, "flushed": 0, "written": 0, "changed": False}
    if check_mode:
        return result
    table_name = module_params["table_name"]
    spool_dir = module_params["spool_dir"]
    flushed, available = flush_spool(dynamodb, table_name, spool_dir, warn)
    result["flushed"] = flushed
    failure = None
    pending = list(items)
    if available:
        try:
            while pending:
                if put_item(dynamodb, table_name, pending[0]):
                    result["written"] += 1
                pending.pop(0)
        except (BotoCoreError, ClientError) as error:
            failure = error_text(error)
    else:
        failure = "DynamoDB did not answer while the spool was flushed"
    if pending:
        path = spool(spool_dir, table_name, pending)
        result["spooled"] = {"count": len(pending), "paths": [path]}
        result["error"] = failure
        warn(f"The deployment history could not be written to the DynamoDB table {table_name} ({failure}): "
             f"{len(pending)} item(s) were spooled to {path}, and the next drs_history_record call writes them.")
    if module_params.get("metrics_namespace") and cloudwatch is not None and items:
        try:
            put_metrics(cloudwatch, module_params["metrics_namespace"], items)
        except (BotoCoreError, ClientError) as error:
            warn(f"The deployment's CloudWatch metrics could not be sent: {error_text(error)}")
    result["changed"] = bool(result["written"] or result["flushed"] or result["spooled"]["count"])
    return result


# --- metrics ------------------------------------------------------------------------------------

def metric_data(items):
    """Each source account's figures, with dimensions Account and DeploymentPattern, then the run's
    totals without dimensions, which alarms watch (an alarm reads one dimension set only)."""
    data = []
    for item in items:
        dimensions = [{"Name": "Account", "Value": item["source_account_id"]},
                      {"Name": "DeploymentPattern", "Value": item["deployment_pattern"]}]
        data.extend(_metrics(item, dimensions))
    if items:
        counted = ("attempted", "installed", "already_registered", "failed", "skipped")
        totals = {name: sum(item[name] for item in items) for name in counted}
        succeeded = totals["installed"] + totals["already_registered"]
        totals.update(
            success_rate=succeeded / totals["attempted"] if totals["attempted"] else None,
            duration_seconds=max(item["duration_seconds"] for item in items),
            finished_at=max(item["finished_at"] for item in items),
        )
        data.extend(_metrics(totals, []))
    return data


def _metrics(figures, dimensions):
    moment = parse_time("finished_at", figures["finished_at"])
    values = [("Attempted", figures["attempted"], "Count"), ("Installed", figures["installed"], "Count"),
              ("Failed", figures["failed"], "Count"), ("Skipped", figures["skipped"], "Count"),
              ("DurationSeconds", figures["duration_seconds"], "Seconds")]
    if figures["success_rate"] is not None:
        values.insert(0, ("SuccessRate", round(figures["success_rate"] * 100, 2), "Percent"))
    return [{"MetricName": name, "Dimensions": dimensions, "Timestamp": moment, "Value": float(value), "Unit": unit}
            for name, value, unit in values]


def put_metrics(cloudwatch, namespace, items):
    data = metric_data(items)
    for start in range(0, len(data), METRICS_BATCH_SIZE):
        cloudwatch.put_metric_data(Namespace=namespace, MetricData=data[start:start + METRICS_BATCH_SIZE],
                                   aws_retry=True)
    return len(data)


# --- queries ------------------------------------------------------------------------------------

def info_option_errors(params):
    """Every problem with drs_history_info's options, found before any AWS call."""
    errors = []
    if not TABLE_NAME_PATTERN.match(params["table_name"] or ""):
        errors.append(f"table_name {params['table_name']!r} must be 3 to 255 letters, digits, _ . or -")
    if params.get("account_id") is not None and not ACCOUNT_ID_PATTERN.match(params["account_id"]):
        errors.append(f"account_id {params['account_id']!r} must be 12 digits (quote it in YAML)")
    if params.get("deployment_id") is not None and not DEPLOYMENT_ID_PATTERN.match(params["deployment_id"]):
        errors.append(f"deployment_id {params['deployment_id']!r} must be 1 to 128 letters, digits, _ . : or -")
    if not 1 <= params["limit"] <= 1000:
        errors.append(f"limit must be from 1 to 1000, not {params['limit']}")
    errors.extend(time_range_errors(params, "since", "until"))
    if params.get("next_token") is not None:
        try:
            decode_token(params["next_token"], plan_queries(params))
        except HistoryInputError as e:
            errors.append(str(e))
    return errors


def plan_queries(params):
    """The Queries that answer the filters: a list of (index name or None, key attribute, key value), plus the
    filter conditions left over as (attribute, allowed values)."""
    filters = {}
    statuses = None
    if params.get("status"):
        statuses = [params["status"]]
    if params.get("failures_only"):
        statuses = [status for status in (statuses or FAILURE_STATUSES) if status in FAILURE_STATUSES]
    if params.get("deployment_id"):
        queries = [(None, "deployment_id", params["deployment_id"])]
        if params.get("account_id"):
            filters["source_account_id"] = [params["account_id"]]
    elif params.get("account_id"):
        queries = [(ACCOUNT_INDEX, "source_account_id", params["account_id"])]
    elif params.get("deployment_pattern"):
        queries = [(PATTERN_INDEX, "deployment_pattern", params["deployment_pattern"])]
    else:
        queries = [(STATUS_INDEX, "status", status)
                   for status in (statuses if statuses is not None else DEPLOYMENT_STATUSES)]
        statuses = None  # the key does it
    if statuses is not None:
        filters["status"] = statuses
        if not statuses:
            queries = []  # failures only, and a status that is not a failure: nothing can match
    if params.get("deployment_pattern") and queries and queries[0][1] != "deployment_pattern":
        filters["deployment_pattern"] = [params["deployment_pattern"]]
    return {"queries": queries, "filters": filters}


def time_bounds(params):
    since = iso(parse_time("since", params["since"])) if params.get("since") is not None else None
    # Sort keys carry "#<account>" after the time; "~" sorts after it, so an until of a whole instant
    # includes the items of that instant.
    until = iso(parse_time("until", params["until"])) + "~" if params.get("until") is not None else None
    return since, until


def fingerprint(params):
    keys = ("table_name", "deployment_id", "account_id", "status", "deployment_pattern", "since", "until",
            "failures_only")
    text = json.dumps({key: str(params.get(key)) for key in keys}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def encode_token(fingerprint_value, cursors):
    """The resumable token: which filters, and where each Query stands (None: not begun, "done", or the
    typed key of its last returned item)."""
    document = {"v": TOKEN_VERSION, "f": fingerprint_value, "c": cursors}
    return base64.urlsafe_b64encode(json.dumps(document, sort_keys=True, separators=(",", ":")).encode()).decode()


def decode_token(token, plan, fingerprint_value=None):
    try:
        document = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise HistoryInputError("next_token is not a token returned by drs_history_info") from None
    if not isinstance(document, dict) or document.get("v") != TOKEN_VERSION or not isinstance(document.get("c"), list) \
            or len(document["c"]) != len(plan["queries"]):
        raise HistoryInputError("next_token is not a token returned by drs_history_info for these filters")
    if fingerprint_value is not None and document.get("f") != fingerprint_value:
        raise HistoryInputError("next_token was returned for other filters: give the same filters as the call that "
                                "returned it")
    return document["c"]


def _query_request(table_name, query, since, until, filters, page_size):
    index, attribute, value = query
    names = {"#k": attribute}
    values = {":k": {"S": value}}
    condition = "#k = :k"
    if since or until:
        names["#t"] = "timestamp"  # DynamoDB refuses names an expression does not use
    if since and until:
        condition += " AND #t BETWEEN :since AND :until"
        values.update({":since": {"S": since}, ":until": {"S": until}})
    elif since:
        condition += " AND #t >= :since"
        values[":since"] = {"S": since}
    elif until:
        condition += " AND #t <= :until"
        values[":until"] = {"S": until}
    request = {"TableName": table_name, "KeyConditionExpression": condition, "ScanIndexForward": False,
               "Limit": page_size}
    clauses = []
    for number, (filter_attribute, allowed) in enumerate(sorted(filters.items())):
        names[f"#f{number}"] = filter_attribute
        value_names = [f":f{number}v{position}" for position in range(len(allowed))]
        values.update({value_name: {"S": allowed_value} for value_name, allowed_value in zip(value_names, allowed)})
        clauses.append(f"#f{number} IN ({', '.join(value_names)})")
    if clauses:
        request["FilterExpression"] = " AND ".join(clauses)
    request["ExpressionAttributeNames"] = names
    request["ExpressionAttributeValues"] = values
    if index:
        request["IndexName"] = index
    return request


def _cursor_key(raw, query):
    index, attribute, _value = query
    names = {"deployment_id", "timestamp", attribute} if index else {"deployment_id", "timestamp"}
    return {name: raw[name] for name in names}


def query_history(dynamodb, params):
    """The deployments that match ``params``, newest first, at most ``limit``, and the token for the rest.

    Each Query (one, or one per status) reads forward from its cursor until it has ``limit`` matches or
    ends; the matches are merged by time and the first ``limit`` returned; each Query's cursor moves to
    its last returned item, so the next call resumes exactly there.
    """
    plan = plan_queries(params)
    finger = fingerprint(params)
    limit = params["limit"]
    cursors = [None] * len(plan["queries"])
    if params.get("next_token"):
        cursors = decode_token(params["next_token"], plan, finger)
    since, until = time_bounds(params)
    candidates = []  # (sort key, query number, raw item)
    more_after = {}  # query number -> LastEvaluatedKey after its fetched items, or None
    for number, query in enumerate(plan["queries"]):
        cursor = cursors[number]
        if cursor == "done":
            continue
        request = _query_request(params["table_name"], query, since, until, plan["filters"], limit)
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
    taken = candidates[:limit]
    left = candidates[limit:]
    new_cursors = list(cursors)
    for number in more_after:
        own_taken = [entry for entry in taken if entry[2] == number]
        own_left = [entry for entry in left if entry[2] == number]
        if own_left:
            if own_taken:
                last_taken = max(own_taken, key=lambda entry: entry[3])
                new_cursors[number] = _cursor_key(last_taken[4], plan["queries"][number])
            # else: nothing of this query was taken, its cursor stays
        elif more_after[number]:
            new_cursors[number] = more_after[number]
        else:
            new_cursors[number] = "done"
    deployments = [deserialize(entry[4]) for entry in taken]
    next_token = None
    if any(cursor != "done" for cursor in new_cursors):
        next_token = encode_token(finger, new_cursors)
    return {
        "deployments": deployments,
        "failed_instances": flatten_failures(deployments),
        "next_token": next_token,
        "count": len(deployments),
    }


def flatten_failures(deployments):
    flattened = []
    for deployment in deployments:
        for instance in deployment.get("failed_instances") or []:
            entry = {key: deployment.get(key) for key in ("deployment_id", "timestamp", "source_account_id",
                                                          "source_account_name", "deployment_pattern")}
            entry.update(instance)
            flattened.append(entry)
    return flattened
