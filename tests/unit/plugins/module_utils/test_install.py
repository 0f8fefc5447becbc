"""The install engine's pure parts, and its AWS call pattern against small fake SSM and DRS clients."""

import re
from collections import namedtuple
from pathlib import Path

import botocore.exceptions
import pytest
import yaml

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import install

REPO_ROOT = Path(__file__).resolve().parents[4]
CROSS_ACCOUNT_DOCUMENT = REPO_ROOT / "roles" / "drs_account_setup" / "files" / f"{install.CROSS_ACCOUNT_DOCUMENT}.yml"


def instance(number):
    return f"i-{number:017x}"


def options(**overrides):
    base = {
        "instance_ids": [instance(1)], "drs_region": "us-east-1", "staging_account_id": None,
        "staging_access_key": None, "staging_secret_key": None, "staging_session_token": None,
        "document_name": install.SAME_ACCOUNT_DOCUMENT, "document_version": None, "agent_tags": {},
        "max_concurrency": "50", "max_errors": "100%", "ssm_online_timeout": 10, "timeout": 600,
        "poll_interval": 5, "registration_timeout": 60, "reinstall": False, "max_failure_rate": 0.0,
        "progress_file": None,
    }
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


@pytest.mark.parametrize("overrides, fragment", [
    ({"instance_ids": ["i-123", "web-01"]}, "are not EC2 instance ids"),
    ({"instance_ids": []}, "instance_ids is empty"),
    ({"staging_account_id": "33333333333"}, "must be 12 digits"),
    ({"staging_account_id": "333333333333", "staging_access_key": "AKIA"}, "go together"),
    ({"staging_access_key": "AKIA", "staging_secret_key": "secret"}, "without staging_account_id"),
    ({"timeout": 0}, "timeout must be a positive"),
    ({"poll_interval": -1}, "poll_interval must be a positive"),
    ({"ssm_online_timeout": -5}, "ssm_online_timeout"),
    ({"max_failure_rate": 1.5}, "between 0 and 1"),
    ({"max_concurrency": "0"}, "max_concurrency"),
    ({"max_errors": "many"}, "max_errors"),
    ({"drs_region": "useast1"}, "drs_region"),
    ({"document_version": "latest"}, "document_version"),
    ({"agent_tags": {"a,b": "c"}}, "agent_tags key"),
])
def test_bad_options_are_reported_by_name(overrides, fragment):
    errors = install.option_errors(options(**overrides))
    assert any(fragment in error for error in errors), errors


def test_good_options_pass():
    assert install.option_errors(options(staging_account_id="333333333333", staging_access_key="AKIA",
                                         staging_secret_key="s", agent_tags={"a": "b"})) == []


# --- planning and accounting ---

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


def test_rates_count_attempts_only():
    results = [{"status": s, "error_category": c} for s, c in [
        ("installed", None), ("installed", None), ("failed", "network"), ("not_registered_after_success", "unknown"),
        ("already_registered", None), ("skipped_ssm_offline", None), ("failed", "network")]]
    summary = install.summarize(results)
    assert summary["attempted"] == 5
    assert summary["counts"]["installed"] == 2 and summary["counts"]["timed_out"] == 0
    assert summary["success_rate"] == 0.4 and summary["failure_rate"] == 0.6
    assert install.top_categories(results) == "network: 2, unknown: 1"


def test_nothing_attempted_is_no_failure():
    summary = install.summarize([{"status": "already_registered", "error_category": None}])
    assert summary["attempted"] == 0 and summary["failure_rate"] == 0.0


def test_tail_keeps_the_last_twenty_lines():
    text = "\n".join(f"line {n}" for n in range(50)) + "\n"
    assert install.tail(text).splitlines() == [f"line {n}" for n in range(30, 50)]


# --- the engine against fakes ---

class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def client_error(code):
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": code}}, "Operation")


