"""Elastic Disaster Recovery: source servers replicating over simulated time, extended servers
across accounts, replication configuration templates, tags, and the IAM roles DRS relies on.

Replication states are derived from the simulated clock on every read, so nothing runs in the
background. Every lookup a request needs goes through an index (by id, ARN, hardware id, staging
server), and listings page through servers in creation order with opaque tokens.
"""

import base64
import bisect
import json
import re
import uuid
from collections import Counter
from dataclasses import dataclass, field

from botocore.model import NoShapeFoundError
from moto.ec2.models import ec2_backends
from moto.ec2.models.instance_types import INSTANCE_TYPES
from moto.iam.models import iam_backends

from lab.errors import AwsError, drs_quota_exceeded
from lab.models.sts import trust_policy
from lab.protocol import service_model
from lab.scenario import ScenarioError

PARTITION = "aws"
INITIATING = "INITIATING"
INITIAL_SYNC = "INITIAL_SYNC"
CONTINUOUS = "CONTINUOUS"
STALLED = "STALLED"
DISCONNECTED = "DISCONNECTED"
NOT_EXTENDED = "NOT_EXTENDED"
EXTENDED = "EXTENDED"
EXTENSION_ERROR = "EXTENSION_ERROR"

REPLICATION_SECONDS = {"initiating": 60, "initial_sync": 600}
# How an instance's replication goes once its agent registers, set per instance by the scenario (a group's
# ``replication``) or while the lab runs (POST /_lab/replication): "healthy"; "stalled:<ERROR>" (STALLED with
# that dataReplicationError, AGENT_NOT_SEEN when none is named); "lagging:<seconds>" (CONTINUOUS that many
# seconds behind, with a backlog); "initiation_failed:<STEP>" (the initiation step FAILED, the server STALLED).
REPLICATION_MODES = ("healthy", "stalled", "lagging", "initiation_failed")
HEALTHY_REPLICATION = ("healthy", None)
BACKLOG_BYTES_PER_LAG_SECOND = 4 * 1024 * 1024
EXTENDED_SERVER_QUOTA = 300
ALREADY_EXTENDED_CODE = "ConflictException"
AGENT_VERSION = "4.11.0"
# servers present when the lab starts were added well before it, so their history looks lived-in
SEEDED_SERVER_AGE_SECONDS = 14 * 24 * 3600
PAGE_SIZES = {"servers": 100, "extensible": 300, "templates": 100, "staging_accounts": 50}

INITIATION_STEPS = (
    "WAIT", "CREATE_SECURITY_GROUP", "LAUNCH_REPLICATION_SERVER", "BOOT_REPLICATION_SERVER",
    "AUTHENTICATE_WITH_SERVICE", "DOWNLOAD_REPLICATION_SOFTWARE", "CREATE_STAGING_DISKS",
    "ATTACH_STAGING_DISKS", "PAIR_REPLICATION_SERVER_WITH_AGENT", "CONNECT_AGENT_TO_REPLICATION_SERVER",
    "START_DATA_TRANSFER",
)
# role name -> (path, service that assumes it): what initializing DRS creates in the account
SERVICE_ROLES = {
    "AWSServiceRoleForElasticDisasterRecovery": ("/aws-service-role/drs.amazonaws.com/", "drs.amazonaws.com"),
    "AWSElasticDisasterRecoveryReplicationServerRole": ("/service-role/", "ec2.amazonaws.com"),
    "AWSElasticDisasterRecoveryConversionServerRole": ("/service-role/", "ec2.amazonaws.com"),
    "AWSElasticDisasterRecoveryRecoveryInstanceRole": ("/service-role/", "ec2.amazonaws.com"),
    "AWSElasticDisasterRecoveryAgentRole": ("/service-role/", "drs.amazonaws.com"),
    "AWSElasticDisasterRecoveryFailbackRole": ("/service-role/", "drs.amazonaws.com"),
}
TEMPLATE_DEFAULTS = {
    "associateDefaultSecurityGroup": True,
    "replicationServerInstanceType": "t3.small",
    "useDedicatedReplicationServer": False,
    "defaultLargeStagingDiskType": "GP3",
    "dataPlaneRouting": "PRIVATE_IP",
    "createPublicIP": False,
    "autoReplicateNewDisks": True,
    "internetProtocol": "IPV4",
    "tags": {},
}
DEFAULT_PIT_POLICY = (
    {"ruleID": 1, "units": "MINUTE", "interval": 10, "retentionDuration": 60, "enabled": True},
    {"ruleID": 2, "units": "HOUR", "interval": 1, "retentionDuration": 24, "enabled": True},
    {"ruleID": 3, "units": "DAY", "interval": 1, "retentionDuration": 7, "enabled": True},
)
GIB = 1024 ** 3
LINUX_OS = "Linux version 5.10.223-211.872.amzn2.x86_64 (Amazon Linux 2)"
WINDOWS_OS = "Microsoft Windows Server 2022 Datacenter 10.0.20348"
ON_PREMISES_OS = "Red Hat Enterprise Linux 8.9 (Ootpa) 4.18.0-513.el8.x86_64"
CPU_MODEL = "Intel(R) Xeon(R) Platinum 8259CL CPU @ 2.50GHz"
SOURCE_SERVER_ARN = re.compile(r"arn:[^:]+:drs:([^:]+):([0-9]{12}):source-server/(s-[0-9a-zA-Z]{17})")


