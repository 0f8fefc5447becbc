"""The rollout's own logic: its input checks, its plan, and what the operator reads of it."""

import concurrent.futures
import copy
import gc
import threading

import pytest

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import outcomes
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout import console
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout import plan as planning
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout import settings as rules
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.record import RunRecord
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils.rollout import Rollout

SOURCE, STAGING = "222222222222", "333333333333"
ROLE = f"arn:aws:iam::{SOURCE}:role/DRSOrchestrationSourceRole"
ROLE_VARIABLES = rules.Names("drs_agent_deploy_")


def defaults(**overrides):
    """The action's settings with their defaults, as validate_argument_spec hands them over."""
    values = {}
    for option, spec in rules.ARGUMENT_SPEC.items():
        values[option] = copy.deepcopy(spec.get("default"))
    values["accounts"] = [dict(dict.fromkeys(rules.ACCOUNT_OPTIONS), account_id=SOURCE, regions=["us-east-1"])]
    values.update(overrides)
    return values


def account(**fields):
    return dict(dict.fromkeys(rules.ACCOUNT_OPTIONS), **dict({"account_id": SOURCE, "regions": ["us-east-1"]}, **fields))


def errors_of(**overrides):
    return rules.setting_errors(defaults(**overrides), ROLE_VARIABLES)


def test_good_settings_pass():
    assert errors_of(accounts=[account(role_arn=ROLE, staging_account_id=STAGING, regions=["us-east-1", "us-iso-east-1"])],
                     staging_accounts=[{"account_id": STAGING, "role_arn": f"arn:aws:iam::{STAGING}:role/Staging",
                                        "external_id": None}],
                     install_timeout=900, agent_tags={"Application": "orders"}) == []


@pytest.mark.parametrize("overrides, message", [
    ({"accounts": []}, "drs_agent_deploy_accounts is empty: list the source accounts"),
    ({"accounts": [account(regions=["us-east-1", "mars-1"])]},
     "drs_agent_deploy_accounts[0] (222222222222) regions[1] 'mars-1' is not an AWS region name such as us-east-1"),
    ({"accounts": [account(), account()]}, "drs_agent_deploy_accounts[1] (222222222222) is listed twice"),
    ({"accounts": [account(account_id="2222")]}, "drs_agent_deploy_accounts[0].account_id '2222' is not an AWS account id"),
    ({"accounts": [account(staging_account_id=STAGING)]},
     "staging_account_id 333333333333 is another account: list it in drs_agent_deploy_staging_accounts"),
    ({"agent_tags": {"Application": "prod;id"}}, "drs_agent_deploy_agent_tags value 'prod;id' of 'Application'"),
    ({"tag_filters": {"dr:enabled": True}}, "drs_agent_deploy_tag_filters['dr:enabled']: the value True is a bool"),
    ({"max_concurrency": "0"}, "drs_agent_deploy_max_concurrency '0' must be a number from 1"),
    ({"progress_interval": 90}, "drs_agent_deploy_progress_interval 90 must be from 1 to 60 seconds"),
    ({"install_timeout": 0}, "drs_agent_deploy_install_timeout 0 must be from 1"),
    ({"external_id": "x"}, "drs_agent_deploy_external_id must be 2 to 1224"),
    ({"instance_ids": ["web-01"]}, "drs_agent_deploy_instance_ids[0] 'web-01' is not an EC2 instance id"),
    ({"history_table": "x"}, "drs_agent_deploy_history_table 'x' must be 3 to 255"),
    ({"extension_capacity_warning_thresholds": [80, 120]},
     "drs_agent_deploy_extension_capacity_warning_thresholds: 120 is not a percentage from 1 to 100"),
])
def test_each_error_names_the_variable_the_entry_and_the_rule(overrides, message):
    assert any(message in error for error in errors_of(**overrides)), errors_of(**overrides)


def test_a_misspelled_role_variable_is_named_with_the_one_it_resembles():
    found = rules.unknown_variables("drs_agent_deploy_", ["drs_agent_deploy_acounts", "drs_agent_deploy_accounts",
                                                          "drs_agent_deploy_rollout", "other_variable"])
    assert found == ["drs_agent_deploy_acounts is not a variable of this role (did you mean drs_agent_deploy_accounts?); "
                     "it would be ignored"]


