# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A recovery drill, wave by wave: launch drill instances of each wave's source servers, measure the wave's
recovery time, explain each launch failure, then terminate the drill's recovery instances.

The estate is the rollout's: the same accounts, tags and waves (``Rollout.survey``). Each instance's source
server is looked up once, with one DescribeSourceServers listing per staging account-region. A wave starts when
the one before it has ended; its servers go out in jobs of at most 100, as many at once as DRS allows in each
account-region (20 jobs, 500 servers). Its recovery time runs from its first job's creation to the end of its
last job, as DRS stamps them. Every look is one DescribeJobs per account-region with jobs running.
"""

import datetime
import uuid

try:
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass  # the action reports a missing botocore

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import history
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import inputs
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import metrics
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import recovery
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.install import error_code
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.source_servers import is_stale
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.source_servers import list_source_servers
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.source_servers import servers_by_instance_id
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.record import TTL_DAYS
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.settings import ARGUMENT_SPEC as ROLLOUT_SPEC
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.settings import ESTATE_SPEC
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.settings import setting_errors as rollout_setting_errors
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.summary import write_json

# The settings a drill shares with the rollout besides the estate's.
ROLLOUT_OPTIONS = ("waves", "progress_interval", "poll_interval", "summary_file", "history_table", "history_region",
                   "history_spool_dir", "metrics_namespace", "variable_prefix")
DRILL_OPTIONS = dict(
    rto_seconds=dict(type="int", default=0),
    launch_timeout=dict(type="int", default=3600),
    terminate_timeout=dict(type="int", default=1800),
    keep_recovery_instances=dict(type="bool", default=False),
    session_name=dict(type="str", default="drs-drill"),
)
ARGUMENT_SPEC = dict(ESTATE_SPEC, **{option: ROLLOUT_SPEC[option] for option in ROLLOUT_OPTIONS}, **DRILL_OPTIONS)
ROLE_OUTPUTS = ("drill",)
RECORD_TYPE = "drill"
DRILL_TAG = "drs-drill"
# Outcomes of a server in a drill.
LAUNCHED = "launched"
FAILED = "failed"
TIMED_OUT = "timed_out"
NOT_PROTECTED = "not_protected"
STOPPED = "stopped"


def rollout_settings(settings):
    """The drill's settings with the rollout's defaults for the rest, as ``Rollout.survey`` reads them."""
    full = {option: spec.get("default") for option, spec in ROLLOUT_SPEC.items()}
    full.update(settings)
    # the servers of an account with a target account are recovered there: its role is assumed too
    full["auto_extend_source_servers"] = any(account.get("target_account_id") for account in settings["accounts"])
    return full


def recovery_place(place):
    """(account, region) where the servers of ``place`` are recovered: its target account, where they are
    extended to, or else the staging account they register in."""
    return (place.extend_into or place.staging_account_id, place.drs_region)


def setting_errors(settings, name):
    """Every problem with the drill's settings (the estate's rules are the rollout's), before any AWS call."""
    errors = rollout_setting_errors(settings, name)
    errors.append(inputs.seconds_error(name("rto_seconds"), settings["rto_seconds"], minimum=0))
    errors.append(inputs.seconds_error(name("launch_timeout"), settings["launch_timeout"]))
    errors.append(inputs.seconds_error(name("terminate_timeout"), settings["terminate_timeout"]))
    return [error for error in errors if error]


class Server:
    """One instance's source server in the drill."""

    def __init__(self, instance, key, server):
        self.instance = instance
        self.key = key  # (account holding the server, its region)
        self.server_id = server["sourceServerID"]
        self.outcome = None
        self.recovery_instance_id = None
        self.reason = None
        self.category = None
        self.remediation = None

    def entry(self):
        entry = {"instance_id": self.instance.instance_id, "name": self.instance.name, "source_server_id": self.server_id,
                 "status": self.outcome, "recovery_instance_id": self.recovery_instance_id}
        if self.reason:
            entry.update(reason=self.reason, error_category=self.category, remediation=self.remediation)
        return entry


