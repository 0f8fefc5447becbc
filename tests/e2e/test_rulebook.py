"""The rulebook extensions/eda/rulebooks/protect_new_instances.yml run by ansible-rulebook against the lab: the
event setup's queue read by the collection's event source, windows of instances deployed by
playbooks/protect_instances.yml, and what the lab's SSM, DRS and the history then hold.

One rulebook runs for the whole module (windows of WINDOW_SECONDS); the tests tag the scenario's instances through
the lab's control API, as an operator or an autoscaling group would through EC2, and wait (in real time, bounded)
for what the rulebook's deploys leave behind."""

import json
import os
import signal
import subprocess
import time

import pytest
from boto3.dynamodb.types import TypeDeserializer

from tests.e2e.conftest import ANSIBLE_BIN, collection_environment, run_playbook
from tests.lab_fixture import REPO_ROOT
from tests.processes import running_children

SCENARIO = "events"
ORCHESTRATION, APPS, LOCKED = "111111111111", "222222222222", "555555555555"
REGION = "us-east-1"
DEPLOY_EXTERNAL_ID = "lab-events-external-id"
QUEUE = "drs-orchestration-instance-events"
TABLE = "drs-deployment-history"
WINDOW_SECONDS = 3
# bounds on real time for what the rulebook does: ansible-rulebook starting its JVM, a window, a deploy
STARTUP_TIMEOUT = 120
SETTLE_TIMEOUT = 300
DR_TAG = {"dr:enabled": "true"}


def source_role(account):
    return f"arn:aws:iam::{account}:role/DRSOrchestrationSourceRole"