def discovered(number, wave, priority=None, name=None, ping="Online"):
    return {"instance_id": f"i-{number:017x}", "name": name or f"server-{number}", "wave": wave, "priority": priority,
            "platform": "linux", "wave_error": None if wave is not None else "the wave tag dr:wave is missing",
            "ssm": {"managed": True, "ping_status": ping, "platform_type": "Linux"}}


def test_the_plan_orders_waves_numerically_and_instances_by_priority_and_keeps_their_facts():
    accounts = [account(regions=["us-east-1", "us-west-2"])]
    discoveries = {(SOURCE, "us-east-1"): {"instances": [discovered(1, 10), discovered(2, 2, "low"),
                                                         discovered(3, 2, "critical", name="zz"), discovered(4, None)]},
                   (SOURCE, "us-west-2"): {"instances": [discovered(5, 2)]}}
    built = planning.build_plan(accounts, discoveries, [], defaults(accounts=accounts))
    assert [wave.number for wave in built.waves] == [2, 10]
    east = built.waves[0].places[0]
    assert east.name == f"{SOURCE}/us-east-1" and [i.priority for i in east.instances] == ["critical", "low"]
    first = east.instances[0]
    assert (first.account_id, first.region, first.wave, first.name, first.platform) == (SOURCE, "us-east-1", 2, "zz", "Linux")
    assert [i.status for i in built.no_wave] == ["no_wave"] and "dr:wave=<wave number>" in built.no_wave[0].result["remediation"]
    assert planning.empty_reason(built, defaults(), accounts, ROLE_VARIABLES) is None


def test_an_inventory_limit_and_a_waves_filter_are_counted_apart():
    accounts = [account()]
    discoveries = {(SOURCE, "us-east-1"): {"instances": [discovered(1, 1), discovered(2, 2), discovered(3, 3)]}}
    settings = defaults(instance_ids=[f"i-{1:017x}", f"i-{2:017x}"], waves=[2])
    built = planning.build_plan(accounts, discoveries, [], settings)
    assert (built.outside_limit, built.outside_waves, built.excluded) == (1, 1, 2)
    assert [i.instance_id for i in built.planned] == [f"i-{2:017x}"]


@pytest.mark.parametrize("settings, found, reason", [
    ({"waves": [9]}, [discovered(1, 1), discovered(2, 2)],
     "drs_agent_deploy_waves [9] matches no wave of the instances in scope; their waves are: 1, 2"),
    ({"instance_ids": ["i-00000000000000099"]}, [discovered(1, 1)],
     "none of the 1 inventory host(s) (for example i-00000000000000099) is among the 1 DR-tagged instance(s)"),
    ({"limit_to_instance_ids": True}, [discovered(1, 1)], "the play's hosts carry no instance_id"),
    ({}, [], "no running instance in 222222222222/us-east-1 carries the tags dr:enabled=true, dr:recovery-strategy=drs"),
    ({}, [discovered(1, None)], "every one of the 1 instance(s) discovered has no usable wave tag"),
])
def test_a_plan_with_nothing_to_deploy_says_why(settings, found, reason):
    accounts = [account()]
    built = planning.build_plan(accounts, {(SOURCE, "us-east-1"): {"instances": found}}, [], defaults(**settings))
    assert reason in planning.empty_reason(built, defaults(**settings), accounts, ROLE_VARIABLES)


def test_unprotected_instances_are_listed_by_id_under_their_status_and_category():
    accounts = [account()]
    found = [discovered(n, 1) for n in range(9)]
    built = planning.build_plan(accounts, {(SOURCE, "us-east-1"): {"instances": found}}, [], defaults())
    statuses = ["installed"] * 2 + ["failed"] * 7
    for instance, status in zip(built.planned, statuses):
        instance.settle(status, error_category="network" if status == "failed" else None,
                        remediation="Allow outbound TCP 443" if status == "failed" else None)
    lines = console.unprotected_lines(built.planned, "out/summary.json")
    assert lines[0] == "Unprotected: 7 instance(s) (each with its reason and remediation in out/summary.json)"
    assert lines[1] == "  failed [network]: 7"
    ids = " ".join(lines[2:]).split()
    assert ids == [instance.instance_id for instance in built.planned[2:]]
    assert console.unprotected_lines(built.planned[:2]) == []


