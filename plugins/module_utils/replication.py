# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Replication health of DRS source servers: one verdict per server, from what DescribeSourceServers shows.

The verdicts, in the order a wait settles them:

- ``healthy``: CONTINUOUS, its lag within the RPO, nothing in backlog;
- ``syncing``: on its way (initiation, initial sync, backlog, rescan, snapshot) or CONTINUOUS but behind the
  RPO or with a backlog: with the ETA DRS gives, when it gives one;
- ``stalled``: STALLED, a ``dataReplicationError``, or an initiation step that FAILED: with the error's
  category and a one-line remediation;
- ``disconnected``: DISCONNECTED (the agent was disconnected or the record is stale);
- ``stopped``: STOPPED or PAUSED (replication was stopped or paused on purpose);
- ``not_found``: no source server of the instance (never installed, or not registered yet).

A wait ends when every server is ``healthy``; ``stalled``, ``disconnected``, ``stopped`` and ``not_found``
do not change by waiting and are reported at once if nothing else is pending.
"""

import datetime
import re

HEALTHY = "healthy"
SYNCING = "syncing"
STALLED = "stalled"
DISCONNECTED = "disconnected"
STOPPED = "stopped"
NOT_FOUND = "not_found"
VERDICTS = (HEALTHY, SYNCING, STALLED, DISCONNECTED, STOPPED, NOT_FOUND)
# what waiting can still change
PENDING = (SYNCING,)

SYNCING_STATES = ("INITIATING", "INITIAL_SYNC", "BACKLOG", "CREATING_SNAPSHOT", "RESCAN")
STOPPED_STATES = ("STOPPED", "PAUSED")

# dataReplicationError.error -> (category, remediation). {region} is the server's region.
ERRORS = {
    "AGENT_NOT_SEEN": (
        "agent", "The replication agent has stopped reporting: check that the server is running, that the agent "
        "service (aws-replication) is up, and that outbound TCP 443 to drs.{region}.amazonaws.com is open."),
    "SNAPSHOTS_FAILURE": (
        "quota", "EBS snapshots of the staging disks fail: check the EBS snapshot quota of the staging account and "
        "region, and that the DRS service role may create snapshots."),
    "NOT_CONVERGING": (
        "capacity", "Writes on the server outpace replication: raise the replication server's instance type or "
        "remove the bandwidth throttle in the replication settings, or lower the write load."),
    "UNSTABLE_NETWORK": (
        "network", "The connection to the replication server keeps dropping: check the network path and that TCP "
        "1500 from the server to the staging subnet stays open (firewalls, NAT timeouts)."),
    "FAILED_TO_CREATE_SECURITY_GROUP": (
        "permissions", "DRS could not create the replication server's security group: check the staging account's "
        "EC2 security group quota and that the DRS service role may create security groups in the staging VPC."),
    "FAILED_TO_LAUNCH_REPLICATION_SERVER": (
        "capacity", "EC2 could not launch the replication server: check the staging account's EC2 quotas, free IP "
        "addresses in the staging subnet, and that the replication server's instance type is offered in its zone."),
    "FAILED_TO_BOOT_REPLICATION_SERVER": (
        "network", "The replication server did not boot: check that the staging subnet routes to the DRS and S3 "
        "endpoints of {region} (NAT gateway or VPC endpoints), then restart replication."),
    "FAILED_TO_AUTHENTICATE_WITH_SERVICE": (
        "network", "The replication server cannot reach DRS: allow outbound TCP 443 from the staging subnet to "
        "drs.{region}.amazonaws.com (NAT gateway or a DRS VPC endpoint)."),
    "FAILED_TO_DOWNLOAD_REPLICATION_SOFTWARE": (
        "network", "The replication server cannot download its software: allow outbound TCP 443 from the staging "
        "subnet to the DRS S3 buckets of {region} (an S3 gateway endpoint or NAT)."),
    "FAILED_TO_CREATE_STAGING_DISKS": (
        "quota", "DRS could not create the staging disks: check the staging account's EBS volume quota and that the "
        "DRS service role may use the KMS key of the replication settings' EBS encryption."),
    "FAILED_TO_ATTACH_STAGING_DISKS": (
        "quota", "DRS could not attach the staging disks: check the EBS quotas and the KMS key policy of the "
        "replication settings' EBS encryption key in the staging account."),
    "FAILED_TO_PAIR_REPLICATION_SERVER_WITH_AGENT": (
        "network", "The agent and the replication server could not pair: allow outbound TCP 1500 from the server "
        "to the staging subnet and TCP 443 to drs.{region}.amazonaws.com."),
    "FAILED_TO_CONNECT_AGENT_TO_REPLICATION_SERVER": (
        "network", "The agent cannot connect to the replication server: allow outbound TCP 1500 from the server to "
        "the staging subnet (security groups, network ACLs, firewalls)."),
    "FAILED_TO_START_DATA_TRANSFER": (
        "network", "Data transfer did not start: check TCP 1500 from the server to the staging subnet and that the "
        "replication server is running, then restart replication."),
}
UNKNOWN_ERROR = ("unknown", "See the source server's replication details in the DRS console of {region}.")
# A FAILED initiation step names the error that failed it.
STEP_ERRORS = {step: f"FAILED_TO_{step}" for step in (
    "CREATE_SECURITY_GROUP", "LAUNCH_REPLICATION_SERVER", "BOOT_REPLICATION_SERVER", "AUTHENTICATE_WITH_SERVICE",
    "DOWNLOAD_REPLICATION_SOFTWARE", "CREATE_STAGING_DISKS", "ATTACH_STAGING_DISKS",
    "PAIR_REPLICATION_SERVER_WITH_AGENT", "CONNECT_AGENT_TO_REPLICATION_SERVER", "START_DATA_TRANSFER")}
DURATION = re.compile(r"^P(?:(?P<days>\d+)D)?(?:T(?:(?P<hours>\d+)H)?(?:(?P<minutes>\d+)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$")


def duration_seconds(text):
    """An ISO 8601 duration as DRS writes lagDuration (PT2M30S), in seconds; None when absent or unreadable."""
    match = DURATION.match(text or "")
    if not match or text in ("P", "PT"):
        return None
    parts = {key: float(value) for key, value in match.groupdict().items() if value}
    return (parts.get("days", 0) * 86400 + parts.get("hours", 0) * 3600 + parts.get("minutes", 0) * 60
            + parts.get("seconds", 0))


def _iso(value):
    return value.isoformat() if isinstance(value, datetime.datetime) else value


def failed_step(steps):
    """The first initiation step that FAILED, or None."""
    return next((step.get("name") for step in steps or [] if step.get("status") == "FAILED"), None)


def assess(server, rpo_seconds, region):
    """The health of one source server (DescribeSourceServers' entry): its verdict and the figures behind it."""
    info = server.get("dataReplicationInfo") or {}
    state = info.get("dataReplicationState")
    disks = info.get("replicatedDisks") or []
    total = sum(disk.get("totalStorageBytes") or 0 for disk in disks)
    replicated = sum(disk.get("replicatedStorageBytes") or 0 for disk in disks)
    backlog = sum(disk.get("backloggedStorageBytes") or 0 for disk in disks)
    initiation = info.get("dataReplicationInitiation") or {}
    steps = initiation.get("steps") or []
    step = failed_step(steps)
    error = (info.get("dataReplicationError") or {}).get("error") or (STEP_ERRORS.get(step) if step else None)
    lag = duration_seconds(info.get("lagDuration"))
    life = server.get("lifeCycle") or {}
    health = {
        "source_server_id": server.get("sourceServerID"),
        "instance_id": ((server.get("sourceProperties") or {}).get("identificationHints") or {}).get("awsInstanceID"),
        "replication_state": state,
        "initiation_steps": [{"name": entry.get("name"), "status": entry.get("status")} for entry in steps],
        "failed_step": step,
        "error": error,
        "error_category": None,
        "remediation": None,
        "lag_seconds": lag,
        "backlog_bytes": backlog,
        "replicated_bytes": replicated,
        "total_bytes": total,
        "eta": _iso(info.get("etaDateTime")),
        "last_seen": _iso(life.get("lastSeenByServiceDateTime")),
    }
    if state == "DISCONNECTED":
        verdict, reason = DISCONNECTED, "the agent is disconnected from DRS"
    elif state in STOPPED_STATES:
        verdict, reason = STOPPED, f"replication is {state}"
    elif state == "STALLED" or error:
        category, remediation = ERRORS.get(error, UNKNOWN_ERROR)
        health.update(error_category=category, remediation=remediation.format(region=region))
        verdict = STALLED
        reason = f"replication is {state}" + (f": {error}" if error else "") + (f" at step {step}" if step else "")
    elif state == "CONTINUOUS" and (lag or 0) <= rpo_seconds and not backlog:
        verdict, reason = HEALTHY, f"continuous, lag {int(lag or 0)} s within the RPO of {rpo_seconds} s"
    elif state == "CONTINUOUS":
        verdict = SYNCING
        reason = (f"continuous, lag {int(lag or 0)} s over the RPO of {rpo_seconds} s" if (lag or 0) > rpo_seconds
                  else f"continuous, {backlog} bytes in backlog")
    else:
        verdict = SYNCING
        reason = f"replication is {state}" + (f", {replicated} of {total} bytes" if total else "") + \
            (f", ETA {health['eta']}" if health["eta"] else "")
    health.update(verdict=verdict, reason=reason)
    return health


def not_found(instance_id):
    return {"instance_id": instance_id, "source_server_id": None, "verdict": NOT_FOUND,
            "reason": "no source server replicates this instance: the agent is not installed or not registered yet",
            "remediation": "Install the agent (playbooks/deploy_agents.yml), then check again."}


def count(healths):
    """{verdict: how many servers}, every verdict present."""
    counts = dict.fromkeys(VERDICTS, 0)
    for health in healths:
        counts[health["verdict"]] += 1
    return counts