def wait_for(what, predicate, timeout=SETTLE_TIMEOUT, rulebook=None):
    """Poll ``predicate`` until it returns something true; fail saying what was awaited (and the rulebook's output)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    tail = rulebook.output()[-6000:] if rulebook else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{tail}")


class Rulebook:
    """ansible-rulebook running protect_new_instances with the given rulebook variables, its output in a file."""

    def __init__(self, lab, directory, variables):
        self.log_path = directory / "rulebook.log"
        vars_path = directory / "rulebook-vars.json"
        vars_path.write_text(json.dumps(variables), encoding="utf-8")
        environment = lab.environment(**collection_environment())
        # ansible-rulebook finds collections with ansible-galaxy, from PATH
        environment["PATH"] = f"{ANSIBLE_BIN}{os.pathsep}{environment['PATH']}"
        with open(self.log_path, "w", encoding="utf-8") as log:
            self.process = subprocess.Popen(
                [str(ANSIBLE_BIN / "ansible-rulebook"), "-r", "drs_orchestration.agent_deployer.protect_new_instances",
                 "-i", str(REPO_ROOT / "inventories" / "localhost.yml"), "--vars", str(vars_path), "-v"],
                cwd=REPO_ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT)
        wait_for("the event source to read the queue", lambda: "drs_instance_events: reading" in self.output(),
                 STARTUP_TIMEOUT, self)

    def output(self):
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def running(self):
        return self.process.poll() is None

    def jobs(self):
        """The ansible-playbook processes the rulebook runs now (ansible-runner starts them as its children)."""
        return running_children(self.process.pid, "ansible-playbook")

    def stop(self):
        """Ctrl-C once no deploy runs: ansible-rulebook then ends at once. (Stopped otherwise, a SIGTERM or a kill
        leaves the deploy it started behind, since ansible-runner starts jobs that ignore SIGHUP.)"""
        if self.running():
            wait_for("the rulebook's deploys to end", lambda: not self.jobs(), rulebook=self)
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture(scope="module")
def lab(lab_factory):
    # the deploys wait on the lab's clock (tests/lab_clock.py); real time moves it at its own pace
    return lab_factory(SCENARIO)


@pytest.fixture(scope="module")
def estate(lab, tmp_path_factory):
    """The history table, the event bus, queue and forwarding rules, the deploy's variables file, and the instances
    by name."""
    directory = tmp_path_factory.mktemp("rulebook")
    assert run_playbook(lab, REPO_ROOT / "playbooks" / "setup_history.yml").returncode == 0
    setup = run_playbook(lab, REPO_ROOT / "playbooks" / "setup_events.yml", {
        "drs_event_setup_orchestration": {"account_id": ORCHESTRATION},
        "drs_event_setup_source_accounts": [
            {"account_id": account, "regions": [REGION], "assume_role_arn": f"arn:aws:iam::{account}:role/DRSSetupBootstrapRole",
             "external_id": "lab-bootstrap-external-id"} for account in (APPS, LOCKED)],
    })
    assert setup.returncode == 0, setup.stdout + setup.stderr
    deploy_vars = directory / "deploy-vars.json"
    deploy_vars.write_text(json.dumps({
        "drs_agent_deploy_accounts": [{"account_id": account, "regions": [REGION], "role_arn": source_role(account)}
                                      for account in (APPS, LOCKED)],
        "drs_agent_deploy_external_id": DEPLOY_EXTERNAL_ID,
    }), encoding="utf-8")
    names = {}
    for account in (APPS, LOCKED):
        ec2 = client(lab, "ec2", account)
        for page in ec2.get_paginator("describe_instances").paginate():
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    tags = {tag["Key"]: tag["Value"] for tag in instance.get("Tags", [])}
                    names[tags["Name"]] = instance["InstanceId"]
    queue_url = lab.client("sqs").get_queue_url(QueueName=QUEUE)["QueueUrl"]
    return {"directory": directory, "deploy_vars": deploy_vars, "names": names, "queue_url": queue_url}


@pytest.fixture(scope="module")
def rulebook(lab, estate):
    running = Rulebook(lab, estate["directory"], {
        "drs_events_queue_url": estate["queue_url"],
        "drs_events_region": REGION,
        "drs_events_window_seconds": WINDOW_SECONDS,
        "drs_events_deploy_vars_file": str(estate["deploy_vars"]),
    })
    yield running
    running.stop()


def client(lab, service, account):
    credentials = None if account == ORCHESTRATION else lab.assume(
        source_role(account), DEPLOY_EXTERNAL_ID if account == APPS else "another-teams-external-id")
    return lab.client(service, REGION, credentials)


def tag(lab, instance_ids, tags=None, untag=None):
    body = {"instance_ids": list(instance_ids)}
    if tags:
        body["tag"] = tags
    if untag:
        body["untag"] = untag
    lab.control("tags", body)


def install_commands(lab):
    """instance id -> the install commands sent for it, each as (command id, how many instances it named)."""
    per_instance = {}
    for command in lab.control("invocations")["commands"]:
        if command["installs_agent"]:
            for invocation in command["invocations"]:
                per_instance.setdefault(invocation["instance_id"], []).append(
                    (command["command_id"], len(command["invocations"])))
    return per_instance


def registered(lab, account=APPS):
    """The instance ids with a DRS source server in ``account``."""
    drs = client(lab, "drs", account)
    servers = [server for page in drs.get_paginator("describe_source_servers").paginate(filters={})
               for server in page["items"]]
    return {server["sourceProperties"]["identificationHints"].get("awsInstanceID") for server in servers}


def event_deployments(lab):
    """The history's items of runs started by events, oldest first."""
    pages = lab.client("dynamodb").get_paginator("scan").paginate(TableName=TABLE)
    items = [{key: TypeDeserializer().deserialize(value) for key, value in item.items()}
             for page in pages for item in page["Items"]]
    items = json.loads(json.dumps(items, default=float))
    return sorted((item for item in items if item.get("record_type") == "deployment"
                   and item.get("deployment_pattern") == "event"), key=lambda item: item["timestamp"])


def finished_event_deployments(lab):
    return [item for item in event_deployments(lab) if item["status"] != "in_progress"]


def windows_closed(rulebook):
    return rulebook.output().count("drs_instance_events: window of")


def test_one_tagged_instance_is_protected_and_recorded(lab, estate, rulebook):
    instance_id = estate["names"]["new-001"]
    assert instance_id not in registered(lab)

    tag(lab, [instance_id], DR_TAG)

    wait_for(f"{instance_id} to register in DRS", lambda: instance_id in registered(lab), rulebook=rulebook)
    [item] = wait_for("the event deploy's record", lambda: finished_event_deployments(lab), rulebook=rulebook)
    assert item["source_account_id"] == APPS
    assert item["status"] == "success"
    assert (item["attempted"], item["installed"], item["failed"]) == (1, 1, 0)
    assert len(install_commands(lab)[instance_id]) == 1