def test_a_stop_names_the_installs_still_running_and_what_to_do():
    lines = console.running_lines({f"{SOURCE}/us-east-1": ["i-1", "i-2"], f"{SOURCE}/us-west-2": []},
                                  "interrupted (SIGINT, Ctrl-C)")
    assert "2 install(s) are still running on the instances" in lines[0] and "it adopts them" in lines[0]
    assert lines[1:] == [f"  still running in {SOURCE}/us-east-1: i-1 i-2"]
    assert "no install was running" in console.running_lines({}, "terminated (SIGTERM)")[0]


def test_an_instance_can_only_be_settled_with_a_status_of_the_model():
    instance = planning.Instance(discovered(1, 1), SOURCE, "us-east-1")
    with pytest.raises(outcomes.UnknownStatus):
        instance.settle("done")


class SlowStore:
    """A history store whose first write is held until released, recording the revisions it writes."""

    table_name = "history"
    spool_dir = "spool"

    def __init__(self):
        self.started = threading.Event()
        self.release = threading.Event()
        self.second_written = threading.Event()
        self.revisions = []

    def write(self, items):
        if not self.revisions:
            self.started.set()
            self.release.wait(10)
        self.revisions.append((items[0]["revision"], items[0]["status"]))
        if len(self.revisions) == 2:
            self.second_written.set()
        return {"spooled": [], "error": None}


def record_held_at_its_first_write():
    """(the plan of one instance, the slow store, the run's record) with revision 1 being written and held."""
    accounts = [account()]
    built = planning.build_plan(accounts, {(SOURCE, "us-east-1"): {"instances": [discovered(1, 1)]}}, [],
                                defaults(accounts=accounts))
    store = SlowStore()
    run = RunRecord(store, {SOURCE: "source"}, "deployment", "run", built, accounts, warn=None)
    run.write(0.0)
    assert store.started.wait(10)
    return built, store, run


def test_a_write_waiting_behind_a_slow_one_is_replaced_by_the_newer_record():
    built, store, run = record_held_at_its_first_write()
    run.write(1.0)  # revision 2 waits for the writer...
    run.write(2.0)  # ...and is replaced by revision 3
    store.release.set()
    assert store.second_written.wait(10)
    built.planned[0].settle(outcomes.INSTALLED)
    run.write(3.0, final=True)  # returns once the run's end is written
    assert store.revisions == [(1, "in_progress"), (3, "in_progress"), (4, "success")]


def test_a_write_records_the_run_as_it_stood_when_written_though_its_items_are_built_later():
    built, store, run = record_held_at_its_first_write()
    run.write(1.0)  # waits for the writer thread, its items not built yet
    built.planned[0].settle(outcomes.INSTALLED)  # the next wave goes on meanwhile
    store.release.set()
    assert store.second_written.wait(10)
    assert store.revisions == [(1, "in_progress"), (2, "in_progress")]
    run.write(2.0, final=True)
    assert store.revisions[-1] == (3, "success") and run.items[0]["installed"] == 1


def test_hosts_that_say_where_they_are_scope_discovery_and_one_that_does_not_turns_it_off():
    hostvars = {
        "web-1": {"instance_id": "i-0123456789abcdef0", "drs_account_id": "222222222222", "drs_region": "us-east-1"},
        "web-2": {"instance_id": "i-0123456789abcdef1", "drs_account_id": "222222222222", "drs_region": "us-west-2"},
        "legacy": {"instance_id": "i-0123456789abcdef2"},
    }
    assert planning.host_places(hostvars, ["web-1", "web-2"]) == {
        "i-0123456789abcdef0": ("222222222222", "us-east-1"), "i-0123456789abcdef1": ("222222222222", "us-west-2")}
    assert planning.host_places(hostvars, ["web-1", "legacy"]) == {}


class Clock:
    def now(self):
        return 0.0