@dataclass(frozen=True)
class HostFacts:
    """What the agent reports about the machine it runs on."""

    hostname: str
    fqdn: str
    os_name: str
    cores: int
    ram_bytes: int
    disks: tuple
    mac_address: str
    ips: tuple
    instance_type: str = None
    instance_id: str = None
    vmware_uuid: str = None
    origin: tuple = None  # (account id, region, availability zone) of an EC2 instance

    @property
    def hardware_id(self):
        return self.instance_id or self.vmware_uuid


@dataclass(eq=False)  # identity: servers go in sets while filtering
class SourceServer:
    server_id: str
    arn: str
    account_id: str
    region: str
    order: int
    host: HostFacts
    tags: dict
    added_at: float
    replication_started_at: float
    pinned_state: str = None  # a state the scenario fixes, instead of the replication timeline
    disconnected_at: float = None
    staging_account_id: str = None  # set on extended servers only
    staging_arn: str = None


@dataclass
class ReplicationTemplate:
    template_id: str
    arn: str
    account_id: str
    region: str
    settings: dict
    tags: dict


@dataclass
class RegionState:
    """DRS in one account and region."""

    initialized: bool = False
    trusted_accounts: set = field(default_factory=set)
    servers: dict = field(default_factory=dict)  # id -> server
    orders: list = field(default_factory=list)  # creation order numbers, ascending
    by_order: dict = field(default_factory=dict)
    by_hardware: dict = field(default_factory=dict)  # hardware id -> {server id: server}
    agent_servers: dict = field(default_factory=dict)  # instance id -> the agent's server here
    extended_from: dict = field(default_factory=dict)  # staging server ARN -> extended server
    staging_accounts: Counter = field(default_factory=Counter)
    templates: dict = field(default_factory=dict)

    def add(self, server):
        self.servers[server.server_id] = server
        bisect.insort(self.orders, server.order)
        self.by_order[server.order] = server
        if server.host.hardware_id:
            self.by_hardware.setdefault(server.host.hardware_id, {})[server.server_id] = server
        if server.staging_arn:
            self.extended_from[server.staging_arn] = server
            self.staging_accounts[server.staging_account_id] += 1
        elif server.host.instance_id:
            self.agent_servers[server.host.instance_id] = server

    def remove(self, server):
        del self.servers[server.server_id]
        del self.orders[bisect.bisect_left(self.orders, server.order)]
        del self.by_order[server.order]
        if server.host.hardware_id:
            self.by_hardware[server.host.hardware_id].pop(server.server_id)
        if server.staging_arn:
            del self.extended_from[server.staging_arn]
            self.staging_accounts[server.staging_account_id] -= 1
            if not self.staging_accounts[server.staging_account_id]:
                del self.staging_accounts[server.staging_account_id]
        elif server.host.instance_id and self.agent_servers.get(server.host.instance_id) is server:
            del self.agent_servers[server.host.instance_id]

    def servers_after(self, order):
        """Servers created after ``order``, oldest first."""
        for index in range(bisect.bisect_right(self.orders, order), len(self.orders)):
            yield self.by_order[self.orders[index]]