class Drill:
    """One drill of the waves of ``plan``. ``settings``: the drill action's (rto_seconds, launch_timeout,
    terminate_timeout, keep_recovery_instances, poll_interval, progress_interval, history_table, metrics_namespace,
    summary_file); ``show(lines)`` prints; ``stop`` is an Event set when the run must stop."""

    def __init__(self, plan, sessions, settings, clock, show, stop, pool):
        self.plan = plan
        self.sessions = sessions
        self.settings = settings
        self.clock = clock
        self.show = show
        self.stop = stop
        self.pool = pool
        self.drill_id = str(uuid.uuid4())
        self.started_at = datetime.datetime.now(datetime.timezone.utc)
        self.waves = []
        self.launched = {}  # key -> recovery instance ids this drill launched
        self.terminated = 0
        self.termination = None

    # --- the drill ---

    def run(self, check_mode):
        servers = self._servers()
        if check_mode:
            return self._plan_only(servers)
        try:
            for wave in self.plan.waves:
                if self.stop.is_set():
                    break
                self.waves.append(self._drill_wave(wave, servers))
        finally:
            self._terminate()
        return self._finish()

    def _servers(self):
        """{instance id: Server} of every planned instance that has a live source server."""
        keys = {recovery_place(place) for wave in self.plan.waves for place in wave.places}
        futures = {key: self.pool.submit(self._list, key) for key in keys}
        listed = {key: future.result() for key, future in futures.items()}
        servers = {}
        for wave in self.plan.waves:
            for place in wave.places:
                key = recovery_place(place)
                for instance in place.instances:
                    server = listed[key].get(instance.instance_id)
                    if server is not None:
                        servers[instance.instance_id] = Server(instance, key, server)
        return servers

    def _list(self, key):
        account_id, region = key
        servers = list_source_servers(self.sessions.client(account_id, "drs", region))
        return {iid: server for iid, server in servers_by_instance_id(servers).items() if not is_stale(server)}

    def _plan_only(self, servers):
        waves = []
        for wave in self.plan.waves:
            members = [servers[i.instance_id] for i in wave.instances if i.instance_id in servers]
            by_key = {}
            for server in members:
                by_key.setdefault(server.key, []).append(server.server_id)
            waves.append({"wave": wave.number, "servers": len(members),
                          "not_protected": len(wave.instances) - len(members),
                          "jobs": sum(len(recovery.job_batches(ids)) for ids in by_key.values())})
            self.show([f"Wave {wave.number}: would launch drill instances of {len(members)} server(s) in "
                       f"{waves[-1]['jobs']} job(s); {waves[-1]['not_protected']} instance(s) have no source server"])
        return {"changed": any(wave["servers"] for wave in waves), "drill": {"waves": waves, "check_mode": True}}

    def _drill_wave(self, wave, servers):
        members = [servers[i.instance_id] for i in wave.instances if i.instance_id in servers]
        unprotected = [{"instance_id": i.instance_id, "name": i.name, "status": NOT_PROTECTED,
                        "reason": "no replicating DRS source server (deploy the agent first)"}
                       for i in wave.instances if i.instance_id not in servers]
        queued = {}
        for server in members:
            queued.setdefault(server.key, []).append(server)
        batches = {key: [group[start:start + recovery.SERVERS_PER_JOB]
                         for start in range(0, len(group), recovery.SERVERS_PER_JOB)] for key, group in queued.items()}
        active = {key: {} for key in batches}  # key -> job id -> its servers
        jobs, ended = [], []
        started = self.clock.now()
        deadline = started + self.settings["launch_timeout"]
        shown_at = None
        self.show([f"Wave {wave.number}: drilling {len(members)} server(s) in {sum(len(b) for b in batches.values())} "
                   f"job(s)" + (f"; {len(unprotected)} instance(s) have no source server" if unprotected else "")])
        while True:
            for key in batches:
                self._start_jobs(wave, key, batches[key], active[key], jobs)
            now = self.clock.now()
            waiting = [key for key in batches if batches[key] or active[key]]
            if not waiting or self.stop.is_set() or now >= deadline:
                break
            if self.clock.wait(min(self.settings["poll_interval"], deadline - now), self.stop):
                break
            looks = [self.pool.submit(self._look, key, active[key]) for key in waiting if active[key]]
            for future in looks:
                ended.extend(future.result())
            now = self.clock.now()
            if shown_at is None or now - shown_at >= self.settings["progress_interval"]:
                shown_at = now
                self.show([self._progress(wave, members, now - started)])
        why = STOPPED if self.stop.is_set() else TIMED_OUT
        for server in members:
            if server.outcome is None:
                server.outcome = why
                server.reason = (f"not launched within {self.settings['launch_timeout']} s" if why == TIMED_OUT
                                 else "the drill was stopped")
        return self._wave_figures(wave, members, unprotected, jobs, ended)

    def _start_jobs(self, wave, key, batches, active, jobs):
        drs = self.sessions.client(key[0], "drs", key[1])
        while batches:
            batch = batches[0]
            if not recovery.room_for(len(batch), len(active), sum(len(group) for group in active.values())):
                return
            try:
                job = recovery.start_drill(drs, [server.server_id for server in batch],
                                           {DRILL_TAG: self.drill_id, "drs-drill-wave": str(wave.number)})
            except ClientError as error:
                if error_code(error) in recovery.LIMIT_ERRORS:
                    return  # DRS is busy with other jobs too: try again at the next look
                raise
            batches.pop(0)
            active[job["jobID"]] = batch
            jobs.append(job)

    def _look(self, key, active):
        """Read the account-region's active jobs; settle their servers; the jobs that ended."""
        drs = self.sessions.client(key[0], "drs", key[1])
        ended = []
        for job in recovery.describe_jobs(drs, list(active)):
            batch = active.get(job["jobID"])
            if batch is None:
                continue
            by_server = {entry["sourceServerID"]: entry for entry in job.get("participatingServers") or []}
            for server in batch:
                entry = by_server.get(server.server_id) or {}
                if entry.get("launchStatus") == recovery.LAUNCHED and server.outcome is None:
                    server.outcome = LAUNCHED
                    server.recovery_instance_id = entry.get("recoveryInstanceID")
                    if server.recovery_instance_id:
                        self.launched.setdefault(key, []).append(server.recovery_instance_id)
            if job.get("status") != recovery.COMPLETED:
                continue
            del active[job["jobID"]]
            ended.append(job)
            failed = [server for server in batch if server.outcome is None]
            if failed:
                reasons = recovery.failure_reasons(recovery.job_log(drs, job["jobID"]))
                for server in failed:
                    server.outcome = FAILED
                    server.reason = reasons.get(server.server_id) or "the launch failed (the job log gives no reason)"
                    server.category, server.remediation = recovery.classify_failure(server.reason)
        return ended

    def _progress(self, wave, members, seconds):
        counts = {}
        for server in members:
            counts[server.outcome or "launching"] = counts.get(server.outcome or "launching", 0) + 1
        shown = ", ".join(f"{count} {outcome}" for outcome, count in sorted(counts.items()))
        return f"Wave {wave.number} drill: {shown} ({int(seconds)} s of at most {self.settings['launch_timeout']} s)"

    def _wave_figures(self, wave, members, unprotected, started_jobs, ended_jobs):
        counts = {outcome: sum(1 for server in members if server.outcome == outcome)
                  for outcome in (LAUNCHED, FAILED, TIMED_OUT, STOPPED)}
        seconds = None
        if started_jobs and len(ended_jobs) == len(started_jobs):
            first = min(_moment(job["creationDateTime"]) for job in started_jobs)
            last = max(_moment(job["endDateTime"]) for job in ended_jobs)
            seconds = round((last - first).total_seconds(), 1)
        rto = self.settings["rto_seconds"] or None
        over_rto = rto is not None and members and (seconds is None or seconds > rto)
        figures = {"wave": wave.number, "servers": len(members), "launched": counts[LAUNCHED],
                   "failed": counts[FAILED], "timed_out": counts[TIMED_OUT], "stopped": counts[STOPPED],
                   "not_protected": len(unprotected), "jobs": len(started_jobs), "recovery_seconds": seconds,
                   "rto_seconds": rto, "over_rto": bool(over_rto),
                   "problems": [server.entry() for server in members if server.outcome != LAUNCHED] + unprotected}
        line = (f"Wave {wave.number} drill: {counts[LAUNCHED]} of {len(members)} launched"
                + (f", {counts[FAILED]} failed" if counts[FAILED] else "")
                + (f", {counts[TIMED_OUT]} not launched in time" if counts[TIMED_OUT] else "")
                + (f" in {seconds} s" if seconds is not None else ""))
        if rto is not None:
            line += f" (RTO {rto} s: {'EXCEEDED' if over_rto else 'met'})"
        lines = [line]
        for entry in figures["problems"]:
            if entry["status"] == NOT_PROTECTED:
                continue
            lines.append(f"    {entry['instance_id']} ({entry['source_server_id']}) {entry['status']}: {entry['reason']}"
                         + (f"; {entry['remediation']}" if entry.get("remediation") else ""))
        self.show(lines)
        return figures

    # --- the end ---

    def _terminate(self):
        """Terminate the drill's recovery instances (unless kept), in jobs within DRS's limits, and wait for DRS to
        end them; when the drill was stopped, as many as DRS takes at once are terminated without waiting."""
        launched = {key: ids for key, ids in self.launched.items() if ids}
        if self.settings["keep_recovery_instances"] or not launched:
            self.termination = "kept" if launched else None
            return
        queued = {key: recovery.job_batches(sorted(ids)) for key, ids in launched.items()}
        active = {key: {} for key in queued}
        failed = []
        deadline = self.clock.now() + self.settings["terminate_timeout"]
        while True:
            for key in queued:
                drs = self.sessions.client(key[0], "drs", key[1])
                while queued[key] and recovery.room_for(len(queued[key][0]), len(active[key]),
                                                        sum(len(ids) for ids in active[key].values())):
                    try:
                        job = recovery.terminate(drs, queued[key][0])
                    except ClientError as error:
                        if error_code(error) in recovery.LIMIT_ERRORS:
                            break
                        failed.append((key, sum(len(ids) for ids in queued[key]), error))
                        queued[key] = []
                        break
                    active[key][job["jobID"]] = queued[key].pop(0)
            pending = [key for key in queued if queued[key] or active[key]]
            if not pending or self.stop.is_set() or self.clock.now() >= deadline:
                break
            if self.clock.wait(min(self.settings["poll_interval"], deadline - self.clock.now()), self.stop):
                break
            for key in pending:
                if not active[key]:
                    continue
                for job in recovery.describe_jobs(self.sessions.client(key[0], "drs", key[1]), list(active[key])):
                    if job.get("status") == recovery.COMPLETED and job["jobID"] in active[key]:
                        self.terminated += len(active[key].pop(job["jobID"]))
        lines = [f"The drill's {count} recovery instance(s) in {key[0]}/{key[1]} could not be terminated: {error}; "
                 "terminate them in the DRS console." for key, count, error in failed]
        left = sum(len(ids) for key in queued for batch in (queued[key], list(active[key].values())) for ids in batch)
        if self.stop.is_set():
            self.termination = "requested"
        elif failed or left:
            self.termination = "incomplete"
            if left:
                lines.append(f"{left} drill recovery instance(s) were not terminated within "
                             f"{self.settings['terminate_timeout']} s: check them in the DRS console.")
        else:
            self.termination = "done"
            lines.append(f"Terminated the drill's {self.terminated} recovery instance(s).")
        self.show(lines)

    def _finish(self):
        finished_at = datetime.datetime.now(datetime.timezone.utc)
        summary = {
            "drill_id": self.drill_id, "started_at": history.iso(self.started_at), "finished_at": history.iso(finished_at),
            "stopped": self.stop.is_set(), "waves": self.waves, "termination": self.termination,
            "terminated": self.terminated,
            "totals": {key: sum(wave[key] for wave in self.waves)
                       for key in ("servers", "launched", "failed", "timed_out", "not_protected")},
        }
        summary["recorded"] = self._record(summary, finished_at)
        if self.settings["summary_file"]:
            write_json(self.settings["summary_file"], summary)
        problems = []
        over = [str(wave["wave"]) for wave in self.waves if wave["over_rto"]]
        if over:
            problems.append(f"Wave(s) {', '.join(over)} took longer than the RTO ({self.settings['rto_seconds']} s) "
                            "to recover.")
        unlaunched = summary["totals"]["failed"] + summary["totals"]["timed_out"]
        if unlaunched:
            problems.append(f"{unlaunched} server(s) did not launch (see each one's reason and remediation above).")
        if summary["stopped"]:
            problems.append("The drill was stopped; termination of its launched recovery instances was requested.")
        elif self.termination == "incomplete":
            problems.append("Some of the drill's recovery instances were not terminated (see above).")
        result = {"changed": bool(summary["totals"]["launched"] or any(wave["jobs"] for wave in self.waves)),
                  "drill": summary}
        if problems:
            result.update(failed=True, msg=" ".join(problems))
        return result

    def _record(self, summary, finished_at):
        """The drill in the history (its own record type) and in CloudWatch; what was recorded, as text."""
        table = self.settings["history_table"]
        said = []
        if table:
            item = {"deployment_id": f"drill#{self.drill_id}", "timestamp": summary["started_at"],
                    "record_type": RECORD_TYPE, "run_id": self.drill_id, "revision": 1,
                    "started_at": summary["started_at"], "finished_at": summary["finished_at"],
                    "updated_at": summary["finished_at"], "status": "stopped" if summary["stopped"] else "finished",
                    "waves": [{key: wave[key] for key in wave if key != "problems"} for wave in self.waves],
                    "totals": summary["totals"],
                    "ttl": int(finished_at.timestamp()) + TTL_DAYS * 86400}
            store = history.Store(self.sessions.client(None, "dynamodb", self.settings["history_region"],
                                                       retry=history.WRITE_RETRY),
                                  table, self.settings["history_spool_dir"] or history.DEFAULT_SPOOL_DIR, self.show_warning)
            written = store.write([item])
            said.append(f"history table {table}" + (" (spooled: the table could not be written)"
                                                    if written["spooled"] else ""))
        if self.settings["metrics_namespace"]:
            data = metrics.drill_metrics(self.waves, finished_at)
            try:
                metrics.put(self.sessions.client(None, "cloudwatch", self.settings["history_region"]),
                            self.settings["metrics_namespace"], data)
                said.append(f"CloudWatch {self.settings['metrics_namespace']}")
            except (BotoCoreError, ClientError) as error:
                self.show_warning(f"The drill's metrics could not be sent: {error}")
        return said

    def show_warning(self, text):
        self.show([f"[WARNING] {text}"])


def _moment(value):
    return history.parse_time("DRS job time", value)
