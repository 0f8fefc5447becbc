"""EC2 calls that moto answers and the lab watches, to publish the events AWS publishes for them.

Each watcher runs before the call goes to moto, notes what it needs of the state before, and
returns what to run once moto has answered the call successfully.
"""

from moto.ec2.models import ec2_backends

from lab.models.events import SETTLED, tag_request_parameters, user_identity

# the transitional state an instance passes through on its way to the state moto shows at once
TRANSITIONAL = {settled: transitional for transitional, settled in SETTLED.items()}


def run_instances(world, call):
    backend = ec2_backends[call.account_id][call.region]
    before = _instance_ids(backend)

    def after():
        for instance_id in sorted(_instance_ids(backend) - before):
            world.events.state_change(call.account_id, call.region, instance_id, "pending")

    return after


def changes_state(world, call):
    """StartInstances, StopInstances and TerminateInstances."""
    backend = ec2_backends[call.account_id][call.region]
    instance_ids = call.params.get("InstanceIds", [])
    before = _states(backend, instance_ids)

    def after():
        for instance_id, state in _states(backend, instance_ids).items():
            if state != before.get(instance_id) and state in TRANSITIONAL:
                world.events.state_change(call.account_id, call.region, instance_id, TRANSITIONAL[state])

    return after


def changes_tags(world, call):
    """CreateTags and DeleteTags: a Tag Change on Resource event for each instance whose tags
    changed, and the call's CloudTrail event."""
    backend = ec2_backends[call.account_id][call.region]
    instance_ids = [rid for rid in call.params.get("Resources", []) if rid.startswith("i-")]
    before = {instance_id: dict(backend.tags.get(instance_id, {})) for instance_id in instance_ids}

    def after():
        for instance_id in instance_ids:
            world.events.tag_change(call.account_id, call.region, instance_id, before[instance_id],
                                    dict(backend.tags.get(instance_id, {})))
        world.events.api_call(call.account_id, call.region, call.operation.name, user_identity(call.credential),
                              tag_request_parameters(call.params.get("Resources", []), call.params.get("Tags")))

    return after


def _instance_ids(backend):
    return {instance.id for reservation in backend.reservations.values() for instance in reservation.instances}


def _states(backend, instance_ids):
    wanted = set(instance_ids)
    return {instance.id: instance.state for reservation in backend.reservations.values()
            for instance in reservation.instances if instance.id in wanted}