class DrsService:
    def __init__(self, world):
        self.world = world
        self._regions = {}
        self._by_arn = {}
        self._agent_servers = {}  # instance id -> {(account, region): server}
        self._next_order = 0
        self._zones = {}
        self._instance_types = {group["name"]: group["instance_type"] for group in world.scenario["instance_groups"]}
        settings = world.scenario.get("drs", {})
        self._phase_seconds = {**REPLICATION_SECONDS, **settings.get("replication_seconds", {})}
        self._quota = settings.get("extended_server_quota", EXTENDED_SERVER_QUOTA)
        self._already_extended = settings.get("already_extended_error", {})
        self._replication = {}  # instance id -> (mode, detail) when not healthy
        self._replication_changed_at = {}  # instance id -> when its replication behaviour last changed
        # imported here: the recovery model builds on this module's paging and errors
        from lab.models.drs_recovery import DrsRecovery  # pylint: disable=import-outside-toplevel
        self.recovery = DrsRecovery(world, self, settings)

    # --- seeding and the agent (called by the world and the SSM model) ---

    def add_group(self, group):
        """A group of instances launched at seeding or while the lab runs: its instance type sizes their hosts."""
        self._instance_types.setdefault(group["name"], group["instance_type"])

    def set_replication(self, instance_ids, text):
        """How these instances' replication goes from now on (see REPLICATION_MODES); a ScenarioError names
        what is wrong with ``text``."""
        behaviour = parse_replication(text)
        for instance_id in instance_ids:
            if self._replication.get(instance_id, HEALTHY_REPLICATION) != behaviour:
                self._replication_changed_at[instance_id] = self.world.elapsed()
            if behaviour == HEALTHY_REPLICATION:
                self._replication.pop(instance_id, None)
            else:
                self._replication[instance_id] = behaviour

    def seed_region(self, account_id, region, state):
        drs = self._region(account_id, region)
        if state["initialized"]:
            self._initialize(account_id, drs)
        for trusted in state["trusted_accounts"]:
            drs.trusted_accounts.add(trusted)
            if trusted != account_id:
                self._create_cross_account_roles(source_id=trusted, destination_id=account_id)
        if state["replication_template"]:
            self._create_template(account_id, region, self._default_template_settings(account_id, region), {})
        for entry in state["source_servers"]:
            self._seed_servers(account_id, region, entry)

    def register_existing(self, instance, account_id, region, replication_state):
        added_at = -SEEDED_SERVER_AGE_SECONDS
        server = self._place_agent_server(instance, account_id, region, {}, added_at)
        self._start_in_state(server, replication_state)
        return server

    def install_failure(self, instance, destination_account_id, region, tags_given):
        """Why DRS would make an agent install fail, or None."""
        destination = self._regions.get((destination_account_id, region))
        if destination is None or not destination.initialized:
            return "account_not_initialized"
        if destination_account_id != instance.account_id and not self._cross_account_roles_exist(
                instance.account_id, destination_account_id):
            return "cross_account_role_missing"
        destination_place = (destination_account_id, region)
        live_places = {
            place for place, server in self._agent_servers.get(instance.instance_id, {}).items()
            if self.replication_state(server) != DISCONNECTED
        }
        if live_places - {destination_place}:
            return "registered_elsewhere"
        if destination_place in live_places and tags_given:
            return "already_exists_with_tags"
        return None

    def register_agent(self, instance, destination_account_id, region, tags, at_elapsed):
        """The agent on ``instance`` registered at simulated time ``at_elapsed``: its source server."""
        return self._place_agent_server(instance, destination_account_id, region, tags or {}, at_elapsed)

    # --- operations ---

    def initialize_service(self, account_id, region):
        self._initialize(account_id, self._region(account_id, region))

    def describe_source_servers(self, account_id, region, filters, max_results, next_token):
        drs = self._initialized(account_id, region)
        after = _decode_token("servers", next_token)
        candidates = self._filter_candidates(drs, filters)
        if candidates is None:
            matching = drs.servers_after(after)
        else:
            matching = (server for server in sorted(candidates, key=lambda s: s.order) if server.order > after)
        page, token = _page(matching, max_results or PAGE_SIZES["servers"], "servers", lambda server: server.order)
        return [self.describe(server) for server in page], token

    def list_extensible_source_servers(self, account_id, region, staging_account_id, max_results, next_token):
        target = self._initialized(account_id, region)
        staging = self._trusting_staging(staging_account_id, account_id, region)
        after = _decode_token("extensible", next_token)
        extensible = (
            server for server in staging.servers_after(after)
            if not server.staging_arn and server.arn not in target.extended_from
        )
        page, token = _page(extensible, max_results or PAGE_SIZES["extensible"], "extensible", lambda server: server.order)
        return [{"hostname": s.host.hostname, "arn": s.arn, "tags": dict(s.tags)} for s in page], token

    def create_extended_source_server(self, account_id, region, staging_arn, tags):
        target = self._initialized(account_id, region)
        match = SOURCE_SERVER_ARN.fullmatch(staging_arn)
        if match is None or match.group(1) != region:
            raise _server_not_found(staging_arn)
        staging_account_id, server_id = match.group(2), match.group(3)
        if staging_account_id == account_id:
            raise _validation(f"Source server {staging_arn} is in account {account_id}: "
                              "a server can only be extended into another account", "sourceServerArn")
        staging = self._trusting_staging(staging_account_id, account_id, region)
        staging_server = staging.servers.get(server_id)
        if staging_server is None or staging_server.arn != staging_arn:
            raise _server_not_found(staging_arn)
        if staging_server.staging_arn:
            raise _validation(f"Source server {staging_arn} is itself an extended source server and cannot be extended", "sourceServerArn")
        if staging_arn in target.extended_from:
            raise self._already_extended_error(staging_arn, account_id, target.extended_from[staging_arn])
        if len(target.servers) >= self._quota:
            raise drs_quota_exceeded(
                f"Cannot create an extended source server: account {account_id} already has {len(target.servers)} "
                f"source servers in {region}, the limit is {self._quota}",
                "SourceServer",
            )
        server = self._new_server(account_id, region, staging_server.host, tags or {}, self.world.elapsed())
        server.staging_account_id = staging_account_id
        server.staging_arn = staging_arn
        target.add(server)
        return self.describe(server)

    def list_staging_accounts(self, account_id, region, max_results, next_token):
        drs = self._initialized(account_id, region)
        after = _decode_token("staging_accounts", next_token, default="")
        accounts = (account for account in sorted(drs.staging_accounts) if account > after)
        page, token = _page(accounts, max_results or PAGE_SIZES["staging_accounts"], "staging_accounts", lambda account: account)
        return [{"accountID": account} for account in page], token

    def disconnect_source_server(self, account_id, region, server_id):
        server = self._server(account_id, region, server_id)
        if self.replication_state(server) != DISCONNECTED:
            server.disconnected_at = self.world.elapsed()
        return self.describe(server)

    def delete_source_server(self, account_id, region, server_id):
        server = self._server(account_id, region, server_id)
        if self.replication_state(server) != DISCONNECTED:
            raise AwsError(
                "ConflictException",
                f"Cannot delete source server {server_id}: it is {self.replication_state(server)}. Disconnect it first.",
                409, resourceId=server_id, resourceType="SourceServer",
            )
        self._regions[(account_id, region)].remove(server)
        del self._by_arn[server.arn]
        if not server.staging_arn and server.host.instance_id:
            places = self._agent_servers.get(server.host.instance_id, {})
            if places.get((account_id, region)) is server:
                del places[(account_id, region)]

    def create_replication_configuration_template(self, account_id, region, params):
        self._initialized(account_id, region)
        if params["ebsEncryption"] == "CUSTOM" and not params.get("ebsEncryptionKeyArn"):
            raise _validation("ebsEncryptionKeyArn is required when ebsEncryption is CUSTOM", "ebsEncryptionKeyArn")
        _check_tag_keys(params.get("tags") or {})
        settings = {**TEMPLATE_DEFAULTS, **{k: v for k, v in params.items() if k != "tags"}}
        settings["pitPolicy"] = [{"ruleID": index + 1, "enabled": True, **rule} for index, rule in enumerate(params["pitPolicy"])]
        template = self._create_template(account_id, region, settings, params.get("tags") or {})
        return self._describe_template(template)

    def describe_replication_configuration_templates(self, account_id, region, template_ids, max_results, next_token):
        drs = self._initialized(account_id, region)
        after = _decode_token("templates", next_token, default="")
        wanted = set(template_ids or ())
        templates = (
            template for template_id, template in sorted(drs.templates.items())
            if template_id > after and (not wanted or template_id in wanted)
        )
        page, token = _page(templates, max_results or PAGE_SIZES["templates"], "templates", lambda t: t.template_id)
        return [self._describe_template(template) for template in page], token

    def tag_resource(self, account_id, region, arn, tags):
        self._initialized(account_id, region)
        _check_tag_keys(tags)
        self._taggable(account_id, region, arn).tags.update(tags)

    def untag_resource(self, account_id, region, arn, tag_keys):
        self._initialized(account_id, region)
        resource = self._taggable(account_id, region, arn)
        for key in tag_keys:
            resource.tags.pop(key, None)

    def list_tags_for_resource(self, account_id, region, arn):
        self._initialized(account_id, region)
        return dict(self._taggable(account_id, region, arn).tags)

    def source_servers(self, account_id, region):
        """The source servers of an account and region where DRS is initialized, by id."""
        return self._initialized(account_id, region).servers

    # --- how a source server reads ---

    def replication_state(self, server):
        if server.disconnected_at is not None:
            return DISCONNECTED
        if server.staging_arn:
            staging = self._by_arn.get(server.staging_arn)
            return DISCONNECTED if staging is None else self.replication_state(staging)
        if server.pinned_state:
            return server.pinned_state
        if self._replication.get(server.host.instance_id, HEALTHY_REPLICATION)[0] in ("stalled", "initiation_failed"):
            return STALLED
        age = self.world.elapsed() - server.replication_started_at
        if age < self._phase_seconds["initiating"]:
            return INITIATING
        if age < self._phase_seconds["initiating"] + self._phase_seconds["initial_sync"]:
            return INITIAL_SYNC
        return CONTINUOUS

    def continuous_window(self, server):
        """The simulated span (start, end) over which ``server`` replicated continuously, or None if it never
        has: its points in time are taken in it."""
        replicating = self._replicating_server(server)
        if replicating is None:
            return None
        start = replicating.replication_started_at + self._phase_seconds["initiating"] + self._phase_seconds["initial_sync"]
        ends = [self.world.elapsed()]
        ends += [moment for moment in (server.disconnected_at, replicating.disconnected_at) if moment is not None]
        if replicating.pinned_state:
            ends.append(0.0)  # the scenario pins a state the server reached before the lab started
        instance_id = replicating.host.instance_id
        if self._replication.get(instance_id, HEALTHY_REPLICATION)[0] in ("stalled", "initiation_failed"):
            ends.append(self._replication_changed_at[instance_id])
        end = min(ends)
        return (start, end) if start <= end else None

    def describe(self, server):
        """The server as DescribeSourceServers shows it, at the current simulated time."""
        replicating = self._replicating_server(server)
        host = server.host
        described = {
            "sourceServerID": server.server_id,
            "arn": server.arn,
            "tags": dict(server.tags),
            "lastLaunchResult": self.recovery.last_launch_result(server),
            "dataReplicationInfo": self._replication_info(server, replicating),
            "lifeCycle": self._life_cycle(server, replicating),
            "sourceProperties": self._source_properties(replicating or server),
            "stagingArea": self._staging_area(server),
            "replicationDirection": "FAILOVER",
            "agentVersion": AGENT_VERSION,
        }
        recovery_instance_id = self.recovery.recovery_instance_id(server)
        if recovery_instance_id:
            described["recoveryInstanceId"] = recovery_instance_id
        if host.origin:
            origin_account, origin_region, origin_zone = host.origin
            described["sourceCloudProperties"] = {
                "originAccountID": origin_account, "originRegion": origin_region, "originAvailabilityZone": origin_zone,
            }
        return described

    def _replicating_server(self, server):
        """The server whose replication this one shows: itself, or the staging server it extends."""
        if server.staging_arn:
            return self._by_arn.get(server.staging_arn)
        return server

    def _replication_info(self, server, replicating):
        state = self.replication_state(server)
        info = {"dataReplicationState": state, "replicatedDisks": [], "stagingAvailabilityZone": f"{server.region}a"}
        if replicating is None:
            return info
        mode, detail = self._replication.get(replicating.host.instance_id, HEALTHY_REPLICATION)
        synced = 0.0 if mode == "initiation_failed" else self._synced_fraction(replicating)
        lagging = mode == "lagging" and state == CONTINUOUS
        for index, (device, size) in enumerate(replicating.host.disks):
            info["replicatedDisks"].append({
                "deviceName": device, "totalStorageBytes": size, "replicatedStorageBytes": int(size * synced),
                "rescannedStorageBytes": 0,
                "backloggedStorageBytes": int(detail) * BACKLOG_BYTES_PER_LAG_SECOND if lagging and index == 0 else 0,
                "volumeStatus": "REGULAR",
            })
        if mode == "initiation_failed":
            info["dataReplicationInitiation"] = {
                "startDateTime": self._iso(replicating.replication_started_at),
                "steps": _failed_initiation_steps(detail),
            }
            info["dataReplicationError"] = {"error": f"FAILED_TO_{detail}",
                                            "rawError": f"Initiation step {detail} failed"}
        elif mode == "stalled" and state == STALLED:
            info["dataReplicationError"] = {"error": detail, "rawError": f"Replication stalled: {detail}"}
        elif lagging:
            info["lagDuration"] = f"PT{int(detail)}S"
        elif state == INITIATING:
            info["dataReplicationInitiation"] = {
                "startDateTime": self._iso(replicating.replication_started_at),
                "steps": _initiation_steps(self._initiation_progress(replicating)),
            }
        elif state == INITIAL_SYNC:
            initiating = self._phase_seconds["initiating"]
            info["etaDateTime"] = self._iso(replicating.replication_started_at + initiating + self._phase_seconds["initial_sync"])
        elif state == CONTINUOUS:
            info["lagDuration"] = "PT0S"
        elif state == STALLED and "dataReplicationError" not in info:
            info["dataReplicationError"] = {
                "error": "AGENT_NOT_SEEN", "rawError": "The replication agent has not been seen by the service recently"}
        return info

    def _age(self, server):
        return self.world.elapsed() - server.replication_started_at

    def _initiation_progress(self, server):
        initiating = self._phase_seconds["initiating"]
        return min(self._age(server) / initiating, 1.0) if initiating else 1.0

    def _synced_fraction(self, server):
        """How much of the disks the staging area holds, from 0 to 1."""
        sync_seconds = self._phase_seconds["initial_sync"]
        into_sync = self._age(server) - self._phase_seconds["initiating"]
        if into_sync <= 0:
            return 0.0
        return 1.0 if into_sync >= sync_seconds else into_sync / sync_seconds

    def _life_cycle(self, server, replicating):
        life = {"addedToServiceDateTime": self._iso(server.added_at)}
        if replicating is not None:
            first_byte = replicating.replication_started_at + self._phase_seconds["initiating"]
            if first_byte <= self.world.elapsed():
                life["firstByteDateTime"] = self._iso(first_byte)
        seen = server.disconnected_at if server.disconnected_at is not None else self.world.elapsed()
        if replicating is not None and replicating.disconnected_at is not None:
            seen = min(seen, replicating.disconnected_at)
        life["lastSeenByServiceDateTime"] = self._iso(seen)
        last_launch = self.recovery.last_launch(server)
        if last_launch:
            life["lastLaunch"] = last_launch
        return life

    def _source_properties(self, server):
        host = server.host
        hints = {"hostname": host.hostname, "fqdn": host.fqdn}
        if host.instance_id:
            hints["awsInstanceID"] = host.instance_id
        if host.vmware_uuid:
            hints["vmWareUuid"] = host.vmware_uuid
        return {
            "lastUpdatedDateTime": self._iso(server.replication_started_at),
            "identificationHints": hints,
            "networkInterfaces": [{"macAddress": host.mac_address, "ips": list(host.ips), "isPrimary": True}],
            "disks": [{"deviceName": device, "bytes": size} for device, size in host.disks],
            "cpus": [{"cores": host.cores, "modelName": CPU_MODEL}],
            "ramBytes": host.ram_bytes,
            "os": {"fullString": host.os_name},
            "supportsNitroInstances": True,
            "architecture": "x86_64",
            "recommendedInstanceType": host.instance_type or "m5.xlarge",
        }

    def _staging_area(self, server):
        if not server.staging_arn:
            return {"status": NOT_EXTENDED}
        area = {"status": EXTENDED, "stagingAccountID": server.staging_account_id, "stagingSourceServerArn": server.staging_arn}
        if server.staging_arn not in self._by_arn:
            area["status"] = EXTENSION_ERROR
            area["errorMessage"] = f"The staging source server {server.staging_arn} no longer exists"
        return area

    def _iso(self, elapsed):
        return self.world.clock.at(elapsed).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"

    # --- state ---

    def _region(self, account_id, region):
        key = (account_id, region)
        if key not in self._regions:
            self._regions[key] = RegionState()
        return self._regions[key]

    def _initialized(self, account_id, region):
        drs = self._regions.get((account_id, region))
        if drs is None or not drs.initialized:
            raise AwsError(
                "UninitializedAccountException",
                f"Account not initialized: Elastic Disaster Recovery is not initialized in account {account_id} "
                f"in {region}. Call InitializeService first.",
                400,
            )
        return drs

    def _initialize(self, account_id, drs):
        drs.initialized = True
        for name, (path, service) in SERVICE_ROLES.items():
            document = {"Version": "2012-10-17", "Statement": [
                {"Effect": "Allow", "Principal": {"Service": service}, "Action": "sts:AssumeRole"}]}
            _ensure_role(account_id, name, document, path)

    def _create_cross_account_roles(self, source_id, destination_id):
        authorized = f"DRSCrossAccountAgentAuthorizedRole_{destination_id}"
        _ensure_role(source_id, authorized, trust_policy([source_id]), "/")
        _ensure_role(destination_id, f"DRSCrossAccountAgentRole_{source_id}",
                     trust_policy([f"arn:aws:iam::{source_id}:role/{authorized}"]), "/")

    @staticmethod
    def _cross_account_roles_exist(source_id, destination_id):
        return (_role_exists(destination_id, f"DRSCrossAccountAgentRole_{source_id}")
                and _role_exists(source_id, f"DRSCrossAccountAgentAuthorizedRole_{destination_id}"))

    def _trusting_staging(self, staging_account_id, target_account_id, region):
        staging = self._regions.get((staging_account_id, region))
        if staging is None or not staging.initialized or target_account_id not in staging.trusted_accounts:
            raise AwsError(
                "AccessDeniedException",
                f"Account {staging_account_id} does not trust account {target_account_id} to extend its source servers in {region}",
                403,
            )
        return staging

    def _server(self, account_id, region, server_id):
        server = self._initialized(account_id, region).servers.get(server_id)
        if server is None:
            raise AwsError("ResourceNotFoundException", f"Source server {server_id} not found", 404,
                           resourceId=server_id, resourceType="SourceServer")
        return server

    def _taggable(self, account_id, region, arn):
        resource = self._by_arn.get(arn)
        if resource is None:
            raise AwsError("ResourceNotFoundException", f"Resource {arn} not found", 404, resourceId=arn)
        if (resource.account_id, resource.region) != (account_id, region):
            raise AwsError("AccessDeniedException", f"Account {account_id} is not authorized to access {arn} from {region}", 403)
        return resource

    @staticmethod
    def _filter_candidates(drs, filters):
        """The servers every given filter accepts, found through the indexes (None: no filter)."""
        selections = []
        if filters.get("sourceServerIDs"):
            selections.append({drs.servers[i] for i in filters["sourceServerIDs"] if i in drs.servers})
        if filters.get("hardwareId"):
            selections.append(set(drs.by_hardware.get(filters["hardwareId"], {}).values()))
        if filters.get("stagingAccountIDs"):
            staging_ids = set(filters["stagingAccountIDs"])
            selections.append({s for s in drs.extended_from.values() if s.staging_account_id in staging_ids})
        return set.intersection(*selections) if selections else None

    def _already_extended_error(self, staging_arn, account_id, existing):
        code = self._already_extended.get("code", ALREADY_EXTENDED_CODE)
        message = self._already_extended.get(
            "message",
            f"Source server {staging_arn} is already extended into account {account_id} as {existing.server_id}",
        )
        return AwsError(code, message, _error_status(code), resourceId=existing.server_id, resourceType="SourceServer")

    def _new_server(self, account_id, region, host, tags, added_at, server_id=None):
        server_id = server_id or self._unique_id("s-", lambda candidate: _server_arn(region, account_id, candidate))
        self._next_order += 1
        server = SourceServer(
            server_id=server_id,
            arn=_server_arn(region, account_id, server_id),
            account_id=account_id, region=region, order=self._next_order, host=host, tags=dict(tags),
            added_at=added_at, replication_started_at=added_at,
        )
        self._by_arn[server.arn] = server
        return server

    def _unique_id(self, prefix, arn_of):
        while True:
            candidate = prefix + format(self.world.random.getrandbits(68), "017x")
            if arn_of(candidate) not in self._by_arn:
                return candidate

    def _place_agent_server(self, instance, account_id, region, tags, at_elapsed):
        drs = self._region(account_id, region)
        server = drs.agent_servers.get(instance.instance_id)
        if server is None:
            server = self._new_server(account_id, region, self._host_of_instance(instance), tags, at_elapsed)
            drs.add(server)
            self._agent_servers.setdefault(instance.instance_id, {})[(account_id, region)] = server
            return server
        if server.disconnected_at is not None:
            server.tags.update(tags)
        server.disconnected_at = None
        server.pinned_state = None
        server.replication_started_at = at_elapsed
        return server

    def _start_in_state(self, server, replication_state):
        """Make a server present at lab start read ``replication_state``. A server still initiating
        or syncing goes on to CONTINUOUS as simulated time passes; other states hold."""
        if replication_state not in service_model("drs").shape_for("DataReplicationState").enum:
            raise ScenarioError(f"replication_state {replication_state!r} is not a DRS data replication state")
        initiating = self._phase_seconds["initiating"]
        if replication_state in (INITIATING, INITIAL_SYNC):
            started = 0.0 if replication_state == INITIATING else -initiating
            server.added_at = server.replication_started_at = started
        elif replication_state == DISCONNECTED:
            server.disconnected_at = server.added_at + initiating
        elif replication_state != CONTINUOUS:  # the timeline reached CONTINUOUS long before the lab started
            server.pinned_state = replication_state

    def _seed_servers(self, account_id, region, entry):
        added_at = -SEEDED_SERVER_AGE_SECONDS
        pattern = entry.get("hostname_pattern", "server-{index:03d}")
        staging_account_id = entry.get("staging_account")
        staging_ready = staging_account_id and self._initialized_in_scenario(staging_account_id, region)
        for index in range(1, entry["count"] + 1):
            host = self._on_premises_host(pattern.format(index=index))
            if staging_account_id:
                staging_arn = self._seed_extended(account_id, region, staging_account_id, host, entry, added_at)
                if staging_ready:
                    self._seed_staging_server(staging_account_id, region, host, entry, added_at, staging_arn)
            else:
                server = self._new_server(account_id, region, host, entry.get("tags", {}), added_at)
                self._start_in_state(server, entry.get("replication_state", CONTINUOUS))
                self._region(account_id, region).add(server)

    def _seed_extended(self, account_id, region, staging_account_id, host, entry, added_at):
        """An extended server, and the ARN of its staging server (which the caller may create)."""
        staging_arn = _server_arn(region, staging_account_id, self._unique_id("s-", lambda c: _server_arn(region, staging_account_id, c)))
        server = self._new_server(account_id, region, host, entry.get("tags", {}), added_at)
        server.staging_account_id = staging_account_id
        server.staging_arn = staging_arn
        self._region(account_id, region).add(server)
        return staging_arn

    def _seed_staging_server(self, staging_account_id, region, host, entry, added_at, staging_arn):
        staging_server = self._new_server(staging_account_id, region, host, entry.get("tags", {}), added_at,
                                          server_id=staging_arn.rsplit("/", 1)[1])
        self._start_in_state(staging_server, entry.get("replication_state", CONTINUOUS))
        self._region(staging_account_id, region).add(staging_server)

    def _initialized_in_scenario(self, account_id, region):
        for account in self.world.scenario["accounts"]:
            if account["id"] == account_id:
                return account["drs"].get(region, {}).get("initialized", False)
        return False

    def _host_of_instance(self, instance):
        instance_type = self._instance_types.get(instance.group, "t3.medium")
        facts = INSTANCE_TYPES.get(instance_type, INSTANCE_TYPES["t3.medium"])
        windows = instance.platform == "windows"
        domain = "ec2.internal" if instance.region == "us-east-1" else f"{instance.region}.compute.internal"
        return HostFacts(
            hostname=instance.name.upper()[:15] if windows else instance.name,
            fqdn=f"{instance.name}.{domain}",
            os_name=WINDOWS_OS if windows else LINUX_OS,
            cores=facts["VCpuInfo"]["DefaultVCpus"],
            ram_bytes=facts["MemoryInfo"]["SizeInMiB"] * 1024 * 1024,
            disks=((r"\\.\PHYSICALDRIVE0", 50 * GIB),) if windows else (("/dev/nvme0n1", 20 * GIB),),
            mac_address=self._mac_address(),
            ips=(instance.private_ip,),
            instance_type=instance_type,
            instance_id=instance.instance_id,
            origin=(instance.account_id, instance.region, self._zone_of(instance)),
        )

    def _on_premises_host(self, hostname):
        rand = self.world.random
        return HostFacts(
            hostname=hostname,
            fqdn=f"{hostname}.corp.example.com",
            os_name=ON_PREMISES_OS,
            cores=4,
            ram_bytes=16 * GIB,
            disks=(("/dev/sda", 100 * GIB), ("/dev/sdb", 200 * GIB)),
            mac_address=self._mac_address(),
            ips=(f"192.168.{rand.randint(0, 255)}.{rand.randint(1, 254)}",),
            vmware_uuid=str(uuid.UUID(int=rand.getrandbits(128), version=4)),
        )

    def _mac_address(self):
        return "0a:" + ":".join(format(self.world.random.randint(0, 255), "02x") for _ in range(5))

    def _zone_of(self, instance):
        """The instance's availability zone, read from EC2 once per account and region."""
        key = (instance.account_id, instance.region)
        zones = self._zones.get(key, {})
        if instance.instance_id not in zones:
            backend = ec2_backends[instance.account_id][instance.region]
            zones = {ec2.id: ec2.placement.zone for reservation in backend.all_reservations() for ec2 in reservation.instances}
            self._zones[key] = zones
        return zones.get(instance.instance_id, f"{instance.region}a")

    def _default_template_settings(self, account_id, region):
        backend = ec2_backends[account_id][region]
        subnet = backend.get_default_subnets().get(f"{region}a")
        group = backend.get_default_security_group()
        return {
            **TEMPLATE_DEFAULTS,
            "stagingAreaSubnetId": subnet.id if subnet else "subnet-0a1b2c3d4e5f60718",
            "replicationServersSecurityGroupsIDs": [group.id] if group else [],
            "ebsEncryption": "DEFAULT",
            "bandwidthThrottling": 0,
            "stagingAreaTags": {},
            "pitPolicy": [dict(rule) for rule in DEFAULT_PIT_POLICY],
        }

    def _create_template(self, account_id, region, settings, tags):
        arn_of = lambda candidate: f"arn:aws:drs:{region}:{account_id}:replication-configuration-template/{candidate}"  # noqa: E731
        template_id = self._unique_id("rct-", arn_of)
        template = ReplicationTemplate(template_id, arn_of(template_id), account_id, region, settings, dict(tags))
        self._region(account_id, region).templates[template_id] = template
        self._by_arn[template.arn] = template
        return template

    @staticmethod
    def _describe_template(template):
        return {
            **template.settings,
            "replicationConfigurationTemplateID": template.template_id,
            "arn": template.arn,
            "tags": dict(template.tags),
        }


