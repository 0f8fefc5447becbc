"""DynamoDB tables created by CloudFormation stacks keep their TTL and point-in-time recovery.

moto's CloudFormation creates AWS::DynamoDB::Table without its TimeToLiveSpecification and
PointInTimeRecoverySpecification, so a history table would look deployed while its items never
expire and it has no backups. Applying both through moto's own backend after the table is created
makes DescribeTimeToLive and DescribeContinuousBackups answer as AWS does.
"""

from moto.dynamodb.models import dynamodb_backends
from moto.dynamodb.models.table import Table


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
