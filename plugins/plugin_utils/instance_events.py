# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What the rulebook's event source (extensions/eda/plugins/event_source/drs_instance_events.py) makes of the
EventBridge events in its queue: which instance an event is about and whether it now carries the DR tags, and
the windows that gather those instances per account and region so that one deploy serves many events.

An event is kept when it can make an instance need the agent:

- ``EC2 Instance State-change Notification`` to ``running``: whether the instance carries the DR tags is not
  in the event, so the deploy's discovery decides (it installs only on instances with the tags);
- ``Tag Change on Resource`` for an EC2 instance: the event holds the instance's tags after the change, so an
  instance that no longer matches the tag filters is known to be untagged;
- ``AWS API Call via CloudTrail`` for EC2 ``CreateTags`` or ``DeleteTags`` (accounts without tag change events):
  only the tags the call set or removed are known, so a call that sets a filter's key to another value, or
  removes it, untags; one that sets the filters' keys to matching values leaves the verdict to the discovery.

The last event of an instance in a window decides: an instance tagged then untagged before the window closes
is not deployed. An instance handed to a deploy is not handed again for ``throttle_seconds``, and an event
delivered twice (SQS delivers at least once) counts once.
"""

import collections
import json

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.tags import DEFAULT_TAG_FILTERS
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.tags import TagInputError
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.tags import check_tag_filters
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.tags import tags_match

STATE_CHANGE = "EC2 Instance State-change Notification"
TAG_CHANGE = "Tag Change on Resource"
API_CALL = "AWS API Call via CloudTrail"
TAG_CALLS = ("CreateTags", "DeleteTags")
# an event id is remembered this long after it was first seen, to drop the same event delivered again later
SEEN_EVENT_SECONDS = 3600

# each number of seconds the event source takes: (default, lowest, highest); SQS waits at most 20 seconds
SECONDS_ARGUMENTS = {"window_seconds": (60, 1, 900), "throttle_seconds": (600, 0, 86400), "wait_seconds": (20, 0, 20)}

# what the window holds for an instance: True (carries the DR tags), False (does not), None (the discovery decides)
Observation = collections.namedtuple("Observation", "account_id region instance_id tagged order event_id")


class EventSourceInputError(ValueError):
    """An argument of the event source that cannot be used; the message names it and the rule."""


def check_arguments(args):
    """The event source's arguments, checked and with their defaults: raises EventSourceInputError naming the
    argument and the rule before any AWS call."""
    known = {"queue_url", "region", "profile", "window_seconds", "throttle_seconds", "wait_seconds", "tag_filters"}
    unknown = sorted(set(args) - known)
    if unknown:
        raise EventSourceInputError(f"drs_instance_events: unknown argument(s) {', '.join(unknown)}; the arguments are "
                                    f"{', '.join(sorted(known))}")
    queue_url = args.get("queue_url")
    if not isinstance(queue_url, str) or not queue_url.strip():
        raise EventSourceInputError("drs_instance_events: queue_url is required: the URL of the SQS queue that "
                                    "playbooks/setup_events.yml created (its output queue_url)")
    checked = {
        "queue_url": queue_url.strip(),
        "region": _optional_text(args, "region"),
        "profile": _optional_text(args, "profile"),
    }
    checked.update({name: _whole_number(args, name, *limits) for name, limits in SECONDS_ARGUMENTS.items()})
    try:
        # the deploy's default, so that the rulebook and the deploy look for the same instances
        tag_filters = DEFAULT_TAG_FILTERS if args.get("tag_filters") is None else args["tag_filters"]
        checked["tag_filters"] = check_tag_filters(tag_filters, "drs_instance_events: tag_filters")
    except TagInputError as error:
        raise EventSourceInputError(str(error)) from None
    return checked


def _optional_text(args, name):
    value = args.get(name)
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise EventSourceInputError(f"drs_instance_events: {name} must be a string, not {value!r}")
    return value


def _whole_number(args, name, default, lowest, highest):
    value = default if args.get(name) is None else args[name]
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, str) and text.isdigit():
        text = int(text)
    if isinstance(text, bool) or not isinstance(text, int) or not lowest <= text <= highest:
        raise EventSourceInputError(f"drs_instance_events: {name} must be a whole number of seconds from {lowest} to "
                                    f"{highest}, not {value!r}")
    return text


def observe(body, tag_filters):
    """(observations, None) for one SQS message body (an event as EventBridge delivers it), or ([], why it is
    not kept)."""
    try:
        event = json.loads(body)
    except ValueError:
        return [], "not JSON"
    if not isinstance(event, dict) or not isinstance(event.get("detail"), dict):
        return [], "not an EventBridge event"
    detail_type, detail = event.get("detail-type"), event["detail"]
    account_id, region, event_id = event.get("account"), event.get("region"), event.get("id")
    if not (isinstance(account_id, str) and isinstance(region, str) and isinstance(event_id, str)):
        return [], "an event without account, region or id"
    moment = event.get("time") or ""
    if detail_type == STATE_CHANGE:
        if detail.get("state") != "running":
            return [], f"instance {detail.get('instance-id')} is {detail.get('state')}, not running"
        return [Observation(account_id, region, detail.get("instance-id"), None, (moment, 0), event_id)], None
    if detail_type == TAG_CHANGE:
        if detail.get("service") != "ec2" or detail.get("resource-type") != "instance":
            return [], f"a tag change on a {detail.get('service')} {detail.get('resource-type')}, not an EC2 instance"
        instance_ids = [arn.rsplit("/", 1)[1] for arn in event.get("resources") or [] if "/" in arn]
        tags = detail.get("tags") or {}
        tagged = tags_match(tags, tag_filters)
        order = (moment, detail.get("version") or 0)
        return [Observation(account_id, region, instance_id, tagged, order, event_id) for instance_id in instance_ids], None
    if detail_type == API_CALL and detail.get("eventName") in TAG_CALLS:
        return _tag_call(event, detail, tag_filters, (moment, 0))
    return [], f"a {detail_type!r} event, which does not make an instance need the agent"


def _tag_call(event, detail, tag_filters, order):
    if detail.get("errorCode"):
        return [], f"a {detail['eventName']} call that failed ({detail['errorCode']})"
    parameters = detail.get("requestParameters") or {}
    instance_ids = [item.get("resourceId") for item in (parameters.get("resourcesSet") or {}).get("items") or []
                    if str(item.get("resourceId", "")).startswith("i-")]
    if not instance_ids:
        return [], f"a {detail['eventName']} call on no instance"
    changed = {item.get("key"): item.get("value") for item in (parameters.get("tagSet") or {}).get("items") or []}
    touched = [key for key in tag_filters if key in changed]
    if detail["eventName"] == "DeleteTags":
        # DeleteTags without tags removes every tag; with a value, only a tag that has that value
        removed = not changed or any(changed[key] is None or changed[key] in tag_filters[key] for key in touched)
        if not removed:
            return [], "a DeleteTags call that removes none of the tag filters' keys"
        tagged = False
    else:
        if not touched:
            return [], "a CreateTags call that sets none of the tag filters' keys"
        tagged = None if tags_match({key: changed[key] for key in touched},
                                    {key: tag_filters[key] for key in touched}) else False
    return [Observation(event["account"], event["region"], instance_id, tagged, order, event["id"])
            for instance_id in instance_ids], None


class Window:
    """The instances of one account-region gathered from the time its first event arrived."""

    def __init__(self, account_id, region, opened_at):
        self.account_id = account_id
        self.region = region
        self.opened_at = opened_at
        self.latest = {}  # instance id -> its last Observation
        self.receipts = []

    def add(self, observation):
        current = self.latest.get(observation.instance_id)
        if current is None or observation.order >= current.order:
            self.latest[observation.instance_id] = observation

    def closed(self):
        """What the window hands on: the event the rulebook's rules receive."""
        instance_ids = sorted(i for i, seen in self.latest.items() if seen.tagged is not False)
        untagged = sorted(i for i, seen in self.latest.items() if seen.tagged is False)
        return {"drs_instances": {"account_id": self.account_id, "region": self.region, "instance_ids": instance_ids,
                                  "untagged_instance_ids": untagged, "messages": len(self.receipts)}}


