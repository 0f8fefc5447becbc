# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Writing the history: revisioned items, the local spool, hand-overs between runs, and send locks.

Every write of an item is conditional on the table holding no newer revision of it, so a retried, re-flushed
or late write never goes back in time. When DynamoDB cannot be written (unavailable, throttling beyond a few
retries) the items go to a local spool, one file per item (a newer revision replaces an older one), written
by the next write of any run on this controller.

A run that stops hands its running installs over in its record (``in_flight``); the next run that covers
them claims that record (``claimed_by``, set once, conditionally), adopts the installs and counts them, so
that each install is counted by exactly one run.

Send locks (items ``lock#<account>#<region>``, outside every index) keep two runs from sending to the same
account-region at the same moment: the run holding the lock lists the installs in flight, then sends; the
other waits, then finds those installs in flight and adopts them.
"""

import base64
import datetime
import hashlib
import json
import os
import random
import tempfile
import time
from decimal import Decimal

try:
    from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass  # AnsibleAWSModule reports a missing boto3 / botocore

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import IN_PROGRESS
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import RECORD_TYPE
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import STOPPED
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._history.items import iso
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.aws import retry_decorator

DEFAULT_SPOOL_DIR = "~/.ansible/drs_history_spool"
SPOOL_VERSION = 2
# A history write must not hold a deployment up for minutes: a few quick retries, then the spool.
WRITE_RETRY = retry_decorator(retries=3, delay=1, max_delay=4)
TRANSIENT_ERROR_CODES = (
    "ServiceUnavailable", "Unavailable", "InternalServerError", "InternalFailure", "InternalError",
    "ProvisionedThroughputExceededException", "ThrottlingException", "Throttling", "RequestLimitExceeded",
    "RequestLimitExceededException", "TooManyRequestsException", "LimitExceededException",
)
LOCK_PREFIX = "lock#"
LOCK_SORT_KEY = "lock"
LOCK_SECONDS = 300
TRANSACTION_LIMIT = 100  # TransactWriteItems takes at most 100 actions
TRANSACTION_BYTES = 3_000_000  # and 4 MB in all: a margin for the request's own text
HANDOVER_DAYS = 14  # installs do not run longer; older records hand nothing over


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


def _code(error):
    return error.response.get("Error", {}).get("Code") if isinstance(error, ClientError) else None


# --- items ----------------------------------------------------------------------------------------

def conditionally(call, **request):
    """True when a conditional write went through, False when its condition did not hold."""
    try:
        call(aws_retry=True, **request)
    except ClientError as error:
        if _code(error) == "ConditionalCheckFailedException":
            return False
        raise
    return True


def _newer(table_name, item):
    """A put of ``item`` unless the table holds the same or a newer revision of it, or a run has claimed it."""
    return {
        "TableName": table_name,
        "Item": serialize(item),
        "ConditionExpression": "attribute_not_exists(deployment_id) OR (#revision < :revision AND "
                               "attribute_not_exists(claimed_by))",
        "ExpressionAttributeNames": {"#revision": "revision"},
        "ExpressionAttributeValues": {":revision": {"N": str(item["revision"])}},
    }


def put_item(dynamodb, table_name, item):
    """Write ``item`` (see ``_newer``): True if written."""
    return conditionally(dynamodb.put_item, **_newer(table_name, item))


def put_items(dynamodb, table_name, items):
    """Write ``items`` (each as ``put_item``) with as few calls as DynamoDB allows: one TransactWriteItems per
    TRANSACTION_LIMIT items and TRANSACTION_BYTES; a transaction that a condition cancels (an item the table
    holds newer, or claimed) is written again item by item. Returns how many were written."""
    written = 0
    for chunk in _transactions(table_name, items):
        if len(chunk) == 1:
            written += put_item(dynamodb, table_name, chunk[0])
            continue
        try:
            dynamodb.transact_write_items(TransactItems=[{"Put": _newer(table_name, item)} for item in chunk],
                                          aws_retry=True)
            written += len(chunk)
        except ClientError as error:
            if _code(error) != "TransactionCanceledException":
                raise
            written += sum(put_item(dynamodb, table_name, item) for item in chunk)
    return written


def _transactions(table_name, items):
    chunks, size = [[]], 0
    for item in items:
        item_size = len(json.dumps(item, default=str))
        if chunks[-1] and (len(chunks[-1]) == TRANSACTION_LIMIT or size + item_size > TRANSACTION_BYTES):
            chunks.append([])
            size = 0
        chunks[-1].append(item)
        size += item_size
    return [chunk for chunk in chunks if chunk]


# --- the spool --------------------------------------------------------------------------------------

def spool_path(spool_dir, table_name, item):
    key = hashlib.sha256(f"{table_name}\0{item['deployment_id']}\0{item['timestamp']}".encode()).hexdigest()[:32]
    return os.path.join(spool_dir, f"{key}.json")


def spool(spool_dir, table_name, item):
    """Keep ``item`` in its spool file (atomically, readable by the owner only), unless the file holds a newer
    revision; returns the path."""
    os.makedirs(spool_dir, mode=0o700, exist_ok=True)
    path = spool_path(spool_dir, table_name, item)
    try:
        if read_spool(path)["item"]["revision"] >= item["revision"]:
            return path
    except (OSError, ValueError, KeyError, TypeError):
        pass  # no file yet, or one that cannot be read: this item replaces it
    descriptor, temporary = tempfile.mkstemp(dir=spool_dir, prefix=".spool-", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump({"version": SPOOL_VERSION, "table_name": table_name, "item": item}, handle, sort_keys=True)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    return path


def spooled_files(spool_dir):
    if not os.path.isdir(spool_dir):
        return []
    return sorted(os.path.join(spool_dir, name) for name in os.listdir(spool_dir)
                  if name.endswith(".json") and not name.startswith("."))


def read_spool(path):
    with open(path, encoding="utf-8") as handle:
        document = json.load(handle)
    if document.get("version") != SPOOL_VERSION:
        raise ValueError(f"spool file version {document.get('version')} is not {SPOOL_VERSION}")
    return document


class Store:
    """Writes of one table, with the spool behind them."""

    def __init__(self, dynamodb, table_name, spool_dir, warn):
        self.dynamodb = dynamodb
        self.table_name = table_name
        self.spool_dir = os.path.expanduser(spool_dir)
        self.warn = warn

    def write(self, items):
        """Write the spool's items of this table, then ``items``; what cannot be written, whatever the AWS error,
        is spooled. Returns written, flushed, spooled (paths) and the error that made it spool (or None)."""
        result = {"written": 0, "flushed": 0, "spooled": [], "error": None}
        available = self._flush(result)
        pending = list(items)
        if available:
            try:
                result["written"] = put_items(self.dynamodb, self.table_name, pending)
                pending = []
            except (BotoCoreError, ClientError) as error:
                # unavailable, throttling, or a table that is not there (yet): nothing of the record is lost
                result["error"] = error_text(error)
        else:
            result["error"] = "DynamoDB did not answer while the spool was written"
        for item in pending:
            result["spooled"].append(spool(self.spool_dir, self.table_name, item))
        return result

    def _flush(self, result):
        """Write the spooled items of this table; a file is removed once its item is in the table (or a newer
        revision is). False when DynamoDB does not answer."""
        for path in spooled_files(self.spool_dir):
            try:
                document = read_spool(path)
            except (OSError, ValueError) as e:
                self.warn(f"Spool file {path} cannot be read and was left in place: {e}")
                continue
            if document.get("table_name") != self.table_name:
                continue
            try:
                put_item(self.dynamodb, self.table_name, document["item"])
            except (BotoCoreError, ClientError) as error:
                if is_transient(error):
                    return False
                self.warn(f"Spool file {path} could not be written to {self.table_name} and was left in place: "
                          f"{error_text(error)}")
                continue
            os.remove(path)
            result["flushed"] += 1
        return True

    # --- hand-overs ---

    def handovers(self, account_ids, now):
        """The items of earlier runs in these accounts that handed installs over and are not claimed yet:
        stopped, or still in progress after their lease. One paged StatusIndex query per status, whatever the
        number of accounts: these two statuses hold few items, where an account's items are all its runs."""
        since = iso(now - datetime.timedelta(days=HANDOVER_DAYS))
        wanted = set(account_ids)
        found = []
        for status, condition in ((STOPPED, ""), (IN_PROGRESS, " AND lease_until < :now")):
            values = {":status": {"S": status}, ":since": {"S": since}, ":deployment": {"S": RECORD_TYPE},
                      ":none": {"N": "0"}}
            if condition:
                values[":now"] = {"S": iso(now)}
            request = {
                "TableName": self.table_name, "IndexName": "StatusIndex",
                "KeyConditionExpression": "#s = :status AND #t >= :since",
                # drills are stopped too, and most runs hand nothing over
                "FilterExpression": "record_type = :deployment AND attribute_not_exists(claimed_by) "
                                    "AND size(in_flight) > :none" + condition,
                "ExpressionAttributeNames": {"#t": "timestamp", "#s": "status"},
                "ExpressionAttributeValues": values,
            }
            while True:
                page = self.dynamodb.query(aws_retry=True, **request)
                found.extend(item for item in map(deserialize, page.get("Items", []))
                             if item.get("source_account_id") in wanted)
                if not page.get("LastEvaluatedKey"):
                    break
                request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return sorted(found, key=lambda item: (item["source_account_id"], item["timestamp"]))

    def claim(self, item, run_id, now):
        """Claim the installs ``item`` handed over for ``run_id``: True when this run got them."""
        return conditionally(
            self.dynamodb.update_item,
            TableName=self.table_name,
            Key={"deployment_id": {"S": item["deployment_id"]}, "timestamp": {"S": item["timestamp"]}},
            UpdateExpression="SET claimed_by = :me, claimed_at = :now",
            ConditionExpression="attribute_not_exists(claimed_by) AND (#s = :stopped OR "
                                "(#s = :running AND lease_until < :now))",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":me": {"S": run_id}, ":now": {"S": iso(now)},
                                       ":stopped": {"S": STOPPED}, ":running": {"S": IN_PROGRESS}},
        )

    # --- send locks ---

    def acquire(self, places, run_id, deadline, clock, waiting=None):
        """Hold the send locks of ``places`` ((account id, region) pairs) for ``run_id``, waiting while another
        run holds any of them, until ``deadline`` on ``clock``. True when held, False when the deadline passed.
        ``waiting(seconds waited)`` is called after each attempt that found a lock held."""
        chunks = _chunks(sorted(places), TRANSACTION_LIMIT)
        started = clock.now()
        while True:
            held = []
            for chunk in chunks:
                if not self._transact(chunk, run_id, acquire=True):
                    break
                held.append(chunk)
            else:
                return True
            for chunk in held:
                self._transact(chunk, run_id, acquire=False)
            if waiting is not None:
                waiting(clock.now() - started)
            if clock.now() >= deadline:
                return False
            clock.sleep(0.5 + random.random())

    def release(self, places, run_id):
        for chunk in _chunks(sorted(places), TRANSACTION_LIMIT):
            if not self._transact(chunk, run_id, acquire=False):
                for place in chunk:  # one of them was taken over after ours expired: release the others
                    self._transact([place], run_id, acquire=False)

    def _transact(self, places, run_id, acquire):
        now = int(time.time())
        actions = []
        for account_id, region in places:
            key = {"deployment_id": {"S": f"{LOCK_PREFIX}{account_id}#{region}"}, "timestamp": {"S": LOCK_SORT_KEY}}
            if acquire:
                actions.append({"Put": {
                    "TableName": self.table_name,
                    "Item": dict(key, owner={"S": run_id}, expires_at={"N": str(now + LOCK_SECONDS)}),
                    "ConditionExpression": "attribute_not_exists(deployment_id) OR expires_at < :now OR #o = :me",
                    "ExpressionAttributeNames": {"#o": "owner"},
                    "ExpressionAttributeValues": {":now": {"N": str(now)}, ":me": {"S": run_id}},
                }})
            else:
                actions.append({"Delete": {
                    "TableName": self.table_name, "Key": key,
                    "ConditionExpression": "attribute_not_exists(deployment_id) OR #o = :me",
                    "ExpressionAttributeNames": {"#o": "owner"},
                    "ExpressionAttributeValues": {":me": {"S": run_id}},
                }})
        try:
            self.dynamodb.transact_write_items(TransactItems=actions, aws_retry=True)
        except ClientError as error:
            if _code(error) == "TransactionCanceledException":
                return False
            raise
        return True


def _chunks(items, size):
    return [items[start:start + size] for start in range(0, len(items), size)]
