"""Elastic Disaster Recovery's recovery side: launch jobs (drills and recoveries) and their logs, the recovery
instances they launch, terminate jobs, point-in-time snapshots, and the limits on jobs.

A job stores when each of its servers starts and ends; its status, the servers' launch statuses and its log
follow from the simulated clock when read, as replication states do. A recovery instance appears when its launch
ends and goes when its terminate job ends, at events on the world's clock, so that listings page stored items.
"""

import hashlib
import math
from dataclasses import dataclass, field
from datetime import datetime

from lab.errors import AwsError, drs_quota_exceeded
from lab.models.drs import (
    AGENT_VERSION, CONTINUOUS, CPU_MODEL, DEFAULT_PIT_POLICY, _decode_token, _page, _server_not_found,
)
from lab.models.ssm import iso_string
from lab.scenario import ScenarioError

PENDING, IN_PROGRESS, LAUNCHED, FAILED, TERMINATED = "PENDING", "IN_PROGRESS", "LAUNCHED", "FAILED", "TERMINATED"
JOB_COMPLETED = "COMPLETED"
LAUNCH, TERMINATE = "LAUNCH", "TERMINATE"
START_DRILL, START_RECOVERY, TERMINATE_RECOVERY_INSTANCES = "START_DRILL", "START_RECOVERY", "TERMINATE_RECOVERY_INSTANCES"

# DRS's quotas on jobs, per account and region
MAX_SERVERS_PER_JOB = 100
MAX_ACTIVE_JOBS = 20
MAX_SERVERS_IN_ACTIVE_JOBS = 500

JOB_PENDING_SECONDS = 30  # a new job waits this long before its servers start
DEFAULT_LAUNCH_SECONDS = 600
TERMINATE_SECONDS = 120
# how a launch's time divides: a snapshot until this share of it, conversion until the next, then the EC2 launch
SNAPSHOT_SHARE, CONVERSION_SHARE = 0.1, 0.6
PAGE_SIZES = {"jobs": 100, "job_log": 100, "recovery_instances": 100, "snapshots": 100}

# How a server's launch goes, set per instance by the scenario (a group's ``recovery.launch``) or while the lab
# runs (POST /_lab/recovery): "ok", or "fails:<reason>" with the error DRS reports for that reason. A server
# with no point in time yet is skipped whatever its behaviour says.
LAUNCH_OK = "ok"
LAUNCH_FAILURES = {
    "no_point_in_time": (
        "Source server {server_id} cannot be launched: it has no point in time snapshot yet. "
        "Wait until its data replication reaches continuous replication."),
    "launch_template": (
        "An error occurred (InvalidParameterValue) when calling the RunInstances operation: "
        "The EC2 launch template of source server {server_id} is not valid: "
        "Security group sg-0b5e4d3c2a1f09876 does not exist in VPC vpc-0a1b2c3d4e5f60718."),
    "quota": (
        "An error occurred (VcpuLimitExceeded) when calling the RunInstances operation: "
        "You have requested more vCPU capacity than your current vCPU limit of 32 allows for the instance bucket "
        "that the specified instance type belongs to. Please visit http://aws.amazon.com/contact-us/ec2-request "
        "to request an adjustment to this limit."),
}

_UNIT_SECONDS = {"MINUTE": 60, "HOUR": 3600, "DAY": 24 * 3600}
# points in time are taken every POINT_IN_TIME_SECONDS; the default PIT policy keeps every n-th one for so long
POINT_IN_TIME_SECONDS = min(rule["interval"] * _UNIT_SECONDS[rule["units"]] for rule in DEFAULT_PIT_POLICY)
PIT_RETENTION = tuple(
    (rule["interval"] * _UNIT_SECONDS[rule["units"]] // POINT_IN_TIME_SECONDS,
     rule["retentionDuration"] * _UNIT_SECONDS[rule["units"]])
    for rule in DEFAULT_PIT_POLICY
)


@dataclass(eq=False)
class Participant:
    """One server in a job: when its part starts and ends, and the launch status it ends in."""

    server_id: str
    starts_at: float
    ends_at: float
    outcome: str
    raw_error: str = None
    skipped: bool = False
    instance_id: str = None  # the recovery instance it launches or terminates
    conversion_server_id: str = None
    from_previous_snapshot: bool = False  # launched from an existing point in time, not a new snapshot
    point_in_time: float = None

    def status(self, now):
        if now < self.starts_at:
            return PENDING
        return IN_PROGRESS if now < self.ends_at else self.outcome


