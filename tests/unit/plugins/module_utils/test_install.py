"""The install engine: its pure parts, and its behaviour and AWS call pattern against small fake SSM and DRS
clients on a fake clock (no test waits in real time)."""

import concurrent.futures
import datetime
import re
import threading
from pathlib import Path

import botocore.exceptions
import pytest
import yaml

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import install
from ansible_collections.drs_orchestration.agent_deployer.plugins.modules import drs_ssm_install

REPO_ROOT = Path(__file__).resolve().parents[4]
CROSS_ACCOUNT_DOCUMENT = REPO_ROOT / "roles" / "drs_account_setup" / "files" / f"{install.CROSS_ACCOUNT_DOCUMENT}.yml"
EPOCH = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
NETWORK_ERROR = "<urlopen error [Errno 110] Connection timed out>\nexit status 1"


def instance(number):
    return f"i-{number:017x}"


def settings(**overrides):
    base = {
        "instance_ids": [instance(1)], "drs_region": "us-east-1", "staging_account_id": None, "cross_account": False,
        "document_name": install.SAME_ACCOUNT_DOCUMENT, "document_version": None, "agent_tags": {},
        "max_concurrency": "50", "max_errors": "100%", "ssm_online_timeout": 10, "timeout": 600,
        "install_timeout": None, "poll_interval": 5, "registration_timeout": 60, "reinstall": False,
        "comment": install.comment("run-under-test", 1),
    }
    base.update(overrides)
    return base


def module_options(**overrides):
    base = dict(settings(), staging_access_key=None, staging_secret_key=None, staging_session_token=None,
                max_failure_rate=0.0)
    base.pop("cross_account")
    base.pop("comment")
    base.update(overrides)
    return base


# --- batching, tags and options ---

def test_batches_hold_at_most_fifty_and_registered_servers_go_without_tags():
    new = [instance(n) for n in range(120)]
    registered = [instance(n) for n in range(200, 207)]
    batches = install.send_batches(new, registered)
    assert [(len(ids), with_tags) for ids, with_tags in batches] == [(50, True), (50, True), (20, True), (7, False)]
    assert [i for ids, with_tags in batches for i in ids] == new + registered


@pytest.mark.parametrize("tags", [
    {"Application": "orders"},
    {"cost-center": "cc/42", "owner": "ops@example.com", "Name": "Order Service 1", "empty": ""},
    {"k" * 128: "v" * 256},
])
def test_valid_tags_pass_and_the_collection_document_accepts_them(tags):
    assert install.tag_errors(tags) == []
    definition = yaml.safe_load(CROSS_ACCOUNT_DOCUMENT.read_text())["parameters"]["Tags"]
    assert re.fullmatch(definition["allowedPattern"], install.format_tags(tags))


@pytest.mark.parametrize("tags, field", [
    ({"a,b": "x"}, "'a,b'"),
    ({"a=b": "x"}, "'a=b'"),
    ({"app": "x,y"}, "'x,y'"),
    ({"app": "$(reboot)"}, "'$(reboot)'"),
    ({"app": 'say "hi"'}, "say"),
    ({"app": "`id`"}, "`id`"),
    ({"app": " padded"}, "' padded'"),
    ({"app": "prod;id"}, "'prod;id'"),
    ({"": "x"}, "''"),
    ({"k" * 129: "x"}, "kkkk"),
    ({"app": "v" * 257}, "vvvv"),
    ({"aws:created": "x"}, "aws:"),
    ({"wave": 1}, "quote it"),
])
def test_unsafe_tags_are_refused_naming_the_tag(tags, field):
    errors = install.tag_errors(tags)
    assert len(errors) == 1 and field in errors[0]


def test_too_many_tags_are_refused():
    assert "at most 50" in install.tag_errors({f"k{n}": "v" for n in range(51)})[0]


def test_tags_are_formatted_for_the_installer():
    assert install.format_tags({"Application": "orders", "Tier": "db"}) == "Application=orders,Tier=db"


def test_the_comment_names_the_run_and_a_later_run_reads_it_back():
    text = install.comment("0f8e4c1a-5b57-4a53-9d3f-2f0c3c5f1b6e", 3)
    assert len(text) <= 100 and install.run_of_comment(text) == "0f8e4c1a-5b57-4a53-9d3f-2f0c3c5f1b6e"
    assert install.run_of_comment("patching run 42") is None and install.run_of_comment(None) is None


