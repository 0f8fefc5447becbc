"""The lab's whole state: simulated clock, faults, statistics, identities and service models,
seeded from a scenario into moto's backends and the lab's own models."""

import fnmatch
import heapq
import json
import itertools
import os
import random
import threading
from dataclasses import dataclass

from moto.cloudformation.exceptions import ValidationError as CloudFormationValidationError
from moto.cloudformation.models import CloudFormationBackend
from moto.ec2.models import ec2_backends
from moto.iam.models import iam_backends
from moto.moto_api._internal import mock_random

from lab.clock import SimulatedClock
from lab.faults import FaultPlan
# imported for what they change in moto: the CloudFormation alarm, queue policy and event bus policy
# resource types, stack tables' TTL and backups, EC2 resources' direct tag lookups and DescribeInstances
# answers written straight to XML, queues announcing each message they take to the calls waiting for one
from lab.models import cloudformation  # noqa: F401  pylint: disable=unused-import
from lab.models import cloudwatch  # noqa: F401  pylint: disable=unused-import
from lab.models import dynamodb  # noqa: F401  pylint: disable=unused-import
from lab.models import ec2  # noqa: F401  pylint: disable=unused-import
from lab.models import sqs  # noqa: F401  pylint: disable=unused-import
from lab.models.drs import DrsService
from lab.models.events import EventRouter, root_identity, tag_request_parameters
from lab.models.ssm import SsmService
from lab.models.sts import IdentityStore, trust_policy
from lab.scenario import spread
from lab.stats import CallStats

WINDOWS_PLATFORM = "windows"

# moto loads its catalogue of ~1,300 public AMIs into every account and region when it creates the
# backend, and scans it for each instance it launches; the lab's instances use the lab's own image
# ids, and without the catalogue 3,000 instances seed in about a second instead of a quarter minute.
os.environ.setdefault("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")


def _update_stack_refusing_no_op(update_stack):
    """CloudFormation refuses an UpdateStack that changes nothing ("No updates are to be
    performed."), which is how clients such as amazon.aws.cloudformation tell an unchanged stack;
    moto accepts it and reports UPDATE_COMPLETE."""

    def refusing(self, name, template, role_arn, parameters, tags):
        stack = self.get_stack(name)
        unchanged = (
            stack.template == template
            and stack.parameters == self._resolve_update_parameters(instance=stack, incoming_params=parameters)
            and role_arn == stack.role_arn
            and (tags is None or tags == stack.tags)
        )
        if unchanged:
            raise CloudFormationValidationError(name, "No updates are to be performed.")
        return update_stack(self, name, template, role_arn, parameters, tags)

    return refusing


CloudFormationBackend.update_stack = _update_stack_refusing_no_op(CloudFormationBackend.update_stack)


@dataclass
class FleetInstance:
    """One scenario EC2 instance, as the SSM and DRS models need to know it."""

    instance_id: str
    account_id: str
    region: str
    name: str
    platform: str
    private_ip: str
    group: str
    ssm_state: str
    install_outcome: str
    install_duration_seconds: float
    replication: str = "healthy"  # how its replication goes once it registers (see lab.models.drs)
    launch: str = "ok"  # how its recovery launches go (see lab.models.drs_recovery)
    launch_seconds: float = None  # how long one takes, when not the scenario's default


