# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Wait for background drs_ssm_install jobs, printing their summed progress while waiting.

A job's state is its results file in the async folder, which async_status reads with a module run
each time; here it is read with one shell command per job and look (``cat``), and the progress files
with one more per look, which costs a few milliseconds rather than a module run.

Once the progress files of the jobs still running say that every instance is settled, the jobs are
only writing their results: they are looked at every FINISHING_LOOK_SECONDS until the results are
there, rather than a whole poll interval later.
"""

import json
import shlex
import time

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()

ARGUMENT_SPEC = dict(
    jobs=dict(type="list", elements="dict", required=True),
    targets=dict(type="list", elements="dict"),
    label=dict(type="str", default="installs"),
    timeout=dict(type="int", default=7200),
    poll_interval=dict(type="int", default=5),
    progress_interval=dict(type="int", default=30),
)
_JOB_BOOKKEEPING = ("ansible_job_id", "finished", "started", "results_file", "stdout", "stderr", "stdout_lines", "stderr_lines")
PROGRESS_KEYS = ("total", "done", "failed", "in_flight", "waiting_for_ssm", "awaiting_registration")
FINISHING_LOOK_SECONDS = 0.1


def _job(started_task, targets):
    """The job id, name and loop item of one registered async result. A job started without a loop
    (one drs_ssm_install run with targets) is named after its targets."""
    jid = started_task.get("ansible_job_id")
    item = started_task.get("item")
    if targets is not None and jid and item is None:
        return {"jid": jid, "name": ", ".join(str(target.get("name")) for target in targets), "item": None}
    if not jid or not isinstance(item, dict) or not item.get("name"):
        raise AnsibleActionFail(
            "each of jobs must be a result registered from a looped task run with async and poll=0, whose loop "
            "item has a name (and optionally a progress_file), or, with targets, from one task run with async and "
            "poll=0; got one with keys " + ", ".join(sorted(started_task))
        )
    return {"jid": jid, "name": item["name"], "item": item}


def _split(job, result, targets):
    """One entry per install target: a job that ran drs_ssm_install with targets answers for each of
    them (matched by name); a job that failed before any target answered fails for each of them."""
    if job["item"] is not None or targets is None:
        return [dict(job, result=result)]
    answers = {answer.get("name"): answer for answer in result.get("targets") or [] if isinstance(answer, dict)}
    entries = []
    for target in targets:
        answer = answers.get(target.get("name"))
        if answer is None:
            answer = {key: result[key] for key in ("failed", "msg", "changed") if key in result}
            answer.setdefault("failed", True)
            answer.setdefault("msg", "the install job returned no result for this target")
        entries.append({"jid": job["jid"], "name": target.get("name"), "item": target, "result": answer})
    return entries


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        for number in ("timeout", "poll_interval", "progress_interval"):
            if args[number] <= 0:
                raise AnsibleActionFail(f"{number} must be a positive number of seconds, got {args[number]}")
        targets = args["targets"]
        if targets is not None and any(not isinstance(target.get("name"), str) for target in targets):
            raise AnsibleActionFail("each of targets needs a name, the name of the install target")
        jobs = [_job(started_task, targets) for started_task in args["jobs"]]
        started = time.monotonic()
        self._async_dir = None
        finished = self._wait(jobs, args, task_vars, started)
        result["results"] = [entry for job in jobs for entry in _split(job, finished[job["jid"]], targets)]
        result["changed"] = any(entry["result"].get("changed") for entry in result["results"])
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
                    f"{args['label']}: {self._progress_line(jobs, task_vars, args['targets'])}, all {len(finished)} job(s) finished"
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
                    f"{args['label']}: {self._progress_line(jobs, task_vars, args['targets'])}; "
                    f"{len(finished)}/{len(jobs)} job(s) finished after {int(now - started)} s"
                )
                last_report = now
            finishing = self._settled(pending.values(), args["targets"])
            time.sleep(FINISHING_LOOK_SECONDS if finishing else args["poll_interval"])

    def _read(self, path):
        """The text of a file on the host the task runs on, or None when it cannot be read (yet)."""
        answer = self._low_level_execute_command(f"cat {shlex.quote(path)}", sudoable=False)
        if answer.get("rc") != 0:
            return None
        return answer.get("stdout", "")

    def _job_status(self, jid, task_vars):
        """The job's final result once it finished, else None (what async_status does, per job, without
        running a module: the job's results file is read, then removed once the job finished)."""
        if self._async_dir is None:
            self._async_dir = self._remote_expand_user(self.get_shell_option("async_dir", default="~/.ansible_async"))
        path = self._connection._shell.join_path(self._async_dir, jid)
        text = self._read(path)
        if text is None:
            raise AnsibleActionFail(f"cannot read the state of job {jid}: could not find job ({path})")
        try:
            status = json.loads(text)
        except ValueError:
            return None  # not written yet, or caught mid-write: still running
        if not isinstance(status, dict) or ("started" in status and not status.get("finished")):
            return None
        self._low_level_execute_command(f"rm -f {shlex.quote(path)}", sudoable=False)
        return {key: value for key, value in status.items() if key not in _JOB_BOOKKEEPING}

    def _progress_files(self, jobs, targets):
        files = [job["item"].get("progress_file") for job in jobs if job["item"] is not None]
        files.extend(target.get("progress_file") for target in targets or [])
        return [path for path in files if path]

    def _progress_line(self, jobs, task_vars, targets=None):
        totals = dict.fromkeys(PROGRESS_KEYS, 0)
        for progress in self._read_progress(self._progress_files(jobs, targets)):
            for key, value in progress.items():
                if key in totals and isinstance(value, int):
                    totals[key] += value
        return (
            f"{totals['done']}/{totals['total']} done, {totals['failed']} failed, {totals['in_flight']} in flight, "
            f"{totals['waiting_for_ssm']} waiting for SSM, {totals['awaiting_registration']} waiting for DRS"
        )

    def _settled(self, jobs, targets):
        """Whether the progress files of all these jobs say that every instance is done, so that the jobs are
        only writing their results; a job without a progress file, or that has not written it yet, is not."""
        paths = []
        for job in jobs:
            if job["item"] is not None:
                paths.append(job["item"].get("progress_file"))
            else:
                paths.extend(target.get("progress_file") for target in targets or [])
        if not paths or not all(paths):
            return False
        documents = self._read_progress(paths)
        return len(documents) == len(paths) and all(
            isinstance(progress.get("done"), int) and progress.get("done") == progress.get("total") for progress in documents)

    def _read_progress(self, paths):
        """The progress documents that can be read now, from all the files in one shell command; missing
        files are left out. A job replaces its progress file in one step: each file is one whole document."""
        if not paths:
            return []
        answer = self._low_level_execute_command("cat -- " + " ".join(shlex.quote(path) for path in paths), sudoable=False)
        text, documents, decoder = answer.get("stdout", ""), [], json.JSONDecoder()
        position = 0
        while True:
            while position < len(text) and text[position].isspace():
                position += 1
            if position == len(text):
                return documents
            try:
                progress, position = decoder.raw_decode(text, position)
            except ValueError:
                return documents  # a file that is not a progress document: what follows cannot be told apart
            if isinstance(progress, dict):
                documents.append(progress)
