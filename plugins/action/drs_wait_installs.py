# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Wait for background drs_ssm_install jobs, printing their summed progress while waiting."""

import base64
import json
import time

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()

ARGUMENT_SPEC = dict(
    jobs=dict(type="list", elements="dict", required=True),
    label=dict(type="str", default="installs"),
    timeout=dict(type="int", default=7200),
    poll_interval=dict(type="int", default=5),
    progress_interval=dict(type="int", default=30),
)
_JOB_BOOKKEEPING = ("ansible_job_id", "finished", "started", "results_file", "stdout", "stderr", "stdout_lines", "stderr_lines")
PROGRESS_KEYS = ("total", "done", "failed", "in_flight", "waiting_for_ssm", "awaiting_registration")


def _job(started_task):
    """The job id and loop item of one registered async result."""
    jid = started_task.get("ansible_job_id")
    item = started_task.get("item")
    if not jid or not isinstance(item, dict) or not item.get("name"):
        raise AnsibleActionFail(
            "each of jobs must be a result registered from a looped task run with async and poll=0, whose loop "
            "item has a name (and optionally a progress_file); got one with keys " + ", ".join(sorted(started_task))
        )
    return {"jid": jid, "name": item["name"], "item": item}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        for number in ("timeout", "poll_interval", "progress_interval"):
            if args[number] <= 0:
                raise AnsibleActionFail(f"{number} must be a positive number of seconds, got {args[number]}")
        jobs = [_job(started_task) for started_task in args["jobs"]]
        started = time.monotonic()
        finished = self._wait(jobs, args, task_vars, started)
        result["results"] = [dict(job, result=finished[job["jid"]]) for job in jobs]
        result["changed"] = any(job["result"].get("changed") for job in result["results"])
        result["waited_seconds"] = round(time.monotonic() - started, 1)
        return result

    def _wait(self, jobs, args, task_vars, started):
        pending = {job["jid"]: job for job in jobs}
        finished = {}
        last_report = started
        while True:
            for jid in list(pending):
                status = self._job_status(jid, task_vars)
                if status is not None:
                    finished[jid] = status
                    pending.pop(jid)
            now = time.monotonic()
            if not pending:
                display.display(
                    f"{args['label']}: {self._progress_line(jobs, task_vars)}, all {len(finished)} job(s) finished"
                )
                return finished
            if now - started >= args["timeout"]:
                names = ", ".join(job["name"] for job in pending.values())
                raise AnsibleActionFail(
                    f"{args['label']}: still running after {args['timeout']} s: {names}. "
                    "The installs go on in the background; raise the timeout, or re-run later: instances that "
                    "registered in DRS meanwhile are skipped as already registered."
                )
            if now - last_report >= args["progress_interval"]:
                display.display(
                    f"{args['label']}: {self._progress_line(jobs, task_vars)}; "
                    f"{len(finished)}/{len(jobs)} job(s) finished after {int(now - started)} s"
                )
                last_report = now
            time.sleep(args["poll_interval"])

    def _job_status(self, jid, task_vars):
        """The job's final result once it finished, else None (what the async_status action does, per job)."""
        async_dir = self._remote_expand_user(self.get_shell_option("async_dir", default="~/.ansible_async"))
        status = self._execute_module(
            module_name="ansible.legacy.async_status",
            module_args={"jid": jid, "mode": "status", "_async_dir": async_dir},
            task_vars=task_vars,
        )
        if not status.get("finished"):
            if status.get("failed"):
                raise AnsibleActionFail(f"cannot read the state of job {jid}: {status.get('msg')}")
            return None
        self._execute_module(
            module_name="ansible.legacy.async_status",
            module_args={"jid": jid, "mode": "cleanup", "_async_dir": async_dir},
            task_vars=task_vars,
        )
        return {key: value for key, value in status.items() if key not in _JOB_BOOKKEEPING}

    def _progress_line(self, jobs, task_vars):
        totals = dict.fromkeys(PROGRESS_KEYS, 0)
        for job in jobs:
            for key, value in self._read_progress(job["item"].get("progress_file"), task_vars).items():
                if key in totals and isinstance(value, int):
                    totals[key] += value
        return (
            f"{totals['done']}/{totals['total']} done, {totals['failed']} failed, {totals['in_flight']} in flight, "
            f"{totals['waiting_for_ssm']} waiting for SSM, {totals['awaiting_registration']} waiting for DRS"
        )

    def _read_progress(self, path, task_vars):
        if not path:
            return {}
        slurped = self._execute_module(module_name="ansible.builtin.slurp", module_args={"src": path}, task_vars=task_vars)
        if slurped.get("failed"):
            return {}  # the job has not written its first progress yet
        try:
            return json.loads(base64.b64decode(slurped["content"]))
        except ValueError:
            return {}  # caught mid-replace; the next look reads a whole document
