"""DRS recovery in the lab, over the wire: drills and recoveries as jobs on the simulated clock, their logs,
recovery instances and their termination, launch failures the scenario sets, points in time, the job limits,
and paging. Every answer is checked against botocore's output shape.

Each kind of test works in its own region of tests/lab/scenarios/drs_recovery.yml, so tests sharing a lab (in
any order) never see each other's jobs.
"""

import re
import urllib.error

import pytest
from botocore.exceptions import ClientError

from tests.lab.shapes import output_problems
from tests.lab_fixture import REPO_ROOT, RunningLab

SCENARIO = REPO_ROOT / "tests" / "lab" / "scenarios" / "drs_recovery.yml"
JOB_ID = re.compile(r"^drsjob-[0-9a-zA-Z]{17}$")
INSTANCE_ID = re.compile(r"^i-[0-9a-f]{17}$")
PENDING_SECONDS, LAUNCH_SECONDS, TERMINATE_SECONDS = 30, 600, 120


@pytest.fixture(scope="module")
def lab():
    running = RunningLab(SCENARIO)
    yield running
    running.stop()


class Drs:
    """A DRS client whose every answer must fit its botocore output shape."""

    def __init__(self, lab, region):
        self.client = lab.client("drs", region)

    def __getattr__(self, name):
        method = getattr(self.client, name)
        operation = self.client.meta.method_to_api_mapping[name]

        def checked(**kwargs):
            answer = method(**kwargs)
            assert output_problems(self.client, operation, answer) == [], operation
            return answer

        return checked

    def pages(self, operation, **kwargs):
        for page in self.client.get_paginator(operation).paginate(**kwargs):
            assert output_problems(self.client, self.client.meta.method_to_api_mapping[operation], page) == []
            yield page

    def servers(self, pattern):
        """Source servers whose hostname matches ``pattern``, by hostname."""
        found = {}
        for page in self.pages("describe_source_servers", filters={}):
            for server in page["items"]:
                hostname = server["sourceProperties"]["identificationHints"]["hostname"]
                if re.fullmatch(pattern, hostname):
                    found[hostname] = server
        return dict(sorted(found.items()))

    def server(self, server_id):
        return self.describe_source_servers(filters={"sourceServerIDs": [server_id]})["items"][0]

    def job(self, job_id):
        return self.describe_jobs(filters={"jobIDs": [job_id]})["items"][0]

    def log(self, job_id):
        return [item for page in self.pages("describe_job_log_items", jobID=job_id) for item in page["items"]]

    def instances(self, server_ids):
        return self.describe_recovery_instances(filters={"sourceServerIDs": server_ids})["items"]


def advance(lab, seconds):
    lab.control("clock", {"advance_seconds": seconds})


def drill(drs, server_ids, **kwargs):
    return drs.start_recovery(sourceServers=[{"sourceServerID": i} for i in server_ids], isDrill=True, **kwargs)["job"]


def error_of(excinfo):
    response = excinfo.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def launch_statuses(job):
    return [server["launchStatus"] for server in job["participatingServers"]]