class Windows:
    """The open windows, one per account-region, the instances recently handed on (the throttle) and the
    event ids recently seen. ``now`` is seconds on one monotonic clock, given by the caller."""

    def __init__(self, window_seconds, throttle_seconds):
        self.window_seconds = window_seconds
        self.throttle_seconds = throttle_seconds
        self.open = {}
        self.handed_on = {}  # instance id -> when it was last handed to a deploy
        self.seen = collections.OrderedDict()  # event id -> when first seen

    def take(self, observations, receipt, now):
        """Gather the observations of one message. Returns (held, reasons): ``held`` when a window holds the
        message's receipt handle (delete the message once that window's event is queued; else at once), and why
        each dropped observation was dropped."""
        self._forget(now)
        held, reasons = False, []
        for observation in observations:
            key = (observation.account_id, observation.region)
            window = self.open.get(key)
            if observation.event_id in self.seen:
                reasons.append(f"event {observation.event_id} for {observation.instance_id} was delivered before")
                held = held or window is not None
                continue
            last = self.handed_on.get(observation.instance_id)
            if last is not None and now - last < self.throttle_seconds:
                reasons.append(f"instance {observation.instance_id} was handed to a deploy {now - last:.0f} s ago "
                               f"(throttle {self.throttle_seconds} s)")
                continue
            if window is None:
                window = self.open[key] = Window(observation.account_id, observation.region, now)
            window.add(observation)
            held = True
        if held:
            self.open[(observations[0].account_id, observations[0].region)].receipts.append(receipt)
        for observation in observations:
            self.seen.setdefault(observation.event_id, now)
        return held, reasons

    def next_due(self):
        """When the first open window closes (None: none is open)."""
        return min((window.opened_at + self.window_seconds for window in self.open.values()), default=None)

    def due(self, now):
        """The windows that have closed, removed from the open ones; their instances count as handed on."""
        closed = [key for key, window in self.open.items() if now >= window.opened_at + self.window_seconds]
        windows = [self.open.pop(key) for key in sorted(closed)]
        for window in windows:
            for instance_id, seen in window.latest.items():
                if seen.tagged is not False:
                    self.handed_on[instance_id] = now
        return windows

    def _forget(self, now):
        while self.seen and now - next(iter(self.seen.values())) > SEEN_EVENT_SECONDS:
            self.seen.popitem(last=False)
        if len(self.handed_on) > 10000:
            self.handed_on = {i: at for i, at in self.handed_on.items() if now - at < self.throttle_seconds}
