# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The plan of a rollout: its waves, each wave's account-regions, each account-region's instances.

Every instance is one ``Instance`` object from discovery to the history: it carries its account, region,
name, wave and priority, and receives its result, so nothing is ever joined back by name.
"""

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import outcomes

PRIORITY_ORDER = ("critical", "high", "medium", "low")
OUTSIDE_LIMIT = "not among the play's hosts (inventory limit)"
RESULT_FIELDS = ("command_id", "adopted", "adopted_from", "ssm_status", "ssm_status_details", "response_code", "error_category",
                 "remediation", "stderr_tail", "stdout_tail", "source_server_id", "reason", "duration_seconds")


# What the plan reads of a discovered instance (drs_discover's entry)
DISCOVERED_FIELDS = ("instance_id", "name", "wave", "wave_error", "priority", "platform", "ssm")


def kept_of(discovery):
    """A discovery with only what the plan reads of each instance: at 30,000 instances, the rest (every tag, the
    instance type, the address, SSM's agent and platform details) would double what discovery holds."""
    return {"instances": [{key: instance[key] for key in DISCOVERED_FIELDS if key in instance}
                          for instance in discovery["instances"]]}


class Instance:
    """One discovered instance and what became of it (``status`` None until it is settled)."""

    __slots__ = ("instance_id", "name", "account_id", "region", "wave", "priority", "platform", "ssm", "status",
                 "result")

    def __init__(self, discovered, account_id, region):
        self.instance_id = discovered["instance_id"]
        self.name = discovered.get("name") or ""
        self.account_id = account_id
        self.region = region
        self.wave = discovered.get("wave")
        self.priority = discovered.get("priority")
        self.platform = "Windows" if discovered.get("platform") == "windows" else "Linux"
        ssm = discovered.get("ssm") or {}
        # as DescribeInstanceInformation shows it, for the installs: an unmanaged instance is absent
        self.ssm = ({"InstanceId": self.instance_id, "PingStatus": ssm.get("ping_status"),
                     "LastPingDateTime": ssm.get("last_ping_date_time"), "PlatformType": ssm.get("platform_type")}
                    if ssm.get("managed") else None)
        self.status = None
        self.result = {}

    def settle(self, status, **result):
        outcomes.group(status)
        self.status = status
        self.result = {key: value for key, value in result.items() if key in RESULT_FIELDS}

    def record(self):
        """The instance as the history, the summary and the report show it."""
        entry = {"instance_id": self.instance_id, "name": self.name, "account_id": self.account_id,
                 "region": self.region, "wave": self.wave, "priority": self.priority, "status": self.status}
        entry.update(self.result)
        return entry


class Place:
    """One account and region of one wave: its instances, where they register, where they are extended to."""

    def __init__(self, account, region, wave):
        self.account = account
        self.account_id = account["account_id"]
        self.region = region
        self.wave = wave
        self.drs_region = account.get("drs_region") or region
        self.staging_account_id = account.get("staging_account_id") or self.account_id
        self.cross_account = self.staging_account_id != self.account_id
        target = account.get("target_account_id")
        self.extend_into = target if target not in (None, "", self.staging_account_id) else None
        self.instances = []

    @property
    def name(self):
        return f"{self.account_id}/{self.region}"


class Wave:
    def __init__(self, number, places):
        self.number = number
        self.places = places
        self.started_at = None
        self.finished_at = None
        self.wall_seconds = None
        self.replication = None  # counts per verdict, when the wave's replication was verified

    @property
    def instances(self):
        return [instance for place in self.places for instance in place.instances]


class Plan:
    """The waves in numeric order, the instances without a usable wave, the unreachable account-regions, and the
    discovered instances this run leaves out (inventory limit, waves filter), each with the reason."""

    def __init__(self, pattern, waves, no_wave, left_out, unreachable, discovered, discovered_waves):
        self.pattern = pattern
        self.waves = waves
        self.no_wave = no_wave
        self.left_out = left_out  # [(instance, reason)]
        self.outside_limit = sum(1 for _instance, reason in left_out if reason == OUTSIDE_LIMIT)
        self.outside_waves = len(left_out) - self.outside_limit
        self.excluded = len(left_out)
        self.unreachable = unreachable
        self.discovered = discovered
        self.discovered_waves = discovered_waves

    @property
    def planned(self):
        return [instance for wave in self.waves for instance in wave.instances]

    def every_instance(self):
        return self.planned + self.no_wave


def deployment_pattern(accounts):
    """same-account, cross-account or multi-account, from the source accounts and their staging accounts."""
    if len({account["account_id"] for account in accounts}) > 1:
        return "multi-account"
    account = accounts[0]
    if account.get("staging_account_id") in (None, "", account["account_id"]):
        return "same-account"
    return "cross-account"


def scope(settings):
    """(the instance ids the run is limited to, the waves asked for): each None when not limited."""
    limit = set(settings["instance_ids"]) if settings["instance_ids"] or settings["limit_to_instance_ids"] else None
    return limit, set(settings["waves"]) or None


def in_scope(settings):
    """Whether a discovered instance (drs_discover's entry) is one the run deploys to, when its wave is usable."""
    limit, wanted_waves = scope(settings)

    def wanted(instance):
        return (instance["wave"] is not None and (limit is None or instance["instance_id"] in limit)
                and (wanted_waves is None or instance["wave"] in wanted_waves))

    return wanted


# The host variables an inventory of this collection's drs_fleet plugin sets: where each instance is.
HOST_PLACE_VARIABLES = ("instance_id", "drs_account_id", "drs_region")


def host_places(hostvars, hosts):
    """{instance id: (account id, region)} of the play's hosts, when every one of them says where it is
    (drs_fleet's host variables); else {} (then every configured account-region is discovered)."""
    places = {}
    for host in hosts:
        variables = hostvars[host]
        values = [variables.get(name) for name in HOST_PLACE_VARIABLES]
        if not all(isinstance(value, str) and value for value in values):
            return {}
        places[values[0]] = (values[1], values[2])
    return places


def accounts_of_hosts(accounts, instance_places):
    """``accounts`` narrowed to the account-regions of the play's hosts ({instance id: (account id, region)}, see
    ``host_places``), so that a slice assumes, lists, records and claims in only its own; every account as
    configured when the hosts do not say where they are, or when none of them is in a configured account-region
    (then nothing is discovered, and the reason names the accounts configured)."""
    regions = {}
    for account_id, region in (instance_places or {}).values():
        regions.setdefault(account_id, set()).add(region)
    scoped = []
    for account in accounts:
        own = [region for region in account["regions"] if region in regions.get(account["account_id"], ())]
        if own:
            scoped.append(dict(account, regions=own))
    return scoped or accounts


def roles_for(entries, accounts, field):
    """The entries of ``staging_accounts`` or ``target_accounts`` that ``accounts`` name in ``field``."""
    named = {account.get(field) for account in accounts}
    return [entry for entry in entries if entry["account_id"] in named]


def build_plan(accounts, discoveries, unreachable, settings):
    """The plan from the discoveries ({(account id, region): drs_discover's answer}) of the reachable
    account-regions; ``unreachable`` lists the others with their reason."""
    limit, wanted_waves = scope(settings)
    places, no_wave, left_out = {}, [], []
    discovered = 0
    discovered_waves = set()
    for account in accounts:
        for region in account["regions"]:
            found = discoveries.get((account["account_id"], region))
            if found is None:
                continue
            for raw in found["instances"]:
                discovered += 1
                instance = Instance(raw, account["account_id"], region)
                if limit is not None and instance.instance_id not in limit:
                    left_out.append((instance, OUTSIDE_LIMIT))
                    continue
                if instance.wave is None:
                    instance.settle(outcomes.NO_WAVE, reason=raw.get("wave_error") or "no usable wave tag",
                                    remediation=outcomes.status_remediation(outcomes.NO_WAVE, settings["wave_tag_key"]))
                    no_wave.append(instance)
                    continue
                discovered_waves.add(instance.wave)
                if wanted_waves is not None and instance.wave not in wanted_waves:
                    left_out.append((instance, f"wave {instance.wave} is not among the waves asked for"))
                    continue
                key = (instance.wave, account["account_id"], region)
                if key not in places:
                    places[key] = Place(account, region, instance.wave)
                places[key].instances.append(instance)
    waves = []
    for number in sorted({key[0] for key in places}):
        wave_places = [places[key] for key in sorted(places) if key[0] == number]
        for place in wave_places:
            place.instances.sort(key=_priority_key)
        waves.append(Wave(number, wave_places))
    return Plan(settings.get("deployment_pattern") or deployment_pattern(accounts), waves, no_wave, left_out, unreachable, discovered,
                discovered_waves)


def _priority_key(instance):
    priority = (instance.priority or "").lower()
    rank = PRIORITY_ORDER.index(priority) if priority in PRIORITY_ORDER else len(PRIORITY_ORDER)
    return (rank, instance.name or "", instance.instance_id)


def empty_reason(plan, settings, accounts, name):
    """Why a plan has nothing to deploy, or None when it has waves. Each reason says what to look at."""
    if plan.waves:
        return None
    places = ", ".join(f"{account['account_id']}/{region}" for account in accounts for region in account["regions"])
    if plan.unreachable and not plan.discovered:
        return "no account-region could be reached (see the reasons above)"
    if settings["limit_to_instance_ids"] and not settings["instance_ids"]:
        return (f"the play's hosts carry no instance_id: {name('instance_ids')} is empty. Run the play on an "
                "amazon.aws.aws_ec2 inventory (hostnames: instance-id), or on localhost to deploy every discovered "
                "instance")
    if not plan.discovered:
        filters = ", ".join(f"{key}={'|'.join(values) if isinstance(values, list) else values}"
                            for key, values in settings["tag_filters"].items())
        return f"no running instance in {places} carries the tags {filters}: nothing to deploy"
    if settings["instance_ids"] and plan.outside_limit == plan.discovered:
        return (f"none of the {len(settings['instance_ids'])} inventory host(s) (for example "
                f"{sorted(settings['instance_ids'])[0]}) is among the {plan.discovered} DR-tagged instance(s) "
                f"discovered in {places}: check that the inventory's filters and --limit match the role's tag filters "
                "and accounts")
    if settings["waves"]:
        found = ", ".join(str(wave) for wave in sorted(plan.discovered_waves)) or "none"
        return (f"{name('waves')} {sorted(settings['waves'])} matches no wave of the instances in scope; their "
                f"waves are: {found}")
    return (f"every one of the {plan.discovered} instance(s) discovered has no usable wave tag "
            f"({settings['wave_tag_key']}): see the instances listed above")