class Display:
    def __init__(self):
        self.lines = []

    def display(self, text):
        self.lines.append(text)

    warning = display


class AssumingSessions:
    """Sessions that keep the roles asked for."""

    unreachable = {}

    def __init__(self):
        self.assumed = []

    def assume(self, roles, session_name, sts_region):
        self.assumed.extend(role["account_id"] for role in roles)


class HandoverStore:
    table_name = "history"

    def __init__(self):
        self.asked = []

    def handovers(self, account_ids, now):
        self.asked.append(account_ids)
        return []


def slice_settings(instance_places):
    """An estate of three source accounts, each staging into its own account and extending into one target, as
    a slice on the drs_fleet inventory gets it (``instance_places``: where its hosts are)."""
    sources = ["200000000001", "200000000002", "200000000003"]
    accounts = [account(account_id=source, regions=["us-east-1", "us-west-2"],
                        role_arn=f"arn:aws:iam::{source}:role/Source", staging_account_id=f"3{source[1:]}",
                        target_account_id="444444444444") for source in sources]
    staging = [{"account_id": f"3{source[1:]}", "role_arn": f"arn:aws:iam::3{source[1:]}:role/Staging",
                "external_id": None} for source in sources]
    targets = [{"account_id": "444444444444", "role_arn": "arn:aws:iam::444444444444:role/Target", "external_id": None},
               {"account_id": "555555555555", "role_arn": "arn:aws:iam::555555555555:role/Target", "external_id": None}]
    return dict(defaults(accounts=accounts, staging_accounts=staging, target_accounts=targets,
                         auto_extend_source_servers=True, limit_to_instance_ids=True,
                         instance_ids=sorted(instance_places)), instance_places=instance_places)


@pytest.mark.parametrize(("instance_places", "accounts", "roles"), [
    # a slice's hosts in two account-regions of two accounts: only their roles, staging and target roles
    ({"i-0123456789abcdef0": ("200000000001", "us-west-2"), "i-0123456789abcdef1": ("200000000003", "us-east-1")},
     [("200000000001", ["us-west-2"]), ("200000000003", ["us-east-1"])],
     ["200000000001", "200000000003", "300000000001", "300000000003", "444444444444"]),
    # hosts that do not say where they are: every account as configured, every role
    ({}, [(source, ["us-east-1", "us-west-2"]) for source in ("200000000001", "200000000002", "200000000003")],
     ["200000000001", "200000000002", "200000000003", "300000000001", "300000000002", "300000000003",
      "444444444444", "555555555555"]),
    # hosts in none of the accounts: the accounts as configured, and nothing is discovered
    ({"i-0123456789abcdef0": ("999999999999", "us-east-1")},
     [(source, ["us-east-1", "us-west-2"]) for source in ("200000000001", "200000000002", "200000000003")],
     ["200000000001", "200000000002", "200000000003", "300000000001", "300000000002", "300000000003",
      "444444444444", "555555555555"]),
])
def test_a_slice_assumes_records_and_claims_hand_overs_in_only_its_hosts_accounts(instance_places, accounts, roles):
    run = Rollout(slice_settings(instance_places), ROLE_VARIABLES, Clock(), Display(), threading.Event(), False)
    assert [(entry["account_id"], entry["regions"]) for entry in run.accounts] == accounts
    run.sessions = AssumingSessions()
    run._open_sessions()
    assert run.sessions.assumed == roles
    # a hand-over in an account the slice has no host in is for the slice that has hosts there
    run.plan = planning.build_plan(run.accounts, {}, [], run.settings)
    run.record = RunRecord(HandoverStore(), {}, "deployment", "run", run.plan, run.accounts, warn=None)
    run._claim_handovers()
    assert run.record.store.asked == [[account_id for account_id, _regions in accounts]]