class World:
    def __init__(self, scenario):
        self.scenario = scenario
        self.lock = threading.RLock()
        self.random = random.Random(scenario["seed"])
        self.clock = SimulatedClock(scenario["time_scale"])
        self.faults = FaultPlan(seed=scenario["seed"])
        self.faults.configure(scenario["faults"])
        self.stats = CallStats()
        self.identities = IdentityStore()
        self.denied_actions = {}  # role ARN -> the scenario's denied_actions patterns for the role
        self.instances = {}
        self._events = []
        self._event_order = itertools.count()
        self.drs = DrsService(self)
        self.ssm = SsmService(self)
        self.events = EventRouter(self)
        _seed(self)
        for change in scenario["changes"]:
            self.schedule_at(change["at_seconds"], lambda due, change=change: self.apply_change(change, due))

    def elapsed(self):
        return self.clock.elapsed()

    def now(self):
        return self.clock.now()

    def schedule_at(self, elapsed_seconds, action):
        """Run ``action(elapsed_seconds)`` once simulated time reaches ``elapsed_seconds``."""
        heapq.heappush(self._events, (elapsed_seconds, next(self._event_order), action))

    def run_due_events(self):
        now = self.clock.elapsed()
        while self._events and self._events[0][0] <= now:
            due, _order, action = heapq.heappop(self._events)
            action(due)

    def launch(self, group, at=None):
        """Launch a group of instances while the lab runs, managed by SSM and installable as the scenario's
        groups are, each publishing its pending and then running state change (stopping and stopped for a group
        launched stopped); returns their ids."""
        launched = _add_group(self, group, first_index=sum(1 for i in self.instances.values() if i.group == group["name"]))
        first_state = "stopping" if group["state"] == "stopped" else "pending"
        for instance in launched:
            self.events.state_change(instance.account_id, instance.region, instance.instance_id, first_state, at)
        return [instance.instance_id for instance in launched]

    def change_tags(self, instance_ids, tags=None, keys=None, at=None):
        """Set ``tags`` and remove ``keys`` on instances, as someone in their account would with CreateTags and
        DeleteTags: a Tag Change on Resource event per changed instance, and the calls' CloudTrail events."""
        by_place = {}
        for instance_id in instance_ids:
            instance = self.instances[instance_id]
            by_place.setdefault((instance.account_id, instance.region), []).append(instance_id)
        for (account_id, region), ids in by_place.items():
            backend = ec2_backends[account_id][region]
            before = {instance_id: dict(backend.tags.get(instance_id, {})) for instance_id in ids}
            root = root_identity(account_id)
            if tags:
                backend.create_tags(ids, dict(tags))
                self.events.api_call(account_id, region, "CreateTags", root, tag_request_parameters(
                    ids, [{"Key": key, "Value": value} for key, value in tags.items()]), at)
            if keys:
                backend.delete_tag_keys(ids, list(keys))
                self.events.api_call(account_id, region, "DeleteTags", root, tag_request_parameters(
                    ids, [{"Key": key} for key in keys]), at)
            for instance_id in ids:
                self.events.tag_change(account_id, region, instance_id, before[instance_id],
                                       dict(backend.tags.get(instance_id, {})), at)

    def group_members(self, group_name, count=None):
        members = [i.instance_id for i in self.instances.values() if i.group == group_name]
        return members[:count] if count else members

    def apply_change(self, change, due):
        """One of the scenario's ``changes``, when the simulated clock reaches its time."""
        if "launch" in change:
            self.launch(change["launch"], due)
        elif "tag" in change:
            self.change_tags(self.group_members(change["tag"]["group"], change["tag"].get("count")),
                             tags=change["tag"]["tags"], at=due)
        else:
            self.change_tags(self.group_members(change["untag"]["group"], change["untag"].get("count")),
                             keys=change["untag"]["keys"], at=due)

    def denies(self, credential, service, operation_name):
        """Whether the role behind ``credential`` is denied the action ``service:operation_name``:
        the lab's stand-in for permission policies, set by the scenario's ``denied_actions``."""
        patterns = self.denied_actions.get(credential.role_arn, ())
        action = f"{service}:{operation_name}"
        return any(fnmatch.fnmatchcase(action, pattern) for pattern in patterns)

    def account_name(self, account_id):
        for account in self.scenario["accounts"]:
            if account["id"] == account_id:
                return account["name"]
        return account_id

    def summary(self):
        groups = {}
        for instance in self.instances.values():
            key = f"{instance.account_id}/{instance.region}"
            groups[key] = groups.get(key, 0) + 1
        return {
            "name": self.scenario["name"],
            "description": self.scenario["description"],
            "regions": self.scenario["regions"],
            "accounts": [{"id": a["id"], "name": a["name"]} for a in self.scenario["accounts"]],
            "instances": len(self.instances),
            "instances_by_account_region": groups,
            "clock": self.clock.describe(),
        }


