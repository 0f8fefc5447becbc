"""EventBridge events from the lab's EC2: what AWS publishes when an instance is launched, started,
stopped, terminated or tagged, routed by the rules clients create in moto's EventBridge.

moto holds the buses, rules, targets and policies that clients (or their CloudFormation stacks)
create, and its pattern matching decides which rules an event matches. The lab routes the events
itself rather than through moto's ``put_events``, for three reasons:

- moto's delivery to an SQS queue writes the event through a template without ``account``, and
  AWS's envelope has it;
- moto forwards an event to another account's bus as a new ``PutEvents`` there, so the event
  arrives with a new id and time, the receiving account as ``account``, and no ``resources``;
  AWS delivers the same event, as the source account published it;
- moto delivers to every target regardless of bus and queue policies, where AWS drops an event
  that the receiving bus's policy or the queue's policy does not allow.

Every event published, and what became of it at each rule and target, is kept for
``GET /_lab/events``: on AWS a refused delivery only shows as a FailedInvocations metric.
"""

import json
import random
import uuid
from collections import deque
from fnmatch import fnmatchcase
from urllib.parse import unquote

from moto.events.models import events_backends
from moto.iam.models import iam_backends
from moto.events.utils import EventTemplateParser
from moto.sqs.models import sqs_backends

STATE_CHANGE = "EC2 Instance State-change Notification"
TAG_CHANGE = "Tag Change on Resource"
API_CALL = "AWS API Call via CloudTrail"
# how long an instance stays in a transitional state (pending, stopping, shutting-down) before it
# reaches the next one, in simulated seconds; moto's EC2 shows the final state at once
STATE_SETTLE_SECONDS = 10
SETTLED = {"pending": "running", "stopping": "stopped", "shutting-down": "terminated"}
EVENT_LOG_SIZE = 1000
EVENTS_PRINCIPAL = "events.amazonaws.com"