def test_a_drill_launches_recovery_instances_over_simulated_time_and_terminating_removes_them(lab):
    drs = Drs(lab, "us-east-1")
    ids = [server["sourceServerID"] for server in drs.servers(r"app-\d").values()]
    assert len(ids) == 3

    job = drill(drs, ids, tags={"Drill": "quarterly"})
    assert JOB_ID.match(job["jobID"])
    assert (job["type"], job["initiatedBy"], job["status"], job["tags"]) == ("LAUNCH", "START_DRILL", "PENDING", {"Drill": "quarterly"})
    assert launch_statuses(job) == ["PENDING"] * 3
    assert [server["sourceServerID"] for server in job["participatingServers"]] == ids
    pending = drs.server(ids[0])
    assert pending["lastLaunchResult"] == "PENDING"
    assert pending["lifeCycle"]["lastLaunch"] == {
        "initiated": {"apiCallDateTime": job["creationDateTime"], "jobID": job["jobID"], "type": "DRILL"},
        "status": "PENDING",
    }
    with pytest.raises(ClientError) as busy:
        drill(drs, ids[:1])
    assert error_of(busy) == ("ConflictException", 409)

    advance(lab, PENDING_SECONDS)
    started = drs.job(job["jobID"])
    assert (started["status"], launch_statuses(started)) == ("STARTED", ["IN_PROGRESS"] * 3)
    assert drs.instances(ids) == []

    advance(lab, LAUNCH_SECONDS)
    done = drs.job(job["jobID"])
    assert (done["status"], launch_statuses(done)) == ("COMPLETED", ["LAUNCHED"] * 3)
    assert done["endDateTime"] > done["creationDateTime"]
    launched = {server["sourceServerID"]: server["recoveryInstanceID"] for server in done["participatingServers"]}
    instances = drs.instances(ids)
    assert {instance["sourceServerID"]: instance["recoveryInstanceID"] for instance in instances} == launched
    for instance in instances:
        assert INSTANCE_ID.match(instance["recoveryInstanceID"])
        assert instance["ec2InstanceID"] == instance["recoveryInstanceID"]
        assert (instance["ec2InstanceState"], instance["jobID"], instance["isDrill"]) == ("RUNNING", job["jobID"], True)
        assert instance["originEnvironment"] == "ON_PREMISES"
    recovered = drs.server(ids[0])
    assert recovered["lastLaunchResult"] == "SUCCEEDED"
    assert recovered["recoveryInstanceId"] == launched[ids[0]]
    assert recovered["lifeCycle"]["lastLaunch"]["status"] == "LAUNCHED"

    events = [item["event"] for item in drs.log(job["jobID"])]
    assert events[0] == "JOB_START" and events[-1] == "JOB_END"
    assert [events.count(event) for event in ("SNAPSHOT_START", "CONVERSION_END", "LAUNCH_START")] == [3, 3, 3]
    targets = {item["eventData"]["sourceServerID"]: item["eventData"]["targetInstanceID"]
               for item in drs.log(job["jobID"]) if item["event"] == "LAUNCH_START"}
    assert targets == launched

    terminate = drs.terminate_recovery_instances(recoveryInstanceIDs=list(launched.values()))["job"]
    assert (terminate["type"], terminate["initiatedBy"], terminate["status"]) == ("TERMINATE", "TERMINATE_RECOVERY_INSTANCES", "PENDING")
    advance(lab, PENDING_SECONDS)
    assert {instance["ec2InstanceState"] for instance in drs.instances(ids)} == {"SHUTTING-DOWN"}
    advance(lab, TERMINATE_SECONDS)
    terminated = drs.job(terminate["jobID"])
    assert (terminated["status"], launch_statuses(terminated)) == ("COMPLETED", ["TERMINATED"] * 3)
    assert drs.instances(ids) == []
    after = drs.server(ids[0])
    assert "recoveryInstanceId" not in after
    assert (after["lastLaunchResult"], after["lifeCycle"]["lastLaunch"]["status"]) == ("SUCCEEDED", "TERMINATED")
    assert [item["event"] for item in drs.log(terminate["jobID"])] == (
        ["JOB_START"] + ["CLEANUP_START"] * 3 + ["CLEANUP_END"] * 3 + ["JOB_END"])


@pytest.mark.parametrize("group, event, error", [
    ("template", "LAUNCH_FAILED", "InvalidParameterValue"),
    ("quota", "LAUNCH_FAILED", "VcpuLimitExceeded"),
    ("nopit", "SERVER_SKIPPED", "no point in time"),
    ("syncing", "SERVER_SKIPPED", "no point in time"),  # not yet CONTINUOUS: DRS has nothing to launch from
])
def test_a_launch_fails_for_the_reason_the_scenario_sets_and_the_job_log_says_why(lab, group, event, error):
    drs = Drs(lab, "us-east-1")
    server_id = drs.servers(f"{group}-001")[f"{group}-001"]["sourceServerID"]
    job = drill(drs, [server_id])
    advance(lab, PENDING_SECONDS + LAUNCH_SECONDS)
    assert launch_statuses(drs.job(job["jobID"])) == ["FAILED"]
    failures = [item for item in drs.log(job["jobID"]) if item["event"] in ("LAUNCH_FAILED", "SERVER_SKIPPED")]
    assert [item["event"] for item in failures] == [event]
    assert failures[0]["eventData"]["sourceServerID"] == server_id
    assert error in failures[0]["eventData"]["rawError"]
    assert drs.instances([server_id]) == []
    failed = drs.server(server_id)
    assert (failed["lastLaunchResult"], failed["lifeCycle"]["lastLaunch"]["status"]) == ("FAILED", "FAILED")
    assert "recoveryInstanceId" not in failed