@pytest.mark.parametrize("overrides, fragment", [
    ({"instance_ids": ["i-123", "web-01"]}, "instance_ids[0] 'i-123' is not an EC2 instance id"),
    ({"instance_ids": []}, "instance_ids is empty"),
    ({"staging_account_id": "33333333333"}, "staging_account_id '33333333333' is not an AWS account id"),
    ({"staging_account_id": "333333333333", "staging_access_key": "AKIA"}, "go together"),
    ({"staging_access_key": "AKIA", "staging_secret_key": "secret"}, "without staging_account_id"),
    ({"timeout": 0}, "timeout 0 must be from 1"),
    ({"poll_interval": -1}, "poll_interval -1 must be from 1"),
    ({"ssm_online_timeout": -5}, "ssm_online_timeout -5 must be from 0"),
    ({"install_timeout": 0}, "install_timeout 0 must be from 1"),
    ({"max_failure_rate": 1.5}, "max_failure_rate 1.5 must be a share from 0 to 1"),
    ({"max_concurrency": "0"}, "max_concurrency '0'"),
    ({"max_errors": "many"}, "max_errors 'many'"),
    ({"drs_region": "useast1"}, "drs_region 'useast1' is not an AWS region"),
    ({"document_version": "latest"}, "document_version 'latest'"),
    ({"agent_tags": {"a,b": "c"}}, "agent_tags key 'a,b'"),
])
def test_bad_module_options_are_reported_by_name(overrides, fragment):
    errors = drs_ssm_install.option_errors(module_options(**overrides))
    assert any(fragment in error for error in errors), errors


def test_good_module_options_pass():
    assert drs_ssm_install.option_errors(module_options(
        staging_account_id="333333333333", staging_access_key="AKIA", staging_secret_key="s",
        agent_tags={"a": "b"}, install_timeout=900)) == []


# --- planning ---

def test_registered_servers_are_skipped_unless_reinstall():
    ids = [instance(1), instance(2), instance(3)]
    live = {instance(2): {"sourceServerID": "s-2"}}
    already, new, again = install.split_registered(ids, live, reinstall=False)
    assert list(already) == [instance(2)] and new == [instance(1), instance(3)] and again == []
    already, new, again = install.split_registered(ids, live, reinstall=True)
    assert already == {} and new == [instance(1), instance(3)] and again == [instance(2)]


def test_ssm_readiness_separates_online_offline_and_unmanaged():
    information = {instance(1): {"PingStatus": "Online"}, instance(2): {"PingStatus": "ConnectionLost"}}
    online, offline, unmanaged = install.ssm_readiness([instance(1), instance(2), instance(3)], information)
    assert online == [instance(1)] and list(offline) == [instance(2)] and unmanaged == [instance(3)]
    assert "ConnectionLost" in offline[instance(2)]


def test_tail_keeps_the_last_twenty_lines():
    text = "\n".join(f"line {n}" for n in range(50)) + "\n"
    assert install.tail(text).splitlines() == [f"line {n}" for n in range(30, 50)]


# --- fakes ---

class Clock:
    def __init__(self):
        self.time = 0.0

    def now(self):
        return self.time

    def sleep(self, seconds):
        self.time += max(seconds, 0)

    def wait(self, seconds, event):
        self.sleep(seconds)
        return event.is_set()


def client_error(code):
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": code}}, "Operation")