class EventRouter:
    """Publishes events to an account's default bus in a region and follows the rules from there."""

    def __init__(self, world):
        self.world = world
        # event ids come from their own seeded generator: publishing draws nothing from the random
        # sources the fleet, SSM and DRS draw from, so a scenario's other outcomes stay as they were
        self._ids = random.Random(f"events:{world.scenario['seed']}")
        self.log = deque(maxlen=EVENT_LOG_SIZE)
        self._tag_versions = {}  # resource ARN -> how many tag changes it has had

    # --- the events AWS publishes ---

    def state_change(self, account_id, region, instance_id, state, at=None):
        """An EC2 instance entered ``state``; a transitional state is followed by the state it settles in."""
        at = self.world.elapsed() if at is None else at
        self.publish(account_id, region, "aws.ec2", STATE_CHANGE, [instance_arn(account_id, region, instance_id)],
                     {"instance-id": instance_id, "state": state}, at)
        settled = SETTLED.get(state)
        if settled:
            self.world.schedule_at(at + STATE_SETTLE_SECONDS,
                                   lambda due: self.state_change(account_id, region, instance_id, settled, due))

    def tag_change(self, account_id, region, instance_id, before, after, at=None):
        """An EC2 instance's tags went from ``before`` to ``after`` (dicts); nothing is published
        when no key was added, changed or removed."""
        changed = sorted(key for key in set(before) | set(after) if before.get(key) != after.get(key))
        if not changed:
            return
        arn = instance_arn(account_id, region, instance_id)
        version = self._tag_versions[arn] = self._tag_versions.get(arn, 0) + 1
        detail = {"changed-tag-keys": changed, "service": "ec2", "resource-type": "instance", "version": version,
                  "tags": dict(after)}
        self.publish(account_id, region, "aws.tag", TAG_CHANGE, [arn], detail, at)

    def api_call(self, account_id, region, event_name, identity, request_parameters, at=None):
        """A CloudTrail management event for an EC2 API call, published only where the account
        has a trail (the scenario's ``cloudtrail``), as AWS requires."""
        if not self._has_trail(account_id):
            return
        at = self.world.elapsed() if at is None else at
        request_id = str(self._uuid())
        detail = {
            "eventVersion": "1.09",
            "userIdentity": identity,
            "eventTime": iso_time(self.world.clock.at(at)),
            "eventSource": "ec2.amazonaws.com",
            "eventName": event_name,
            "awsRegion": region,
            "sourceIPAddress": "192.0.2.10",
            "userAgent": "lab",
            "requestParameters": request_parameters,
            "responseElements": {"requestId": request_id, "_return": True},
            "requestID": request_id,
            "eventID": str(self._uuid()),
            "readOnly": False,
            "eventType": "AwsApiCall",
            "managementEvent": True,
            "recipientAccountId": account_id,
            "eventCategory": "Management",
        }
        self.publish(account_id, region, "aws.ec2", API_CALL, [], detail, at)

    def _has_trail(self, account_id):
        return any(a["id"] == account_id and a.get("cloudtrail") for a in self.world.scenario["accounts"])

    # --- routing ---

    def publish(self, account_id, region, source, detail_type, resources, detail, at=None):
        """Put one event on the account's default bus in ``region``, as the AWS service does."""
        at = self.world.elapsed() if at is None else at
        event = {
            "version": "0",
            "id": str(self._uuid()),
            "detail-type": detail_type,
            "source": source,
            "account": account_id,
            "time": iso_time(self.world.clock.at(at)),
            "region": region,
            "resources": list(resources),
            "detail": detail,
        }
        record = {"event": event, "deliveries": []}
        self.log.append(record)
        self._route(event, bus_arn(account_id, region, "default"), record["deliveries"], forwarded=False)
        return event

    def _route(self, event, arn, deliveries, forwarded):
        account_id, region, name = _parse_bus_arn(arn)
        bus = _existing_backend(events_backends, account_id, region)
        bus = bus.event_buses.get(name) if bus else None
        if bus is None:
            return
        for rule in list(bus.rules.values()):
            # a rule with a schedule and no pattern matches no event; moto's empty pattern matches all
            if not rule.state.startswith("ENABLED") or not rule.event_pattern.get_pattern():
                continue
            if not rule.event_pattern.matches_event(event):
                continue
            for target in list(rule.targets):
                outcome = self._deliver(event, rule, target, deliveries, forwarded)
                deliveries.append({"bus": arn, "rule": rule.arn, "target": target["Arn"], "outcome": outcome})

    def _deliver(self, event, rule, target, deliveries, forwarded):
        arn = target["Arn"]
        parts = arn.split(":", 5)
        if len(parts) < 6:
            return "refused: not an ARN"
        service, region, account_id, resource = parts[2], parts[3], parts[4], parts[5]
        if service == "events" and resource.startswith("event-bus/"):
            if account_id != rule.account_id and forwarded:
                # "If a receiver account sets up a rule that sends events received from a sender account
                # on to a third account, these events are not sent to the third account."
                return "refused: an event from another account is not sent on to a third account's bus"
            if target.get("RoleArn"):
                refusal = self._role_refusal(target["RoleArn"], rule)
                if refusal:
                    return refusal
                # EventBridge puts the event on the bus as the target's role: the lab's statistics show it
                # as that role's call, like the calls clients make
                self.world.stats.record_call(rule.account_id, target["RoleArn"], "events", "PutEvents")
            refusal = self._bus_refusal(account_id, region, resource.split("/", 1)[1], rule)
            if refusal:
                return refusal
            self._route(event, arn, deliveries, forwarded or account_id != rule.account_id)
            return "delivered"
        if service == "sqs":
            return self._send_to_queue(event, rule, target, account_id, region, resource)
        return f"refused: the lab delivers to SQS queues and event buses, not to {service} targets"

    @staticmethod
    def _role_refusal(role_arn, rule):
        """None when EventBridge may assume the target's role for the rule: the role exists in the rule's
        account and its trust policy allows events.amazonaws.com sts:AssumeRole (conditions on
        aws:SourceArn and aws:SourceAccount are evaluated against the rule), else why not."""
        if _account_of(role_arn) != rule.account_id:
            return f"refused: the role {role_arn} of a target must be in the rule's account {rule.account_id}"
        try:
            role = iam_backends[rule.account_id]["aws"].get_role_by_arn(role_arn)
        except Exception:  # moto raises its own NotFound
            return f"refused: EventBridge cannot assume {role_arn}: no such role"
        trust = role.assume_role_policy_document
        trust = trust if isinstance(trust, dict) else json.loads(trust if trust.lstrip().startswith("{") else unquote(trust))
        context = {"aws:sourcearn": rule.arn, "aws:sourceaccount": rule.account_id}
        for statement in _listed(trust.get("Statement")):
            if statement.get("Effect") != "Allow" or not _action_allowed(statement.get("Action"), "sts:AssumeRole"):
                continue
            principal = statement.get("Principal")
            if not isinstance(principal, dict) or EVENTS_PRINCIPAL not in _listed(principal.get("Service")):
                continue
            if all(key.lower() in context and _condition_holds(operator, context[key.lower()], _listed(expected))
                   for operator, conditions in (statement.get("Condition") or {}).items()
                   for key, expected in conditions.items()):
                return None
        return f"refused: EventBridge cannot assume {role_arn}: its trust policy does not allow {EVENTS_PRINCIPAL} for rule {rule.arn}"

    def _bus_refusal(self, account_id, region, name, rule):
        backend = _existing_backend(events_backends, account_id, region)
        bus = backend.event_buses.get(name) if backend else None
        if bus is None:
            return f"refused: no event bus {name} in {account_id} {region}"
        if account_id == rule.account_id:
            return None
        policy = json.loads(bus.policy) if bus.policy else {}
        return _policy_refusal(policy, "events:PutEvents", rule, "events", principal_account=rule.account_id,
                               what=f"the policy of event bus {bus.arn}")

    def _send_to_queue(self, event, rule, target, account_id, region, name):
        backend = _existing_backend(sqs_backends, account_id, region)
        queue = backend.queues.get(name) if backend else None
        if queue is None:
            return f"refused: no queue {name} in {account_id} {region}"
        refusal = _policy_refusal(json.loads(queue.policy) if queue.policy else {}, "sqs:SendMessage", rule, "sqs",
                                  principal_account=None, what=f"the policy of queue {queue.queue_arn}")
        if refusal:
            return refusal
        group_id = target.get("SqsParameters", {}).get("MessageGroupId")
        backend.send_message(queue_name=name, message_body=_target_input(event, target), group_id=group_id,
                             deduplication_id=event["id"] if name.endswith(".fifo") else None)
        return "delivered"

    def _uuid(self):
        return uuid.UUID(int=self._ids.getrandbits(128), version=4)

    def describe(self):
        return {"events": list(self.log)}


