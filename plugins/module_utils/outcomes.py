# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What became of each instance of an agent deployment, and the arithmetic over it: the one definition.

Every per-instance status belongs to one group:

- ``protected``: ``installed`` (an install this run sent or adopted ended with the instance's source server
  seen in DRS) or ``already_registered`` (a live source server existed before this run sent anything, or
  another run's install put it there);
- ``failed``: ``failed`` (the install ended in failure, or could not be sent), ``timed_out`` (still running
  at a deadline; cancelled when the per-install deadline passed) or ``not_registered_after_success`` (SSM
  reported Success, DRS never showed the server);
- ``skipped``: ``skipped_ssm_offline`` and ``skipped_not_managed``: nothing could be sent through SSM;
- ``unsettled``: ``in_flight`` (the install was still running on the instance when the run stopped: a re-run
  adopts it) and ``not_started`` (its wave never started, because the rollout stopped before it);
- ``unplanned``: ``no_wave`` (discovered, but its wave tag is missing or not a whole number).

The figures of any set of instances (a wave, an account, a run):

- ``attempted`` = protected + failed: the instances whose outcome the run judged;
- ``success rate`` = protected / attempted, none when nothing was attempted;
- ``failure rate`` = failed / attempted = 1 - success rate, 0 when nothing was attempted. The wave gate and
  ``max_failure_rate`` compare this rate;
- ``unprotected`` = every instance that is not protected (failed, skipped, unsettled, unplanned), each
  reported with its reason and remediation.

An input the collection refuses never gets a status: it is refused before any AWS call.
"""

INSTALLED = "installed"
ALREADY_REGISTERED = "already_registered"
FAILED = "failed"
TIMED_OUT = "timed_out"
NOT_REGISTERED_AFTER_SUCCESS = "not_registered_after_success"
SKIPPED_SSM_OFFLINE = "skipped_ssm_offline"
SKIPPED_NOT_MANAGED = "skipped_not_managed"
IN_FLIGHT = "in_flight"
NOT_STARTED = "not_started"
NO_WAVE = "no_wave"

PROTECTED = "protected"
FAILURE = "failed"
SKIPPED = "skipped"
UNSETTLED = "unsettled"
UNPLANNED = "unplanned"

# status -> group, in the order statuses are shown
GROUP_OF = {
    INSTALLED: PROTECTED,
    ALREADY_REGISTERED: PROTECTED,
    FAILED: FAILURE,
    TIMED_OUT: FAILURE,
    NOT_REGISTERED_AFTER_SUCCESS: FAILURE,
    SKIPPED_SSM_OFFLINE: SKIPPED,
    SKIPPED_NOT_MANAGED: SKIPPED,
    IN_FLIGHT: UNSETTLED,
    NOT_STARTED: UNSETTLED,
    NO_WAVE: UNPLANNED,
}
STATUSES = tuple(GROUP_OF)
GROUPS = (PROTECTED, FAILURE, SKIPPED, UNSETTLED, UNPLANNED)
# What one account-region's installs can end with (drs_ssm_install's results[].status).
INSTALL_STATUSES = (INSTALLED, ALREADY_REGISTERED, FAILED, TIMED_OUT, NOT_REGISTERED_AFTER_SUCCESS,
                    SKIPPED_SSM_OFFLINE, SKIPPED_NOT_MANAGED)
FAILED_STATUSES = tuple(status for status, group in GROUP_OF.items() if group == FAILURE)
UNPROTECTED_STATUSES = tuple(status for status, group in GROUP_OF.items() if group != PROTECTED)

# What to do about an unprotected instance whose status says it all; failures are remediated by their error
# category (failures.remediation).
REMEDIATIONS = {
    SKIPPED_SSM_OFFLINE: ("Start the instance or reconnect its SSM agent (ping status Online in Systems Manager), "
                          "then re-run."),
    SKIPPED_NOT_MANAGED: ("Register the instance with Systems Manager (an instance profile with "
                          "AmazonSSMManagedInstanceCore, the SSM agent running, 443 open to the SSM endpoints), "
                          "then re-run."),
    IN_FLIGHT: ("The install is still running on the instance: re-run the deployment, which adopts the running "
                "install (no second install is sent) and counts it when it ends."),
    NOT_STARTED: ("Its wave did not start because the rollout stopped before it: fix what stopped it (see the "
                  "failed instances, or raise max_failure_rate), then re-run; registered instances are skipped."),
    NO_WAVE: "Tag the instance {wave_tag_key}=<wave number> (a whole number, 0 or more), then re-run.",
}


class UnknownStatus(ValueError):
    """A status that is not in the table: a bug, never to be counted as something else."""


def group(status):
    try:
        return GROUP_OF[status]
    except KeyError:
        raise UnknownStatus(f"{status!r} is not an instance status; known: {', '.join(STATUSES)}") from None


def count(statuses):
    """{status: how many} over an iterable of statuses (every status present, zeros included)."""
    counts = dict.fromkeys(STATUSES, 0)
    for status in statuses:
        group(status)
        counts[status] += 1
    return counts


def add(*by_status):
    """The sum of several ``{status: count}`` mappings."""
    total = dict.fromkeys(STATUSES, 0)
    for counts in by_status:
        for status, number in (counts or {}).items():
            group(status)
            total[status] += int(number)
    return total


def tally(by_status):
    """The figures of a ``{status: count}`` mapping: counts per status and per group, attempted,
    unprotected, success rate and failure rate (see the module's documentation)."""
    counts = add(by_status)
    groups = dict.fromkeys(GROUPS, 0)
    for status, number in counts.items():
        groups[GROUP_OF[status]] += number
    attempted = groups[PROTECTED] + groups[FAILURE]
    return {
        "by_status": counts,
        "attempted": attempted,
        "installed": counts[INSTALLED],
        "already_registered": counts[ALREADY_REGISTERED],
        "protected": groups[PROTECTED],
        "failed": groups[FAILURE],
        "skipped": groups[SKIPPED],
        "unsettled": groups[UNSETTLED],
        "unplanned": groups[UNPLANNED],
        "unprotected": sum(counts[status] for status in UNPROTECTED_STATUSES),
        "success_rate": round(groups[PROTECTED] / attempted, 4) if attempted else None,
        "failure_rate": round(groups[FAILURE] / attempted, 4) if attempted else 0.0,
    }


def tally_of(results):
    """The figures of a list of results, each with a ``status``."""
    return tally(count(result["status"] for result in results))


def is_protected(status):
    return group(status) == PROTECTED


def is_failure(status):
    return group(status) == FAILURE


def status_remediation(status, wave_tag_key="dr:wave"):
    """The remediation of a status that needs no error category, or None."""
    text = REMEDIATIONS.get(status)
    return text.format(wave_tag_key=wave_tag_key) if text else None


def figure_text(figures):
    """A tally as one line a person reads."""
    rate = "n/a" if figures["success_rate"] is None else f"{figures['success_rate']:.0%}"
    text = (f"{figures['attempted']} attempted, {figures['installed']} installed, "
            f"{figures['already_registered']} already registered, {figures['failed']} failed, "
            f"{figures['skipped']} skipped")
    by_status = figures["by_status"]
    extra = [f"{by_status[IN_FLIGHT]} still in flight" if by_status[IN_FLIGHT] else "",
             f"{by_status[NOT_STARTED]} not started" if by_status[NOT_STARTED] else "",
             f"{by_status[NO_WAVE]} without a wave" if by_status[NO_WAVE] else ""]
    extra = [part for part in extra if part]
    if extra:
        text += ", " + ", ".join(extra)
    return f"{text} (success rate {rate})"