def _server_arn(region, account_id, server_id):
    return f"arn:aws:drs:{region}:{account_id}:source-server/{server_id}"


def _role_exists(account_id, role_name):
    try:
        iam_backends[account_id][PARTITION].get_role(role_name)
    except Exception:  # moto's IAM NotFoundException: the role is not there
        return False
    return True


def _ensure_role(account_id, role_name, trust_document, path):
    if _role_exists(account_id, role_name):
        return
    iam_backends[account_id][PARTITION].create_role(
        role_name=role_name,
        assume_role_policy_document=json.dumps(trust_document),
        path=path,
        permissions_boundary=None,
        description=f"Created by AWS Elastic Disaster Recovery ({role_name})",
        tags=[],
        max_session_duration="3600",
    )


def parse_replication(text):
    """(mode, detail) of a replication behaviour such as "stalled:UNSTABLE_NETWORK" (see REPLICATION_MODES)."""
    if not isinstance(text, str):
        raise ScenarioError(f"replication {text!r} must be a string such as healthy, stalled:UNSTABLE_NETWORK, "
                            "lagging:900 or initiation_failed:CONNECT_AGENT_TO_REPLICATION_SERVER")
    mode, _, detail = text.partition(":")
    if mode not in REPLICATION_MODES:
        raise ScenarioError(f"replication {text!r}: the mode must be one of {', '.join(REPLICATION_MODES)}")
    if mode == "healthy":
        return HEALTHY_REPLICATION
    if mode == "stalled":
        errors = service_model("drs").shape_for("DataReplicationErrorString").enum
        detail = detail or "AGENT_NOT_SEEN"
        if detail not in errors:
            raise ScenarioError(f"replication {text!r}: {detail} is not a DRS replication error ({', '.join(errors)})")
        return mode, detail
    if mode == "lagging":
        if not detail.isdigit():
            raise ScenarioError(f"replication {text!r}: give the lag in whole seconds, such as lagging:900")
        return mode, detail
    steps = INITIATION_STEPS[1:]
    if detail not in steps:
        raise ScenarioError(f"replication {text!r}: name the step that fails, one of {', '.join(steps)}")
    return mode, detail


