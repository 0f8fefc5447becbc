# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""What the operator reads: the plan, progress, each wave's result, the summary, and what a stop leaves running."""

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import outcomes

# Instance ids per line, and at most this many per reason before "and N more" (the summary file has them all).
IDS_PER_LINE = 6
MAX_IDS_SHOWN = 200


def plan_lines(plan, details=None):
    """The plan: the pattern, then each wave and account-region; ``details`` (check mode) maps a place to what
    its installs would do."""
    lines = [f"Deployment pattern: {plan.pattern}; {len(plan.planned)} instance(s) in {len(plan.waves)} wave(s)"]
    for wave in plan.waves:
        lines.append(f"Wave {wave.number}: {len(wave.instances)} instance(s)")
        for place in wave.places:
            into = f" -> staging {place.staging_account_id}" if place.cross_account else ""
            offline = sum(1 for instance in place.instances if (instance.ssm or {}).get("PingStatus") != "Online")
            text = (f"  {place.name}{into} (DRS {place.drs_region}): {len(place.instances)} instance(s), "
                    f"{offline} not Online in SSM")
            if details is not None and place in details:
                plan_of = details[place]
                skips = {}
                for entry in plan_of["would_skip"]:
                    skips[entry["status"]] = skips.get(entry["status"], 0) + 1
                text += (f"; would install {len(plan_of['would_install'])}, reinstall {len(plan_of['would_reinstall'])}, "
                         f"adopt {len(plan_of['would_adopt'])} already running, skip "
                         + (", ".join(f"{count} {status}" for status, count in sorted(skips.items())) or "none"))
            if place.extend_into:
                text += f"; then extended into {place.extend_into}"
            lines.append(text)
    if plan.no_wave:
        lines.append(f"Not in any wave (wave tag missing or not a whole number): {len(plan.no_wave)}: "
                     + ", ".join(instance.instance_id for instance in plan.no_wave[:MAX_IDS_SHOWN]))
    if plan.excluded:
        lines.append(f"Left out by the inventory limit or the waves filter: {plan.excluded}")
    return lines


def progress_line(label, totals, elapsed):
    return (f"{label}: {totals['done']}/{totals['total']} done, {totals['failed']} failed, {totals['in_flight']} in "
            f"flight, {totals['waiting_for_ssm']} waiting for SSM, {totals['awaiting_registration']} waiting for DRS "
            f"({int(elapsed)} s)")


def wave_lines(wave, figures, failures):
    """A wave's result: totals, each account-region, each unprotected instance with its reason and remediation."""
    lines = [f"Wave {wave.number}: {outcomes.figure_text(figures)} in {wave.wall_seconds} s "
             f"(failure rate {figures['failure_rate']:.0%})"]
    for place in wave.places:
        lines.append(f"  {place.name}: {outcomes.figure_text(outcomes.tally_of(i.record() for i in place.instances))}")
        if place in failures:
            lines.append(f"    stopped early: {failures[place]}")
        for instance in place.instances:
            if not outcomes.is_protected(instance.status):
                result = instance.result
                category = f" [{result['error_category']}]" if result.get("error_category") else ""
                detail = result.get("remediation") or result.get("reason") or ""
                lines.append(f"    {instance.instance_id} {instance.status}{category}: {detail}")
    return lines


def unprotected_lines(instances, summary_file=None):
    """The unprotected instances by status and category, by id (the summary file lists each with its reason)."""
    groups = {}
    for instance in instances:
        if outcomes.is_protected(instance.status):
            continue
        key = (instance.status, instance.result.get("error_category"))
        groups.setdefault(key, []).append(instance)
    if not groups:
        return []
    lines = [f"Unprotected: {sum(len(group) for group in groups.values())} instance(s)"
             + (f" (each with its reason and remediation in {summary_file})" if summary_file else "")]

    def order(entry):
        (status, category), _group = entry
        return outcomes.STATUSES.index(status), category or ""

    for (status, category), group in sorted(groups.items(), key=order):
        label = f"{status} [{category}]" if category else status
        remediation = group[0].result.get("remediation") or ""
        lines.append(f"  {label}: {len(group)}" + (f" - {remediation}" if remediation and category is None else ""))
        ids = [instance.instance_id for instance in group]
        shown = ids[:MAX_IDS_SHOWN]
        for start in range(0, len(shown), IDS_PER_LINE):
            lines.append("    " + " ".join(shown[start:start + IDS_PER_LINE]))
        if len(ids) > len(shown):
            lines.append(f"    and {len(ids) - len(shown)} more")
    return lines


def summary_lines(summary):
    lines = [f"Deployment ({summary['deployment_pattern']}): {outcomes.figure_text(summary['totals'])} "
             f"in {summary['wall_seconds']} s"]
    for wave in summary["waves"]:
        lines.append(f"  wave {wave['wave']}: {outcomes.figure_text(wave)} in {wave['wall_seconds']} s")
    for account, figures in summary["accounts"].items():
        lines.append(f"  account {account}: {outcomes.figure_text(figures)}")
    if summary["stopped_after_wave"] is not None:
        lines.append(f"  stopped after wave {summary['stopped_after_wave']}: its failure rate was above "
                     f"{summary['max_failure_rate']:.0%}")
    for entry in summary["unreachable"]:
        where = f"{entry['account_id']}/{entry['region']}" if entry.get("region") else entry["account_id"]
        lines.append(f"  not reached: {where}: {entry['reason']}")
    if summary.get("extension"):
        totals = summary["extension"]["totals"]
        targets = sorted({run["target_account_id"] for run in summary["extension"]["runs"]})
        lines.append(f"  extension into {', '.join(targets) or 'no target account'}: {totals['extended']} extended, "
                     f"{totals['already_extended']} already extended, {totals['failed']} failed, "
                     f"{totals['left_out']} left out")
    return lines


def running_lines(running, reason):
    """What a stop leaves running: ``running`` maps an account-region's name to its instance ids."""
    count = sum(len(ids) for ids in running.values())
    if not count:
        return [f"The rollout stopped ({reason}); no install was running on any instance."]
    lines = [f"The rollout stopped ({reason}). {count} install(s) are still running on the instances, and go on "
             "there. Run the deployment again: it adopts them (no second install is sent) and counts them when "
             "they end."]
    for name, ids in sorted(running.items()):
        if ids:
            lines.append(f"  still running in {name}: " + " ".join(ids))
    return lines