@dataclass(eq=False)
class Job:
    job_id: str
    arn: str
    order: int
    kind: str
    initiated_by: str
    created_at: float
    tags: dict
    participants: list = field(default_factory=list)

    @property
    def starts_at(self):
        return self.created_at + JOB_PENDING_SECONDS

    @property
    def ends_at(self):
        return max((participant.ends_at for participant in self.participants), default=self.starts_at)

    def status(self, now):
        if now < self.starts_at:
            return PENDING
        return "STARTED" if now < self.ends_at else JOB_COMPLETED


@dataclass(eq=False)
class RecoveryInstance:
    instance_id: str
    arn: str
    order: int
    job: Job
    server: object  # the source server it was launched for
    launched_at: float
    point_in_time: float
    terminating: Participant = None  # its part in a terminate job under way


@dataclass
class RecoveryRegion:
    """Recovery in one account and region."""

    jobs: dict = field(default_factory=dict)  # job id -> job, in creation order
    instances: dict = field(default_factory=dict)  # recovery instance id -> instance
    instance_of_server: dict = field(default_factory=dict)  # source server id -> its recovery instance
    last_launch: dict = field(default_factory=dict)  # source server id -> (job, participant) of its latest launch


class DrsRecovery:
    def __init__(self, world, drs, settings):
        self.world = world
        self._drs = drs
        self._regions = {}
        self._next_order = 0
        self._launch_seconds = settings.get("launch_seconds", DEFAULT_LAUNCH_SECONDS)
        self._launch_failures = {}  # instance id -> the reason its launches fail
        self._instance_launch_seconds = {}  # instance id -> how long its launches take

    def set_launch(self, instance_ids, launch=None, launch_seconds=None):
        """How these instances' launches go from now on: ``launch`` is "ok" or "fails:<reason>" (see
        LAUNCH_FAILURES), ``launch_seconds`` how long one takes; a ScenarioError names what is wrong."""
        failure = None if launch is None else parse_launch(launch)
        if launch_seconds is not None and (isinstance(launch_seconds, bool) or not isinstance(launch_seconds, (int, float))
                                           or launch_seconds < 0):
            raise ScenarioError(f"launch_seconds {launch_seconds!r} must be a number of seconds, 0 or more")
        for instance_id in instance_ids:
            if failure:
                self._launch_failures[instance_id] = failure
            elif launch is not None:
                self._launch_failures.pop(instance_id, None)
            if launch_seconds is not None:
                self._instance_launch_seconds[instance_id] = float(launch_seconds)

    # --- operations ---

    def start_recovery(self, account_id, region, requested, is_drill, tags):
        servers = self._drs.source_servers(account_id, region)
        recovery = self._region(account_id, region)
        now = self.world.elapsed()
        chosen = []
        for item in requested:
            server = servers.get(item["sourceServerID"])
            if server is None:
                raise _server_not_found(item["sourceServerID"])
            chosen.append((server, item.get("recoverySnapshotID")))
        self._check_job_limits(account_id, region, recovery, len(chosen), now)
        busy = sorted({server.server_id for server, _ in chosen} & self._servers_in_active_jobs(recovery, now))
        if busy:
            raise AwsError("ConflictException", f"Source server {busy[0]} is already part of a job in progress", 409,
                           resourceId=busy[0], resourceType="SourceServer")
        points = {server.server_id: self._points_in_time(server, now) for server, _ in chosen}
        for server, snapshot_id in chosen:
            if snapshot_id and snapshot_id not in {self._snapshot_id(server, index) for index, _ in points[server.server_id]}:
                raise AwsError("ResourceNotFoundException",
                               f"Recovery snapshot {snapshot_id} of source server {server.server_id} not found", 404,
                               resourceId=snapshot_id, resourceType="RecoverySnapshot")
        job = self._new_job(account_id, region, LAUNCH, START_DRILL if is_drill else START_RECOVERY, tags, now)
        for server, snapshot_id in chosen:
            participant = self._launch(server, snapshot_id, points[server.server_id], job.starts_at)
            job.participants.append(participant)
            recovery.last_launch[server.server_id] = (job, participant)
            if participant.outcome == LAUNCHED:
                self._launch_instance_when_done(recovery, job, participant, server)
        return self._describe_job(job, now)

    def terminate_recovery_instances(self, account_id, region, instance_ids):
        self._drs.source_servers(account_id, region)
        recovery = self._region(account_id, region)
        now = self.world.elapsed()
        instances = []
        for instance_id in instance_ids:
            instance = recovery.instances.get(instance_id)
            if instance is None:
                raise _instance_not_found(instance_id)
            if instance.terminating:
                raise AwsError("ConflictException", f"Recovery instance {instance_id} is already being terminated", 409,
                               resourceId=instance_id, resourceType="RecoveryInstance")
            instances.append(instance)
        self._check_job_limits(account_id, region, recovery, len(instances), now)
        job = self._new_job(account_id, region, TERMINATE, TERMINATE_RECOVERY_INSTANCES, {}, now)
        for instance in instances:
            participant = Participant(instance.server.server_id, job.starts_at, job.starts_at + TERMINATE_SECONDS,
                                      TERMINATED, instance_id=instance.instance_id)
            job.participants.append(participant)
            instance.terminating = participant
            self.world.schedule_at(participant.ends_at, lambda _due, gone=instance: _remove(recovery, gone))
        return self._describe_job(job, now)

    def describe_jobs(self, account_id, region, filters, max_results, next_token):
        self._drs.source_servers(account_id, region)
        recovery = self._region(account_id, region)
        after = _decode_token("jobs", next_token)
        wanted = set(filters.get("jobIDs") or ())
        within = self._within(filters.get("fromDate"), filters.get("toDate"))
        jobs = (
            job for job in recovery.jobs.values()
            if job.order > after and (not wanted or job.job_id in wanted) and within(job.created_at)
        )
        page, token = _page(jobs, max_results or PAGE_SIZES["jobs"], "jobs", lambda job: job.order)
        now = self.world.elapsed()
        return [self._describe_job(job, now) for job in page], token

    def describe_job_log_items(self, account_id, region, job_id, max_results, next_token):
        self._drs.source_servers(account_id, region)
        job = self._region(account_id, region).jobs.get(job_id)
        if job is None:
            raise AwsError("ResourceNotFoundException", f"Job {job_id} not found", 404, resourceId=job_id, resourceType="Job")
        after = _decode_token("job_log", next_token)
        # the log grows only at its end as time passes, so a position in it stays put between pages
        log = enumerate(self._job_log(job, self.world.elapsed()), start=1)
        page, token = _page(((position, item) for position, item in log if position > after),
                            max_results or PAGE_SIZES["job_log"], "job_log", lambda entry: entry[0])
        return [item for _, item in page], token

    def describe_recovery_instances(self, account_id, region, filters, max_results, next_token):
        self._drs.source_servers(account_id, region)
        recovery = self._region(account_id, region)
        after = _decode_token("recovery_instances", next_token)
        wanted_ids = set(filters.get("recoveryInstanceIDs") or ())
        wanted_servers = set(filters.get("sourceServerIDs") or ())
        instances = (
            instance for instance in sorted(recovery.instances.values(), key=lambda instance: instance.order)
            if instance.order > after
            and (not wanted_ids or instance.instance_id in wanted_ids)
            and (not wanted_servers or instance.server.server_id in wanted_servers)
        )
        page, token = _page(instances, max_results or PAGE_SIZES["recovery_instances"], "recovery_instances",
                            lambda instance: instance.order)
        now = self.world.elapsed()
        return [self._describe_instance(instance, now) for instance in page], token

    def describe_recovery_snapshots(self, account_id, region, server_id, filters, order, max_results, next_token):
        server = self._drs.source_servers(account_id, region).get(server_id)
        if server is None:
            raise _server_not_found(server_id)
        newest_first = order == "DESC"
        kind = "snapshots_desc" if newest_first else "snapshots_asc"
        after = _decode_token(kind, next_token, default=-1)  # the last point's index, -1 before the first page
        within = self._within(filters.get("fromDateTime"), filters.get("toDateTime"))
        points = self._points_in_time(server, self.world.elapsed())
        if newest_first:
            points.reverse()
        chosen = (
            (index, moment) for index, moment in points
            if within(moment) and (after < 0 or (index < after if newest_first else index > after))
        )
        page, token = _page(chosen, max_results or PAGE_SIZES["snapshots"], kind, lambda point: point[0])
        return [self._describe_snapshot(server, index, moment) for index, moment in page], token

    # --- how a source server shows its launches ---

    def last_launch_result(self, server):
        launch = self._region(server.account_id, server.region).last_launch.get(server.server_id)
        if launch is None:
            return "NOT_STARTED"
        status = launch[1].status(self.world.elapsed())
        return {LAUNCHED: "SUCCEEDED", FAILED: "FAILED"}.get(status, PENDING)

    def last_launch(self, server):
        """The source server's ``lifeCycle.lastLaunch``, or None before its first launch."""
        recovery = self._region(server.account_id, server.region)
        launch = recovery.last_launch.get(server.server_id)
        if launch is None:
            return None
        job, participant = launch
        status = participant.status(self.world.elapsed())
        if status == LAUNCHED and participant.instance_id not in recovery.instances:
            status = TERMINATED
        return {
            "initiated": {
                "apiCallDateTime": self._iso(job.created_at), "jobID": job.job_id,
                "type": "DRILL" if job.initiated_by == START_DRILL else "RECOVERY",
            },
            "status": status,
        }

    def recovery_instance_id(self, server):
        instance = self._region(server.account_id, server.region).instance_of_server.get(server.server_id)
        return instance.instance_id if instance else None

    # --- jobs ---

    def _check_job_limits(self, account_id, region, recovery, server_count, now):
        where = f"account {account_id} in {region}"
        if server_count > MAX_SERVERS_PER_JOB:
            raise drs_quota_exceeded(
                f"Cannot start a job for {server_count} source servers: a job can include at most "
                f"{MAX_SERVERS_PER_JOB} source servers", "SourceServer")
        active = [job for job in recovery.jobs.values() if job.status(now) != JOB_COMPLETED]
        if len(active) >= MAX_ACTIVE_JOBS:
            raise drs_quota_exceeded(
                f"Cannot start a job: {len(active)} jobs are already in progress in {where}, the limit is "
                f"{MAX_ACTIVE_JOBS} concurrent jobs", "Job")
        busy = sum(len(job.participants) for job in active)
        if busy + server_count > MAX_SERVERS_IN_ACTIVE_JOBS:
            raise drs_quota_exceeded(
                f"Cannot start a job for {server_count} source servers: jobs in progress in {where} already include "
                f"{busy} source servers, the limit is {MAX_SERVERS_IN_ACTIVE_JOBS} source servers in all active jobs",
                "SourceServer")

    @staticmethod
    def _servers_in_active_jobs(recovery, now):
        return {
            participant.server_id for job in recovery.jobs.values() if job.kind == LAUNCH and job.status(now) != JOB_COMPLETED
            for participant in job.participants
        }

    def _new_job(self, account_id, region, kind, initiated_by, tags, now):
        recovery = self._region(account_id, region)
        job_id = "drsjob-" + self._random_hex()
        while job_id in recovery.jobs:
            job_id = "drsjob-" + self._random_hex()
        self._next_order += 1
        job = Job(job_id, f"arn:aws:drs:{region}:{account_id}:job/{job_id}", self._next_order, kind, initiated_by, now,
                  dict(tags or {}))
        recovery.jobs[job_id] = job
        return job

    def _launch(self, server, snapshot_id, points, starts_at):
        """The server's part in a launch job starting at ``starts_at``."""
        instance_id = server.host.instance_id
        failure = self._launch_failures.get(instance_id)
        if failure == "no_point_in_time" or not points:
            return Participant(server.server_id, starts_at, starts_at, FAILED, skipped=True,
                               raw_error=LAUNCH_FAILURES["no_point_in_time"].format(server_id=server.server_id))
        seconds = self._instance_launch_seconds.get(instance_id, self._launch_seconds)
        participant = Participant(server.server_id, starts_at, starts_at + seconds, FAILED if failure else LAUNCHED,
                                  conversion_server_id="i-" + self._random_hex())
        if snapshot_id:
            participant.from_previous_snapshot = True
            participant.point_in_time = next(moment for index, moment in points if self._snapshot_id(server, index) == snapshot_id)
        elif self._drs.replication_state(server) == CONTINUOUS:
            participant.point_in_time = starts_at  # a new snapshot, taken when the job starts
        else:  # replication is not continuous now: DRS launches from the latest point in time it has
            participant.from_previous_snapshot = True
            participant.point_in_time = points[-1][1]
        if failure:
            participant.raw_error = LAUNCH_FAILURES[failure].format(server_id=server.server_id)
        else:
            participant.instance_id = "i-" + self._random_hex()
        return participant

    def _launch_instance_when_done(self, recovery, job, participant, server):
        def launched(due):
            previous = recovery.instance_of_server.get(server.server_id)
            if previous is not None:  # a new launch replaces the server's earlier recovery instance
                _remove(recovery, previous)
            self._next_order += 1
            instance = RecoveryInstance(
                participant.instance_id,
                f"arn:aws:drs:{server.region}:{server.account_id}:recovery-instance/{participant.instance_id}",
                self._next_order, job, server, due, participant.point_in_time)
            recovery.instances[instance.instance_id] = instance
            recovery.instance_of_server[server.server_id] = instance

        self.world.schedule_at(participant.ends_at, launched)

    def _job_log(self, job, now):
        """The job's log items up to ``now``, oldest first."""
        items = [(job.starts_at, "JOB_START", {})]
        for participant in job.participants:
            items += self._participant_log(job, participant)
        items.append((job.ends_at, "JOB_END", {}))
        items.sort(key=lambda item: item[0])  # stable: simultaneous items keep the order they happen in
        return [{"logDateTime": self._iso(moment), "event": event, "eventData": data}
                for moment, event, data in items if moment <= now]

    @staticmethod
    def _participant_log(job, participant):
        server = {"sourceServerID": participant.server_id}
        start, end = participant.starts_at, participant.ends_at
        if job.kind == TERMINATE:
            instance = {**server, "targetInstanceID": participant.instance_id}
            return [(start, "CLEANUP_START", instance), (end, "CLEANUP_END", instance)]
        if participant.skipped:
            return [(start, "SERVER_SKIPPED", {**server, "rawError": participant.raw_error})]
        snapshot_end = start + (end - start) * SNAPSHOT_SHARE
        conversion_end = start + (end - start) * CONVERSION_SHARE
        conversion = {**server, "conversionServerID": participant.conversion_server_id}
        if participant.from_previous_snapshot:
            items = [(start, "USING_PREVIOUS_SNAPSHOT", server)]
        else:
            items = [(start, "SNAPSHOT_START", server), (snapshot_end, "SNAPSHOT_END", server)]
        items += [(snapshot_end, "CONVERSION_START", conversion), (conversion_end, "CONVERSION_END", conversion)]
        if participant.instance_id:
            items.append((conversion_end, "LAUNCH_START", {**server, "targetInstanceID": participant.instance_id}))
        else:  # EC2 refused the launch: no instance was created
            items += [(conversion_end, "LAUNCH_START", server),
                      (end, "LAUNCH_FAILED", {**server, "rawError": participant.raw_error})]
        return items

    def _describe_job(self, job, now):
        status = job.status(now)
        described = {
            "jobID": job.job_id,
            "arn": job.arn,
            "type": job.kind,
            "initiatedBy": job.initiated_by,
            "creationDateTime": self._iso(job.created_at),
            "status": status,
            "participatingServers": [],
            "tags": dict(job.tags),
        }
        if status == JOB_COMPLETED:
            described["endDateTime"] = self._iso(job.ends_at)
        for participant in job.participants:
            launch_status = participant.status(now)
            entry = {"sourceServerID": participant.server_id, "launchStatus": launch_status}
            if participant.instance_id and (job.kind == TERMINATE or launch_status == LAUNCHED):
                entry["recoveryInstanceID"] = participant.instance_id
            described["participatingServers"].append(entry)
        return described

    # --- recovery instances and snapshots ---

    def _describe_instance(self, instance, now):
        server, host = instance.server, instance.server.host
        shutting_down = instance.terminating is not None and instance.terminating.status(now) == IN_PROGRESS
        described = {
            "ec2InstanceID": instance.instance_id,
            "ec2InstanceState": "SHUTTING-DOWN" if shutting_down else "RUNNING",
            "jobID": instance.job.job_id,
            "recoveryInstanceID": instance.instance_id,
            "sourceServerID": server.server_id,
            "arn": instance.arn,
            "tags": {},
            "recoveryInstanceProperties": {
                "lastUpdatedDateTime": self._iso(instance.launched_at),
                "identificationHints": {"hostname": host.hostname, "fqdn": host.fqdn, "awsInstanceID": instance.instance_id},
                "networkInterfaces": [{"macAddress": host.mac_address, "ips": list(host.ips), "isPrimary": True}],
                "disks": [{"internalDeviceName": device, "bytes": size,
                           "ebsVolumeID": "vol-" + _digest(instance.instance_id, device)}
                          for device, size in host.disks],
                "cpus": [{"cores": host.cores, "modelName": CPU_MODEL}],
                "ramBytes": host.ram_bytes,
                "os": {"fullString": host.os_name},
            },
            "pointInTimeSnapshotDateTime": self._iso(instance.point_in_time),
            "isDrill": instance.job.initiated_by == START_DRILL,
            "originEnvironment": "AWS" if host.origin else "ON_PREMISES",
            "agentVersion": AGENT_VERSION,
        }
        if host.origin:
            described["originAvailabilityZone"] = host.origin[2]
        return described

    def _points_in_time(self, server, now):
        """(index, simulated time) of the server's points in time, oldest first: one every
        POINT_IN_TIME_SECONDS while it replicated continuously, kept as the default PIT policy keeps them."""
        window = self._drs.continuous_window(server)
        if window is None:
            return []
        start, end = window
        last = int((min(end, now) - start) // POINT_IN_TIME_SECONDS)
        kept = set()
        for every, retention in PIT_RETENTION:
            first = max(0, math.ceil((now - retention - start) / POINT_IN_TIME_SECONDS))
            kept.update(range(math.ceil(first / every) * every, last + 1, every))
        return [(index, start + index * POINT_IN_TIME_SECONDS) for index in sorted(kept)]

    @staticmethod
    def _snapshot_id(server, index):
        return "pit-" + _digest(server.server_id, index)

    def _describe_snapshot(self, server, index, moment):
        return {
            "snapshotID": self._snapshot_id(server, index),
            "sourceServerID": server.server_id,
            "expectedTimestamp": self._iso(moment),
            "timestamp": self._iso(moment),
            "ebsSnapshots": ["snap-" + _digest(server.server_id, index, device) for device, _ in server.host.disks],
        }

    # --- state ---

    def _region(self, account_id, region):
        return self._regions.setdefault((account_id, region), RecoveryRegion())

    def _random_hex(self):
        return format(self.world.random.getrandbits(68), "017x")

    def _iso(self, elapsed):
        return iso_string(self.world.clock, elapsed)

    def _within(self, since, until):
        """Whether a simulated moment, as answers show it (to the millisecond), lies between two ISO 8601 moments
        (either may be None); the model's pattern has already checked their form."""
        since, until = (None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00")) for text in (since, until))

        def within(elapsed):
            shown = self.world.clock.at(elapsed)
            shown = shown.replace(microsecond=shown.microsecond // 1000 * 1000)
            return (since is None or since <= shown) and (until is None or shown <= until)

        return within


def parse_launch(text):
    """The failure reason of a launch behaviour such as "fails:quota", or None for "ok"."""
    if text == LAUNCH_OK:
        return None
    mode, _, reason = text.partition(":") if isinstance(text, str) else ("", "", "")
    if mode != "fails" or reason not in LAUNCH_FAILURES:
        raise ScenarioError(f"launch {text!r} must be ok or fails:<reason>, the reason one of {', '.join(LAUNCH_FAILURES)}")
    return reason


def _remove(recovery, instance):
    recovery.instances.pop(instance.instance_id, None)
    if recovery.instance_of_server.get(instance.server.server_id) is instance:
        del recovery.instance_of_server[instance.server.server_id]


def _digest(*parts):
    """17 hex digits that always stand for ``parts``: ids of things derived on each read."""
    return hashlib.sha256("/".join(str(part) for part in parts).encode()).hexdigest()[:17]


def _instance_not_found(instance_id):
    return AwsError("ResourceNotFoundException", f"Recovery instance {instance_id} not found", 404,
                    resourceId=instance_id, resourceType="RecoveryInstance")
