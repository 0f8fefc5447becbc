# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Deployment plans and summaries: which instances go in which wave, and what came of them.

Controller-side logic of the drs_agent_deploy role, kept out of Jinja so it can be tested.
"""

PRIORITY_ORDER = ("critical", "high", "medium", "low")
RESULT_STATUSES = (
    "installed", "already_registered", "failed", "timed_out", "not_registered_after_success",
    "skipped_ssm_offline", "skipped_not_managed",
)
SKIPPED_STATUSES = ("skipped_ssm_offline", "skipped_not_managed")
FAILED_STATUSES = ("failed", "timed_out", "not_registered_after_success")
# Registered in the staging account, so extensible into the target account.
REGISTERED_STATUSES = ("installed", "already_registered")
EXTENSION_COUNTS = ("extended", "already_extended", "failed", "left_out")


def assume_failures(assumed_results):
    """The accounts whose role could not be assumed, with the reason, from sts_assume_role results
    registered over account items (the credentials of the others are never read here)."""
    return [
        {"account_id": result["item"]["account_id"], "reason": result.get("msg") or "the role could not be assumed"}
        for result in assumed_results
        if "sts_creds" not in result
    ]


def deployment_pattern(accounts):
    """same-account, cross-account or multi-account, from the source accounts and their staging accounts."""
    sources = {account["account_id"] for account in accounts}
    if len(sources) > 1:
        return "multi-account"
    account = accounts[0]
    if account.get("staging_account_id") in (None, "", account["account_id"]):
        return "same-account"
    return "cross-account"


def build_plan(discoveries, accounts, limit_instance_ids=None, waves=None, progress_dir=None):
    """The waves in numeric order, each with one install target per account-region.

    ``discoveries`` are the results registered from drs_discover looped over
    ``accounts | subelements('regions')``, or the result of one drs_discover run with the targets of
    ``discover_targets`` (its ``discoveries``, named ``<account_id>/<region>``); a failed one makes its
    account-region unreachable (with the reason), never silently empty.
    ``limit_instance_ids`` (the play's inventory hosts, after --limit) restricts the targets when given.
    ``progress_dir`` is where each target's install writes its progress file.
    """
    by_account = {account["account_id"]: account for account in accounts}
    limit = set(limit_instance_ids) if limit_instance_ids else None
    wanted_waves = {int(wave) for wave in waves} if waves else None
    targets = {}
    outside_limit, invalid, unreachable = [], [], []
    for discovery in _discoveries(discoveries, accounts):
        account, region = discovery["item"]
        account_id = account["account_id"]
        if discovery.get("failed"):
            unreachable.append({"account_id": account_id, "region": region,
                                "reason": discovery.get("msg", "discovery failed")})
            continue
        invalid.extend(dict(entry, account_id=account_id, region=region)
                       for entry in discovery.get("invalid_wave_instances", []))
        for instance in discovery.get("instances", []):
            if instance.get("wave") is None:
                continue
            if limit is not None and instance["instance_id"] not in limit:
                outside_limit.append(instance["instance_id"])
                continue
            if wanted_waves is not None and instance["wave"] not in wanted_waves:
                continue
            key = (instance["wave"], account_id, region)
            if key not in targets:
                targets[key] = _target(by_account[account_id], region, instance["wave"], progress_dir)
            targets[key]["instances"].append(_planned_instance(instance))
    plan_waves = []
    for wave in sorted({key[0] for key in targets}):
        wave_targets = [targets[key] for key in sorted(targets) if key[0] == wave]
        for target in wave_targets:
            target["instances"].sort(key=_priority_key)
            target["instance_ids"] = [instance["instance_id"] for instance in target["instances"]]
        plan_waves.append({
            "wave": wave,
            "targets": wave_targets,
            "instance_count": sum(len(target["instances"]) for target in wave_targets),
        })
    return {
        "pattern": deployment_pattern(accounts),
        "waves": plan_waves,
        "instance_count": sum(wave["instance_count"] for wave in plan_waves),
        "outside_limit": sorted(outside_limit),
        "invalid_wave_instances": invalid,
        "unreachable": unreachable,
    }


def _discoveries(discoveries, accounts):
    """Discoveries as (account, region) items: registered loop results pass as they are; the entries of one
    drs_discover run with targets are matched to their account-region by name. When that run failed
    before any target answered (its options), every account-region it was to discover failed with it."""
    if not isinstance(discoveries, dict):
        return discoveries
    places = {f"{account['account_id']}/{region}": (account, region)
              for account in accounts for region in account.get("regions") or []}
    if "discoveries" not in discoveries:
        message = discoveries.get("msg") or "discovery failed"
        return [{"item": list(place), "failed": True, "msg": message} for place in places.values()]
    return [dict(entry, item=list(places[entry["name"]])) for entry in discoveries["discoveries"]
            if entry.get("name") in places]


def discover_targets(accounts, credentials, unreachable=()):
    """The ``targets`` of one drs_discover run: every region of every account that is not unreachable, named
    ``<account_id>/<region>``, with the account's assumed-role credentials (and its account id, known from
    the role) when it has them, else the controller's own."""
    left_out = {entry["account_id"] for entry in unreachable}
    targets = []
    for account in accounts:
        if account["account_id"] in left_out:
            continue
        for region in account.get("regions") or []:
            target = {"name": f"{account['account_id']}/{region}", "region": region}
            target.update(_keys(credentials.get(account["account_id"]), account["account_id"]))
            targets.append(target)
    return targets


