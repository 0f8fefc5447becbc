# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Run a DRS agent rollout on the controller, in this task's own process (see plugins/modules/drs_rollout.py).

Everything waits here, under ansible-playbook: nothing runs in the background, and nothing of the rollout
outlives the task. Ctrl-C (SIGINT) and SIGTERM, which ansible-playbook passes to the process running the task,
stop the rollout within seconds; so does the end of ansible-playbook itself (killed), which this process
notices by its parent changing.

When the rollout is stopped, Ansible has stopped printing this task's messages; the lines that say which
installs are still running are therefore written straight to ansible-playbook's standard output (opened
through /proc, on Linux), as well as to the run's record. A terminal or a pipe gets them at once; a file gets
them once ansible-playbook has ended, so that its own last writes do not overwrite them.
"""

import os
import signal
import stat
import threading
import time

from ansible.errors import AnsibleActionFail
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.clock import ClockSettingError
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.clock import configured_clock
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.history import job_deployment_id
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout import console
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.plan import host_places
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.settings import ARGUMENT_SPEC
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.settings import Names
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.settings import setting_errors
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.settings import unknown_variables

try:
    from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils.rollout import Rollout
    HAS_BOTO3 = True
except ImportError:
    HAS_BOTO3 = False

display = Display()

PARENT_CHECK_SECONDS = 0.5
# How long the lines for an output file wait for ansible-playbook to end.
FILE_OUTPUT_WAIT_SECONDS = 5
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# ansible-playbook passes Ctrl-C on as SIGINT, and terminates the task's process (SIGTERM) right after.
SIGNAL_NAMES = {signal.SIGINT: "interrupted (SIGINT, Ctrl-C)", signal.SIGTERM: "terminated (SIGTERM)"}


class _Stop:
    """Why and when the rollout must stop: a signal, or ansible-playbook gone."""

    def __init__(self, rollout_of):
        self.event = threading.Event()
        self.reason = None
        self._rollout_of = rollout_of
        self._parent = os.getppid()
        self._previous = {}
        self._deferred = None  # (file descriptor, text) for an output file, written once ansible-playbook ended

    def __enter__(self):
        for number in STOP_SIGNALS:
            self._previous[number] = signal.signal(number, self._on_signal)
        threading.Thread(target=self._watch_parent, name="drs-parent-watch", daemon=True).start()
        return self

    def __exit__(self, *exc):
        for number, handler in self._previous.items():
            signal.signal(number, handler)
        self.event.set()  # ends the parent watcher
        if self._deferred is not None:
            handle, text = self._deferred
            deadline = time.monotonic() + FILE_OUTPUT_WAIT_SECONDS
            while os.getppid() == self._parent and time.monotonic() < deadline:
                time.sleep(0.1)
            self._write(handle, text)
        return False

    def _on_signal(self, number, _frame):
        self._stop(SIGNAL_NAMES.get(number, signal.Signals(number).name))

    def _watch_parent(self):
        while not self.event.wait(PARENT_CHECK_SECONDS):
            if os.getppid() != self._parent:
                self._stop("ansible-playbook ended")

    def _stop(self, reason):
        if self.reason is not None:
            return
        self.reason = reason
        rollout = self._rollout_of()
        if rollout is not None:
            rollout.stop_reason = reason
            self._tell_the_controller(console.running_lines(rollout.running, reason))
        self.event.set()

    def _tell_the_controller(self, lines):
        """Write straight to ansible-playbook's standard output, which the task's messages no longer reach."""
        if os.getppid() != self._parent:
            return
        try:
            handle = os.open(f"/proc/{self._parent}/fd/1", os.O_WRONLY | os.O_APPEND | os.O_NONBLOCK)
        except OSError:
            return  # not Linux, or the output is gone: the run's record says it all the same
        text = "\n".join(lines) + "\n"
        if stat.S_ISREG(os.fstat(handle).st_mode):
            self._deferred = (handle, text)
        else:
            self._write(handle, text)

    @staticmethod
    def _write(handle, text):
        try:
            os.write(handle, text.encode("utf-8", "replace"))
        except OSError:
            pass
        finally:
            os.close(handle)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        _validation, settings = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        if not HAS_BOTO3:
            raise AnsibleActionFail("drs_rollout needs boto3 and botocore on the controller (pip install boto3)")
        name = Names(settings["variable_prefix"])
        errors = []
        if settings["variable_prefix"]:
            errors.extend(unknown_variables(settings["variable_prefix"], (task_vars or {}).keys()))
        errors.extend(setting_errors(settings, name))
        if errors:
            result.update(failed=True, changed=False,
                          msg="The deployment input is not usable; nothing was sent and no AWS call was made:\n"
                              + "\n".join(f"- {error}" for error in errors))
            return result
        settings["deployment_id"] = settings["deployment_id"] or job_deployment_id(task_vars or {}) or ""
        if settings["limit_to_instance_ids"] and task_vars and "hostvars" in task_vars:
            settings["instance_places"] = host_places(task_vars["hostvars"], task_vars.get("ansible_play_hosts_all") or [])
        try:
            clock = configured_clock()
        except ClockSettingError as error:
            raise AnsibleActionFail(str(error)) from None
        holder = []
        with _Stop(lambda: holder[0] if holder else None) as stop:
            rollout = Rollout(settings, name, clock, _Display(), stop.event, self._task.check_mode)
            holder.append(rollout)
            try:
                result.update(rollout.run())
            except KeyboardInterrupt:
                raise
            except Exception as error:  # pylint: disable=broad-except
                raise AnsibleActionFail(f"The rollout stopped unexpectedly: {type(error).__name__}: "
                                        f"{to_text(error)}") from error
        return result


class _Display:
    """What the rollout prints, through Ansible's display."""

    @staticmethod
    def display(text):
        display.display(text)

    @staticmethod
    def warning(text):
        display.warning(text)