class FakeSsm:
    """Run Command on a fake clock. Each instance's install takes ``duration`` seconds (or its own, in
    ``durations``) and ends as its outcome says: success, failed or hang (runs until cancelled)."""

    def __init__(self, clock, online, outcomes, duration=20, durations=None):
        self.clock, self.online, self.outcomes, self.duration = clock, online, outcomes, duration
        self.durations = durations or {}
        self.calls, self.sent, self.cancelled = {}, [], []
        self.commands = []
        # seconds after SendCommand before ListCommands, and ListCommandInvocations, show a command
        self.listed_after, self.invocations_after = 0, 0

    def _count(self, name):
        self.calls[name] = self.calls.get(name, 0) + 1

    def run_elsewhere(self, instance_ids, comment, document=install.SAME_ACCOUNT_DOCUMENT):
        """An install another run sent before this one started."""
        command = {"CommandId": f"other-{len(self.commands)}", "DocumentName": document, "InstanceIds": list(instance_ids),
                   "Comment": comment, "at": self.clock.now(), "cancelled": {}}
        self.commands.append(command)
        return command["CommandId"]

    def describe_instance_information(self, Filters, MaxResults, aws_retry, NextToken=None):
        self._count("DescribeInstanceInformation")
        ids = Filters[0]["Values"]
        assert len(ids) <= 50 and MaxResults <= 50
        return {"InstanceInformationList": [
            {"InstanceId": i, "PingStatus": self.online[i], "PlatformType": "Linux"} for i in ids if i in self.online]}

    def send_command(self, aws_retry, **request):
        self._count("SendCommand")
        assert len(request["InstanceIds"]) <= 50
        command = {"CommandId": f"cmd-{len(self.sent)}", "DocumentName": request["DocumentName"],
                   "InstanceIds": list(request["InstanceIds"]), "Comment": request["Comment"], "at": self.clock.now(),
                   "cancelled": {}}
        self.sent.append(dict(request, CommandId=command["CommandId"], at=command["at"]))
        self.commands.append(command)
        return {"Command": self._shape(command)}

    def cancel_command(self, CommandId, InstanceIds, aws_retry):
        self._count("CancelCommand")
        command = next(c for c in self.commands if c["CommandId"] == CommandId)
        for instance_id in InstanceIds:
            command["cancelled"][instance_id] = self.clock.now()
        self.cancelled.append((CommandId, list(InstanceIds)))

    def _state(self, command, instance_id):
        end = command["at"] + self.durations.get(instance_id, self.duration)
        cancelled = command["cancelled"].get(instance_id)
        if cancelled is not None and (self.outcomes[instance_id] == "hang" or cancelled < end):
            return "Cancelled", "Cancelled"
        if self.outcomes[instance_id] == "hang" or self.clock.now() < end:
            return "InProgress", "In Progress"
        return ("Success", "Success") if self.outcomes[instance_id] == "success" else ("Failed", "Failed")

    def _shape(self, command):
        states = [self._state(command, i) for i in command["InstanceIds"]]
        ended = [status for status, _details in states if status not in ("Pending", "InProgress")]
        status = "InProgress" if len(ended) < len(states) else ("Success" if set(ended) == {"Success"} else "Failed")
        return {"CommandId": command["CommandId"], "DocumentName": command["DocumentName"],
                "InstanceIds": command["InstanceIds"], "Comment": command["Comment"],
                "RequestedDateTime": EPOCH + datetime.timedelta(seconds=command["at"]), "Status": status,
                "TargetCount": len(states), "CompletedCount": len(ended),
                "ErrorCount": sum(1 for status in ended if status != "Success"), "DeliveryTimedOutCount": 0}

    def list_commands(self, Filters, MaxResults, aws_retry, NextToken=None):
        self._count("ListCommands")
        filters = {entry["key"]: entry["value"] for entry in Filters}
        shaped = [self._shape(command) for command in reversed(self.commands)
                  if command["DocumentName"] == filters.get("DocumentName", command["DocumentName"])
                  and self.clock.now() >= command["at"] + self.listed_after]
        if filters.get("ExecutionStage") == "Executing":
            shaped = [command for command in shaped if command["Status"] == "InProgress"]
        return {"Commands": shaped[:MaxResults]}

    def list_command_invocations(self, CommandId, MaxResults, aws_retry, Details=False, NextToken=None):
        self._count("ListCommandInvocations")
        command = next(c for c in self.commands if c["CommandId"] == CommandId)
        start = int(NextToken or 0)
        page = []
        if self.clock.now() < command["at"] + self.invocations_after:
            return {"CommandInvocations": []}
        for instance_id in command["InstanceIds"][start:start + MaxResults]:
            status, details = self._state(command, instance_id)
            invocation = {"InstanceId": instance_id, "Status": status, "StatusDetails": details, "CommandPlugins": []}
            if Details:
                output = NETWORK_ERROR if status == "Failed" else ""
                invocation["CommandPlugins"] = [
                    {"Name": "InstallWindowsAgent", "Status": "Success", "StatusDetails": "Success", "ResponseCode": 0,
                     "Output": "Step execution skipped due to unsatisfied preconditions: platform Windows"},
                    {"Name": "InstallLinuxAgent", "Status": status, "StatusDetails": details,
                     "ResponseCode": 1 if status == "Failed" else 0 if status == "Success" else -1,
                     "Output": f"installing\n----------ERROR-------\n{output}" if output else "installing"},
                ]
            page.append(invocation)
        answer = {"CommandInvocations": page}
        if start + MaxResults < len(command["InstanceIds"]):
            answer["NextToken"] = str(start + MaxResults)
        return answer