class FakeSsm:
    """Installs that take ``duration`` seconds (or their own, in ``durations``); outcome per instance: success,
    failed or hang."""

    def __init__(self, clock, online, outcomes, duration=20, durations=None):
        self.clock, self.online, self.outcomes, self.duration = clock, online, outcomes, duration
        self.durations = durations or {}
        self.calls, self.sent, self.fetched = {}, [], set()

    def _count(self, name):
        self.calls[name] = self.calls.get(name, 0) + 1

    def describe_instance_information(self, Filters, MaxResults, aws_retry, NextToken=None):
        self._count("DescribeInstanceInformation")
        ids = Filters[0]["Values"]
        return {"InstanceInformationList": [
            {"InstanceId": i, "PingStatus": self.online[i], "PlatformType": "Linux"} for i in ids if i in self.online]}

    def send_command(self, aws_retry, **request):
        self._count("SendCommand")
        assert len(request["InstanceIds"]) <= 50
        command_id = f"cmd-{len(self.sent)}"
        self.sent.append(dict(request, CommandId=command_id, at=self.clock()))
        return {"Command": {"CommandId": command_id, "DocumentName": request["DocumentName"]}}

    def _state(self, command, instance_id):
        if self.clock() - command["at"] < self.durations.get(instance_id, self.duration) or self.outcomes[instance_id] == "hang":
            return "InProgress", "In Progress"
        return ("Success", "Success") if self.outcomes[instance_id] == "success" else ("Failed", "Failed")

    def list_command_invocations(self, CommandId, MaxResults, aws_retry, NextToken=None):
        self._count("ListCommandInvocations")
        command = next(c for c in self.sent if c["CommandId"] == CommandId)
        start = int(NextToken or 0)
        ids = command["InstanceIds"][start:start + MaxResults]
        page = {"CommandInvocations": [
            dict(zip(("Status", "StatusDetails"), self._state(command, i)), InstanceId=i) for i in ids]}
        if start + MaxResults < len(command["InstanceIds"]):
            page["NextToken"] = str(start + MaxResults)
        return page

    def get_command_invocation(self, CommandId, InstanceId, PluginName, aws_retry):
        self._count("GetCommandInvocation")
        assert PluginName == "InstallLinuxAgent"
        if InstanceId not in self.fetched:  # SSM may not show an invocation at once
            self.fetched.add(InstanceId)
            raise client_error("InvocationDoesNotExist")
        return {"Status": "Failed", "StatusDetails": "Failed", "ResponseCode": 1, "StandardOutputContent": "",
                "StandardErrorContent": "<urlopen error [Errno 110] Connection timed out>\nexit status 1\n"}


class FakeDrs:
    def __init__(self, ssm, registered=()):
        self.ssm, self.registered, self.calls = ssm, dict.fromkeys(registered, "CONTINUOUS"), 0

    def describe_source_servers(self, aws_retry, maxResults, filters=None, nextToken=None):
        self.calls += 1
        servers = dict(self.registered)
        for command in self.ssm.sent:
            for instance_id in command["InstanceIds"]:
                if self.ssm._state(command, instance_id)[0] == "Success" and self.ssm.outcomes[instance_id] == "success":
                    servers[instance_id] = "CONTINUOUS"
        return {"items": [{"sourceServerID": "s-" + i[2:], "dataReplicationInfo": {"dataReplicationState": state},
                           "sourceProperties": {"identificationHints": {"awsInstanceID": i}}}
                          for i, state in servers.items()]}


EngineRun = namedtuple("EngineRun", "report ssm drs")


def run_engine(count=120, online=None, outcomes=None, registered=(), check_mode=False, **overrides):
    clock = Clock()
    ids = [instance(n) for n in range(count)]
    ssm = FakeSsm(clock, online or dict.fromkeys(ids, "Online"), outcomes or dict.fromkeys(ids, "success"))
    drs = FakeDrs(ssm, registered)
    settings = options(instance_ids=ids, agent_tags={"Application": "orders"}, **overrides)
    engine = install.AgentInstall(ssm, drs, settings, cross_account=False, clock=clock, sleep=clock.sleep)
    return EngineRun(engine.run(check_mode), ssm, drs)


def by_status(report):
    found = {}
    for result in report["results"]:
        found.setdefault(result["status"], []).append(result["instance_id"])
    return found


def test_a_large_fleet_installs_in_batches_with_calls_per_batch_not_per_instance():
    report, ssm, drs = run_engine(count=120)
    assert report["counts"]["installed"] == 120 and report["changed"]
    assert ssm.calls["SendCommand"] == 3
    polls = ssm.calls["ListCommandInvocations"] / 3
    # a poll costs one ListCommandInvocations per command and one DRS listing, whatever the batch size
    assert drs.calls <= polls + 1
    assert "GetCommandInvocation" not in ssm.calls
    assert all(result["source_server_id"] == "s-" + result["instance_id"][2:] for result in report["results"])


