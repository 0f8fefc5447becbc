#!/usr/bin/env python
"""Benchmark the deploy playbook against the lab's scale scenario (run it through make bench).

Runs playbooks/deploy_agents.yml (role drs_agent_deploy) against a running lab (scripts/with-lab.sh
scale -- ...), once per time scale asked for (60 and 120 by default, the lab reset before each), and prints
what the rollout cost: wall time against the floor (per wave, the slowest simulated install, in real seconds
at the time scale used; a Success that never registers lasts until its registration timeout), the fixed
overhead in seconds (before the first send, between waves, after the last install), AWS calls per instance by
operation, the controller's peak memory (ansible-playbook and every process under it), and, for each stretch of
fixed overhead, how long of it the lab itself was busy answering (it answers one call at a time).

A benchmark, not a test: it exits 0 when it ran, whether or not the targets were met, and non-zero
when the run cannot be measured (the lab is not there, setup or the deploy playbook failed).
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# the scale scenario (3,120 instances) by default; scale-30k is its tenfold copy (scripts/scale_copies.py)
SCENARIO = os.environ.get("BENCH_SCENARIO", "scale")
SCENARIO_FILE = ROOT / "lab" / "scenarios" / f"{SCENARIO}.yml"
SETUP_VARS = f"playbooks/vars/lab_{SCENARIO}_setup.yml"
DEPLOY_VARS = f"playbooks/vars/lab_{SCENARIO}_deploy.yml"
OUT_DIR = ROOT / "out" / "bench"
WAVE_TAG = "dr:wave"
TAG_FILTERS = {"dr:enabled": "true", "dr:recovery-strategy": "drs"}

# The scale scenario's installs take 120-600 simulated seconds, and an install that hangs runs until
# its step's timeout (3600 s), or until drs_agent_deploy_install_timeout cancels it (the bench's vars set
# it). The fixed overhead (the start-up: roles, discovery, the run's record; the turn from one wave to the
# next; the end: summary, record, metrics) does not shrink with the installs, so it is printed in seconds,
# at a minute and at two minutes of simulated time per real second.
DEFAULT_TIME_SCALES = (60.0, 120.0)
# The goals per scenario: at 31,200 instances in 120 account-regions the start-up assumes 140 roles and
# discovers ten times the instances, and each wave turns over ten times the installs. There the goals are set per
# stretch of fixed overhead and the ratio wall / floor is shown without one: at time scale 60 its 1.15 would leave
# 13 s for all of them together, less than the start-up's own goal.
TARGETS = {
    "scale": {"overhead": 1.15, "before_first_send": 5.0, "gap": 1.0, "after_last_install": 3.0,
              "calls_per_instance": 0.2, "peak_mb": 300.0},
    "scale-30k": {"overhead": None, "before_first_send": 15.0, "gap": 2.0, "after_last_install": 5.0,
                  "calls_per_instance": 0.2, "peak_mb": 450.0},
}
TARGET = TARGETS.get(SCENARIO, TARGETS["scale"])
TARGET_OVERHEAD = TARGET["overhead"]
TARGET_BEFORE_FIRST_SEND = TARGET["before_first_send"]
TARGET_GAP = TARGET["gap"]
TARGET_AFTER_LAST_INSTALL = TARGET["after_last_install"]
TARGET_CALLS_PER_INSTANCE = TARGET["calls_per_instance"]
TARGET_PEAK_MB = TARGET["peak_mb"]
# An AWX slice's goal: its share of the one controller's goal, plus what every ansible-playbook costs.
SLICE_BASE_MB = 150.0
SAMPLE_SECONDS = 0.25
DEPLOY_PLAYBOOK = "playbooks/deploy_agents.yml"
CONTROLLER_VARS = f"playbooks/vars/lab_{SCENARIO}_controller.yml"
WORKFLOW = "DRS rollout"
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


class BenchError(Exception):
    """The bench cannot give valid figures."""


def control(url, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(f"{url}/_lab/{path}", data=data, method="GET" if body is None else "POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def operation_counts(stats):
    """{"service:Operation": calls} summed over every account."""
    counts = {}
    for services in stats["calls"].values():
        for service, operations in services.items():
            for operation, calls in operations.items():
                key = f"{service}:{operation}"
                counts[key] = counts.get(key, 0) + calls
    return counts


# --- the controller's memory -------------------------------------------------------------------

def process_table():
    """{pid: (parent pid, state, resident bytes)} of every process now."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stream:
                fields = stream.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        table[int(entry)] = (int(fields[1]), fields[0], int(fields[21]) * PAGE_SIZE)
    return table


