"""CloudWatch alarms created by CloudFormation stacks.

moto's CloudFormation has no AWS::CloudWatch::Alarm: it logs a warning and reports the stack complete
without the alarm, so a monitoring template would look deployed while nothing alarms. moto finds the
resource types it can create among the subclasses of CloudFormationModel, so defining this one is
enough for its stacks to create, replace and delete alarms through moto's own CloudWatch backend.
"""

from moto.cloudwatch.models import Dimension, Metric, MetricDataQuery, MetricStat, cloudwatch_backends
from moto.core.common_models import CloudFormationModel


def _dimensions(entries):
    return [Dimension(entry["Name"], entry["Value"]) for entry in entries or []]


def _queries(metrics):
    """The alarm's Metrics property (metric math) as moto's CloudWatch backend takes it."""
    queries = []
    for metric in metrics:
        stat = metric.get("MetricStat")
        metric_stat = None
        if stat:
            target = stat["Metric"]
            metric_stat = MetricStat(
                Metric(target["MetricName"], target["Namespace"], _dimensions(target.get("Dimensions"))),
                stat["Period"], stat["Stat"], stat.get("Unit"),
            )
        queries.append(MetricDataQuery(
            metric["Id"], metric.get("Label"), metric.get("Period"), metric.get("ReturnData", True),
            metric.get("Expression"), metric_stat,
        ))
    return queries


class CloudFormationAlarm(CloudFormationModel):
    """AWS::CloudWatch::Alarm, single-metric or metric math: a stack's handle on an alarm of moto's backend."""

    def __init__(self, alarm):
        self.alarm = alarm
        self.name = alarm.name

    @property
    def physical_resource_id(self):
        return self.name

    @classmethod
    def has_cfn_attr(cls, attr):
        return attr == "Arn"

    def get_cfn_attribute(self, attribute_name):
        return self.alarm.alarm_arn

    @staticmethod
    def cloudformation_name_type():
        return "AlarmName"

    @staticmethod
    def cloudformation_type():
        return "AWS::CloudWatch::Alarm"

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cloudformation_json["Properties"]
        backend = cloudwatch_backends[account_id][region_name]
        return cls(backend.put_metric_alarm(
            name=properties.get("AlarmName") or resource_name,
            namespace=properties.get("Namespace"),
            metric_name=properties.get("MetricName"),
            comparison_operator=properties["ComparisonOperator"],
            evaluation_periods=int(properties["EvaluationPeriods"]),
            period=properties.get("Period"),
            threshold=float(properties["Threshold"]),
            statistic=properties.get("Statistic"),
            description=properties.get("AlarmDescription"),
            dimensions=properties.get("Dimensions", []),
            alarm_actions=properties.get("AlarmActions", []),
            metric_data_queries=_queries(properties["Metrics"]) if "Metrics" in properties else None,
            datapoints_to_alarm=properties.get("DatapointsToAlarm"),
            ok_actions=properties.get("OKActions", []),
            insufficient_data_actions=properties.get("InsufficientDataActions", []),
            unit=properties.get("Unit"),
            actions_enabled=properties.get("ActionsEnabled", True),
            treat_missing_data=properties.get("TreatMissingData"),
        ))

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name, cloudformation_json, account_id, region_name):
        cls.delete_from_cloudformation_json(original_resource.name, cloudformation_json, account_id, region_name)
        return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)

    @classmethod
    def delete_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name):
        cloudwatch_backends[account_id][region_name].delete_alarms([resource_name])