def _seed(world):
    scenario = world.scenario
    mock_random.seed(scenario["seed"])
    for account in scenario["accounts"]:
        iam = iam_backends[account["id"]]["aws"]
        if account.get("alias"):
            iam.create_account_alias(account["alias"])
        for role in account["roles"]:
            created = iam.create_role(
                role_name=role["name"],
                assume_role_policy_document=json.dumps(trust_policy(role["trusted_principals"], role.get("external_id"))),
                path="/",
                permissions_boundary=None,
                description=f"Lab role {role['name']}",
                tags=[],
                max_session_duration=str(role.get("max_session_duration", 3600)),
            )
            if role.get("denied_actions"):
                world.denied_actions[created.arn] = list(role["denied_actions"])
        for region, drs_state in account["drs"].items():
            world.drs.seed_region(account["id"], region, drs_state)
    operator = scenario["operator"]
    world.identities.add_user(operator["account"], operator["user"], operator["access_key_id"], operator["secret_access_key"])
    for group in scenario["instance_groups"]:
        _add_group(world, group)
        registered = group.get("already_registered")
        if registered:
            members = [i for i in world.instances.values() if i.group == group["name"]][: registered["count"]]
            for instance in members:
                world.drs.register_existing(instance, registered["account"], registered["region"], registered["replication_state"])


def _add_group(world, group, first_index=0):
    """Launch a group's instances into moto's EC2 and make them known to SSM and DRS."""
    world.drs.add_group(group)
    fleet = _launch_group(world, group, first_index)
    for instance in fleet:
        world.instances[instance.instance_id] = instance
        world.ssm.add_instance(instance)
        world.drs.set_replication([instance.instance_id], instance.replication)
        world.drs.recovery.set_launch([instance.instance_id], instance.launch, instance.launch_seconds)
    return fleet


def _launch_group(world, group, first_index=0):
    backend = ec2_backends[group["account"]][group["region"]]
    reservation = backend.run_instances(
        "ami-0lab" + ("windows" if group["platform"] == WINDOWS_PLATFORM else "linux"),
        group["count"],
        None,
        [],
        instance_type=group["instance_type"],
        is_instance_type_default=False,
        region_name=group["region"],
        tags={"instance": dict(group["tags"])},
    )
    ssm_states = _shuffled(world, spread(group["ssm"], group["count"]))
    replications = _dealt(world, group["replication"], group["count"])
    outcomes = _shuffled(world, spread(group["install"]["outcome"], group["count"]))
    launches = _dealt(world, group["recovery"]["launch"], group["count"])
    low, high = _range(group["install"]["duration_seconds"])
    fleet = []
    for index, instance in enumerate(reservation.instances):
        name = group["name_pattern"].format(index=first_index + index + 1, group=group["name"])
        instance.add_tags({"Name": name})
        if group["platform"] == WINDOWS_PLATFORM:
            instance.platform = WINDOWS_PLATFORM
        fleet.append(FleetInstance(
            instance_id=instance.id,
            account_id=group["account"],
            region=group["region"],
            name=name,
            platform=group["platform"],
            private_ip=instance.private_ip,
            group=group["name"],
            ssm_state=ssm_states[index],
            install_outcome=outcomes[index],
            install_duration_seconds=round(world.random.uniform(low, high), 1),
            replication=replications[index],
            launch=launches[index],
            launch_seconds=_drawn_seconds(world, group["recovery"].get("launch_seconds")),
        ))
    if group["state"] == "stopped":
        backend.stop_instances([instance.id for instance in reservation.instances])
    return fleet


def _dealt(world, mix, count):
    """The per-instance values of a count mix in a seeded order. A single value draws nothing, so that scenarios
    written before a setting took mixes keep their random draws."""
    return spread(mix, count) if isinstance(mix, str) else _shuffled(world, spread(mix, count))


def _drawn_seconds(world, seconds):
    """A duration set as a number, or drawn from [min, max]; None when not set (drawing nothing then, too)."""
    if seconds is None or isinstance(seconds, (int, float)):
        return seconds
    return round(world.random.uniform(*seconds), 1)


def _shuffled(world, values):
    values = list(values)
    world.random.shuffle(values)
    return values


def _range(value):
    return (value, value) if isinstance(value, (int, float)) else (value[0], value[1])
