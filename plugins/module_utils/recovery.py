# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""DRS recovery jobs: starting drills within DRS's job limits, reading jobs and their logs, terminating the
recovery instances, and what a launch failure means.

DRS runs at most 100 source servers in one job, 20 jobs at once and 500 source servers across its active jobs,
per account and region. Jobs are read with one paged DescribeJobs per account-region per look (its jobIDs filter
takes up to 1,000 ids), so the calls do not grow with the servers; a job's log is read once, when it ends with
a failed launch.
"""

import re

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.aws import pages

SERVERS_PER_JOB = 100
ACTIVE_JOBS = 20
ACTIVE_SERVERS = 500
JOB_ID_CHUNK = 1000
PAGE_SIZE = 1000
LIMIT_ERRORS = ("ServiceQuotaExceededException", "ConflictException")

LAUNCHED = "LAUNCHED"
FAILED = "FAILED"
ENDED_LAUNCH = ("LAUNCHED", "FAILED", "TERMINATED")
COMPLETED = "COMPLETED"

# (category, what the job log says, remediation), first match wins; the log's rawError is matched.
LAUNCH_FAILURES = (
    ("no_point_in_time", re.compile(r"point[- ]in[- ]time|snapshot|not (yet )?(in )?continuous|initial sync", re.I),
     "The server has no recovery point yet: wait until its replication is CONTINUOUS (drs_replication_health), "
     "then drill again."),
    ("launch_template", re.compile(r"launch template|launch configuration|launchtemplate|invalid.*(subnet|"
                                   r"security group|instance type|ami)", re.I),
     "The server's launch settings are not usable: fix its EC2 launch template (subnet, security groups, instance "
     "type) or its DRS launch configuration, then drill again."),
    ("quota", re.compile(r"quota|limit exceeded|limitexceeded|insufficient.*capacity|vcpu", re.I),
     "EC2 refused to launch for lack of quota or capacity in the recovery account and region: raise the EC2 "
     "quotas (running instances, vCPUs, EBS), or choose another instance type, then drill again."),
    ("conversion", re.compile(r"conversion", re.I),
     "DRS could not convert the server's disks: check the conversion server's subnet can reach the DRS and S3 "
     "endpoints, and the recovery account's EBS quotas."),
)
UNKNOWN_FAILURE = ("launch_failed", "See the job log in the DRS console for the server, fix what it names, then "
                   "drill again.")


def start_drill(drs, source_server_ids, tags):
    """Start one drill job for at most SERVERS_PER_JOB servers; the job as DRS returns it."""
    request = {"sourceServers": [{"sourceServerID": server_id} for server_id in source_server_ids], "isDrill": True}
    if tags:
        request["tags"] = dict(tags)
    return drs.start_recovery(aws_retry=True, **request)["job"]


def describe_jobs(drs, job_ids):
    """The jobs of ``job_ids`` as DRS shows them now."""
    jobs = []
    job_ids = sorted(set(job_ids))
    for start in range(0, len(job_ids), JOB_ID_CHUNK):
        for page in pages(drs.describe_jobs, "nextToken", filters={"jobIDs": job_ids[start:start + JOB_ID_CHUNK]},
                          maxResults=PAGE_SIZE):
            jobs.extend(page.get("items", []))
    return jobs


def job_log(drs, job_id):
    items = []
    for page in pages(drs.describe_job_log_items, "nextToken", jobID=job_id, maxResults=PAGE_SIZE):
        items.extend(page.get("items", []))
    return items


def failure_reasons(log_items):
    """{source server id: the last error the job log gives for it}."""
    reasons = {}
    for item in log_items:
        data = item.get("eventData") or {}
        if data.get("sourceServerID") and data.get("rawError"):
            reasons[data["sourceServerID"]] = data["rawError"]
        elif data.get("sourceServerID") and item.get("event") == "SERVER_SKIPPED":
            reasons.setdefault(data["sourceServerID"], "the server was skipped (no recovery point to launch from)")
    return reasons


def classify_failure(reason):
    """(category, remediation) of a launch failure's reason."""
    for category, pattern, remediation in LAUNCH_FAILURES:
        if pattern.search(reason or ""):
            return category, remediation
    return UNKNOWN_FAILURE


def terminate(drs, recovery_instance_ids):
    """Terminate at most SERVERS_PER_JOB recovery instances in one job (its limits are a launch job's); the job."""
    return drs.terminate_recovery_instances(aws_retry=True, recoveryInstanceIDs=list(recovery_instance_ids))["job"]


def job_batches(ids):
    """Servers (or recovery instances) cut into jobs of at most SERVERS_PER_JOB."""
    ids = list(ids)
    return [ids[start:start + SERVERS_PER_JOB] for start in range(0, len(ids), SERVERS_PER_JOB)]


def room_for(batch_size, active_jobs, active_servers):
    """Whether a job of ``batch_size`` servers may start beside the active ones."""
    return active_jobs < ACTIVE_JOBS and active_servers + batch_size <= ACTIVE_SERVERS