def test_failures_are_read_once_each_with_the_platform_step():
    ids = [instance(n) for n in range(3)]
    run = run_engine(count=3, outcomes={ids[0]: "success", ids[1]: "failed", ids[2]: "success"})
    report, ssm = run.report, run.ssm
    failed = next(r for r in report["results"] if r["status"] == "failed")
    assert failed["instance_id"] == ids[1] and failed["error_category"] == "network"
    assert failed["response_code"] == 1 and "Errno 110" in failed["stderr_tail"]
    assert "drs.us-east-1.amazonaws.com" in failed["remediation"]
    assert ssm.calls["GetCommandInvocation"] == 2  # once too early, once for the output


def test_registered_and_offline_instances_are_not_sent_and_reinstalls_drop_tags():
    ids = [instance(n) for n in range(4)]
    online = {ids[0]: "Online", ids[1]: "Online", ids[2]: "ConnectionLost"}
    run = run_engine(count=4, online=online, registered=[ids[1]])
    report, ssm = run.report, run.ssm
    assert by_status(report) == {"installed": [ids[0]], "already_registered": [ids[1]],
                                 "skipped_ssm_offline": [ids[2]], "skipped_not_managed": [ids[3]]}
    assert [c["InstanceIds"] for c in ssm.sent] == [[ids[0]]]
    assert ssm.sent[0]["Parameters"] == {"Region": ["us-east-1"], "Tags": ["Application=orders"]}

    run = run_engine(count=4, online=online, registered=[ids[1]], reinstall=True)
    report, ssm = run.report, run.ssm
    assert [(c["InstanceIds"], c["Parameters"]) for c in ssm.sent] == [
        ([ids[0]], {"Region": ["us-east-1"], "Tags": ["Application=orders"]}),
        ([ids[1]], {"Region": ["us-east-1"]})]
    assert report["counts"]["installed"] == 2


def test_stale_servers_do_not_count_as_registered():
    clock = Clock()
    ids = [instance(1)]
    ssm = FakeSsm(clock, {ids[0]: "Online"}, {ids[0]: "success"})
    drs = FakeDrs(ssm)
    drs.registered[ids[0]] = "DISCONNECTED"
    engine = install.AgentInstall(ssm, drs, options(instance_ids=ids), False, clock=clock, sleep=clock.sleep)
    report = engine.run(check_mode=False)
    assert report["counts"]["installed"] == 1


class NeverRegisters(FakeDrs):
    """DRS in which no agent ever registers."""

    def describe_source_servers(self, **kwargs):
        self.calls += 1
        return {"items": []}


def test_success_without_a_source_server_is_reported_as_such():
    ids = [instance(1)]
    clock = Clock()
    ssm = FakeSsm(clock, {ids[0]: "Online"}, {ids[0]: "success"})

    ssm.get_command_invocation = lambda **kwargs: {"ResponseCode": 0, "StandardOutputContent": "checksum mismatch"}
    engine = install.AgentInstall(ssm, NeverRegisters(ssm), options(instance_ids=ids, registration_timeout=30),
                                  False, clock=clock, sleep=clock.sleep)
    report = engine.run(check_mode=False)
    result = report["results"][0]
    assert result["status"] == "not_registered_after_success"
    assert "no source server" in result["remediation"] and result["stdout_tail"] == "checksum mismatch"


def test_an_unregistered_success_is_reported_at_its_registration_deadline_not_at_the_next_poll():
    ids = [instance(1)]
    clock = Clock()
    ssm = FakeSsm(clock, {ids[0]: "Online"}, {ids[0]: "success"})

    ssm.get_command_invocation = lambda **kwargs: {"ResponseCode": 0, "StandardOutputContent": "checksum mismatch"}
    engine = install.AgentInstall(ssm, NeverRegisters(ssm), options(instance_ids=ids, poll_interval=15, registration_timeout=12),
                                  False, clock=clock, sleep=clock.sleep)
    result = engine.run(check_mode=False)["results"][0]
    # polls every 5 s (one install in flight) see Success at 20 s; the 12 s end at 32 s, three seconds before a poll
    assert result["status"] == "not_registered_after_success"
    assert result["duration_seconds"] == 32