def _target_input(event, target):
    """The message a target receives: the event, or what the target's Input, InputPath or
    InputTransformer makes of it."""
    if "Input" in target:
        return target["Input"]
    if "InputPath" in target:
        from jsonpath_ng.ext import parse

        matches = parse(target["InputPath"]).find(event)
        return _compact(matches[0].value if matches else None)
    if "InputTransformer" in target:
        transformer = target["InputTransformer"]
        made = EventTemplateParser.parse(transformer.get("InputTemplate"), transformer.get("InputPathsMap", {}),
                                         {**event, "ingestion-time": 0})
        return _compact(made)
    return _compact(event)


def _compact(value):
    """JSON as EventBridge writes it to a target: no spaces."""
    return json.dumps(value, separators=(",", ":"))


def _policy_refusal(policy, action, rule, service, principal_account, what):
    """None when one of the policy's statements allows the rule's delivery, else why not. A statement
    applies to EventBridge delivering for the rule when its principal is the EventBridge service (or,
    for a bus in another account, the rule's account) and every condition is one the lab can evaluate
    (aws:SourceArn, aws:SourceAccount, aws:PrincipalAccount) and holds. Deny statements are not modeled."""
    context = {"aws:sourcearn": rule.arn, "aws:sourceaccount": rule.account_id, "aws:principalaccount": rule.account_id}
    unevaluated = set()
    for statement in _listed(policy.get("Statement")):
        if statement.get("Effect") != "Allow" or not _action_allowed(statement.get("Action"), action):
            continue
        if not _principal_allowed(statement.get("Principal"), principal_account):
            continue
        held = True
        for operator, conditions in (statement.get("Condition") or {}).items():
            for key, expected in conditions.items():
                if key.lower() not in context:
                    unevaluated.add(key)
                    held = False
                elif not _condition_holds(operator, context[key.lower()], _listed(expected)):
                    held = False
        if held:
            return None
    if unevaluated:
        return f"refused: {what} allows it only under conditions the lab does not evaluate: {', '.join(sorted(unevaluated))}"
    whom = f"account {principal_account}" if principal_account else EVENTS_PRINCIPAL
    return f"refused: {what} does not allow {whom} {action} for rule {rule.arn}"