def test_a_server_still_in_initial_sync_has_no_points_in_time(lab):
    drs = Drs(lab, "us-east-1")
    syncing = drs.servers("syncing-001")["syncing-001"]
    assert syncing["dataReplicationInfo"]["dataReplicationState"] == "INITIAL_SYNC"
    assert drs.describe_recovery_snapshots(sourceServerID=syncing["sourceServerID"])["items"] == []
    replicating = drs.servers("app-1")["app-1"]
    assert drs.describe_recovery_snapshots(sourceServerID=replicating["sourceServerID"])["items"]


def test_the_control_api_changes_how_an_instances_launches_go(lab):
    drs = Drs(lab, "us-east-1")
    server = drs.servers("switch-001")["switch-001"]
    server_id, instance_id = server["sourceServerID"], server["sourceProperties"]["identificationHints"]["awsInstanceID"]
    lab.control("recovery", {"instance_ids": [instance_id], "launch": "fails:quota", "launch_seconds": 1200})
    slow = drill(drs, [server_id])
    advance(lab, PENDING_SECONDS + 1000)
    assert launch_statuses(drs.job(slow["jobID"])) == ["IN_PROGRESS"]
    advance(lab, 200)
    assert launch_statuses(drs.job(slow["jobID"])) == ["FAILED"]

    lab.control("recovery", {"instance_ids": [instance_id], "launch": "ok"})
    recovery = drs.start_recovery(sourceServers=[{"sourceServerID": server_id}])["job"]
    assert recovery["initiatedBy"] == "START_RECOVERY"
    advance(lab, PENDING_SECONDS + 1200)
    assert launch_statuses(drs.job(recovery["jobID"])) == ["LAUNCHED"]
    assert [instance["isDrill"] for instance in drs.instances([server_id])] == [False]
    assert drs.server(server_id)["lifeCycle"]["lastLaunch"]["initiated"]["type"] == "RECOVERY"

    for body in ({"instance_ids": [instance_id], "launch": "fails:gremlins"}, {"instance_ids": ["i-0000000000000000f"], "launch": "ok"},
                 {"instance_ids": [instance_id]}):
        with pytest.raises(urllib.error.HTTPError) as refused:
            lab.control("recovery", body)
        assert refused.value.code == 400


def test_a_drill_from_a_chosen_point_in_time_uses_that_snapshot(lab):
    drs = Drs(lab, "us-east-1")
    server_id = drs.servers("chosen-1")["chosen-1"]["sourceServerID"]
    oldest = drs.describe_recovery_snapshots(sourceServerID=server_id, order="ASC", maxResults=1)["items"][0]
    job = drs.start_recovery(sourceServers=[{"sourceServerID": server_id, "recoverySnapshotID": oldest["snapshotID"]}],
                             isDrill=True)["job"]
    advance(lab, PENDING_SECONDS + LAUNCH_SECONDS)
    [instance] = drs.instances([server_id])
    assert instance["pointInTimeSnapshotDateTime"] == oldest["expectedTimestamp"]
    assert "USING_PREVIOUS_SNAPSHOT" in [item["event"] for item in drs.log(job["jobID"])]


def test_unknown_ids_are_not_found_and_an_uninitialized_region_refuses_every_operation(lab):
    drs = Drs(lab, "us-east-1")
    calls = {
        "StartRecovery": lambda client: client.start_recovery(sourceServers=[{"sourceServerID": "s-0000000000000000f"}]),
        "TerminateRecoveryInstances": lambda client: client.terminate_recovery_instances(recoveryInstanceIDs=["i-0000000000000000f"]),
        "DescribeJobLogItems": lambda client: client.describe_job_log_items(jobID="drsjob-0000000000000000f"),
        "DescribeRecoverySnapshots": lambda client: client.describe_recovery_snapshots(sourceServerID="s-0000000000000000f"),
    }
    for name, call in calls.items():
        with pytest.raises(ClientError) as unknown:
            call(drs.client)
        assert error_of(unknown) == ("ResourceNotFoundException", 404), name
    uninitialized = lab.client("drs", "ca-central-1")
    calls["DescribeJobs"] = lambda client: client.describe_jobs()
    calls["DescribeRecoveryInstances"] = lambda client: client.describe_recovery_instances()
    for name, call in calls.items():
        with pytest.raises(ClientError) as refused:
            call(uninitialized)
        assert error_of(refused) == ("UninitializedAccountException", 400), name


# --- job limits ---------------------------------------------------------------------------------------

def assert_quota_refusal(excinfo, resource_type, limit_words):
    assert error_of(excinfo) == ("ServiceQuotaExceededException", 402)
    response = excinfo.value.response
    assert (response["serviceCode"], response["resourceType"]) == ("drs", resource_type)
    assert limit_words in response["Error"]["Message"]