def test_instances_still_offline_are_given_up_at_the_ssm_deadline_not_at_the_next_poll():
    ids = [instance(n) for n in range(2)]
    report, ssm, _drs = run_engine(count=2, online={ids[0]: "Online", ids[1]: "ConnectionLost"}, ssm_online_timeout=7)
    skipped = next(r for r in report["results"] if r["instance_id"] == ids[1])
    assert skipped["status"] == "skipped_ssm_offline" and skipped["duration_seconds"] == 7
    # a last look at 7 s, after the one at 5 s and the one before sending
    assert ssm.calls["DescribeInstanceInformation"] == 3


def test_the_overall_timeout_ends_what_is_still_running():
    ids = [instance(n) for n in range(2)]
    report = run_engine(count=2, outcomes={ids[0]: "success", ids[1]: "hang"}, timeout=100).report
    result = next(r for r in report["results"] if r["instance_id"] == ids[1])
    assert result["status"] == "timed_out" and "still InProgress" in result["reason"]
    assert result["error_category"] == "timeout"


def test_check_mode_sends_nothing_and_returns_the_plan():
    ids = [instance(n) for n in range(3)]
    online = {ids[0]: "Online", ids[1]: "Online"}
    run = run_engine(count=3, online=online, registered=[ids[1]], check_mode=True)
    report, ssm = run.report, run.ssm
    assert "SendCommand" not in ssm.calls and not report["changed"]
    assert report["plan"]["would_install"] == [ids[0]]
    assert [(s["instance_id"], s["status"]) for s in report["plan"]["would_skip"]] == [
        (ids[1], "already_registered"), (ids[2], "skipped_not_managed")]


def test_progress_is_written_as_json(tmp_path):
    progress = tmp_path / "progress.json"
    run_engine(count=5, progress_file=str(progress))
    written = yaml.safe_load(progress.read_text())
    assert written["total"] == 5 and written["done"] == 5 and written["in_flight"] == 0
    assert written["counts"]["installed"] == 5


class RefusingDrs(FakeDrs):
    def __init__(self, ssm, code):
        super().__init__(ssm)
        self.code = code

    def describe_source_servers(self, **kwargs):
        raise client_error(self.code)


def engine_with(ssm, drs, ids, **overrides):
    clock = ssm.clock
    return install.AgentInstall(ssm, drs, options(instance_ids=ids, **overrides), False, clock=clock, sleep=clock.sleep)


def test_an_uninitialized_drs_fails_every_instance_without_sending():
    ids = [instance(n) for n in range(2)]
    ssm = FakeSsm(Clock(), dict.fromkeys(ids, "Online"), dict.fromkeys(ids, "success"))
    report = engine_with(ssm, RefusingDrs(ssm, "UninitializedAccountException"), ids).run(check_mode=False)
    assert ssm.sent == [] and not report["changed"]
    assert {(r["status"], r["error_category"]) for r in report["results"]} == {("failed", "account_not_initialized")}
    assert "not initialized" in report["results"][0]["reason"]


def test_other_drs_errors_stop_the_run():
    ids = [instance(1)]
    ssm = FakeSsm(Clock(), {ids[0]: "Online"}, {ids[0]: "success"})
    with pytest.raises(botocore.exceptions.ClientError):
        engine_with(ssm, RefusingDrs(ssm, "AccessDeniedException"), ids).run(check_mode=False)


def test_an_instance_that_left_ssm_before_the_send_fails_alone():
    ids = [instance(n) for n in range(3)]
    ssm = FakeSsm(Clock(), dict.fromkeys(ids, "Online"), dict.fromkeys(ids, "success"))
    send = ssm.send_command

    def refuse_the_second(aws_retry, **request):
        if ids[1] in request["InstanceIds"]:
            raise client_error("InvalidInstanceId")
        return send(aws_retry, **request)

    ssm.send_command = refuse_the_second
    report = engine_with(ssm, FakeDrs(ssm), ids).run(check_mode=False)
    assert [c["InstanceIds"] for c in ssm.sent] == [[ids[0]], [ids[2]]]
    assert by_status(report) == {"installed": [ids[0], ids[2]], "failed": [ids[1]]}
    assert report["results"][1]["error_category"] == "ssm_delivery"