def install_targets(wave_targets, credentials):
    """The ``targets`` of one drs_ssm_install run for a wave's account-regions: each with its account's
    session (and account id, known from the role) and, cross-account, its staging account's session."""
    targets = []
    for target in wave_targets:
        fields = ("name", "instance_ids", "region", "drs_region", "staging_account_id", "progress_file")
        entry = {key: target[key] for key in fields if target.get(key) is not None}
        entry.update(_keys(credentials.get(target["account_id"]), target["account_id"]))
        if target.get("cross_account"):
            staging = credentials.get(target["staging_account_id"])
            if staging:
                entry.update(staging_access_key=staging["access_key"], staging_secret_key=staging["secret_key"],
                             staging_session_token=staging.get("session_token"))
        targets.append(entry)
    return targets


def _keys(session, account_id):
    """An assumed role's keys as target options, with the account they belong to (the role's)."""
    if not session or not session.get("access_key"):
        return {}
    return {"access_key": session["access_key"], "secret_key": session["secret_key"],
            "session_token": session.get("session_token"), "account_id": account_id}


def _target(account, region, wave, progress_dir):
    staging = account.get("staging_account_id") or account["account_id"]
    name = f"{account['account_id']}/{region}"
    return {
        "name": name,
        "progress_file": f"{progress_dir}/wave-{wave}-{account['account_id']}-{region}.json" if progress_dir else None,
        "wave": wave,
        "account_id": account["account_id"],
        "region": region,
        "drs_region": account.get("drs_region") or region,
        "staging_account_id": staging,
        # the target account the staging account's servers are extended into, when it is another account
        "extend_into": account.get("target_account_id") if account.get("target_account_id") not in (None, "", staging) else None,
        "cross_account": staging != account["account_id"],
        "instances": [],
    }


def _planned_instance(instance):
    return {
        "instance_id": instance["instance_id"],
        "name": instance.get("name"),
        "priority": instance.get("priority"),
        "platform": instance.get("platform"),
        "ssm_ping_status": (instance.get("ssm") or {}).get("ping_status"),
    }


def _priority_key(instance):
    priority = (instance.get("priority") or "").lower()
    rank = PRIORITY_ORDER.index(priority) if priority in PRIORITY_ORDER else len(PRIORITY_ORDER)
    return (rank, instance.get("name") or "", instance["instance_id"])