def descendants(table, root):
    children = {}
    for pid, (parent, _state, _rss) in table.items():
        children.setdefault(parent, []).append(pid)
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def process_kind(pid):
    """What a process of the playbook's tree is, from its command line."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as stream:
            words = stream.read().decode(errors="replace").split("\0")
    except OSError:
        return "gone"
    text = " ".join(words)
    if "ansible-playbook" in text:
        return "ansible-playbook (main and forked workers)"
    if "AnsiballZ_" in text:
        return "modules"
    return "other"


def pss_bytes(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii", errors="replace") as stream:
            for line in stream:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def breakdown(table, tree):
    """{kind: [processes, resident bytes, proportional bytes]} of the processes in ``tree``."""
    kinds = {}
    for pid in tree:
        entry = kinds.setdefault(process_kind(pid), [0, 0, 0])
        entry[0] += 1
        entry[1] += table[pid][2]
        entry[2] += pss_bytes(pid)
    return kinds


class MemorySampler:
    """Peak of the summed resident memory of every process under this one (the playbook's tree)."""

    def __init__(self, playbook_pid):
        self.playbook_pid = playbook_pid
        self.peak_bytes = 0
        self.peak_processes = 0
        self.peak_breakdown = {}
        self.samples = 0

    def sample(self):
        table = process_table()
        tree = descendants(table, os.getpid())
        total = sum(table[pid][2] for pid in tree)
        self.samples += 1
        if total > self.peak_bytes:
            self.peak_bytes, self.peak_processes = total, len(tree)
            self.peak_breakdown = breakdown(table, tree)

    def report(self):
        peak_mb = self.peak_bytes / 1e6
        lines = [f"peak memory           {peak_mb:.1f} MB resident, summed over ansible-playbook and its "
                 f"{self.peak_processes} processes   target < {TARGET_PEAK_MB:g} MB   {verdict(peak_mb < TARGET_PEAK_MB)}"]
        pss_total = sum(entry[2] for entry in self.peak_breakdown.values())
        lines.append(f"  at that peak: {pss_total / 1e6:.1f} MB proportional (PSS: shared pages counted once)")
        for kind, (count, rss, pss) in sorted(self.peak_breakdown.items(), key=lambda item: -item[1][1]):
            lines.append(f"  {kind:<44} {count:>3} process(es)  {rss / 1e6:>7.1f} MB resident  {pss / 1e6:>7.1f} MB PSS")
        return lines


class SliceSampler:
    """Peak resident memory of each job of an AWX rehearsal (an ansible-playbook that ansible-runner started, with
    every process under it), and of all the deploy slices running at once."""

    def __init__(self):
        self.peaks = {}  # job process id -> (playbook, peak bytes)
        self.peak_together = 0
        self.samples = 0

    def sample(self):
        table = process_table()
        together = 0
        for pid in [pid for pid, (parent, _state, _rss) in table.items() if parent == os.getpid()]:
            playbook = job_playbook(pid)
            if playbook is None:
                continue
            total = table[pid][2] + sum(table[child][2] for child in descendants(table, pid))
            if total > self.peaks.get(pid, ("", 0))[1]:
                self.peaks[pid] = (playbook, total)
            if playbook == DEPLOY_PLAYBOOK:
                together += total
        self.peak_together = max(self.peak_together, together)
        self.samples += 1

    def report(self, slices):
        deploy = [peak for playbook, peak in self.peaks.values() if playbook == DEPLOY_PLAYBOOK]
        worst = max(deploy, default=0) / 1e6
        target = TARGET_PEAK_MB / slices + SLICE_BASE_MB
        lines = [f"peak memory per slice {worst:.1f} MB resident (the largest of {len(deploy)} deploy slice jobs, each "
                 f"ansible-playbook with every process under it)   target < {target:g} MB ({TARGET_PEAK_MB:g} / {slices} "
                 f"+ {SLICE_BASE_MB:g})   {verdict(worst < target)}",
                 f"  the slices of a wave together: {self.peak_together / 1e6:.1f} MB at most"]
        others = {}
        for playbook, peak in self.peaks.values():
            if playbook != DEPLOY_PLAYBOOK:
                others[playbook] = max(others.get(playbook, 0), peak)
        lines.extend(f"  {playbook:<44} {peak / 1e6:>7.1f} MB at most" for playbook, peak in sorted(others.items()))
        return lines


def job_playbook(pid):
    """The playbook an ansible-playbook process runs (None for any other process)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as stream:
            words = stream.read().decode(errors="replace").split("\0")
    except OSError:
        return None
    if not any(word.endswith("ansible-playbook") for word in words):
        return None
    return next((word for word in words if word.endswith(".yml") and word.startswith("playbooks/")),
                next((word for word in words if word.endswith(".yml")), "?"))


# --- running the playbooks ---------------------------------------------------------------------

def ansible_environment():
    env = dict(os.environ)
    env.setdefault("ANSIBLE_FORCE_COLOR", "0")
    env["ANSIBLE_NOCOLOR"] = "1"
    # per-task timings at the end of the log, to see where the wall time goes
    env["ANSIBLE_CALLBACKS_ENABLED"] = "ansible.posix.profile_tasks"
    env["PROFILE_TASKS_TASK_OUTPUT_LIMIT"] = "25"
    return env


def ansible_playbook():
    return str(Path(sys.executable).parent / "ansible-playbook")


def run_setup(log_path):
    """The install documents in the source accounts, and the history table the deployment records its run in."""
    with open(log_path, "w", encoding="utf-8") as log:
        for command in ([ansible_playbook(), "playbooks/setup_accounts.yml", "-e", "@" + SETUP_VARS],
                        [ansible_playbook(), "playbooks/setup_history.yml"]):
            completed = subprocess.run(command, cwd=ROOT, env=ansible_environment(), stdout=log, stderr=subprocess.STDOUT,
                                       check=False)
            if completed.returncode != 0:
                raise BenchError(f"{command[1]} failed (exit {completed.returncode}); see {log_path}")


def run_deploy(log_path, summary_path):
    """(exit status, wall seconds, memory sampler, epoch seconds of its start) of the deploy playbook."""
    command = [ansible_playbook(), "playbooks/deploy_agents.yml", "-e", "@" + DEPLOY_VARS,
               "-e", f"drs_agent_deploy_summary_file={summary_path}"]
    with open(log_path, "w", encoding="utf-8") as log:
        started, started_at = time.monotonic(), time.time()
        with subprocess.Popen(command, cwd=ROOT, env=ansible_environment(), stdout=log, stderr=subprocess.STDOUT) as playbook:
            sampler = MemorySampler(playbook.pid)
            while playbook.poll() is None:
                sampler.sample()
                time.sleep(SAMPLE_SECONDS)
            wall = time.monotonic() - started
    return playbook.returncode, wall, sampler, started_at


# --- the scenario and the floor ----------------------------------------------------------------

def scenario_facts(path):
    """DR-tagged instance count, account-regions, and {group name: wave} from the scenario file."""
    scenario = yaml.safe_load(path.read_text(encoding="utf-8"))
    names = {account["name"]: account["id"] for account in scenario["accounts"]}
    waves, places, instances = {}, set(), 0
    for group in scenario["instance_groups"]:
        tags = group.get("tags") or {}
        if any(tags.get(key) != value for key, value in TAG_FILTERS.items()) or WAVE_TAG not in tags:
            continue
        waves[group["name"]] = int(tags[WAVE_TAG])
        places.add((names.get(group["account"], group["account"]), group["region"]))
        instances += group["count"]
    return {"instances": instances, "account_regions": len(places), "group_waves": waves}


def wave_timeline(timeline, group_waves, sim_origin, scale, registration_timeout):
    """Per wave: installs sent, the slowest install (simulated s) and its outcome, and when (real s
    after the playbook started) the wave's first and last install command went out and its last
    install was over.

    An install is over when it ends, but a Success that registers no source server only when the
    deployment's registration timeout (``registration_timeout`` real seconds) has passed after it: no
    rollout can tell it from a slow registration sooner, so that wait counts as the install's, not
    as overhead."""
    waves = {}

    def real(sim):
        return (sim - sim_origin) / scale

    for command in timeline["commands"]:
        if not command["installs_agent"] or command["requested_at"] < sim_origin:
            continue
        for invocation in command["invocations"]:
            wave = group_waves.get(invocation["group"])
            if wave is None:
                continue
            entry = waves.setdefault(wave, {"sent": 0, "slowest": 0.0, "slowest_outcome": "", "first_send": None,
                                            "last_send": None, "last_over": None, "unfinished": 0})
            entry["sent"] += 1
            sent_at = real(command["requested_at"])
            entry["first_send"] = sent_at if entry["first_send"] is None else min(entry["first_send"], sent_at)
            entry["last_send"] = sent_at if entry["last_send"] is None else max(entry["last_send"], sent_at)
            if invocation["ended_at"] is None:
                if invocation["started_at"] is not None:
                    entry["unfinished"] += 1
                continue
            duration = invocation["ended_at"] - invocation["started_at"]
            outcome = invocation["status_details"]
            if invocation["status"] == "Success" and not invocation["registers_source_server"]:
                duration += registration_timeout * scale
                outcome = "Success, never registered"
            over = real(invocation["started_at"] + duration)
            entry["last_over"] = over if entry["last_over"] is None else max(entry["last_over"], over)
            if duration > entry["slowest"]:
                entry["slowest"], entry["slowest_outcome"] = duration, outcome
    return dict(sorted(waves.items()))


# --- the lab's share ----------------------------------------------------------------------------

def lab_busy(service_times, origin, start, end):
    """(seconds, {"service:Operation": seconds}) the lab worked on calls between ``start`` and ``end`` (real
    seconds after ``origin``, an epoch time). The lab answers one call at a time: while it works, the controller
    waits, whatever it could do against AWS, where calls are answered side by side."""
    total, by_operation = 0.0, {}
    for began, seconds, operation in service_times:
        began -= origin
        overlap = min(began + seconds, end) - max(began, start)
        if overlap > 0:
            total += overlap
            by_operation[operation] = by_operation.get(operation, 0.0) + overlap
    return total, by_operation


def lab_share(service_times, origin, start, end):
    """The lab's share of a window, for the report: "lab busy 12.3 s (ec2:DescribeInstances 8.1, ...)"."""
    total, by_operation = lab_busy(service_times, origin, start, end)
    biggest = sorted(by_operation.items(), key=lambda item: -item[1])[:3]
    return f"lab busy {total:.1f} s" + (f" ({', '.join(f'{op} {seconds:.1f}' for op, seconds in biggest)})" if biggest else "")


# --- the report --------------------------------------------------------------------------------

def verdict(met):
    return "met" if met else "MISSED"


def overhead(waves, wall, scale):
    """Where the wall time beyond the floor goes, in real seconds: before the first install is sent (start-up:
    roles, discovery, planning, the run's first record), each gap between the moment one wave's last install was
    over and the next wave's first send, within the waves beyond their slowest install, and after the last install
    was over; None when an install of a wave had not ended when the playbook ended."""
    entries = list(waves.values())
    if any(entry["last_over"] is None for entry in entries):
        return None
    return {
        "before_first_send": entries[0]["first_send"],
        "gaps": [later["first_send"] - earlier["last_over"] for earlier, later in zip(entries, entries[1:])],
        "within_waves": sum(entry["last_over"] - entry["first_send"] - entry["slowest"] / scale for entry in entries),
        "after_last_install": wall - entries[-1]["last_over"],
    }


def print_report(facts, scale, summary, wall, waves, calls, sampler, load, lab, title=None, one_controller=True):
    """The report; ``one_controller`` False (the AWX rehearsal) shows the stretches and calls next to one controller's
    targets without judging them: each node's slice jobs start, assume the roles and discover anew, and the issue's
    goal for slices is their memory."""

    def judged(met):
        return verdict(met) if one_controller else "(one controller's target, not judged for slice jobs)"

    instances = summary["planned_instances"]
    floor = sum(entry["slowest"] for entry in waves.values()) / scale
    ratio = wall / floor if floor else float("inf")
    total_calls = sum(calls.values())
    per_instance = total_calls / instances if instances else float("inf")
    totals = summary["totals"]

    print(f"== make bench: {title or 'playbooks/deploy_agents.yml'} against the lab's {SCENARIO} scenario, time scale "
          f"{scale:g}")
    print(f"time scale            {scale:g} simulated seconds per real second")
    print(f"instances             {instances} DR-tagged (scenario: {facts['instances']}); {totals['installed']} installed, "
          f"{totals['already_registered']} already registered, {totals['failed']} failed, {totals['skipped']} skipped")
    print(f"waves                 {len(summary['waves'])}")
    print(f"account-regions       {facts['account_regions']}")
    print(f"load average          {load[0]} before, {load[1]} after (2 cores: above 2 means the timings are noisy)"
          if os.cpu_count() == 2 else f"load average          {load[0]} before, {load[1]} after ({os.cpu_count()} cores)")
    print()
    print("wave  sent  slowest install (sim s)            floor s  first send s  sends spread s  last over s  "
          "idle after s  wave wall s (role)")
    wave_walls = {wave["wave"]: wave["wall_seconds"] for wave in summary["waves"]}
    numbers = list(waves)
    for index, (number, entry) in enumerate(waves.items()):
        following = waves[numbers[index + 1]]["first_send"] if index + 1 < len(numbers) else wall
        idle = following - entry["last_over"] if entry["last_over"] is not None else float("nan")
        slowest = f"{entry['slowest']:.0f} ({entry['slowest_outcome']})"
        print(f"{number:>4}  {entry['sent']:>4}  {slowest:<35}  {entry['slowest'] / scale:>7.1f}  {entry['first_send']:>12.1f}  "
              f"{entry['last_send'] - entry['first_send']:>14.1f}  {entry['last_over'] or float('nan'):>11.1f}  {idle:>12.1f}  "
              f"{wave_walls.get(number, float('nan')):>18}")
        if entry["unfinished"]:
            print(f"      {entry['unfinished']} install(s) of wave {number} were still running when the playbook ended")
    print()
    print(f"wall time             {wall:.1f} s (deploy playbook, from start to exit)")
    print(f"floor                 {floor:.1f} s (sum over waves of the slowest simulated install / time scale; a Success "
          "that never registers lasts until its registration timeout)")
    if TARGET_OVERHEAD is None:
        print(f"overhead              {ratio:.3f} = wall / floor      (no target at this scale: one per stretch below)")
    else:
        print(f"overhead              {ratio:.3f} = wall / floor      target <= {TARGET_OVERHEAD}   "
              f"{verdict(ratio <= TARGET_OVERHEAD)}")
    fixed = overhead(waves, wall, scale)
    if fixed is None:
        print("  fixed overhead      (not known: an install of a wave had not ended when the playbook ended)")
    else:
        worst_gap = max(fixed["gaps"], default=0.0)
        entries = list(waves.values())
        print(f"  before first send   {fixed['before_first_send']:.1f} s   target < {TARGET_BEFORE_FIRST_SEND:g} s   "
              f"{judged(fixed['before_first_send'] < TARGET_BEFORE_FIRST_SEND)}")
        print(f"                      {lab(0.0, entries[0]['first_send'])}")
        print(f"  between waves       {', '.join(f'{gap:.1f}' for gap in fixed['gaps'])} s ({len(fixed['gaps'])} gaps, "
              f"{sum(fixed['gaps']):.1f} s in all)   target < {TARGET_GAP:g} s each   {judged(worst_gap < TARGET_GAP)}")
        for earlier, later in zip(entries, entries[1:]):
            print(f"                      {lab(earlier['last_over'], later['first_send'])}")
        print(f"  after last install  {fixed['after_last_install']:.1f} s   target < {TARGET_AFTER_LAST_INSTALL:g} s   "
              f"{judged(fixed['after_last_install'] < TARGET_AFTER_LAST_INSTALL)}")
        print(f"                      {lab(entries[-1]['last_over'], wall)}")
        print(f"  within waves        {fixed['within_waves']:.1f} s beyond their slowest install (sends spread, the "
              "end of a wave noticed)")
    print(f"AWS calls             {total_calls} in total, {per_instance:.3f} per instance   "
          f"target <= {TARGET_CALLS_PER_INSTANCE}   {judged(per_instance <= TARGET_CALLS_PER_INSTANCE)}")
    for operation, count in sorted(calls.items(), key=lambda item: (-item[1], item[0])):
        print(f"  {operation:<40} {count:>6}  {count / instances:.3f} per instance")
    for line in sampler():
        print(line)


def bench(url, facts, scale):
    """One measured run at ``scale`` on a reset lab; its report, or BenchError."""
    summary_path = OUT_DIR / "summary.json"
    if summary_path.exists():
        summary_path.unlink()
    control(url, "reset", {})
    print(f"bench: creating the install documents and the history table (setup_accounts.yml, setup_history.yml) "
          f"for time scale {scale:g}", file=sys.stderr)
    run_setup(OUT_DIR / "setup.log")
    control(url, "clock", {"time_scale": scale})
    before = operation_counts(control(url, "stats"))
    sim_origin = control(url, "clock")["elapsed_seconds"]
    load_before = os.getloadavg()[0]
    log = OUT_DIR / f"deploy-{scale:g}.log"
    print(f"bench: running deploy_agents.yml at time scale {scale:g} (log: {log.relative_to(ROOT)})", file=sys.stderr)
    status, wall, sampler, started_at = run_deploy(log, summary_path)
    load_after = os.getloadavg()[0]
    after = operation_counts(control(url, "stats"))
    timeline = control(url, "invocations")
    service_times = control(url, "service-times")["service_times"]
    if status != 0:
        raise BenchError(f"deploy_agents.yml failed (exit {status}); see {log.relative_to(ROOT)}")
    if not summary_path.exists():
        raise BenchError("deploy_agents.yml wrote no summary")
    summary = json.loads(summary_path.read_text(encoding="utf-8"))
    calls = {op: after[op] - before.get(op, 0) for op in after if after[op] - before.get(op, 0)}
    registration_timeout = yaml.safe_load((ROOT / DEPLOY_VARS).read_text(encoding="utf-8"))[
        "drs_agent_deploy_registration_timeout"]
    waves = wave_timeline(timeline, facts["group_waves"], sim_origin, scale, registration_timeout)
    if not waves:
        raise BenchError("the lab saw no install commands")
    print_report(facts, scale, summary, wall, waves, calls, sampler.report, (round(load_before, 2), round(load_after, 2)),
                 lambda start, end: lab_share(service_times, started_at, start, end))


def node_summary(nodes):
    """The deploy nodes' rollouts as one summary (planned instances, totals, per wave the node's seconds)."""
    summary = {"planned_instances": 0, "totals": {}, "waves": []}
    for node in nodes:
        rollouts = [job["rollout"]["summary"] for job in node["jobs"] if (job["rollout"] or {}).get("summary")]
        if not rollouts:
            continue
        summary["planned_instances"] += sum(rollout["planned_instances"] for rollout in rollouts)
        for rollout in rollouts:
            for key, value in rollout["totals"].items():
                if isinstance(value, (int, float)):
                    summary["totals"][key] = summary["totals"].get(key, 0) + value
        summary["waves"].append({"wave": rollouts[0]["waves"][0]["wave"] if rollouts[0]["waves"] else None,
                                 "wall_seconds": node["seconds"]})
    return summary


def bench_awx(url, facts, scale, slices):
    """The AWX rehearsal of the controller configuration's workflow on a reset lab, each deploy node in ``slices``
    slice jobs side by side; its report, or BenchError."""
    # ansible-runner is needed by this mode only
    import awx_rehearsal  # pylint: disable=import-outside-toplevel

    control(url, "reset", {})
    print(f"bench: creating the install documents and the history table for time scale {scale:g}", file=sys.stderr)
    run_setup(OUT_DIR / "setup.log")
    variables = yaml.safe_load((ROOT / CONTROLLER_VARS).read_text(encoding="utf-8"))
    variables["job_slice_count"] = slices
    environment = dict(os.environ)
    try:
        # the rehearsal strips from this process's environment the AWS settings its jobs must not inherit
        result, update_seconds, started_at, wall, sampler, (load_before, load_after), before, sim_origin = \
            run_workflow(awx_rehearsal, url, variables, scale, slices)
    finally:
        os.environ.clear()
        os.environ.update(environment)
    after = operation_counts(control(url, "stats"))
    timeline = control(url, "invocations")
    service_times = control(url, "service-times")["service_times"]
    (OUT_DIR / f"awx-{slices}-slices.json").write_text(json.dumps(result, indent=2, default=str), encoding="utf-8")
    if result["status"] != "successful":
        failed = [node["identifier"] for node in result["nodes"] if node["status"] != "successful"]
        raise BenchError(f"the workflow failed at {', '.join(failed)}; see {OUT_DIR.relative_to(ROOT)}/awx-{slices}-slices.json")
    deploys = [node for node in result["nodes"] if node["playbook"] == DEPLOY_PLAYBOOK]
    summary = node_summary(deploys)
    calls = {op: after[op] - before.get(op, 0) for op in after if after[op] - before.get(op, 0)}
    registration_timeout = variables["extra_vars"]["drs_agent_deploy_registration_timeout"]
    waves = wave_timeline(timeline, facts["group_waves"], sim_origin, scale, registration_timeout)
    if not waves:
        raise BenchError("the lab saw no install commands")
    commands = [command for command in timeline["commands"] if command["installs_agent"]]
    deploy_end = max(node["ended_at"] for node in deploys) - started_at
    print(f"inventory update      {update_seconds:.1f} s before the workflow (drs_fleet over the estate's accounts; not "
          "counted below)")
    print_report(facts, scale, summary, deploy_end, waves, calls, lambda: sampler.report(slices),
                 (round(load_before, 2), round(load_after, 2)),
                 lambda start, end: lab_share(service_times, started_at, start, end),
                 title=f"the AWX rehearsal of the workflow {WORKFLOW!r}, {slices} slices side by side,",
                 one_controller=False)
    print(f"duplicate installs    {awx_rehearsal.duplicate_installs([], commands)} (an install sent to an instance "
          "whose earlier install was running or had succeeded)")
    print(f"workflow              {wall:.1f} s in all; wall time above ends with the last deploy node, then "
          f"{wall - deploy_end:.1f} s of the last gate and the report")
    print("node                      slices  instances  installed  failed        s")
    for node in result["nodes"]:
        print(f"{node['identifier']:<24} {node['slices']:>7}  {awx_rehearsal.shown(node['instances']):>9}  "
              f"{awx_rehearsal.shown(node['installed']):>9}  {awx_rehearsal.shown(node['failed']):>6}  {node['seconds']:>7}")


def run_workflow(awx_rehearsal, url, variables, scale, slices):
    """The inventory update, then the workflow with each slice job's memory sampled: (the workflow's result,
    the update's seconds, the workflow's start (epoch s), its wall seconds, the sampler, the load averages before
    and after, the lab's call counts before it, the lab's simulated time at its start)."""
    print(f"bench: inventory update ({variables['inventory_source_path']})", file=sys.stderr)
    updated = time.monotonic()
    rehearsal, workflow = awx_rehearsal.prepare(awx_rehearsal.controller.definitions(variables), WORKFLOW)
    update_seconds = time.monotonic() - updated
    rehearsal.lab_url = None  # duplicates are counted at the end: reading the lab's record between nodes holds it
    control(url, "clock", {"time_scale": scale})
    before = operation_counts(control(url, "stats"))
    sim_origin = control(url, "clock")["elapsed_seconds"]
    load_before = os.getloadavg()[0]
    print(f"bench: running the workflow {WORKFLOW!r} as AWX runs it, deploy nodes in {slices} slices, at time scale "
          f"{scale:g}", file=sys.stderr)
    sampler = SliceSampler()
    done = threading.Event()

    def sample():
        while not done.is_set():
            sampler.sample()
            time.sleep(SAMPLE_SECONDS)

    watcher = threading.Thread(target=sample, daemon=True)
    started, started_at = time.monotonic(), time.time()
    watcher.start()
    try:
        result = rehearsal.run_workflow(workflow)
    finally:
        done.set()
        watcher.join()
    wall = time.monotonic() - started
    return result, update_seconds, started_at, wall, sampler, (load_before, os.getloadavg()[0]), before, sim_origin


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-scale", type=float, action="append", dest="time_scales",
                        help="simulated seconds per real second during the deploy; give it again for another run "
                             f"(default {' and '.join(f'{scale:g}' for scale in DEFAULT_TIME_SCALES)})")
    parser.add_argument("--awx-slices", type=int, default=None, metavar="N",
                        help=f"run the controller configuration's workflow as the AWX rehearsal does ({CONTROLLER_VARS}), "
                             "each deploy node in N slice jobs side by side, instead of one deploy playbook")
    args = parser.parse_args()
    url = os.environ.get("LAB_ENDPOINT_URL")
    if not url:
        print(f"bench: LAB_ENDPOINT_URL is not set; run it through scripts/with-lab.sh {SCENARIO} -- (make bench)",
              file=sys.stderr)
        return 2
    facts = scenario_facts(SCENARIO_FILE)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    try:
        if control(url, "scenario")["name"] != SCENARIO:
            raise BenchError(f"the lab does not run the {SCENARIO} scenario")
        for number, scale in enumerate(args.time_scales or DEFAULT_TIME_SCALES):
            if number:
                print()
            if args.awx_slices:
                bench_awx(url, facts, scale, args.awx_slices)
            else:
                bench(url, facts, scale)
    except (BenchError, OSError) as error:
        print(f"bench: invalid run: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
