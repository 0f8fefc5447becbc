#!/usr/bin/env python
"""Time event-driven protection against the lab's events scenario (run it through make event-bench).

Against a running lab (scripts/with-lab.sh events -- ...): creates the history table and the event bus, queue
and forwarding rules, starts the rulebook drs_orchestration.agent_deployer.protect_new_instances with windows of
--window seconds, tags --instances instances of the "new" group with dr:enabled=true within a few seconds (in
batches of 40, as an operator's script or an autoscaling group would), and prints, per instance, the real
seconds from its tag to the SendCommand that named it and to its source server in DRS, and the install commands
sent (how many, the largest). The lab runs at --time-scale simulated seconds per real second, so that the
simulated installs (1 to 2 minutes) take seconds; the rulebook's window and the deploy wait in real time.

Goal: every instance sent within the window plus 15 s of its tag. A benchmark, not a test: it exits 0 when it
ran, whether or not the goal was met, and non-zero when the run cannot be measured.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import boto3

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from tests.processes import running_children  # noqa: E402  (the repository's own helpers, after its root is on the path)
BIN = Path(sys.executable).parent
ORCHESTRATION, APPS, REGION = "111111111111", "222222222222", "us-east-1"
SOURCE_ROLE = f"arn:aws:iam::{APPS}:role/DRSOrchestrationSourceRole"
BOOTSTRAP_ROLE = f"arn:aws:iam::{APPS}:role/DRSSetupBootstrapRole"
EXTERNAL_ID = "lab-events-external-id"
QUEUE = "drs-orchestration-instance-events"
GOAL_AFTER_WINDOW = 15.0
TAG_BATCH = 40
POLL_SECONDS = 0.25


def lab_control(path, body=None):
    url = os.environ["AWS_ENDPOINT_URL"].rstrip("/") + f"/_lab/{path}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def playbook(name, variables, directory):
    path = directory / f"{name}-vars.json"
    path.write_text(json.dumps(variables), encoding="utf-8")
    completed = subprocess.run([str(BIN / "ansible-playbook"), f"playbooks/{name}.yml", "-e", f"@{path}"], cwd=ROOT,
                               capture_output=True, text=True, check=False)
    if completed.returncode:
        sys.exit(f"event-bench: playbooks/{name}.yml failed:\n{completed.stdout[-4000:]}{completed.stderr[-2000:]}")


def source_client(service):
    sts = boto3.client("sts", region_name=REGION)
    issued = sts.assume_role(RoleArn=SOURCE_ROLE, RoleSessionName="event-bench", ExternalId=EXTERNAL_ID)["Credentials"]
    return boto3.client(service, region_name=REGION, aws_access_key_id=issued["AccessKeyId"],
                        aws_secret_access_key=issued["SecretAccessKey"], aws_session_token=issued["SessionToken"])


def new_instances(count):
    ec2 = source_client("ec2")
    named = {}
    for page in ec2.get_paginator("describe_instances").paginate(
            Filters=[{"Name": "tag:Name", "Values": ["new-*"]}]):
        for reservation in page["Reservations"]:
            for instance in reservation["Instances"]:
                named[{t["Key"]: t["Value"] for t in instance["Tags"]}["Name"]] = instance["InstanceId"]
    if len(named) < count:
        sys.exit(f"event-bench: the scenario has {len(named)} untagged instances, fewer than --instances {count}")
    return [named[name] for name in sorted(named)[:count]]


def registered_instances(drs):
    return {server["sourceProperties"]["identificationHints"].get("awsInstanceID")
            for page in drs.get_paginator("describe_source_servers").paginate(filters={}) for server in page["items"]}


def figures(values):
    return f"min {min(values):.1f} s, median {statistics.median(values):.1f} s, max {max(values):.1f} s"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--window", type=int, default=60, help="the rulebook's window in seconds (default 60)")
    parser.add_argument("--instances", type=int, default=120, help="how many instances to tag (default 120)")
    parser.add_argument("--time-scale", type=float, default=60.0, help="the lab's simulated seconds per real second")
    parser.add_argument("--timeout", type=float, default=600.0, help="real seconds to wait for every registration")
    parser.add_argument("--task-times", action="store_true", help="print the rulebook's output with each task's time")
    options = parser.parse_args()

    lab_control("clock", {"time_scale": options.time_scale})
    with tempfile.TemporaryDirectory(prefix="event-bench-") as scratch:
        directory = Path(scratch)
        playbook("setup_history", {}, directory)
        playbook("setup_events", {
            "drs_event_setup_orchestration": {"account_id": ORCHESTRATION},
            "drs_event_setup_source_accounts": [{"account_id": APPS, "regions": [REGION], "assume_role_arn": BOOTSTRAP_ROLE,
                                                 "external_id": "lab-bootstrap-external-id"}],
        }, directory)
        deploy_vars = directory / "deploy-vars.json"
        deploy_vars.write_text(json.dumps({
            "drs_agent_deploy_accounts": [{"account_id": APPS, "regions": [REGION], "role_arn": SOURCE_ROLE}],
            "drs_agent_deploy_external_id": EXTERNAL_ID, "drs_agent_deploy_history_table": "drs-deployment-history",
        }), encoding="utf-8")
        rulebook_vars = directory / "rulebook-vars.json"
        rulebook_vars.write_text(json.dumps({
            "drs_events_queue_url": boto3.client("sqs", region_name=REGION).get_queue_url(QueueName=QUEUE)["QueueUrl"],
            "drs_events_region": REGION, "drs_events_window_seconds": options.window,
            "drs_events_deploy_vars_file": str(deploy_vars),
        }), encoding="utf-8")
        instance_ids = new_instances(options.instances)
        log_path = directory / "rulebook.log"
        environment = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ['PATH']}")
        if options.task_times:
            environment["ANSIBLE_CALLBACKS_ENABLED"] = "ansible.posix.profile_tasks"
        with open(log_path, "w", encoding="utf-8") as log:
            rulebook = subprocess.Popen(
                [str(BIN / "ansible-rulebook"), "-r", "drs_orchestration.agent_deployer.protect_new_instances",
                 "-i", "inventories/localhost.yml", "--vars", str(rulebook_vars), "-v"],
                cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT)
        try:
            measured = measure(options, instance_ids, log_path, rulebook)
        finally:
            if rulebook.poll() is None:
                rulebook.send_signal(signal.SIGINT)
                try:
                    rulebook.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    rulebook.kill()
        if options.task_times:
            print(log_path.read_text(encoding="utf-8", errors="replace"))
    report(options, instance_ids, *measured)


def measure(options, instance_ids, log_path, rulebook):
    deadline = time.monotonic() + 120
    while "drs_instance_events: reading" not in log_path.read_text(encoding="utf-8", errors="replace"):
        if rulebook.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"event-bench: the rulebook did not start:\n{log_path.read_text(encoding='utf-8')[-4000:]}")
        time.sleep(POLL_SECONDS)
    tagged_at = {}
    for start in range(0, len(instance_ids), TAG_BATCH):
        batch = instance_ids[start:start + TAG_BATCH]
        lab_control("tags", {"instance_ids": batch, "tag": {"dr:enabled": "true"}})
        now = time.monotonic()
        tagged_at.update({instance_id: now for instance_id in batch})
    wanted = set(instance_ids)
    sent_at, registered_at, commands = {}, {}, {}
    drs = source_client("drs")
    deadline = time.monotonic() + options.timeout
    while len(registered_at) < len(wanted):
        if time.monotonic() > deadline or rulebook.poll() is not None:
            sys.exit(f"event-bench: {len(wanted) - len(registered_at)} instance(s) not registered in time:\n"
                     f"{log_path.read_text(encoding='utf-8')[-4000:]}")
        now = time.monotonic()
        for command in lab_control("invocations")["commands"]:
            named = [invocation["instance_id"] for invocation in command["invocations"]]
            if command["installs_agent"] and wanted & set(named):
                commands[command["command_id"]] = len(named)
                for instance_id in wanted & set(named):
                    sent_at.setdefault(instance_id, now)
        for instance_id in wanted & registered_instances(drs):
            registered_at.setdefault(instance_id, now)
        time.sleep(POLL_SECONDS)
    # the deploys end (summary, record) before the rulebook is stopped: stopped otherwise, it leaves them behind
    while running_children(rulebook.pid, "ansible-playbook"):
        if time.monotonic() > deadline:
            sys.exit("event-bench: the rulebook's deploys did not end in time")
        time.sleep(POLL_SECONDS)
    return tagged_at, sent_at, registered_at, commands


def report(options, instance_ids, tagged_at, sent_at, registered_at, commands):
    to_send = [sent_at[i] - tagged_at[i] for i in instance_ids]
    to_registration = [registered_at[i] - tagged_at[i] for i in instance_ids]
    goal = options.window + GOAL_AFTER_WINDOW
    print(f"event-driven protection: {len(instance_ids)} instances tagged, windows of {options.window} s, "
          f"lab time scale {options.time_scale:g}")
    print(f"  tag -> SendCommand:   {figures(to_send)} (goal: window + {GOAL_AFTER_WINDOW:g} s = {goal:g} s: "
          f"{'met' if max(to_send) <= goal else 'not met'})")
    print(f"  tag -> registered:    {figures(to_registration)} (the simulated install lasts 60-120 s)")
    print(f"  install commands:     {len(commands)}, the largest naming {max(commands.values())} instance(s) "
          f"(SSM allows 50)")


if __name__ == "__main__":
    main()