def _failed_initiation_steps(failed):
    position = INITIATION_STEPS.index(failed)
    return [{"name": name, "status": "SUCCEEDED" if index < position else "FAILED" if index == position
             else "NOT_STARTED"} for index, name in enumerate(INITIATION_STEPS)]


def _initiation_steps(progress):
    done = int(min(max(progress, 0.0), 1.0) * len(INITIATION_STEPS))
    steps = []
    for index, name in enumerate(INITIATION_STEPS):
        status = "SUCCEEDED" if index < done else "IN_PROGRESS" if index == done else "NOT_STARTED"
        steps.append({"name": name, "status": status})
    return steps


def _page(items, max_results, kind, position_of):
    """Up to ``max_results`` items and the token for the rest (None when nothing is left)."""
    page = []
    for item in items:
        if len(page) == max_results:
            return page, _encode_token(kind, position_of(page[-1]))
        page.append(item)
    return page, None


def _encode_token(kind, position):
    return base64.urlsafe_b64encode(json.dumps([kind, position]).encode()).decode()


def _decode_token(kind, token, default=0):
    if not token:
        return default
    try:
        token_kind, position = json.loads(base64.urlsafe_b64decode(token.encode()))
    except (ValueError, TypeError) as exc:
        raise _validation("The nextToken is not valid", "nextToken") from exc
    if token_kind != kind or not isinstance(position, type(default)):
        raise _validation("The nextToken was not issued by this operation", "nextToken")
    return position


def _check_tag_keys(tags):
    reserved = sorted(key for key in tags if key.lower().startswith("aws:"))
    if reserved:
        raise _validation(f"Tag keys starting with 'aws:' are reserved for AWS use: {reserved[0]}", "tags")


def _validation(message, field_name):
    return AwsError("ValidationException", message, 400, reason="fieldValidationFailed",
                    fieldList=[{"name": field_name, "message": message}])


def _server_not_found(arn):
    return AwsError("ResourceNotFoundException", f"Source server {arn} not found", 404,
                    resourceId=arn, resourceType="SourceServer")


def _error_status(code):
    """The HTTP status the DRS model gives an error code (400 for codes it does not define)."""
    try:
        shape = service_model("drs").shape_for(code)
    except NoShapeFoundError:
        return 400
    return shape.metadata.get("error", {}).get("httpStatusCode", 400)
