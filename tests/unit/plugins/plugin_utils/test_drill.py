"""The drill's own logic on a fake DRS that keeps DRS's job limits: jobs of at most 100 servers, 20 jobs and
500 servers at once, waves in order, recovery time from DRS's stamps, failures explained, instances terminated."""

import concurrent.futures
import datetime
import threading

from botocore.exceptions import ClientError

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import metrics
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import recovery
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils import drill
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout import plan as planning

EPOCH = datetime.datetime(2026, 12, 1, tzinfo=datetime.timezone.utc)
ACCOUNT = "222222222222"


class Clock:
    def __init__(self):
        self.time = 0.0

    def now(self):
        return self.time

    def wait(self, seconds, event):
        self.time += max(seconds, 0)
        return event.is_set()


def stamp(seconds):
    return (EPOCH + datetime.timedelta(seconds=seconds)).isoformat()


class FakeDrs:
    """Drill jobs that launch each server after ``launch_seconds`` (or fail it with ``failures[server]``)."""

    def __init__(self, clock, servers, launch_seconds=300, failures=None, busy=0):
        self.clock, self.servers, self.launch_seconds = clock, servers, launch_seconds
        self.failures = failures or {}
        self.jobs, self.calls, self.peak = {}, {}, (0, 0)
        self.busy = busy  # StartRecovery refusals to answer first (another tool's jobs)
        self.terminated = []

    def _count(self, name):
        self.calls[name] = self.calls.get(name, 0) + 1

    def describe_source_servers(self, aws_retry, maxResults, filters=None, nextToken=None):
        self._count("DescribeSourceServers")
        return {"items": [{"sourceServerID": server_id, "sourceProperties": {"identificationHints": {
            "awsInstanceID": instance_id}}, "dataReplicationInfo": {"dataReplicationState": "CONTINUOUS"}}
            for instance_id, server_id in self.servers.items()]}

    def _active(self):
        return [job for job in self.jobs.values() if self._status(job) != "COMPLETED"]

    def _status(self, job):
        return "COMPLETED" if self.clock.now() >= job["at"] + self.launch_seconds else "STARTED"

    def start_recovery(self, aws_retry, sourceServers, isDrill, tags):
        self._count("StartRecovery")
        assert isDrill and len(sourceServers) <= recovery.SERVERS_PER_JOB
        active = self._active()
        servers = sum(len(job["servers"]) for job in active) + len(sourceServers)
        if self.busy or len(active) >= 20 or servers > 500:
            self.busy = max(self.busy - 1, 0)
            raise ClientError({"Error": {"Code": "ServiceQuotaExceededException", "Message": "too many jobs"}},
                              "StartRecovery")
        job_id = f"drsjob-{len(self.jobs):017d}"
        self.jobs[job_id] = {"at": self.clock.now(), "servers": [entry["sourceServerID"] for entry in sourceServers],
                             "tags": tags}
        self.peak = (max(self.peak[0], len(active) + 1), max(self.peak[1], servers))
        return {"job": self._shape(job_id)}

    def _shape(self, job_id):
        job = self.jobs[job_id]
        done = self._status(job) == "COMPLETED"
        shape = {"jobID": job_id, "status": self._status(job), "creationDateTime": stamp(job["at"]),
                 "participatingServers": [
                     {"sourceServerID": server_id, "recoveryInstanceID": f"i-{server_id[-8:]}" if done else None,
                      "launchStatus": ("FAILED" if server_id in self.failures else "LAUNCHED") if done else "IN_PROGRESS"}
                     for server_id in job["servers"]]}
        if done:
            shape["endDateTime"] = stamp(job["at"] + self.launch_seconds)
        return shape

    def describe_jobs(self, aws_retry, filters, maxResults, nextToken=None):
        self._count("DescribeJobs")
        return {"items": [self._shape(job_id) for job_id in filters["jobIDs"] if job_id in self.jobs]}

    def describe_job_log_items(self, aws_retry, jobID, maxResults, nextToken=None):
        self._count("DescribeJobLogItems")
        return {"items": [{"event": "LAUNCH_FAILED", "eventData": {"sourceServerID": server_id, "rawError": reason}}
                          for server_id, reason in self.failures.items() if server_id in self.jobs[jobID]["servers"]]}

    def terminate_recovery_instances(self, aws_retry, recoveryInstanceIDs):
        self._count("TerminateRecoveryInstances")
        active = self._active()
        if len(recoveryInstanceIDs) > recovery.SERVERS_PER_JOB or len(active) >= 20 or sum(
                len(job["servers"]) for job in active) + len(recoveryInstanceIDs) > 500:
            raise ClientError({"Error": {"Code": "ServiceQuotaExceededException", "Message": "too many"}},
                              "TerminateRecoveryInstances")
        self.terminated.extend(recoveryInstanceIDs)
        job_id = f"drsjob-t{len(self.jobs):016d}"
        self.jobs[job_id] = {"at": self.clock.now() - self.launch_seconds + 60, "servers": list(recoveryInstanceIDs),
                             "tags": {}}
        return {"job": self._shape(job_id)}


class Sessions:
    def __init__(self, drs):
        self.drs = drs

    def client(self, account_id, service, region, retry=None):
        assert service == "drs"
        return self.drs