def test_a_refused_document_stops_with_what_to_fix():
    ids = [instance(1)]
    ssm = FakeSsm(Clock(), {ids[0]: "Online"}, {ids[0]: "success"})

    def refuse(aws_retry, **request):
        raise client_error("InvalidDocument")

    ssm.send_command = refuse
    engine = engine_with(ssm, FakeDrs(ssm), ids, document_name=install.CROSS_ACCOUNT_DOCUMENT)
    with pytest.raises(install.InstallRefused) as refused:
        engine.run(check_mode=False)
    assert "drs_account_setup" in refused.value.message
    assert refused.value.result["changed"] is False


# --- several targets in one run ---

class FakeFactory:
    """Clients per (service, region, access key): each target's installs run against its own fakes."""

    def __init__(self, fleets, accounts=None):
        self.fleets, self.accounts, self.made = fleets, accounts or {}, []

    def client(self, service, region=None, credentials=None):
        key = (credentials or {}).get("access_key")
        self.made.append((service, region, key))
        ssm, drs = self.fleets[(region, key)]
        if service == "sts":
            account = self.accounts[key]
            return namedtuple("Sts", "get_caller_identity")(lambda aws_retry: {"Account": account})
        return ssm if service == "ssm" else drs


def fleet(count, start, clock):
    ids = [instance(n) for n in range(start, start + count)]
    ssm = FakeSsm(clock, dict.fromkeys(ids, "Online"), dict.fromkeys(ids, "success"), duration=0)
    return ids, ssm, FakeDrs(ssm)


def test_each_target_installs_with_its_own_clients_and_answers_on_its_own():
    clock = Clock()
    east_ids, east_ssm, east_drs = fleet(3, 0, clock)
    west_ids, west_ssm, west_drs = fleet(2, 10, clock)
    factory = FakeFactory({("us-east-1", "EAST"): (east_ssm, east_drs), ("us-west-2", "WEST"): (west_ssm, west_drs)},
                          accounts={"WEST": "222222222222"})
    targets = [
        options(name="east", instance_ids=east_ids, region="us-east-1", access_key="EAST", secret_key="s",
                account_id="222222222222", staging_account_id="222222222222"),
        options(name="west", instance_ids=west_ids, region="us-west-2", drs_region="us-west-2", access_key="WEST",
                secret_key="s", staging_account_id="333333333333"),
    ]
    outcomes = install.install_targets(factory, targets, check_mode=False)

    east = outcomes[0].as_result("east")
    assert east["failed"] is False and east["counts"]["installed"] == 3
    assert {c["InstanceIds"][0] for c in east_ssm.sent} <= set(east_ids) and west_ssm.sent == []
    # a known account spares GetCallerIdentity; the other target asks, and is refused without staging keys
    assert ("sts", "us-east-1", "EAST") not in factory.made
    west = outcomes[1].as_result("west")
    assert west["failed"] is True and "staging_access_key" in west["msg"] and west["results"] == []
    assert "secret_key" not in west and "access_key" not in west
    merged = install.merge_reports([east, west])
    assert merged["counts"]["installed"] == 3 and len(merged["results"]) == 3 and merged["changed"]


def test_the_engine_notices_the_end_sooner_than_a_full_poll_interval():
    report, ssm, _drs = run_engine(count=1, poll_interval=15)
    # the install takes 20 s; with at most two installs in flight it polls every 5 s (a third of 15), not at 30 s
    assert report["results"][0]["duration_seconds"] == 20


def test_the_last_tenth_of_a_batch_is_followed_as_closely_as_the_last_two():
    clock = Clock()
    ids = [instance(n) for n in range(30)]
    ssm = FakeSsm(clock, dict.fromkeys(ids, "Online"), dict.fromkeys(ids, "success"), durations=dict.fromkeys(ids[:3], 24))
    engine = install.AgentInstall(ssm, FakeDrs(ssm), options(instance_ids=ids, poll_interval=10), False,
                                  clock=clock, sleep=clock.sleep)
    report = engine.run(check_mode=False)
    # at 20 s three of thirty are still running: a tenth, so the next looks come every 10/3 s and see them at
    # 26.7 s rather than at 30 s
    assert max(result["duration_seconds"] for result in report["results"]) == 26.7