def _listed(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _action_allowed(actions, action):
    return any(fnmatchcase(action.lower(), pattern.lower()) for pattern in _listed(actions))


def _principal_allowed(principal, account_id):
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    if account_id is None:
        return EVENTS_PRINCIPAL in _listed(principal.get("Service")) or "*" in _listed(principal.get("AWS"))
    return any(value in ("*", account_id, f"arn:aws:iam::{account_id}:root") for value in _listed(principal.get("AWS")))


def _condition_holds(operator, actual, expected):
    operator = operator.removesuffix("IfExists")
    if operator in ("StringEquals", "ArnEquals"):
        return actual in expected
    if operator in ("StringLike", "ArnLike"):
        return any(fnmatchcase(actual, pattern) for pattern in expected)
    return False


def _existing_backend(backends, account_id, region):
    """moto's backend of an account and region if anything was ever created there, without creating it."""
    if account_id not in backends:
        return None
    return backends[account_id][region]


def _account_of(arn):
    parts = arn.split(":")
    return parts[4] if len(parts) >= 6 else None


def _parse_bus_arn(arn):
    _arn, _partition, _service, region, account_id, resource = arn.split(":", 5)
    return account_id, region, resource.split("/", 1)[1]


def tag_request_parameters(resource_ids, tags):
    """CreateTags' or DeleteTags' parameters as CloudTrail records them."""
    parameters = {"resourcesSet": {"items": [{"resourceId": rid} for rid in resource_ids]}}
    if tags:
        items = []
        for tag in tags:
            item = {"key": tag["Key"]}
            if tag.get("Value") is not None:
                item["value"] = tag["Value"]
            items.append(item)
        parameters["tagSet"] = {"items": items}
    return parameters


def user_identity(credential):
    """The caller as CloudTrail's userIdentity records it."""
    if credential.role_arn:
        role_name = credential.role_arn.rsplit("/", 1)[1]
        return {
            "type": "AssumedRole",
            "principalId": credential.user_id,
            "arn": credential.arn,
            "accountId": credential.account_id,
            "accessKeyId": credential.access_key_id,
            "sessionContext": {"sessionIssuer": {"type": "Role", "principalId": credential.user_id.split(":", 1)[0],
                                                 "arn": credential.role_arn, "accountId": credential.account_id,
                                                 "userName": role_name}},
        }
    return {
        "type": "IAMUser",
        "principalId": credential.user_id,
        "arn": credential.arn,
        "accountId": credential.account_id,
        "accessKeyId": credential.access_key_id,
        "userName": credential.arn.rsplit("/", 1)[1],
    }


def root_identity(account_id):
    """The account's root user as CloudTrail's userIdentity records it: who the lab says made a change
    that came from its control API or a scenario's changes."""
    return {"type": "Root", "principalId": account_id, "arn": f"arn:aws:iam::{account_id}:root", "accountId": account_id}


def bus_arn(account_id, region, name):
    return f"arn:aws:events:{region}:{account_id}:event-bus/{name}"


def instance_arn(account_id, region, instance_id):
    return f"arn:aws:ec2:{region}:{account_id}:instance/{instance_id}"


def iso_time(moment):
    """A time as EventBridge writes it: UTC, to the second, with a Z."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
