"""The control API under /_lab/: statistics, the lab's service time per call, faults, the clock, reset, the
scenario summary, the Run Command timeline, how replication and recovery launches go per instance, launching
and tagging instances while the lab runs, and the EventBridge events the lab published."""

import json

from lab.scenario import ScenarioError, launch_spec


def handle(server, request):
    """Answer a /_lab/ request: returns (status, body dict)."""
    route = (request.method, request.path.rstrip("/"))
    handler = _ROUTES.get(route)
    if handler is None:
        known = ", ".join(f"{method} {path}" for method, path in _ROUTES)
        return 404, {"error": f"no control endpoint {request.method} {request.path}; known: {known}"}
    try:
        body = json.loads(request.get_data() or b"{}")
    except ValueError:
        return 400, {"error": "the request body must be a JSON object"}
    if not isinstance(body, dict):
        return 400, {"error": "the request body must be a JSON object"}
    try:
        return 200, handler(server, body)
    except ValueError as exc:
        return 400, {"error": str(exc)}


def _stats(server, _body):
    world = server.world
    return {**world.stats.snapshot(), "clock": world.clock.describe(), "faults_configured": world.faults.describe()}


def _service_times(server, _body):
    return {"service_times": server.world.stats.service_times()}


def _set_replication(server, body):
    unknown = set(body) - {"instance_ids", "replication"}
    instance_ids = body.get("instance_ids")
    if unknown or not isinstance(instance_ids, list) or "replication" not in body:
        raise ValueError("send instance_ids (a list) and replication (healthy, stalled:<error>, lagging:<seconds> or "
                         "initiation_failed:<step>)")
    _check_known(server, instance_ids)
    with server.world.lock:
        try:
            server.world.drs.set_replication(instance_ids, body["replication"])
        except ScenarioError as error:
            raise ValueError(str(error)) from None
    return {"instance_ids": instance_ids, "replication": body["replication"]}


def _set_recovery(server, body):
    unknown = set(body) - {"instance_ids", "launch", "launch_seconds"}
    instance_ids = body.get("instance_ids")
    if unknown or not isinstance(instance_ids, list) or not {"launch", "launch_seconds"} & set(body):
        raise ValueError("send instance_ids (a list) and launch (ok or fails:<reason>) and/or launch_seconds")
    _check_known(server, instance_ids)
    with server.world.lock:
        try:
            server.world.drs.recovery.set_launch(instance_ids, body.get("launch"), body.get("launch_seconds"))
        except ScenarioError as error:
            raise ValueError(str(error)) from None
    return body


def _check_known(server, instance_ids):
    missing = sorted(set(instance_ids) - set(server.world.instances))
    if missing:
        raise ValueError(f"no such instance in the scenario: {', '.join(missing)}")


def _launch(server, body):
    world = server.world
    with world.lock:
        world.run_due_events()
        group = launch_spec(world.scenario, body, "POST /_lab/instances")
        instance_ids = world.launch(group)
    return {"group": group["name"], "instance_ids": instance_ids}


def _tag(server, body):
    unknown = set(body) - {"instance_ids", "group", "count", "tag", "untag"}
    if unknown or ("instance_ids" in body) == ("group" in body) or not {"tag", "untag"} & set(body):
        raise ValueError("send instance_ids (a list) or group (and count, the first that many of it), and tag (a map "
                         "of key to value to set) and/or untag (a list of keys to remove)")
    tags, keys = body.get("tag") or {}, body.get("untag") or []
    if not isinstance(tags, dict) or not all(isinstance(k, str) and k and isinstance(v, str) for k, v in tags.items()):
        raise ValueError("tag must map tag keys to string values")
    if not isinstance(keys, list) or not all(isinstance(k, str) and k for k in keys):
        raise ValueError("untag must be a list of tag keys")
    world = server.world
    with world.lock:
        world.run_due_events()
        if "group" in body:
            instance_ids = world.group_members(body["group"], body.get("count"))
            if not instance_ids:
                raise ValueError(f"no instances in group {body['group']}")
        else:
            instance_ids = body["instance_ids"]
            if not isinstance(instance_ids, list):
                raise ValueError("instance_ids must be a list")
            _check_known(server, instance_ids)
        world.change_tags(instance_ids, tags=tags, keys=keys)
    return {"instance_ids": instance_ids}


def _events(server, _body):
    with server.world.lock:
        server.world.run_due_events()
        return server.world.events.describe()


def _get_faults(server, _body):
    return server.world.faults.describe()


def _set_faults(server, body):
    unknown = set(body) - {"throttle", "latency_ms", "unavailable", "clear"}
    if unknown:
        raise ValueError(f"unknown fault settings {sorted(unknown)}; use throttle, latency_ms, unavailable or clear")
    server.world.faults.configure(body)
    return server.world.faults.describe()


def _get_clock(server, _body):
    return server.world.clock.describe()


def _set_clock(server, body):
    unknown = set(body) - {"advance_seconds", "time_scale"}
    if unknown or not body:
        raise ValueError("send advance_seconds (simulated seconds to jump ahead) and/or time_scale (simulated seconds per real second)")
    clock = server.world.clock
    for field in ("advance_seconds", "time_scale"):
        if field in body and (isinstance(body[field], bool) or not isinstance(body[field], (int, float))):
            raise ValueError(f"{field} must be a number")
    if "time_scale" in body:
        clock.set_time_scale(body["time_scale"])
    if "advance_seconds" in body:
        clock.advance(body["advance_seconds"])
    with server.world.lock:
        server.world.run_due_events()
    return clock.describe()


def _reset(server, _body):
    server.reset()
    return server.world.summary()


def _sessions(server, _body):
    return {"sessions": server.world.identities.issued_sessions()}


def _scenario(server, _body):
    return server.world.summary()


def _invocations(server, _body):
    with server.world.lock:
        return server.world.ssm.timeline()


_ROUTES = {
    ("GET", "/_lab/stats"): _stats,
    ("GET", "/_lab/service-times"): _service_times,
    ("POST", "/_lab/replication"): _set_replication,
    ("POST", "/_lab/recovery"): _set_recovery,
    ("GET", "/_lab/faults"): _get_faults,
    ("POST", "/_lab/faults"): _set_faults,
    ("GET", "/_lab/clock"): _get_clock,
    ("POST", "/_lab/clock"): _set_clock,
    ("POST", "/_lab/reset"): _reset,
    ("GET", "/_lab/scenario"): _scenario,
    ("GET", "/_lab/sessions"): _sessions,
    ("GET", "/_lab/invocations"): _invocations,
    ("POST", "/_lab/instances"): _launch,
    ("POST", "/_lab/tags"): _tag,
    ("GET", "/_lab/events"): _events,
}