def plan_lines(plan):
    """The plan as lines a person reads: the pattern, then each wave and account-region."""
    lines = [f"Deployment pattern: {plan['pattern']}; {plan['instance_count']} instance(s) in "
             f"{len(plan['waves'])} wave(s)"]
    for wave in plan["waves"]:
        lines.append(f"Wave {wave['wave']}: {wave['instance_count']} instance(s)")
        for target in wave["targets"]:
            offline = sum(1 for instance in target["instances"] if instance["ssm_ping_status"] != "Online")
            into = f" -> staging {target['staging_account_id']}" if target["cross_account"] else ""
            lines.append(f"  {target['name']}{into} (DRS {target['drs_region']}): {len(target['instances'])} instance(s), "
                         f"{offline} not Online in SSM")
    if plan["invalid_wave_instances"]:
        lines.append(f"Not in any wave (wave tag missing or not a number): {len(plan['invalid_wave_instances'])}")
    if plan["outside_limit"]:
        lines.append(f"Left out by the inventory limit: {len(plan['outside_limit'])}")
    return lines


def failure_rate(counts):
    """Failed over attempted; skipped instances were not attempted."""
    attempted = sum(counts.get(status, 0) for status in RESULT_STATUSES if status not in SKIPPED_STATUSES)
    failed = sum(counts.get(status, 0) for status in FAILED_STATUSES)
    return round(failed / attempted, 4) if attempted else 0.0


def wave_outcome(job_results, wave, wall_seconds):
    """One wave's per-target results and counts, from the drs_wait_installs results of its jobs."""
    targets = []
    counts = dict.fromkeys(RESULT_STATUSES, 0)
    for job in job_results:
        result = job["result"]
        instances = result.get("results") or []
        if not instances and result.get("failed"):
            # the task failed before it had per-instance results: each of its instances failed with its message
            instances = [
                {"instance_id": instance_id, "status": "failed", "error_category": "unknown",
                 "reason": result.get("msg", "the install task failed")}
                for instance_id in job["item"]["instance_ids"]
            ]
        for instance in instances:
            counts[instance["status"]] += 1
        targets.append({
            "name": job["name"],
            "account_id": job["item"]["account_id"],
            "region": job["item"]["region"],
            "results": instances,
            "task_failed": bool(result.get("failed")),
            "message": result.get("msg", ""),
        })
    return {"wave": wave, "targets": targets, "counts": counts, "failure_rate": failure_rate(counts),
            "wall_seconds": round(wall_seconds, 1)}


def outcome_lines(outcome):
    """A wave's result as lines: totals, each account-region, then each unsuccessful instance."""
    figures = _figures(outcome["counts"])
    lines = [f"Wave {outcome['wave']}: {_figure_text(figures)} in {outcome['wall_seconds']} s "
             f"(failure rate {outcome['failure_rate']:.0%})"]
    for target in outcome["targets"]:
        counts = dict.fromkeys(RESULT_STATUSES, 0)
        for instance in target["results"]:
            counts[instance["status"]] += 1
        lines.append(f"  {target['name']}: {_figure_text(_figures(counts))}")
        for instance in target["results"]:
            if instance["status"] in FAILED_STATUSES or instance["status"] in SKIPPED_STATUSES:
                detail = instance.get("remediation") or instance.get("reason") or ""
                category = f" [{instance['error_category']}]" if instance.get("error_category") else ""
                lines.append(f"    {instance['instance_id']} {instance['status']}{category}: {detail}")
    return lines


