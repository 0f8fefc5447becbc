# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Running several account-regions' installs side by side: their AWS calls at once, their waits on one clock.

Each step (prepare, send, look) of the account-regions that are due runs in a thread pool, so one slow
account-region does not delay the others' calls; between steps only the driver waits, on the clock, until
the next look falls due, a progress line is owed, or it is told to stop.
"""

import concurrent.futures

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports a missing botocore

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._install.engine import AWS_ERROR_MESSAGE
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._install.engine import InstallRefused

MAX_THREADS = 16


class Installs:
    """Account-region installs run together. ``failures`` maps an install to why it stopped early."""

    def __init__(self, installs, clock, pool):
        self.installs = list(installs)
        self.clock = clock
        self.pool = pool
        self.failures = {}

    def each(self, step, installs=None):
        """Run ``step(install)`` for every install (or those given) not stopped, at once; an install whose step
        fails stops, with its message, and the others go on."""
        live = [install for install in (self.installs if installs is None else installs) if install not in self.failures]
        for install, error in zip(live, self.pool.map(lambda install: _attempt(step, install), live)):
            if error is not None:
                self.failures[install] = error
                install.stop(self.clock.now(), error)

    def follow(self, stop, on_progress=None, progress_interval=30.0, on_tick=None):
        """Look at each install whenever it is due until all are done (True), or ``stop`` is set (False).
        ``on_progress(now)`` is called at least every ``progress_interval`` seconds of the clock, ``on_tick(now)``
        after every round of looks."""
        last_progress = self.clock.now()
        while True:
            now = self.clock.now()
            due = [install for install in self.installs if not install.done and install.next_look(now) <= now]
            if due:
                self.each(lambda install: install.look(now), due)
            now = self.clock.now()
            if on_tick is not None:
                on_tick(now)
            if now - last_progress >= progress_interval:
                if on_progress is not None:
                    on_progress(now)
                last_progress = now
            active = [install for install in self.installs if not install.done]
            if not active:
                return True
            if stop.is_set():
                return False
            wake = min(min(install.next_look(now) for install in active), last_progress + progress_interval)
            if wake > now:
                self.clock.wait(wake - now, stop)


def _attempt(step, install):
    """None when ``step`` went through, else why it failed (the install's own problems never raise here)."""
    try:
        step(install)
    except InstallRefused as refused:
        return f"{refused.message}: {refused.error}"
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as error:
        return f"{AWS_ERROR_MESSAGE}: {error}"
    except Exception as error:  # pylint: disable=broad-except
        # a bug must not leave the other account-regions without an answer
        return f"the installs stopped unexpectedly: {type(error).__name__}: {error}"
    return None


def thread_pool(size):
    return concurrent.futures.ThreadPoolExecutor(max_workers=max(1, min(MAX_THREADS, size)),
                                                 thread_name_prefix="drs-install")
