# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The summary of a run (the summary file and the action's answer): per wave, per account and in total, the
figures of the outcome model, and every unprotected instance with its reason and remediation."""

import json
import os
import tempfile

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import outcomes

EXTENSION_COUNTS = ("extended", "already_extended", "failed", "left_out")


def summarize(plan, deployment_id, run_id, wall_seconds, stop, max_failure_rate, extension, history_status):
    """``stop``: stopped_after_wave (the wave gate) and stop_reason (an interruption), or Nones."""
    settled = [instance for instance in plan.every_instance() if instance.status]
    by_account = {}
    for instance in settled:
        by_account.setdefault(instance.account_id, []).append(instance.status)
    waves = []
    for wave in plan.waves:
        if wave.started_at is None:
            continue
        wave_accounts = {}
        for instance in wave.instances:
            if instance.status:
                wave_accounts.setdefault(instance.account_id, []).append(instance.status)
        figures = outcomes.tally(outcomes.count(instance.status for instance in wave.instances if instance.status))
        waves.append(dict(figures, wave=wave.number, wall_seconds=wave.wall_seconds,
                          accounts={account: outcomes.tally(outcomes.count(statuses))
                                    for account, statuses in sorted(wave_accounts.items())}))
        if wave.replication is not None:
            waves[-1]["replication"] = wave.replication
    summary = {
        "deployment_id": deployment_id,
        "run_id": run_id,
        "deployment_pattern": plan.pattern,
        "planned_waves": [wave.number for wave in plan.waves],
        "planned_instances": len(plan.planned),
        "waves": waves,
        "accounts": {account: outcomes.tally(outcomes.count(statuses)) for account, statuses in sorted(by_account.items())},
        "totals": outcomes.tally(outcomes.count(instance.status for instance in settled)),
        "unprotected": [instance.record() for instance in settled if not outcomes.is_protected(instance.status)],
        "excluded": plan.excluded,
        "unreachable": plan.unreachable,
        "max_failure_rate": max_failure_rate,
        "stopped_after_wave": stop.get("stopped_after_wave"),
        "stop_reason": stop.get("stop_reason"),
        "history_status": history_status,
        "wall_seconds": round(wall_seconds, 1),
    }
    if extension is not None:
        summary["extension"] = extension
    return summary


def extension_summary(entries):
    """The extension part of the summary and the history record: totals and every run."""
    return {"totals": {key: sum(entry[key] for entry in entries) for key in EXTENSION_COUNTS}, "runs": entries}


def write_json(path, document):
    """Replace ``path`` with ``document`` as JSON, in one step (see write_text)."""
    write_text(path, json.dumps(document, indent=2, sort_keys=True, default=str) + "\n")


def write_text(path, text):
    """Replace ``path`` with ``text`` in one step (a temporary file beside it, renamed; removed if anything
    fails), so that a reader never sees half a file and nothing is left behind."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}-", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
            stream.write(text)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