def summarize(plan, outcomes, unreachable, wall_seconds, stopped_after_wave, max_failure_rate):
    """The deployment summary: per wave and per account, attempted, installed, failed, skipped, already registered."""
    by_account = {}
    waves = []
    for outcome in outcomes:
        wave_accounts = {}
        for target in outcome["targets"]:
            for instance in target["results"]:
                for table in (wave_accounts, by_account):
                    table.setdefault(target["account_id"], dict.fromkeys(RESULT_STATUSES, 0))
                    table[target["account_id"]][instance["status"]] += 1
        waves.append(dict(
            _figures(outcome["counts"]),
            wave=outcome["wave"],
            failure_rate=outcome["failure_rate"],
            wall_seconds=outcome["wall_seconds"],
            accounts={account: _figures(counts) for account, counts in sorted(wave_accounts.items())},
        ))
    totals = dict.fromkeys(RESULT_STATUSES, 0)
    for counts in by_account.values():
        for status, count in counts.items():
            totals[status] += count
    return {
        "deployment_pattern": plan["pattern"],
        "planned_waves": [wave["wave"] for wave in plan["waves"]],
        "planned_instances": plan["instance_count"],
        "waves": waves,
        "accounts": {account: _figures(counts) for account, counts in sorted(by_account.items())},
        "totals": _figures(totals),
        "unreachable": unreachable,
        "invalid_wave_instances": plan["invalid_wave_instances"],
        "max_failure_rate": max_failure_rate,
        "stopped_after_wave": stopped_after_wave,
        "wall_seconds": round(wall_seconds, 1),
    }


def summary_lines(summary):
    """The summary as lines: per wave, per account, totals, and what stopped or was left out."""
    lines = [f"Deployment ({summary['deployment_pattern']}): {_figure_text(summary['totals'])} "
             f"in {summary['wall_seconds']} s"]
    for wave in summary["waves"]:
        lines.append(f"  wave {wave['wave']}: {_figure_text(wave)} in {wave['wall_seconds']} s")
    for account, figures in summary["accounts"].items():
        lines.append(f"  account {account}: {_figure_text(figures)}")
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


def _figure_text(figures):
    rate = "n/a" if figures["success_rate"] is None else f"{figures['success_rate']:.0%}"
    return (f"{figures['attempted']} attempted, {figures['installed']} installed, "
            f"{figures['already_registered']} already registered, {figures['failed']} failed, "
            f"{figures['skipped']} skipped (success rate {rate})")


def _figures(counts):
    skipped = sum(counts.get(status, 0) for status in SKIPPED_STATUSES)
    attempted = sum(counts.get(status, 0) for status in RESULT_STATUSES) - skipped
    succeeded = counts.get("installed", 0) + counts.get("already_registered", 0)
    return {
        "attempted": attempted,
        "installed": counts.get("installed", 0),
        "already_registered": counts.get("already_registered", 0),
        "failed": sum(counts.get(status, 0) for status in FAILED_STATUSES),
        "skipped": skipped,
        "success_rate": round(succeeded / attempted, 4) if attempted else None,
        "by_status": {status: counts.get(status, 0) for status in RESULT_STATUSES},
    }


def history_results(plan, outcomes):
    """Every instance result of the deployment, with its account, region, wave and, from the plan, its
    name and priority: what drs_history_record records. drs_history_record keeps the details (SSM
    status, error, output tails) of failed instances only and counts the others, so theirs are left
    out: at thousands of instances they would be most of what the module is handed and echoes back."""
    planned = {
        instance["instance_id"]: instance
        for wave in plan["waves"] for target in wave["targets"] for instance in target["instances"]
    }
    results = []
    for outcome in outcomes:
        for target in outcome["targets"]:
            for result in target["results"]:
                instance = planned.get(result["instance_id"], {})
                kept = result if result["status"] in FAILED_STATUSES else {
                    "instance_id": result["instance_id"], "status": result["status"]}
                results.append(dict(
                    kept, account_id=target["account_id"], region=target["region"], wave=outcome["wave"],
                    name=instance.get("name"), priority=instance.get("priority"),
                ))
    return results


# --- extension into target accounts -------------------------------------------------------------

def source_server_arn(region, account_id, source_server_id):
    partition = "aws-us-gov" if region.startswith("us-gov-") else "aws-cn" if region.startswith("cn-") else "aws"
    return f"arn:{partition}:drs:{region}:{account_id}:source-server/{source_server_id}"


