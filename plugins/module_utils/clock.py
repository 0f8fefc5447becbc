# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The clock that everything which waits reads: deadlines, polls and progress intervals.

``SystemClock`` is the real one. A rehearsal against an AWS simulator whose time runs under its own
control can replace it: the environment variable ``DRS_AGENT_DEPLOYER_CLOCK`` names a class as
``package.module:Class`` whose instances have ``now()`` (seconds, monotonic), ``sleep(seconds)`` and
``wait(seconds, event)`` (sleep, or less when ``event`` is set; True when it is); the modules and the deploy
action then wait on that clock instead of the real one. Timestamps written to
records (history, summaries) are always real wall-clock time.
"""

import importlib
import os
import time

CLOCK_VARIABLE = "DRS_AGENT_DEPLOYER_CLOCK"


class SystemClock:
    """Real time: monotonic seconds, and a sleep that really waits."""

    def now(self):
        return time.monotonic()

    def sleep(self, seconds):
        if seconds > 0:
            time.sleep(seconds)

    def wait(self, seconds, event):
        return event.wait(max(seconds, 0))


class ClockSettingError(ValueError):
    """DRS_AGENT_DEPLOYER_CLOCK does not name a usable clock."""


def configured_clock(environ=None):
    """The clock named by DRS_AGENT_DEPLOYER_CLOCK, else the system clock."""
    spec = (environ if environ is not None else os.environ).get(CLOCK_VARIABLE, "").strip()
    if not spec:
        return SystemClock()
    module_name, _separator, attribute = spec.partition(":")
    try:
        clock = getattr(importlib.import_module(module_name), attribute)()
    except (ImportError, AttributeError, ValueError, TypeError) as error:
        raise ClockSettingError(f"{CLOCK_VARIABLE}={spec!r} does not name a clock class (package.module:Class): "
                                f"{error}") from None
    if not all(callable(getattr(clock, method, None)) for method in ("now", "sleep", "wait")):
        raise ClockSettingError(f"{CLOCK_VARIABLE}={spec!r}: the clock needs now(), sleep(seconds) and "
                                "wait(seconds, event)")
    return clock


def module_clock(module):
    """The clock a module waits on; the module fails, saying why, when DRS_AGENT_DEPLOYER_CLOCK is not usable."""
    try:
        return configured_clock()
    except ClockSettingError as error:
        return module.fail_json(msg=str(error))