class FakeDrs:
    def __init__(self, ssm, registered=(), registers=True):
        self.ssm, self.registered, self.registers, self.calls = ssm, dict.fromkeys(registered, "CONTINUOUS"), registers, 0

    def describe_source_servers(self, aws_retry, maxResults, filters=None, nextToken=None):
        self.calls += 1
        servers = dict(self.registered)
        if self.registers:
            for command in self.ssm.commands:
                for instance_id in command["InstanceIds"]:
                    if self.ssm._state(command, instance_id)[0] == "Success":
                        servers[instance_id] = "CONTINUOUS"
        return {"items": [{"sourceServerID": "s-" + i[2:], "dataReplicationInfo": {"dataReplicationState": state},
                           "sourceProperties": {"identificationHints": {"awsInstanceID": i}}}
                          for i, state in servers.items()]}


class RefusingDrs(FakeDrs):
    def __init__(self, ssm, code):
        super().__init__(ssm)
        self.code = code

    def describe_source_servers(self, **kwargs):
        raise client_error(self.code)


def follow(*installs, clock, check_mode=False, stop=None):
    """prepare, send and follow ``installs`` as the module and the deploy action do; the runner."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        runner = install.Installs(installs, clock, pool)
        runner.each(lambda target: target.prepare(clock.now(), check_mode))
        if not check_mode:
            runner.each(lambda target: target.send(clock.now()))
            runner.follow(stop or threading.Event())
    return runner


def run_engine(count=120, online=None, outcomes=None, registered=(), check_mode=False, ssm=None, drs=None, **overrides):
    clock = ssm.clock if ssm else Clock()
    ids = [instance(n) for n in range(count)]
    ssm = ssm or FakeSsm(clock, online or dict.fromkeys(ids, "Online"), outcomes or dict.fromkeys(ids, "success"))
    drs = drs or FakeDrs(ssm, registered)
    target = install.AccountRegionInstall(ssm, drs, settings(instance_ids=ids, agent_tags={"Application": "orders"},
                                                             **overrides), clock.now())
    count_looks(target)
    runner = follow(target, clock=clock, check_mode=check_mode)
    return target, runner, ssm, drs


def count_looks(target):
    """Count the looks of ``target`` in ``target.looks``."""
    target.looks = 0
    look = target.look

    def counted(now):
        target.looks += 1
        look(now)

    target.look = counted


def by_status(report):
    found = {}
    for result in report["results"]:
        found.setdefault(result["status"], []).append(result["instance_id"])
    return found


# --- the engine ---

def test_a_large_fleet_installs_in_batches_with_calls_per_look_not_per_instance():
    target, _runner, ssm, drs = run_engine(count=120)
    report = target.report()
    assert report["figures"]["installed"] == 120 and report["changed"]
    assert ssm.calls["SendCommand"] == 3
    # before sending, one listing of the commands executing; then a look reads at most one ListCommands page for the
    # three commands, and the invocations of a command only when some of them ended
    assert ssm.calls["ListCommands"] <= 1 + target.looks
    assert ssm.calls["ListCommands"] + ssm.calls["ListCommandInvocations"] <= 1 + 4 * target.looks
    assert ssm.calls["ListCommandInvocations"] <= 3 * target.looks
    assert drs.calls <= target.looks + 1
    assert "GetCommandInvocation" not in ssm.calls
    assert all(result["source_server_id"] == "s-" + result["instance_id"][2:] for result in report["results"])


def test_calls_do_not_grow_while_installs_run_and_nothing_ends():
    ids = [instance(n) for n in range(200)]
    clock = Clock()
    ssm = FakeSsm(clock, dict.fromkeys(ids, "Online"), dict.fromkeys(ids, "success"), duration=3000)
    target, _runner, ssm, _drs = run_engine(count=200, ssm=ssm, poll_interval=15, timeout=4200)
    looks = target.looks
    # four commands of 50 followed for 50 minutes: their invocations are read once, when they end, and the looks
    # back off to one a minute once nothing changed for two poll intervals
    assert ssm.calls["ListCommandInvocations"] == 4
    assert looks <= 3000 / 60 + 6
    assert target.report()["figures"]["installed"] == 200


def test_while_installs_keep_ending_a_look_reads_the_invocations_without_the_counts():
    ids = [instance(n) for n in range(50)]
    ends = dict(zip(ids, [20] * 10 + [35] * 10 + [50] * 10 + [400] * 20))
    clock = Clock()
    ssm = FakeSsm(clock, dict.fromkeys(ids, "Online"), dict.fromkeys(ids, "success"), durations=ends)
    target = install.AccountRegionInstall(ssm, FakeDrs(ssm), settings(instance_ids=ids, poll_interval=15,
                                                                      timeout=3600), clock.now())
    costs = []  # (ListCommands, ListCommandInvocations) of each look
    look = target.look

    def measured(now):
        before = dict(ssm.calls)
        look(now)
        costs.append(tuple(ssm.calls.get(name, 0) - before.get(name, 0)
                           for name in ("ListCommands", "ListCommandInvocations")))

    target.look = measured
    follow(target, clock=clock)
    assert target.report()["figures"]["installed"] == 50
    # 15 s: nothing ended (the counts); 30 s: ten ended (the counts, then the invocations); 45 s and 60 s: ten more
    # each (the invocations only); 75 s: none (the invocations); then the counts again until the last ones end
    assert costs[:5] == [(1, 0), (1, 1), (0, 1), (0, 1), (0, 1)]
    assert all(cost in ((1, 0), (1, 1)) for cost in costs[5:])
    assert costs[-1] == (1, 1)


def test_failures_are_classified_from_the_invocation_output_without_a_call_each():
    ids = [instance(n) for n in range(3)]
    target, _runner, ssm, _drs = run_engine(count=3, outcomes={ids[0]: "success", ids[1]: "failed", ids[2]: "success"})
    failed = next(r for r in target.report()["results"] if r["status"] == "failed")
    assert failed["instance_id"] == ids[1] and failed["error_category"] == "network"
    assert failed["response_code"] == 1 and "Errno 110" in failed["stderr_tail"]
    assert "drs.us-east-1.amazonaws.com" in failed["remediation"]
    assert "GetCommandInvocation" not in ssm.calls


def test_registered_and_offline_instances_are_not_sent_and_reinstalls_drop_tags():
    ids = [instance(n) for n in range(4)]
    online = {ids[0]: "Online", ids[1]: "Online", ids[2]: "ConnectionLost"}
    target, _runner, ssm, _drs = run_engine(count=4, online=online, registered=[ids[1]])
    assert by_status(target.report()) == {"installed": [ids[0]], "already_registered": [ids[1]],
                                          "skipped_ssm_offline": [ids[2]], "skipped_not_managed": [ids[3]]}
    assert [c["InstanceIds"] for c in ssm.sent] == [[ids[0]]]
    assert ssm.sent[0]["Parameters"] == {"Region": ["us-east-1"], "Tags": ["Application=orders"]}

    target, _runner, ssm, _drs = run_engine(count=4, online=online, registered=[ids[1]], reinstall=True)
    assert [(c["InstanceIds"], c["Parameters"]) for c in ssm.sent] == [
        ([ids[0]], {"Region": ["us-east-1"], "Tags": ["Application=orders"]}),
        ([ids[1]], {"Region": ["us-east-1"]})]
    assert target.report()["figures"]["installed"] == 2


def test_stale_servers_do_not_count_as_registered():
    clock = Clock()
    ssm = FakeSsm(clock, {instance(0): "Online"}, {instance(0): "success"})
    drs = FakeDrs(ssm)
    drs.registered[instance(0)] = "DISCONNECTED"
    target, _runner, _ssm, _drs = run_engine(count=1, ssm=ssm, drs=drs)
    assert target.report()["figures"]["installed"] == 1


def test_a_success_that_never_registers_is_reported_at_its_registration_deadline():
    clock = Clock()
    ssm = FakeSsm(clock, {instance(0): "Online"}, {instance(0): "success"})
    target, _runner, _ssm, _drs = run_engine(count=1, ssm=ssm, drs=FakeDrs(ssm, registers=False), poll_interval=15,
                                             registration_timeout=12)
    result = target.report()["results"][0]
    # looks every 5 s (one install in flight) see Success at 20 s; the 12 s end at 32 s, between two looks
    assert result["status"] == "not_registered_after_success" and result["duration_seconds"] == 32
    assert "no source server" in result["remediation"] and result["stdout_tail"] == "installing"


def test_instances_still_offline_are_given_up_at_the_ssm_deadline():
    ids = [instance(n) for n in range(2)]
    target, _runner, ssm, _drs = run_engine(count=2, online={ids[0]: "Online", ids[1]: "ConnectionLost"},
                                            ssm_online_timeout=7)
    skipped = next(r for r in target.report()["results"] if r["instance_id"] == ids[1])
    assert skipped["status"] == "skipped_ssm_offline" and skipped["duration_seconds"] == 7
    assert "Start the instance" in skipped["remediation"]
    # looked at before sending and at the 5 s look; given up at the 7 s deadline without another look
    assert ssm.calls["DescribeInstanceInformation"] == 2


def test_the_overall_timeout_ends_what_is_still_running_and_leaves_it_running():
    ids = [instance(n) for n in range(2)]
    target, _runner, ssm, _drs = run_engine(count=2, outcomes={ids[0]: "success", ids[1]: "hang"}, timeout=100)
    result = next(r for r in target.report()["results"] if r["instance_id"] == ids[1])
    assert result["status"] == "timed_out" and "left running" in result["reason"]
    assert result["error_category"] == "timeout" and result["duration_seconds"] == 100
    assert "CancelCommand" not in ssm.calls


def test_a_hung_install_is_cancelled_at_its_deadline_and_the_rest_is_not_held():
    ids = [instance(n) for n in range(3)]
    target, _runner, ssm, _drs = run_engine(count=3, outcomes={ids[0]: "success", ids[1]: "hang", ids[2]: "success"},
                                            install_timeout=90, timeout=3600)
    report = target.report()
    hung = next(r for r in report["results"] if r["instance_id"] == ids[1])
    assert hung["status"] == "timed_out" and hung["duration_seconds"] == 90
    assert "install_timeout (90 s)" in hung["remediation"] and "cancelled" in hung["reason"]
    assert ssm.cancelled == [("cmd-0", [ids[1]])]
    assert report["figures"]["installed"] == 2 and target.done


def test_installs_already_running_are_adopted_not_sent_again():
    clock = Clock()
    ids = [instance(n) for n in range(4)]
    ssm = FakeSsm(clock, dict.fromkeys(ids, "Online"), dict.fromkeys(ids, "success"), duration=30)
    earlier = ssm.run_elsewhere(ids[:2], install.comment("earlier-run", 1))
    clock.sleep(10)
    target, _runner, ssm, _drs = run_engine(count=4, ssm=ssm)
    assert [c["InstanceIds"] for c in ssm.sent] == [ids[2:]]
    adopted = [r for r in target.report()["results"] if r["adopted"]]
    assert [(r["instance_id"], r["command_id"], r["adopted_from"], r["status"]) for r in adopted] == [
        (ids[0], earlier, "earlier-run", "installed"), (ids[1], earlier, "earlier-run", "installed")]
    assert target.plan["would_adopt"] == [{"instance_id": ids[0], "command_id": earlier},
                                          {"instance_id": ids[1], "command_id": earlier}]


def test_a_command_listed_before_its_invocations_is_adopted_for_the_instances_it_names():
    clock = Clock()
    ids = [instance(n) for n in range(3)]
    ssm = FakeSsm(clock, dict.fromkeys(ids, "Online"), dict.fromkeys(ids, "success"), duration=30)
    ssm.invocations_after = 20
    earlier = ssm.run_elsewhere(ids[:2], install.comment("earlier-run", 1))
    clock.sleep(5)
    target, _runner, ssm, _drs = run_engine(count=3, ssm=ssm)
    assert [c["InstanceIds"] for c in ssm.sent] == [ids[2:]]
    assert target.plan["would_adopt"] == [{"instance_id": ids[0], "command_id": earlier},
                                          {"instance_id": ids[1], "command_id": earlier}]


def test_an_install_says_whether_ssm_lists_the_commands_it_sent():
    clock = Clock()
    ids = [instance(n) for n in range(2)]
    ssm = FakeSsm(clock, dict.fromkeys(ids, "Online"), dict.fromkeys(ids, "success"), duration=100)
    ssm.listed_after = 20
    target = install.AccountRegionInstall(ssm, FakeDrs(ssm), settings(instance_ids=ids, poll_interval=15), clock.now())
    target.prepare(clock.now())
    assert not target.sent_unlisted
    target.send(clock.now())
    assert target.sent_unlisted
    clock.sleep(15)
    target.look(clock.now())
    assert target.sent_unlisted
    clock.sleep(15)
    target.look(clock.now())
    assert not target.sent_unlisted and not target.done


def test_check_mode_sends_nothing_and_returns_the_plan():
    clock = Clock()
    ids = [instance(n) for n in range(4)]
    ssm = FakeSsm(clock, {ids[0]: "Online", ids[1]: "Online", ids[3]: "Online"}, dict.fromkeys(ids, "success"))
    running = ssm.run_elsewhere([ids[3]], "another tool")
    target, _runner, ssm, _drs = run_engine(count=4, ssm=ssm, registered=[ids[1]], check_mode=True)
    report = target.report()
    assert "SendCommand" not in ssm.calls and not report["changed"]
    assert report["plan"]["would_install"] == [ids[0]]
    assert report["plan"]["would_adopt"] == [{"instance_id": ids[3], "command_id": running}]
    assert [(s["instance_id"], s["status"]) for s in report["plan"]["would_skip"]] == [
        (ids[1], "already_registered"), (ids[2], "skipped_not_managed")]


def test_a_stop_leaves_the_running_installs_in_flight_with_their_commands():
    clock = Clock()
    ids = [instance(n) for n in range(3)]
    ssm = FakeSsm(clock, dict.fromkeys(ids, "Online"), dict.fromkeys(ids, "success"), duration=100)
    target = install.AccountRegionInstall(ssm, FakeDrs(ssm), settings(instance_ids=ids), clock.now())
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        runner = install.Installs([target], clock, pool)
        runner.each(lambda one: one.prepare(clock.now()))
        runner.each(lambda one: one.send(clock.now()))
        stop = threading.Event()
        stop.set()
        assert runner.follow(stop) is False
    assert target.running() == [(iid, "cmd-0") for iid in ids]
    target.stop(clock.now(), "the run was stopped: interrupted")
    assert {(r["status"], r["command_id"]) for r in target.report()["results"]} == {("in_flight", "cmd-0")}
    assert "re-run the deployment, which adopts the running install" in target.report()["results"][0]["remediation"]
    assert target.done


def test_an_uninitialized_drs_fails_every_instance_without_sending():
    clock = Clock()
    ids = [instance(n) for n in range(2)]
    ssm = FakeSsm(clock, dict.fromkeys(ids, "Online"), dict.fromkeys(ids, "success"))
    target, _runner, ssm, _drs = run_engine(count=2, ssm=ssm, drs=RefusingDrs(ssm, "UninitializedAccountException"))
    report = target.report()
    assert ssm.sent == [] and not report["changed"]
    assert {(r["status"], r["error_category"]) for r in report["results"]} == {("failed", "account_not_initialized")}
    assert "not initialized" in report["results"][0]["reason"]


def test_an_account_region_that_fails_stops_alone_and_says_why():
    clock = Clock()
    good_ids, bad_ids = [instance(n) for n in range(2)], [instance(n) for n in range(10, 12)]
    good = FakeSsm(clock, dict.fromkeys(good_ids, "Online"), dict.fromkeys(good_ids, "success"))
    bad = FakeSsm(clock, dict.fromkeys(bad_ids, "Online"), dict.fromkeys(bad_ids, "success"))
    first = install.AccountRegionInstall(good, FakeDrs(good), settings(instance_ids=good_ids), clock.now())
    second = install.AccountRegionInstall(bad, RefusingDrs(bad, "AccessDeniedException"), settings(instance_ids=bad_ids),
                                          clock.now())
    runner = follow(first, second, clock=clock)
    assert first.report()["figures"]["installed"] == 2 and first not in runner.failures
    assert "AccessDeniedException" in runner.failures[second] and bad.sent == []
    assert {r["status"] for r in second.report()["results"]} == {"failed"}


def test_an_instance_that_left_ssm_before_the_send_fails_alone():
    clock = Clock()
    ids = [instance(n) for n in range(3)]
    ssm = FakeSsm(clock, dict.fromkeys(ids, "Online"), dict.fromkeys(ids, "success"))
    send = ssm.send_command

    def refuse_the_second(aws_retry, **request):
        if ids[1] in request["InstanceIds"]:
            raise client_error("InvalidInstanceId")
        return send(aws_retry, **request)

    ssm.send_command = refuse_the_second
    target, _runner, ssm, _drs = run_engine(count=3, ssm=ssm)
    assert [c["InstanceIds"] for c in ssm.sent] == [[ids[0]], [ids[2]]]
    assert by_status(target.report()) == {"installed": [ids[0], ids[2]], "failed": [ids[1]]}
    assert target.report()["results"][1]["error_category"] == "ssm_delivery"


def test_a_refused_document_stops_the_account_region_with_what_to_fix():
    clock = Clock()
    ssm = FakeSsm(clock, {instance(0): "Online"}, {instance(0): "success"})

    def refuse(aws_retry, **request):
        raise client_error("InvalidDocument")

    ssm.send_command = refuse
    target, runner, _ssm, _drs = run_engine(count=1, ssm=ssm, document_name=install.CROSS_ACCOUNT_DOCUMENT,
                                            cross_account=True, staging_account_id="333333333333")
    assert "drs_account_setup" in runner.failures[target]
    assert target.report()["changed"] is False and target.report()["results"][0]["status"] == "failed"


def test_the_end_is_noticed_sooner_than_a_full_poll_interval():
    target, _runner, _ssm, _drs = run_engine(count=1, poll_interval=15)
    # the install takes 20 s; with at most two installs in flight a look comes every 5 s (a third of 15)
    assert target.report()["results"][0]["duration_seconds"] == 20


def test_the_last_tenth_of_a_batch_is_followed_as_closely_as_the_last_two():
    clock = Clock()
    ids = [instance(n) for n in range(30)]
    ssm = FakeSsm(clock, dict.fromkeys(ids, "Online"), dict.fromkeys(ids, "success"), durations=dict.fromkeys(ids[:3], 24))
    target, _runner, _ssm, _drs = run_engine(count=30, ssm=ssm, poll_interval=10)
    # at 20 s three of thirty still run: a tenth, so looks come every 10/3 s and see them at 26.7 s, not at 30 s
    assert max(result["duration_seconds"] for result in target.report()["results"]) == 26.7


class LaggingSsm(FakeSsm):
    """SSM whose invocation listing shows an ended invocation one read later than the command's counts."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.hidden_once = set()

    def list_command_invocations(self, CommandId, MaxResults, aws_retry, Details=False, NextToken=None):
        page = super().list_command_invocations(CommandId, MaxResults, aws_retry, Details, NextToken)
        for invocation in page["CommandInvocations"]:
            if invocation["Status"] == "Success" and invocation["InstanceId"] not in self.hidden_once:
                self.hidden_once.add(invocation["InstanceId"])
                invocation.update(Status="InProgress", StatusDetails="In Progress", CommandPlugins=[])
        return page


def test_an_end_the_invocation_listing_shows_late_is_read_at_the_next_look():
    clock = Clock()
    ids = [instance(n) for n in range(2)]
    ssm = LaggingSsm(clock, dict.fromkeys(ids, "Online"), dict.fromkeys(ids, "success"), durations={ids[1]: 2000})
    target, _runner, _ssm, _drs = run_engine(count=2, ssm=ssm, poll_interval=15, timeout=4200)
    first = target.report()["results"][0]
    # the first install ended at 20 s; the listing hid it once, so the look after saw it, not the end of the command
    assert first["status"] == "installed" and first["duration_seconds"] < 60
