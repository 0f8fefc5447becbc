"""Policies created by CloudFormation stacks: AWS::SQS::QueuePolicy, AWS::Events::EventBusPolicy, and the
inline policies of AWS::IAM::Role.

moto's CloudFormation has neither: it logs "No Moto CloudFormation support for ..." and reports the
stack complete without the policy, so a queue would refuse what EventBridge delivers and a bus the
events other accounts send, while the stack looked deployed. moto finds the resource types it can
create among the subclasses of CloudFormationModel; these two apply the policy through moto's own
SQS and EventBridge backends, replace it when the stack updates it and remove it when the stack
deletes it (or drops the resource), as CloudFormation does.

moto's AWS::IAM::Role stores a role's inline policies (Policies) as the Python text of the template's
mapping, so GetRolePolicy answered a document no client could read; they are stored as JSON here.
"""

import json

from moto.cloudformation import parsing
from moto.core.common_models import CloudFormationModel
from moto.events.models import EventBusPolicyStatement, events_backends
from moto.iam.models import Role
from moto.sqs.models import sqs_backends


def _document(value):
    return value if isinstance(value, str) else json.dumps(value)


class CloudFormationQueuePolicy(CloudFormationModel):
    """AWS::SQS::QueuePolicy: sets the policy (PolicyDocument) of each queue in Queues (their URLs)."""

    def __init__(self, physical_id, account_id, region_name, queue_urls, document):
        self.physical_id = physical_id
        self.account_id = account_id
        self.region_name = region_name
        self.queue_urls = list(queue_urls)
        self.document = document

    @property
    def physical_resource_id(self):
        return self.physical_id

    @staticmethod
    def cloudformation_name_type():
        return ""

    @staticmethod
    def cloudformation_type():
        return "AWS::SQS::QueuePolicy"

    @classmethod
    def has_cfn_attr(cls, attr):
        return attr == "Id"

    def get_cfn_attribute(self, attribute_name):
        return self.physical_id

    def _names(self):
        return [url.rstrip("/").rsplit("/", 1)[-1] for url in self.queue_urls]

    def apply(self):
        backend = sqs_backends[self.account_id][self.region_name]
        for name in self._names():
            backend.get_queue(name).policy = _document(self.document)  # an unknown queue fails the stack

    def delete(self, account_id, region_name):
        # the stack may have deleted the queues first: what is gone has no policy left to remove
        queues = sqs_backends[self.account_id][self.region_name].queues
        for name in self._names():
            if name in queues:
                queues[name].policy = None

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        properties = cloudformation_json["Properties"]
        policy = cls(resource_name, account_id, region_name, properties["Queues"], properties["PolicyDocument"])
        policy.apply()
        return policy

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name, cloudformation_json, account_id,
                                        region_name):
        original_resource.delete(account_id, region_name)
        properties = cloudformation_json["Properties"]
        policy = cls(original_resource.physical_id, account_id, region_name, properties["Queues"],
                     properties["PolicyDocument"])
        policy.apply()
        return policy


class CloudFormationEventBusPolicy(CloudFormationModel):
    """AWS::Events::EventBusPolicy: one statement (Statement, or the older Action, Principal and Condition) of
    an event bus's resource policy, under its StatementId."""

    def __init__(self, account_id, region_name, bus_name, statement_id, statement):
        self.account_id = account_id
        self.region_name = region_name
        self.bus_name = bus_name
        self.statement_id = statement_id
        self.statement = statement

    @property
    def physical_resource_id(self):
        return f"{self.bus_name}|{self.statement_id}"

    @staticmethod
    def cloudformation_name_type():
        return ""

    @staticmethod
    def cloudformation_type():
        return "AWS::Events::EventBusPolicy"

    def _bus(self):
        return events_backends[self.account_id][self.region_name].describe_event_bus(self.bus_name)

    def apply(self):
        bus = self._bus()
        statement = dict(self.statement, Sid=self.statement_id)
        statement.setdefault("Resource", bus.arn)
        # a statement of its own: moto's add_policy would also drop other statements with the same principal
        bus._statements[self.statement_id] = EventBusPolicyStatement.from_dict(statement)  # pylint: disable=protected-access

    def delete(self, account_id, region_name):
        backend = events_backends[self.account_id][self.region_name]
        bus = backend.event_buses.get(self.bus_name)
        if bus is not None:
            bus.remove_statement(self.statement_id)

    @classmethod
    def _from_properties(cls, properties, account_id, region_name):
        bus_name = properties.get("EventBusName") or "default"
        if bus_name.startswith("arn:"):
            bus_name = bus_name.split("/", 1)[1]
        statement = properties.get("Statement")
        if statement is None:  # the older form: PutEvents for one principal (an account id or *)
            principal = properties["Principal"]
            statement = {"Effect": "Allow", "Action": properties.get("Action", "events:PutEvents"),
                         "Principal": principal if principal == "*" else {"AWS": f"arn:aws:iam::{principal}:root"}}
            if properties.get("Condition"):
                condition = properties["Condition"]
                statement["Condition"] = {condition["Type"]: {condition["Key"]: condition["Value"]}}
        elif isinstance(statement, str):
            statement = json.loads(statement)
        return cls(account_id, region_name, bus_name, properties["StatementId"], statement)

    @classmethod
    def create_from_cloudformation_json(cls, resource_name, cloudformation_json, account_id, region_name, **kwargs):
        policy = cls._from_properties(cloudformation_json["Properties"], account_id, region_name)
        policy.apply()
        return policy

    @classmethod
    def update_from_cloudformation_json(cls, original_resource, new_resource_name, cloudformation_json, account_id,
                                        region_name):
        original_resource.delete(account_id, region_name)
        return cls.create_from_cloudformation_json(new_resource_name, cloudformation_json, account_id, region_name)


_role_put_policy = Role.put_policy


def _put_policy_as_json(self, policy_name, policy_json):
    _role_put_policy(self, policy_name, _document(policy_json))


Role.put_policy = _put_policy_as_json

# moto lists the resource types once and caches the list: forget it, in case it was read before these existed
parsing.get_model_list.cache_clear()
parsing.get_model_map.cache_clear()
parsing.get_name_type_map.cache_clear()