def test_a_job_takes_at_most_100_source_servers(lab):
    drs = Drs(lab, "us-west-2")
    ids = [server["sourceServerID"] for server in drs.servers(r"bulk-\d+").values()]
    with pytest.raises(ClientError) as too_many:
        drill(drs, ids[:101])
    assert_quota_refusal(too_many, "SourceServer", "at most 100 source servers")


def test_jobs_in_progress_take_at_most_500_source_servers_between_them(lab):
    drs = Drs(lab, "us-west-2")
    ids = [server["sourceServerID"] for server in drs.servers(r"bulk-\d+").values()]
    for start in range(0, 500, 100):
        drill(drs, ids[start:start + 100])
    with pytest.raises(ClientError) as over:
        drill(drs, ids[500:501])
    assert_quota_refusal(over, "SourceServer", "500 source servers in all active jobs")

    advance(lab, PENDING_SECONDS + LAUNCH_SECONDS)  # every job completes
    assert drill(drs, ids[500:510])["status"] == "PENDING"


def test_at_most_20_jobs_run_at_once(lab):
    drs = Drs(lab, "eu-west-1")
    ids = [server["sourceServerID"] for server in drs.servers(r"busy-\d+").values()]
    for server_id in ids[:20]:
        drill(drs, [server_id])
    with pytest.raises(ClientError) as crowded:
        drill(drs, ids[20:])
    assert_quota_refusal(crowded, "Job", "20 concurrent jobs")


# --- paging -----------------------------------------------------------------------------------------------

def test_jobs_instances_log_items_and_snapshots_page_without_repeats(lab):
    drs = Drs(lab, "eu-central-1")
    ids = [server["sourceServerID"] for server in drs.servers(r"paged-\d+").values()]
    jobs = [drill(drs, ids[start:start + 2])["jobID"] for start in range(0, 12, 2)]
    advance(lab, PENDING_SECONDS + LAUNCH_SECONDS)

    paged_jobs = [job["jobID"] for page in drs.pages("describe_jobs", PaginationConfig={"PageSize": 4}) for job in page["items"]]
    assert paged_jobs == jobs
    assert [job["jobID"] for job in drs.describe_jobs(filters={"jobIDs": jobs[1:3]})["items"]] == jobs[1:3]
    created = drs.job(jobs[0])["creationDateTime"]
    assert [job["jobID"] for job in drs.describe_jobs(filters={"toDate": created})["items"]][:1] == jobs[:1]
    assert drs.describe_jobs(filters={"toDate": "2000-01-01T00:00:00Z"})["items"] == []

    instances = [item["recoveryInstanceID"]
                 for page in drs.pages("describe_recovery_instances", PaginationConfig={"PageSize": 5}) for item in page["items"]]
    assert len(instances) == len(set(instances)) == 12
    chosen = drs.describe_recovery_instances(filters={"recoveryInstanceIDs": instances[:2]})["items"]
    assert [item["recoveryInstanceID"] for item in chosen] == instances[:2]

    whole_log = drs.describe_job_log_items(jobID=jobs[0])["items"]
    paged_log = [item for page in drs.pages("describe_job_log_items", jobID=jobs[0], PaginationConfig={"PageSize": 3})
                 for item in page["items"]]
    assert paged_log == whole_log and len(whole_log) > 3

    server_id = ids[0]
    everything = drs.describe_recovery_snapshots(sourceServerID=server_id)["items"]
    ascending = [item for page in drs.pages("describe_recovery_snapshots", sourceServerID=server_id, order="ASC",
                                            PaginationConfig={"PageSize": 7}) for item in page["items"]]
    descending = [item for page in drs.pages("describe_recovery_snapshots", sourceServerID=server_id, order="DESC",
                                             PaginationConfig={"PageSize": 7}) for item in page["items"]]
    assert ascending == everything and descending == everything[::-1]
    # a week of daily, a day of hourly and an hour of ten-minute points, as the default policy keeps them
    assert 6 + 23 + 6 <= len(everything) <= 7 + 24 + 7
    times = [item["expectedTimestamp"] for item in everything]
    assert times == sorted(times)
    window = drs.describe_recovery_snapshots(sourceServerID=server_id, filters={"fromDateTime": times[2], "toDateTime": times[4]})
    assert [item["expectedTimestamp"] for item in window["items"]] == times[2:5]