def test_many_instances_tagged_at_once_install_in_batches_of_at_most_50(lab, estate, rulebook):
    instance_ids = [estate["names"][f"new-{index:03d}"] for index in range(2, 122)]
    before = len(finished_event_deployments(lab))

    for start in range(0, len(instance_ids), 40):
        tag(lab, instance_ids[start:start + 40], DR_TAG)

    wait_for("the 120 instances to register in DRS", lambda: set(instance_ids) <= registered(lab), rulebook=rulebook)
    wait_for("the deploys to be recorded", lambda: len(finished_event_deployments(lab)) > before, rulebook=rulebook)
    commands = install_commands(lab)
    assert all(len(commands[instance_id]) == 1 for instance_id in instance_ids)
    sizes = {command_id: size for instance_id in instance_ids for command_id, size in commands[instance_id]}
    assert max(sizes.values()) <= 50
    # gathered by windows, not one command per event: at least three full-ish batches, far fewer than 120 commands
    assert 3 <= len(sizes) <= 12, sizes
    recorded = finished_event_deployments(lab)[before:]
    assert sum(item["installed"] for item in recorded) == 120
    assert all(item["status"] == "success" for item in recorded)


def test_redelivered_events_and_protected_or_installing_instances_get_no_second_install(lab, estate, rulebook):
    again = estate["names"]["new-001"]
    protected = estate["names"]["protected-01"]
    installing = estate["names"]["new-125"]
    # the very tag change event that protected new-001, delivered twice more, as SQS may
    [delivered] = [record["event"] for record in lab.control("events")["events"]
                   if record["event"]["detail-type"] == "Tag Change on Resource"
                   and record["event"]["resources"][0].endswith(again)]
    sqs = lab.client("sqs")
    for copy in (1, 2):
        sqs.send_message(QueueUrl=estate["queue_url"], MessageBody=json.dumps(delivered),
                         MessageAttributes={"copy": {"DataType": "Number", "StringValue": str(copy)}})
    # an install of new-125 already running, sent by someone else
    ssm = client(lab, "ssm", APPS)
    ssm.send_command(InstanceIds=[installing], DocumentName="AWSDisasterRecovery-InstallDRAgentOnInstance",
                     Parameters={"Region": [REGION]})
    before = len(finished_event_deployments(lab))
    closed = windows_closed(rulebook)

    tag(lab, [protected], {"dr:priority": "high"})
    tag(lab, [installing], DR_TAG)

    wait_for("the deploy of the protected and the installing instance to be recorded",
             lambda: len(finished_event_deployments(lab)) > before, rulebook=rulebook)
    wait_for(f"{installing} to register in DRS", lambda: installing in registered(lab), rulebook=rulebook)
    output = rulebook.output()
    assert f"event {delivered['id']} for {again} was delivered before" in output
    assert windows_closed(rulebook) > closed
    commands = install_commands(lab)
    assert len(commands[again]) == 1
    assert protected not in commands
    assert len(commands[installing]) == 1
    [item] = finished_event_deployments(lab)[before:]
    assert item["already_registered"] == 1 and item["failed"] == 0
    assert item["installed"] == 1, "the running install is adopted and counted, not sent again"


def test_an_instance_untagged_before_its_window_closes_is_not_installed(lab, estate, rulebook):
    instance_id = estate["names"]["new-126"]
    deployments = len(event_deployments(lab))

    tag(lab, [instance_id], DR_TAG)
    tag(lab, [instance_id], untag=["dr:enabled"])

    wait_for("the window to close with the instance untagged",
             lambda: f"0 instance(s) to deploy [], 1 untagged ['{instance_id}']" in rulebook.output(), rulebook=rulebook)
    assert instance_id not in install_commands(lab)
    assert len(event_deployments(lab)) == deployments


def test_an_account_that_cannot_be_reached_fails_clearly_and_the_queue_keeps_going(lab, estate, rulebook):
    locked = estate["names"]["locked-01"]
    after = estate["names"]["new-127"]
    before = len(finished_event_deployments(lab))

    tag(lab, [locked], DR_TAG)

    [item] = wait_for("the failed deploy's record", lambda: finished_event_deployments(lab)[before:], rulebook=rulebook)
    assert item["source_account_id"] == LOCKED and item["status"] == "failed"
    assert "could not be assumed" in item["unreachable"][0]["reason"]
    wait_for("the deploy's failure in the rulebook's output",
             lambda: f"Not deployed, could not be reached: {LOCKED}" in rulebook.output(), rulebook=rulebook)
    assert locked not in install_commands(lab)

    tag(lab, [after], DR_TAG)

    wait_for(f"{after} to register in DRS", lambda: after in registered(lab), rulebook=rulebook)
    assert rulebook.running()