def estate(waves):
    """A plan of one account-region with ``waves`` ({wave: instance count}); the fake's servers of them."""
    account = {"account_id": ACCOUNT, "regions": ["us-east-1"]}
    plan_waves, servers, count = [], {}, 0
    for number, size in waves.items():
        place = planning.Place(account, "us-east-1", number)
        for _index in range(size):
            instance_id = f"i-{count:017x}"
            place.instances.append(planning.Instance({"instance_id": instance_id, "name": f"web-{count}",
                                                      "wave": number}, ACCOUNT, "us-east-1"))
            servers[instance_id] = f"s-{count:017x}"
            count += 1
        plan_waves.append(planning.Wave(number, [place]))
    return planning.Plan("same_account", plan_waves, [], [], [], count, sorted(waves)), servers


def settings(**overrides):
    values = {"rto_seconds": 0, "launch_timeout": 3600, "terminate_timeout": 1800, "keep_recovery_instances": False,
              "poll_interval": 30, "progress_interval": 60, "history_table": "", "metrics_namespace": "",
              "summary_file": "", "history_region": "us-east-1", "history_spool_dir": ""}
    values.update(overrides)
    return values


def run_drill(plan, drs, clock, check_mode=False, **overrides):
    shown = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        result = drill.Drill(plan, Sessions(drs), settings(**overrides), clock, shown.extend, threading.Event(),
                             pool).run(check_mode)
    return result, shown


def test_a_large_wave_goes_out_in_jobs_within_drs_limits_and_waves_in_order():
    clock = Clock()
    plan, servers = estate({1: 650, 2: 30})
    drs = FakeDrs(clock, servers, launch_seconds=300)
    result, _shown = run_drill(plan, drs, clock)
    one, two = result["drill"]["waves"]
    assert (one["servers"], one["launched"], one["jobs"]) == (650, 650, 7)
    # 500 servers across active jobs: the sixth and seventh jobs waited for the first ones to end
    assert drs.peak == (5, 500)
    assert one["recovery_seconds"] == 600.0 and two["recovery_seconds"] == 300.0
    jobs = sorted(drs.jobs.values(), key=lambda job: job["at"])
    wave_two = [job for job in jobs if job["tags"].get("drs-drill-wave") == "2"]
    assert min(job["at"] for job in wave_two) >= max(job["at"] + 300 for job in jobs if job["tags"].get(
        "drs-drill-wave") == "1")
    assert sorted(drs.terminated) == sorted(f"i-{server[-8:]}" for server in servers.values())
    assert result["drill"]["termination"] == "done" and result["drill"]["terminated"] == 680
    assert not result.get("failed")


def test_a_launch_failure_is_explained_and_a_wave_over_its_rto_fails_the_drill():
    clock = Clock()
    plan, servers = estate({1: 3})
    failing = sorted(servers.values())[0]
    drs = FakeDrs(clock, servers, launch_seconds=900,
                  failures={failing: "Failed to launch: the launch template's subnet does not exist"})
    result, shown = run_drill(plan, drs, clock, rto_seconds=600)
    [wave] = result["drill"]["waves"]
    assert (wave["launched"], wave["failed"], wave["over_rto"]) == (2, 1, True)
    [problem] = wave["problems"]
    assert problem["source_server_id"] == failing and problem["error_category"] == "launch_template"
    assert "launch template" in problem["remediation"]
    assert result["failed"] and "longer than the RTO (600 s)" in result["msg"] and "1 server(s) did not launch" in result["msg"]
    assert any("RTO 600 s: EXCEEDED" in line for line in shown)
    assert drs.calls["DescribeJobLogItems"] == 1


def test_looks_do_not_grow_with_the_servers_and_a_busy_drs_is_waited_for():
    clock = Clock()
    plan, servers = estate({1: 100})
    drs = FakeDrs(clock, servers, launch_seconds=300, busy=2)
    result, _shown = run_drill(plan, drs, clock, terminate_timeout=600)
    assert result["drill"]["waves"][0]["launched"] == 100
    assert drs.calls["StartRecovery"] == 3
    # one DescribeJobs a look (and the terminate job's): not one per server
    assert drs.calls["DescribeJobs"] <= 300 // 30 + 3 + 600 // 30


def test_check_mode_counts_jobs_and_launches_nothing():
    clock = Clock()
    plan, servers = estate({1: 250, 2: 1})
    del servers[sorted(servers)[0]]
    drs = FakeDrs(clock, servers)
    result, _shown = run_drill(plan, drs, clock, check_mode=True)
    assert result["drill"]["waves"] == [{"wave": 1, "servers": 249, "not_protected": 1, "jobs": 3},
                                        {"wave": 2, "servers": 1, "not_protected": 0, "jobs": 1}]
    assert "StartRecovery" not in drs.calls


def test_kept_recovery_instances_are_not_terminated():
    clock = Clock()
    plan, servers = estate({1: 2})
    drs = FakeDrs(clock, servers)
    result, _shown = run_drill(plan, drs, clock, keep_recovery_instances=True)
    assert drs.terminated == [] and result["drill"]["termination"] == "kept"


def test_the_drill_metrics_give_each_wave_and_the_slowest_without_dimensions():
    waves = [{"wave": 1, "recovery_seconds": 600.0, "failed": 1, "timed_out": 0},
             {"wave": 2, "recovery_seconds": 900.0, "failed": 0, "timed_out": 2}]
    data = metrics.drill_metrics(waves, EPOCH)
    by_key = {(entry["MetricName"], tuple(d["Value"] for d in entry["Dimensions"])): entry["Value"] for entry in data}
    assert by_key == {("DrillRecoverySeconds", ()): 900.0, ("DrillRecoverySeconds", ("1",)): 600.0,
                      ("DrillRecoverySeconds", ("2",)): 900.0, ("DrillLaunchFailures", ("1",)): 1.0,
                      ("DrillLaunchFailures", ("2",)): 2.0}