def extension_targets(wave_plan, outcome, unreachable=()):
    """The drs_extend_source_server runs after a wave: one per target account, staging account and DRS
    region, with the ARNs of the wave's servers registered in the staging account (new or already there).
    A target account whose role could not be assumed comes with the reason, to be reported, not run."""
    unreachable_reasons = {entry["account_id"]: entry["reason"] for entry in unreachable}
    planned = {target["name"]: target for target in wave_plan["targets"]}
    runs = {}
    for target in outcome["targets"]:
        plan = planned.get(target["name"])
        if plan is None or not plan.get("extend_into"):
            continue
        key = (plan["extend_into"], plan["staging_account_id"], plan["drs_region"])
        run = runs.setdefault(key, {
            "name": f"{plan['staging_account_id']}/{plan['drs_region']} into {plan['extend_into']}",
            "target_account_id": plan["extend_into"],
            "staging_account_id": plan["staging_account_id"],
            "region": plan["drs_region"],
            "source_server_arns": [],
            "unreachable_reason": unreachable_reasons.get(plan["extend_into"]),
        })
        run["source_server_arns"].extend(
            source_server_arn(run["region"], run["staging_account_id"], result["source_server_id"])
            for result in target["results"]
            if result["status"] in REGISTERED_STATUSES and result.get("source_server_id")
        )
    return [run for run in runs.values() if run["source_server_arns"]]


def extension_outcome(extension_results, wave):
    """What each drs_extend_source_server run of a wave did, from its registered loop results: counts,
    the servers that failed or were left out, capacity and warnings. A run that stopped before reaching
    any server (target account unreachable, access denied, DRS not initialized) failed for all of them."""
    entries = []
    for result in extension_results:
        run = result["item"]
        requested = len(run["source_server_arns"])
        entry = {
            "wave": wave, "target_account_id": run["target_account_id"], "staging_account_id": run["staging_account_id"],
            "region": run["region"], "requested": requested,
        }
        if result.get("skipped"):
            entry.update(dict.fromkeys(EXTENSION_COUNTS, 0), failed=requested,
                         message=f"not extended: target account {run['target_account_id']} could not be reached: "
                                 f"{run['unreachable_reason']}")
        elif "extended" not in result:
            entry.update(dict.fromkeys(EXTENSION_COUNTS, 0), failed=requested,
                         message=result.get("msg") or "the extension failed")
        else:
            failures = result.get("failed_servers") or []
            entry.update(
                extended=len(result["extended"]), already_extended=len(result.get("already_extended") or []),
                failed=len(failures), left_out=len(result.get("left_out") or []),
                failed_servers=[{key: failure.get(key) for key in ("staging_source_server_arn", "error_code", "message")}
                                for failure in failures],
                left_out_servers=[server["staging_source_server_arn"] for server in result.get("left_out") or []],
                capacity=result.get("capacity"),
                warnings=result.get("extension_warnings") or [],
            )
            if failures:
                entry["message"] = result.get("msg")
        entries.append(entry)
    return entries


def extension_lines(entries):
    lines = []
    for entry in entries:
        text = (f"Extension after wave {entry['wave']}: {entry['staging_account_id']}/{entry['region']} into "
                f"{entry['target_account_id']}: {entry['extended']} extended, {entry['already_extended']} already "
                f"extended, {entry['failed']} failed, {entry['left_out']} left out")
        if entry.get("capacity"):
            capacity = entry["capacity"]
            text += f"; capacity {capacity['after']}/{capacity['limit']} ({capacity['utilization_percent']}%)"
        lines.append(text)
        lines.extend(f"  warning: {warning}" for warning in entry.get("warnings", []))
        if entry.get("message"):
            lines.append(f"  {entry['message']}")
    return lines


def extension_summary(entries):
    """The extension part of the summary and the history record: totals and every run."""
    totals = {key: sum(entry[key] for entry in entries) for key in EXTENSION_COUNTS}
    return {"totals": totals, "runs": entries}
