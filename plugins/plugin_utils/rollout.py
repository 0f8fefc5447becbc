# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A wave-by-wave rollout of DRS agents, run on the controller by the ``drs_rollout`` action.

The one owner of the rollout's data: sessions (roles assumed at once), discovery of every account-region at
once, the plan, each wave's installs in every account-region at once (the install engine of module_utils,
in this process), the wave gate, extension into target accounts, the run's record in the history table from
its start, the summary. The details are in the private ``_rollout`` package: its settings and their checks,
the plan, the record, the extension runs, the summary and what the console shows.
"""

import concurrent.futures
import contextlib
import datetime
import gc
import uuid

try:
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass  # the action reports a missing botocore

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import history
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import install
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import outcomes
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import replication
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.discovery import INSTANCE_STATES_DEPLOYED
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.discovery import discover
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.tags import check_tag_filters
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout import console
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout import extend
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout import plan_file
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.plan import accounts_of_hosts
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.plan import build_plan
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.plan import empty_reason
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.plan import in_scope
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.plan import kept_of
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.plan import roles_for
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.record import RunRecord
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.summary import extension_summary
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.summary import summarize
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.summary import write_json
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.verify import unhealthy_lines
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.verify import verify_wave
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils.sessions import Sessions

# SSM readiness read at discovery is used for a wave's sends while it is younger than this (clock seconds).
SSM_FRESH_SECONDS = 600
# How long a wave waits for another run's send lock on one of its account-regions.
LOCK_WAIT_SECONDS = 600
DISCOVERY_PERMISSIONS = "ec2:DescribeInstances and ssm:DescribeInstanceInformation"
# Objects allocated between two young collections while the survey runs (Python's default is 700).
SURVEY_COLLECTION_THRESHOLD = 100_000


@contextlib.contextmanager
def built_to_last():
    """Build what lives as long as the run (sessions, clients, the plan of every instance) with Python's cyclic
    garbage collector running rarely, then set it aside (gc.freeze), so that later collections do not scan it
    again. At 30,000 instances each full collection over it took about a second, dozens of times a run, most of
    them while discovery parsed EC2's answers. Young collections still run, every SURVEY_COLLECTION_THRESHOLD new
    objects, and collect the garbage in cycles as it comes: a full collection at the end found some 6,000 objects
    left, gave no resident memory back, and took up to a second before the first install, so none is made. The
    run's process is the task's own (ansible-playbook forks one per task), which ends with the task."""
    thresholds = gc.get_threshold()
    gc.set_threshold(SURVEY_COLLECTION_THRESHOLD, *thresholds[1:])
    try:
        yield
    finally:
        gc.freeze()
        gc.set_threshold(*thresholds)


class Rollout:
    """One run. ``settings``: the checked settings of the action (see _rollout.settings); ``name`` names
    settings in messages; ``display`` has ``display(text)`` and ``warning(text)``; ``stop`` is an Event set
    when the run must stop (signal, controller gone), with the reason in ``stop_reason``."""

    def __init__(self, settings, name, clock, display, stop, check_mode):
        self.settings = settings
        self.name = name
        self.clock = clock
        self.display = display
        self.stop = stop
        self.stop_reason = None
        self.check_mode = check_mode
        self.run_id = str(uuid.uuid4())
        self.deployment_id = settings["deployment_id"] or self.run_id
        own_accounts = accounts_of_hosts(settings["accounts"], settings.get("instance_places"))
        self.accounts = [self._account(entry) for entry in own_accounts]
        # a slice's hosts name their accounts: it needs the staging and target roles of only those
        self.staging_accounts = settings["staging_accounts"]
        self.target_accounts = settings["target_accounts"]
        if own_accounts is not settings["accounts"]:
            self.staging_accounts = roles_for(self.staging_accounts, own_accounts, "staging_account_id")
            self.target_accounts = roles_for(self.target_accounts, own_accounts, "target_account_id")
        self.sessions = None
        self.plan = None
        self.record = None
        self.claimed = {}  # instance id -> the stopped run whose running install this run counts
        self.running = {}  # account-region -> instance ids whose install runs now (for a stop)
        self.extensions = []
        self.sent = 0
        self.started = clock.now()
        self.discovered_at = None
        self.empty_reason = None
        self.handovers = None
        self.unverified = None  # (wave number, servers not healthy) of the wave whose verification stopped the run

    def _account(self, entry):
        account = dict(entry)
        account["external_id"] = entry.get("external_id") or self.settings["external_id"] or None
        return account

    # --- the run ---

    def run(self):
        """The action's answer: the summary (or, in check mode, the plan), changed, and failed with msg when the
        run stopped, left accounts out, or had nothing to deploy."""
        with concurrent.futures.ThreadPoolExecutor(max_workers=install.MAX_THREADS, thread_name_prefix="drs") as pool:
            self.survey(pool)
            self._show(console.plan_lines(self.plan) if not self.check_mode else [])
            self.empty_reason = empty_reason(self.plan, self.settings, self.accounts, self.name)
            if self.check_mode:
                return self._plan_only()
            if self.empty_reason and not self.plan.unreachable:
                return {"failed": True, "changed": False, "msg": f"Nothing to deploy: {self.empty_reason}."}
            # with accounts out of reach, even a run with nothing left to deploy is recorded, failed for them
            return self._deploy()

    def _deploy(self):
        self.record = self._new_record()
        self.record.write(self.clock.now())
        # the runs stopped earlier are read while the first wave goes out; their claims count at its end
        self.handovers = self.pool.submit(self._claim_handovers)
        stopped_after = None
        unwritten = False  # a wave's results not written yet
        for wave in self.plan.waves:
            if self.stop.is_set() or stopped_after is not None:
                break
            figures = self._run_wave(wave, write_after_sending=unwritten)
            unwritten = True
            if self.stop.is_set():
                break
            if self.settings["verify_replication"] or self.settings["auto_extend_source_servers"]:
                # they can take minutes: the wave's results are written before them
                self.record.write(self.clock.now())
                unwritten = False
            if self.settings["verify_replication"] and self._verify(wave):
                stopped_after = wave.number
                continue
            if self.settings["auto_extend_source_servers"]:
                self._extend(wave)
            if figures["failure_rate"] > self.settings["max_failure_rate"]:
                stopped_after = wave.number
                self._show([f"Wave {wave.number}'s failure rate {figures['failure_rate']:.0%} is above "
                            f"{self.name('max_failure_rate')} ({self.settings['max_failure_rate']:.0%}): the rollout "
                            "stops here; the later waves are not started."])
        return self._finish(stopped_after)

    def _finish(self, stopped_after):
        why = (f"the rollout stopped after wave {stopped_after}" if stopped_after is not None
               else f"the run was stopped ({self.stop_reason})")
        for instance in self.plan.planned:
            if instance.status is None:
                instance.settle(outcomes.NOT_STARTED, reason=f"its wave did not start: {why}",
                                remediation=outcomes.status_remediation(outcomes.NOT_STARTED))
        stopped = self.stop_reason is not None
        extension = extension_summary(self.extensions) if self.settings["auto_extend_source_servers"] else None
        self.record.extension = extension
        self.record.write(self.clock.now(), final=True, stopped=stopped, stop_reason=self.stop_reason,
                          stopped_after_wave=stopped_after)
        statuses = sorted({item["status"] for item in self.record.items})
        summary = summarize(self.plan, self.deployment_id, self.run_id, self.clock.now() - self.started,
                            {"stopped_after_wave": stopped_after, "stop_reason": self.stop_reason},
                            self.settings["max_failure_rate"], extension, statuses)
        if self.settings["summary_file"]:
            write_json(self.settings["summary_file"], summary)
        lines = console.summary_lines(summary)
        lines += console.unprotected_lines(self.plan.every_instance(), self.settings["summary_file"] or None)
        if self.record.lost:
            lines.append(f"Deployment {self.deployment_id} NOT recorded: {self.record.lost}")
        elif self.settings["history_table"]:
            lines.append(f"Deployment {self.deployment_id} recorded in {self.settings['history_table']} "
                         f"({', '.join(statuses)})"
                         + ("; kept in the spool until the table can be written" if self.record.spooled else ""))
        totals = summary["totals"]
        nothing_to_do = not self.sent and totals["installed"] == 0 and totals["unprotected"] == 0
        if nothing_to_do:
            lines.append(f"Nothing to do: every one of the {totals['protected']} instance(s) is already protected "
                         "(registered in DRS).")
        if stopped:
            lines.extend(console.running_lines(self.running_at_stop(), self.stop_reason))
        self._show(lines)
        result = {"changed": bool(self.sent or totals["installed"]), "summary": summary,
                  "deployment_id": self.deployment_id, "run_id": self.run_id}
        problems = []
        if self.empty_reason:
            problems.append(f"Nothing was deployed: {self.empty_reason}.")
        if stopped:
            problems.append(f"The rollout was stopped ({self.stop_reason}); the installs still running on instances "
                            "go on there, and a re-run adopts them.")
        if self.unverified:
            number, unhealthy = self.unverified
            problems.append(
                f"The rollout stopped after wave {number}: {unhealthy} of its servers did not replicate healthy within "
                f"{self.name('verify_replication_timeout')} (see each one's verdict and remediation above); the later "
                "waves were not started.")
        elif stopped_after is not None:
            problems.append(
                f"The rollout stopped after wave {stopped_after}: its failure rate was above "
                f"{self.name('max_failure_rate')} ({self.settings['max_failure_rate']}); the later waves were not "
                "started. See the failed instances, their error category and remediation above, fix them, and run "
                "again: registered instances are skipped.")
        if self.plan.unreachable:
            places = sorted({entry["account_id"] for entry in self.plan.unreachable})
            problems.append(f"Not deployed, could not be reached: {', '.join(places)} (see the reasons above; set up "
                            "the accounts' roles with playbooks/setup_accounts.yml).")
        if problems:
            result.update(failed=True, msg=" ".join(problems))
        return result

    # --- sessions, discovery, plan ---

    def survey(self, pool):
        """Assume the roles and discover every account-region with ``pool``: the plan of the waves (also what a
        drill recovers)."""
        self.pool = pool
        with built_to_last():
            self.sessions = Sessions(self.settings["profile"], self.settings["history_region"])
            unreachable = self._open_sessions()
            discoveries = self._discover(unreachable)
            self.plan = build_plan(self.accounts, discoveries, unreachable, self.settings)
        return self.plan

    def _open_sessions(self):
        """Assume every role at once; the account-regions left out, with the reason (an unreachable staging
        account leaves out the source accounts that replicate into it)."""
        roles = [account for account in self.accounts if account.get("role_arn")]
        roles += [self._account(entry) for entry in self.staging_accounts]
        if self.settings["auto_extend_source_servers"]:
            roles += [self._account(entry) for entry in self.target_accounts if entry.get("role_arn")]
        self.sessions.assume(roles, self.settings["session_name"], self.settings["sts_region"])
        targets_only = ({entry["account_id"] for entry in self.target_accounts}
                        - {account["account_id"] for account in self.accounts}
                        - {entry["account_id"] for entry in self.staging_accounts})
        unreachable = []
        for account_id, reason in sorted(self.sessions.unreachable.items()):
            if account_id in targets_only:
                self.display.warning(f"Target account {account_id} cannot be reached, its extensions will fail: {reason}")
                continue
            self._show([f"Account {account_id} is left out: {reason}"])
            unreachable.append({"account_id": account_id, "region": None, "reason": reason})
        left_out = {entry["account_id"] for entry in unreachable}
        for account in self.accounts:
            staging = account.get("staging_account_id")
            if account["account_id"] not in left_out and staging in left_out:
                reason = f"its staging account {staging} could not be reached"
                self._show([f"Account {account['account_id']} is left out: {reason}"])
                unreachable.append({"account_id": account["account_id"], "region": None, "reason": reason})
        return unreachable

    def _discover(self, unreachable):
        """Every reachable account-region at once: {(account id, region): discovery}; failures are added to
        ``unreachable`` with the reason."""
        left_out = {entry["account_id"] for entry in unreachable}
        options = {"tag_filters": check_tag_filters(self.settings["tag_filters"]),
                   "wave_tag_key": self.settings["wave_tag_key"], "priority_tag_key": self.settings["priority_tag_key"],
                   "waves": None, "instance_states": INSTANCE_STATES_DEPLOYED, "include_ssm_status": True,
                   # a slice or a wave of a workflow reads SSM for its own instances only
                   "ssm_scope": in_scope(self.settings)}
        places = [(account["account_id"], region) for account in self.accounts
                  if account["account_id"] not in left_out for region in account["regions"]]
        # hosts that say where they are (a slice of an AWX job on the drs_fleet inventory): only their instances,
        # in only their account-regions, are looked for
        wanted = {}
        for instance_id, place in (self.settings.get("instance_places") or {}).items():
            wanted.setdefault(place, []).append(instance_id)
        if wanted:
            places = [place for place in places if place in wanted]

        def look(place):
            account_id, region = place
            scoped = dict(options, instance_ids=wanted[place]) if wanted else options
            # EC2 is read once per account-region: its client is not kept
            return kept_of(discover(self.sessions.client(account_id, "ec2", region, keep=False),
                                    self.sessions.client(account_id, "ssm", region), account_id, region, scoped))

        found = {}
        for place, future in [(place, self.pool.submit(look, place)) for place in places]:
            try:
                found[place] = future.result()
            except (BotoCoreError, ClientError) as error:
                reason = (f"could not discover instances in {place[1]}: check that the role allows "
                          f"{DISCOVERY_PERMISSIONS}: {error}")
                self._show([f"{place[0]}/{place[1]} is left out: {reason}"])
                unreachable.append({"account_id": place[0], "region": place[1], "reason": reason})
        self.discovered_at = self.clock.now()
        return found

    def _plan_only(self):
        """Check mode: read DRS, SSM and the installs in flight once per account-region, and show what each wave
        would do; nothing is sent, and only the plan files are written. Fails, naming them, when account-regions
        could not be reached or planned, or when there is nothing to deploy."""
        details = {}
        places = [place for wave in self.plan.waves for place in wave.places]
        installs = {place: self._install(place) for place in places}
        runner = install.Installs(list(installs.values()), self.clock, self.pool)
        runner.each(lambda target: target.prepare(self.clock.now(), check_mode=True))
        for place, target in installs.items():
            details[place] = {"error": runner.failures[target]} if target in runner.failures else target.plan
        document = plan_file.plan_document(self.plan, details, self.settings, self.accounts)
        lines = console.plan_lines(self.plan, {place: plan_of for place, plan_of in details.items()
                                               if "error" not in plan_of})
        lines.extend(f"{entry['account_id']}{'/' + entry['region'] if entry.get('region') else ''} is left out: "
                     f"{entry['reason']}" for entry in document["unreachable"])
        text = plan_file.markdown(document)
        if self.settings["plan_dir"]:
            lines.extend(f"Plan written to {path}" for path in plan_file.write_plan(self.settings["plan_dir"],
                                                                                    document, text))
        self._show(lines)
        result = {"changed": document["changed"], "plan": document, "diff": {"prepared": text}}
        problems = []
        if self.empty_reason:
            problems.append(f"Nothing to deploy: {self.empty_reason}.")
        if not document["clean"]:
            accounts = sorted({entry["account_id"] for entry in document["unreachable"]})
            problems.append(f"The plan is not clean: could not be reached or planned: {', '.join(accounts)} (see the "
                            "reasons above; set up the accounts' roles with playbooks/setup_accounts.yml).")
        if problems:
            result.update(failed=True, msg=" ".join(problems))
        return result

    # --- the record ---

    def _new_record(self):
        store = cloudwatch = None
        table = self.settings["history_table"]
        region = self.settings["history_region"]
        if table:
            spool_dir = self.settings["history_spool_dir"] or history.DEFAULT_SPOOL_DIR
            store = history.Store(self._operator_client("dynamodb", region, history.WRITE_RETRY), table, spool_dir,
                                  self.display.warning)
            if self.settings["metrics_namespace"]:
                cloudwatch = self.sessions.client(None, "cloudwatch", region)
        names = history.AccountNames(lambda service: self.sessions.client(None, service, region),
                                     {account["account_id"]: account.get("name") for account in self.accounts})
        account_names = names.names([account["account_id"] for account in self.accounts])
        return RunRecord(store, account_names, self.deployment_id, self.run_id, self.plan, self.accounts,
                         self.display.warning, cloudwatch, self.settings["metrics_namespace"] or None)

    def _operator_client(self, service, region, retry):
        return self.sessions.client(None, service, region, retry=retry)

    def _claim_handovers(self):
        """Take over the installs that stopped runs left running in this run's accounts, when this run covers
        them all: it adopts those still running, and counts those that ended meanwhile."""
        store = self.record.store
        if store is None:
            return
        planned = {instance.instance_id for instance in self.plan.planned}
        try:
            items = store.handovers(sorted({account["account_id"] for account in self.accounts}),
                                    datetime.datetime.now(datetime.timezone.utc))
            for item in items:
                entries = item["in_flight"]
                if not all(entry["instance_id"] in planned for entry in entries):
                    self._show([f"Run {item['run_id']} left {len(entries)} install(s) running in account "
                                f"{item['source_account_id']} that this run does not all cover (waves, --limit): a run "
                                "that covers them adopts and counts them."])
                    continue
                if store.claim(item, self.run_id, datetime.datetime.now(datetime.timezone.utc)):
                    self.claimed.update((entry["instance_id"], item["run_id"]) for entry in entries)
                    self._show([f"Run {item['run_id']} (started {item['started_at']}) stopped with {len(entries)} "
                                f"install(s) running in account {item['source_account_id']}: this run adopts them, "
                                "and counts those that ended meanwhile."])
        except (BotoCoreError, ClientError) as error:
            self.display.warning(f"The runs stopped earlier could not be read from {store.table_name} "
                                 f"({history.error_text(error)}): installs they left running are still adopted, but "
                                 "those that ended meanwhile are not counted by this run.")

    # --- a wave ---

    def _install(self, place):
        """The engine of one account-region of a wave, with its clients and settings."""
        fresh = self.discovered_at is not None and self.clock.now() - self.discovered_at < SSM_FRESH_SECONDS
        settings = dict(
            (key, self.settings[key]) for key in ("agent_tags", "max_concurrency", "max_errors", "ssm_online_timeout",
                                                  "timeout", "install_timeout", "poll_interval", "registration_timeout",
                                                  "reinstall"))
        settings.update(
            instance_ids=[instance.instance_id for instance in place.instances],
            platforms={instance.instance_id: instance.platform for instance in place.instances},
            ssm_information={instance.instance_id: instance.ssm for instance in place.instances if instance.ssm}
            if fresh else None,
            drs_region=place.drs_region,
            staging_account_id=place.staging_account_id if place.cross_account else None,
            cross_account=place.cross_account,
            document_name=install.choose_document(None, place.cross_account, place.staging_account_id),
            document_version=None,
            comment=install.comment(self.run_id, place.wave),
        )
        return install.AccountRegionInstall(self.sessions.client(place.account_id, "ssm", place.region),
                                            self.sessions.client(place.staging_account_id, "drs", place.drs_region),
                                            settings, self.clock.now())

    def _run_wave(self, wave, write_after_sending):
        """Install in every account-region of the wave at once; settle each instance; the wave's figures.

        ``write_after_sending``: write the record (the earlier waves' results) once the installs are sent. The
        results of a wave are written while the next one runs, not between them: a write holds every instance
        of the run, and the next wave's sends do not wait behind it. The run's end is written once, after the
        last wave."""
        wave.started_at = datetime.datetime.now(datetime.timezone.utc)
        started = self.clock.now()
        installs = {place: self._install(place) for place in wave.places}
        runner = install.Installs(list(installs.values()), self.clock, self.pool)
        places = [(place.account_id, place.region) for place in wave.places]
        # held until SSM lists every command sent under it: a run that takes it next reads the installs in
        # flight from those listings
        locked = places if self._lock(places) else []
        try:
            runner.each(lambda target: target.prepare(self.clock.now()))
            runner.each(lambda target: target.send(self.clock.now()))
        except BaseException:
            self._unlock(locked)
            raise
        sent = sum(len(command["instance_ids"]) for target in installs.values() for command in target.commands)
        adopted = sum(len(target.adopted_from) for target in installs.values())
        self.sent += sent
        self._show([f"Wave {wave.number}: sent the install to {sent} instance(s) in {len(wave.places)} "
                    f"account-region(s)" + (f", adopted {adopted} install(s) already running" if adopted else "")])
        if write_after_sending:
            self.record.write(self.clock.now())

        def progress(now):
            totals = {}
            for target in installs.values():
                for key, value in target.progress().items():
                    totals[key] = totals.get(key, 0) + value
            self.display.display(console.progress_line(f"wave {wave.number}", totals, now - started))
            self.record.renew_if_due(now)

        def tick(now):
            self.running = {place.name: [iid for iid, _command in target.running()]
                            for place, target in installs.items()}
            if locked and not any(target.sent_unlisted for target in installs.values()):
                self._unlock(locked)
                locked.clear()

        try:
            completed = runner.follow(self.stop, progress, self.settings["progress_interval"], tick)
        finally:
            self._unlock(locked)
        if not completed:
            for target in installs.values():
                if not target.done:
                    target.stop(self.clock.now(), f"the run was stopped: {self.stop_reason}")
        failed_places = {place: runner.failures[target] for place, target in installs.items() if target in runner.failures}
        self.handovers.result()
        for place, target in installs.items():
            by_id = {instance.instance_id: instance for instance in place.instances}
            for result in target.report()["results"]:
                self._settle(by_id[result["instance_id"]], result)
        wave.finished_at = datetime.datetime.now(datetime.timezone.utc)
        wave.wall_seconds = round(self.clock.now() - started, 1)
        figures = outcomes.tally(outcomes.count(instance.status for instance in wave.instances))
        self._show(console.wave_lines(wave, figures, failed_places))
        return figures

    def _settle(self, instance, result):
        """Settle an instance from its engine result, counting each install once: an install another live run
        sent is that run's to count; one a stopped run handed over is this run's, also when it ended meanwhile."""
        result = dict(result)
        status = result.pop("status")
        sender = result.get("adopted_from")
        if status == outcomes.INSTALLED and result.get("adopted") and sender and sender != self.run_id \
                and instance.instance_id not in self.claimed:
            status = outcomes.ALREADY_REGISTERED
            result["reason"] = f"installed by run {sender}, which was following the install (this run waited for it)"
        elif status == outcomes.ALREADY_REGISTERED and instance.instance_id in self.claimed:
            status = outcomes.INSTALLED
            result["reason"] = (f"installed by the install run {self.claimed[instance.instance_id]} sent; it ended after "
                                "that run stopped")
        instance.settle(status, **result)

    def _lock(self, places):
        """Hold the send locks of the wave's account-regions; False when there is no table to hold them in or
        it cannot be written (then the installs in flight are still found and adopted)."""
        store = self.record.store
        if store is None:
            return False
        said = []

        def waiting(seconds):
            # once at first, then at least every progress interval
            if not said or seconds - said[-1] >= self.settings["progress_interval"]:
                said.append(seconds)
                self.display.display(f"Another run is sending to these account-regions: waiting for its send lock "
                                     f"({int(seconds)} s so far, at most {LOCK_WAIT_SECONDS} s)")

        try:
            if store.acquire(places, self.run_id, self.clock.now() + LOCK_WAIT_SECONDS, self.clock, waiting):
                return True
            self.display.warning(f"Another run held the send lock of this wave's account-regions for "
                                 f"{LOCK_WAIT_SECONDS} s: sending without it (installs already running are adopted).")
        except (BotoCoreError, ClientError) as error:
            self.display.warning(f"The send locks in {store.table_name} could not be taken ({history.error_text(error)}): "
                                 "runs started at the same moment on the same accounts cannot be kept apart; installs "
                                 "already running are still adopted.")
        return False

    def _unlock(self, places):
        if not places:
            return
        try:
            self.record.store.release(places, self.run_id)
        except (BotoCoreError, ClientError) as error:
            self.display.warning(f"The send locks could not be released ({history.error_text(error)}); they expire by "
                                 "themselves in a few minutes.")

    def _verify(self, wave):
        """Verify the wave's replication; True when a server is not healthy (the rollout then stops)."""
        counts = verify_wave(wave, self.sessions, self.settings, self.clock, self._show, self.stop, self.pool)
        wave.replication = {verdict: count for verdict, count in counts.items() if count}
        self.record.write(self.clock.now())
        unhealthy = sum(count for verdict, count in counts.items() if verdict != replication.HEALTHY)
        if not unhealthy or self.stop.is_set():
            return False
        self.unverified = (wave.number, unhealthy)
        self._show([f"Wave {wave.number}: {unhealthy} server(s) do not replicate healthy: the rollout stops here; "
                    "the later waves are not started."] + unhealthy_lines(wave))
        return True

    def _extend(self, wave):
        entries = extend.extend_after(wave, self.sessions, self.settings, self.deployment_id, self.clock,
                                      self.display.warning)
        self.extensions.extend(entries)
        self._show(extend.lines(entries))

    # --- output ---

    def _show(self, lines):
        for line in lines:
            self.display.display(line)

    def running_at_stop(self):
        """The installs still running when the run stopped, per account-region."""
        running = {}
        for instance in self.plan.planned if self.plan else []:
            if instance.status == outcomes.IN_FLIGHT:
                running.setdefault(f"{instance.account_id}/{instance.region}", []).append(instance.instance_id)
        return running or self.running
