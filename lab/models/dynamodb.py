"""moto's DynamoDB, made to keep a history table's TTL and backups and to answer transactions at the size of
the lab's histories.

moto's CloudFormation creates AWS::DynamoDB::Table without its TimeToLiveSpecification and
PointInTimeRecoverySpecification, so a history table would look deployed while its items never
expire and it has no backups. Applying both through moto's own backend after the table is created
makes DescribeTimeToLive and DescribeContinuousBackups answer as AWS does.

moto's TransactWriteItems deep-copies the whole table once per item of the transaction, to roll it back
when the transaction is cancelled: a rollout's record of 100 accounts (25 items a transaction, each with up to
300 unprotected instances) then costs seconds of the lab's time per write, growing with the table, while the
lab answers one request at a time. Keeping only the items the transaction touches, and putting those back
when it is cancelled, leaves the same table for every outcome.

moto checks an item's 400 KB limit each time one of its attributes is set by sizing every attribute it holds
so far, so writing an item costs its size times its number of attributes: seconds for a record of 100 accounts.
The same limit is kept with each attribute sized once, when it is set (an attribute an update changes in place,
below its top level, keeps the size it was set with: the collection's history never grows an item that way).
"""

import copy

from moto.dynamodb.exceptions import ItemSizeTooLarge
from moto.dynamodb.exceptions import MockValidationException
from moto.dynamodb.exceptions import MultipleTransactionsException
from moto.dynamodb.exceptions import TransactionCanceledException
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.dynamo_type import DynamoType
from moto.dynamodb.models.dynamo_type import LimitedSizeDict
from moto.dynamodb.models.table import Table
from moto.dynamodb.models.utilities import bytesize

# moto's limit on an item's size: AWS's 400 KB, measured between 409 and 410 KB
ITEM_SIZE_LIMIT = 405000


def _create_with_ttl_and_recovery(create):
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        table = create(resource_name, cloudformation_json, account_id, region_name, **kwargs)
        properties = cloudformation_json["Properties"]
        backend = dynamodb_backends[account_id][region_name]
        ttl = properties.get("TimeToLiveSpecification")
        if ttl:
            backend.update_time_to_live(table.name, {"Enabled": ttl.get("Enabled") in (True, "true"),
                                                     "AttributeName": ttl["AttributeName"]})
        recovery = properties.get("PointInTimeRecoverySpecification", {})
        if recovery.get("PointInTimeRecoveryEnabled") in (True, "true"):
            backend.update_continuous_backups(table.name, {"PointInTimeRecoveryEnabled": True})
        return table

    return classmethod(create_from_cloudformation_json)


Table.create_from_cloudformation_json = _create_with_ttl_and_recovery(Table.create_from_cloudformation_json)


def _touched_items(backend, transact_items):
    """(table, hash key, range key, the item as it was, or None) of every item a transaction names. A Put or a
    Delete replaces or removes the item object and leaves the old one as it was, so it is kept as it is; an
    Update changes the item in place, so a copy is kept (a history item of hundreds of instances takes
    milliseconds to copy)."""
    touched = []
    for entry in transact_items:
        kind, operation = next(iter(entry.items()), (None, None)) if isinstance(entry, dict) else (None, None)
        table = backend.tables.get(operation.get("TableName")) if isinstance(operation, dict) else None
        if table is None:
            continue  # moto refuses the transaction before it changes anything
        attributes = operation.get("Item") or operation.get("Key") or {}
        hash_value = attributes.get(table.hash_key_attr)
        range_value = attributes.get(table.range_key_attr) if table.range_key_attr else None
        if hash_value is None or (table.range_key_attr and range_value is None):
            continue
        hash_key = DynamoType(hash_value)
        range_key = DynamoType(range_value) if range_value is not None else None
        item = table.get_item(hash_key, range_key)
        touched.append((table, hash_key, range_key, copy.deepcopy(item) if kind == "Update" else item))
    return touched


def _put_back(table, hash_key, range_key, item):
    if item is None:
        if range_key is None:
            table.items.pop(hash_key, None)
        else:
            table.items.get(hash_key, {}).pop(range_key, None)
    elif range_key is None:
        table.items[hash_key] = item
    else:
        table.items[hash_key][range_key] = item


def _the_table_itself(table, _memo):
    return table


def _transaction_rolled_back_by_item(transact):
    def transact_write_items(self, transact_items):
        touched = _touched_items(self, transact_items)
        # moto's own copies of the whole table are not made (its rollback then puts back the live table)
        Table.__deepcopy__ = _the_table_itself
        try:
            return transact(self, transact_items)
        except (TransactionCanceledException, MultipleTransactionsException, MockValidationException):
            for table, hash_key, range_key, item in reversed(touched):
                _put_back(table, hash_key, range_key, item)
            raise
        finally:
            del Table.__deepcopy__

    return transact_write_items


DynamoDBBackend.transact_write_items = _transaction_rolled_back_by_item(DynamoDBBackend.transact_write_items)


def _size_of(key, value):
    return bytesize(key) + (value.size() if type(value) is DynamoType else bytesize(str(value)))  # pylint: disable=unidiomatic-typecheck


def _set_within_the_size_limit(self, key, value):
    """moto's check (the attributes held, the one set counted once more when it replaces one), with each
    attribute's size kept from when it was set; attributes set another way (dict.update) are sized once here."""
    sizes = self.__dict__.setdefault("_attribute_sizes", {})
    for held in self.keys() - sizes.keys():
        sizes[held] = _size_of(held, dict.__getitem__(self, held))
    for gone in sizes.keys() - self.keys():
        del sizes[gone]
    new_size = _size_of(key, value)
    if sum(sizes.values()) + new_size > ITEM_SIZE_LIMIT:
        raise ItemSizeTooLarge
    dict.__setitem__(self, key, value)
    sizes[key] = new_size


LimitedSizeDict.__setitem__ = _set_within_the_size_limit