def test_the_survey_builds_with_the_collector_running_rarely_and_sets_what_it_built_aside(monkeypatch):
    run = Rollout(defaults(), ROLE_VARIABLES, Clock(), Display(), threading.Event(), False)
    seen = {}

    def discover(unreachable):
        seen["threshold"] = gc.get_threshold()[0]
        seen["kept"] = [[number] for number in range(1000)]  # lives as long as the run, as discoveries do
        return {}

    monkeypatch.setattr(run, "_open_sessions", lambda: [])
    monkeypatch.setattr(run, "_discover", discover)
    frozen_before = gc.get_freeze_count()
    thresholds = gc.get_threshold()
    try:
        run.survey(pool=None)
        assert seen["threshold"] > thresholds[0]
        assert gc.get_threshold() == thresholds
        # later collections skip what the survey built
        assert gc.get_freeze_count() >= frozen_before + 1000
        assert not any(seen["kept"][0] is entry for entry in gc.get_objects(generation=2))
    finally:
        gc.unfreeze()


class EndedInstall:
    """An account-region install whose instances all end with ``status`` at its first look after the send."""

    sent_unlisted = False
    adopted_from = ()

    def __init__(self, place, status, events):
        self.place, self.status, self.events = place, status, events
        self.commands = []
        self.done = False

    def prepare(self, now):
        pass

    def send(self, now):
        self.events.append(f"wave {self.place.wave} sent")
        self.commands = [{"instance_ids": [instance.instance_id for instance in self.place.instances]}]

    def next_look(self, now):
        return now

    def look(self, now):
        self.done = True

    def progress(self):
        return {}

    def running(self):
        return []

    def report(self):
        return {"results": [{"instance_id": instance.instance_id, "status": self.status}
                            for instance in self.place.instances]}


def deployed(monkeypatch, statuses, **settings):
    """What a run did of its record and its sends, for waves of one instance each, settled with ``statuses``;
    a write says which waves' results it held ('final': the run's end)."""
    accounts = [account()]
    found = [discovered(number, number) for number in range(1, len(statuses) + 1)]
    run = Rollout(defaults(accounts=accounts, history_table="", max_failure_rate=0.5, **settings), ROLE_VARIABLES,
                  Clock(), Display(), threading.Event(), False)
    run.plan = planning.build_plan(accounts, {(SOURCE, "us-east-1"): {"instances": found}}, [], run.settings)
    record = RunRecord(None, {}, "deployment", "run", run.plan, accounts, warn=None)
    events = []
    written = record.write

    def write(now, **final):
        settled = sorted({instance.wave for instance in run.plan.planned if instance.status})
        events.append("final write" if final.get("final") else f"write of waves {settled}")
        written(now, **final)

    monkeypatch.setattr(record, "write", write)
    monkeypatch.setattr(run, "_new_record", lambda: record)
    monkeypatch.setattr(run, "_install", lambda place: EndedInstall(place, statuses[place.wave - 1], events))
    monkeypatch.setattr(run, "_extend", lambda wave: None)
    monkeypatch.setattr(run, "_verify", lambda wave: False)
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as run.pool:
        run._deploy()
    return events


@pytest.mark.parametrize(("statuses", "settings", "events"), [
    # a wave's results are written once the next wave is sent, and the run's end once, after the last wave
    ([outcomes.INSTALLED] * 3, {}, ["write of waves []", "wave 1 sent", "wave 2 sent", "write of waves [1]",
                                    "wave 3 sent", "write of waves [1, 2]", "final write"]),
    # the rollout stops at a wave over the failure rate: its end is written at once
    ([outcomes.INSTALLED, outcomes.FAILED, outcomes.INSTALLED], {},
     ["write of waves []", "wave 1 sent", "wave 2 sent", "write of waves [1]", "final write"]),
    # the extension and the verification after a wave can take minutes: the wave is written before them
    ([outcomes.INSTALLED] * 2, {"auto_extend_source_servers": True},
     ["write of waves []", "wave 1 sent", "write of waves [1]", "wave 2 sent", "write of waves [1, 2]", "final write"]),
    ([outcomes.INSTALLED] * 2, {"verify_replication": True},
     ["write of waves []", "wave 1 sent", "write of waves [1]", "wave 2 sent", "write of waves [1, 2]", "final write"]),
])
def test_a_wave_is_recorded_while_the_next_one_runs_and_the_end_once(monkeypatch, statuses, settings, events):
    assert deployed(monkeypatch, statuses, **settings) == events
