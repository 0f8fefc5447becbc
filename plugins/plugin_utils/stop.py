# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Stopping a long controller-side task (a rollout, a drill) safely: on Ctrl-C (SIGINT) and SIGTERM, which
ansible-playbook passes to the process running the task, and when ansible-playbook itself ends (killed), which
the task's process notices by its parent changing.

When the task is stopped, Ansible has stopped printing its messages; the lines that say what is still running
are therefore written straight to ansible-playbook's standard output (opened through /proc, on Linux). A
terminal or a pipe gets them at once; a file gets them once ansible-playbook has ended, so that its own last
writes do not overwrite them.
"""

import os
import signal
import stat
import threading
import time

from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout import console

PARENT_CHECK_SECONDS = 0.5
# How long the lines for an output file wait for ansible-playbook to end.
FILE_OUTPUT_WAIT_SECONDS = 5
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# ansible-playbook passes Ctrl-C on as SIGINT, and terminates the task's process (SIGTERM) right after.
SIGNAL_NAMES = {signal.SIGINT: "interrupted (SIGINT, Ctrl-C)", signal.SIGTERM: "terminated (SIGTERM)"}


class Stop:
    """Why and when the task must stop: a signal, or ansible-playbook gone. ``rollout_of()`` gives the rollout to
    tell (its ``stop_reason`` and the installs it has running), or None."""

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
