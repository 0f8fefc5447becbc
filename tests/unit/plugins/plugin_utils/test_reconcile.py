"""The reconcile's own logic: which drift each instance and server is, what may be retired and how, and the input
checks."""

import copy

import pytest

from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._reconcile import drift
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._reconcile import settings as rules
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.settings import ACCOUNT_OPTIONS
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.settings import Names
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.settings import unknown_variables

SOURCE, STAGING, TARGET, OTHER = "222222222222", "333333333333", "444444444444", "555555555555"
REGION = "us-east-1"
PLACE = {"account_id": SOURCE, "region": REGION, "staging_account_id": STAGING, "drs_region": REGION,
         "target_account_id": TARGET}


def server(instance_id, server_id, state="CONTINUOUS", origin=(SOURCE, REGION), added="2026-01-01T00:00:00Z",
           recovery=None, account=STAGING, extended_from=None, area_status=None):
    item = {"sourceServerID": server_id, "arn": f"arn:aws:drs:{REGION}:{account}:source-server/{server_id}",
            "dataReplicationInfo": {"dataReplicationState": state},
            "lifeCycle": {"addedToServiceDateTime": added},
            "sourceProperties": {"identificationHints": {"hostname": server_id}},
            "stagingArea": {"status": "NOT_EXTENDED"}}
    if instance_id:
        item["sourceProperties"]["identificationHints"]["awsInstanceID"] = instance_id
    if origin:
        item["sourceCloudProperties"] = {"originAccountID": origin[0], "originRegion": origin[1]}
    if recovery:
        item["recoveryInstanceId"] = recovery
    if extended_from:
        item["stagingArea"] = {"status": area_status or "EXTENDED", "stagingAccountID": STAGING,
                               "stagingSourceServerArn": extended_from}
    return item


def tagged(instance_id, state="running", wave=1, name=""):
    return {"instance_id": instance_id, "name": name, "state": state, "wave": wave,
            "wave_error": None if wave is not None else "the wave tag dr:wave is missing"}


def classify(instances, servers, others=None, extended=None, history=None, retry_failed=False):
    return drift.classify(PLACE, instances, servers, others or {}, extended or {}, history, retry_failed)


def test_a_tagged_instance_with_a_live_server_is_protected_even_beside_a_stale_one():
    found = classify([tagged("i-0000000a")],
                     [server("i-0000000a", "s-old", "DISCONNECTED", added="2025-01-01T00:00:00Z"),
                      server("i-0000000a", "s-new")])
    assert found["protected"] == ["i-0000000a"]
    assert not found["tagged_not_protected"] and not found["untagged"] and not found["terminated"]


@pytest.mark.parametrize("servers, history, reason", [
    ([server("i-0000000a", "s-stale", "DISCONNECTED")], {}, drift.STALE_RECORD),
    ([], {"i-0000000a": {"status": "failed", "deployment_id": "d-1", "reason": "port 443 blocked"}}, drift.FAILED),
    ([], {"i-0000000a": {"status": "timed_out", "deployment_id": "d-1", "reason": "hung"}}, drift.FAILED),
    # the last run skipped it (SSM offline): it was never installed
    ([], {"i-0000000a": {"status": "skipped_ssm_offline", "deployment_id": "d-1", "reason": "offline"}},
     drift.NEVER_INSTALLED),
    ([], {}, drift.NEVER_INSTALLED),
    # no history read: a failed install cannot be told from none
    ([], None, drift.NOT_INSTALLED),
])
def test_a_tagged_instance_without_a_live_server_has_its_reason(servers, history, reason):
    [entry] = classify([tagged("i-0000000a")], servers, history=history)["tagged_not_protected"]
    assert entry["reason"] == reason
    if reason == drift.STALE_RECORD:
        assert entry["source_server_id"] == "s-stale"


def test_what_is_installed_running_instances_with_a_wave_and_failed_ones_only_when_asked():
    history = {"i-0000000c": {"status": "failed", "deployment_id": "d-1", "reason": "gcc missing"}}
    instances = [tagged("i-0000000a"), tagged("i-0000000b", state="stopped"), tagged("i-0000000c"),
                 tagged("i-0000000d", wave=None)]
    entries = {entry["instance_id"]: entry for entry in classify(instances, [], history=history)["tagged_not_protected"]}
    assert [iid for iid, entry in sorted(entries.items()) if entry["installable"]] == ["i-0000000a"]
    assert "running instances only" in entries["i-0000000b"]["not_installed_because"]
    assert "retry_failed: true" in entries["i-0000000c"]["not_installed_because"]
    assert "no usable wave" in entries["i-0000000d"]["not_installed_because"]
    retried = classify(instances, [], history=history, retry_failed=True)["tagged_not_protected"]
    assert sorted(entry["instance_id"] for entry in retried if entry["installable"]) == ["i-0000000a", "i-0000000c"]


@pytest.mark.parametrize("seen, kind", [
    ({"state": "running", "name": "web"}, "untagged"),
    ({"state": "stopped", "name": "web"}, "untagged"),
    ({"state": "terminated", "name": "web"}, "terminated"),
    ({"state": "shutting-down", "name": "web"}, "terminated"),
    (None, "terminated"),  # EC2 no longer knows it
])
def test_a_server_whose_instance_is_not_tagged_is_untagged_or_terminated(seen, kind):
    others = {"i-0000000e": seen} if seen else {}
    found = classify([], [server("i-0000000e", "s-e")], others=others)
    [entry] = found[kind]
    assert (entry["instance_id"], entry["source_server_id"]) == ("i-0000000e", "s-e")
    assert entry["state"] == (seen["state"] if seen else drift.NOT_FOUND)
    assert not found["untagged" if kind == "terminated" else "terminated"]


def test_every_server_of_a_terminated_instance_is_listed_with_its_extended_servers():
    arn = f"arn:aws:drs:{REGION}:{STAGING}:source-server/s-e"
    extended = drift.extended_by_staging_arn({(TARGET, REGION): [server(None, "s-x", account=TARGET, extended_from=arn)]})
    found = classify([], [server("i-0000000e", "s-e"), server("i-0000000e", "s-f", "DISCONNECTED")],
                     extended=extended)
    assert [entry["source_server_id"] for entry in found["terminated"]] == ["s-e", "s-f"]
    assert [item["source_server_id"] for item in found["terminated"][0]["extended_servers"]] == ["s-x"]
    assert found["terminated"][0]["extended_servers"][0]["account_id"] == TARGET


def test_servers_go_to_the_place_their_origin_names_and_others_are_left_alone():
    places = {(SOURCE, REGION): PLACE, (OTHER, REGION): dict(PLACE, account_id=OTHER)}
    listing = {(STAGING, REGION): [
        server("i-0000000a", "s-a"),
        server("i-0000000b", "s-b", origin=(OTHER, REGION)),
        server("i-0000000c", "s-c", origin=("666666666666", REGION)),  # an account not in scope
        server(None, "s-onprem"),  # not an EC2 instance
        server("i-0000000d", "s-d", origin=None),  # several places replicate here: not placed
        server("i-0000000e", "s-x", extended_from="arn:aws:drs:us-east-1:333333333333:source-server/s-y"),
    ]}
    assigned, unplaced = drift.assign_servers(listing, places)
    assert [item["sourceServerID"] for item in assigned[(SOURCE, REGION)]] == ["s-a"]
    assert [item["sourceServerID"] for item in assigned[(OTHER, REGION)]] == ["s-b"]
    assert [entry["source_server_id"] for entry in unplaced] == ["s-d"]
    # with one place replicating into the staging account-region, a server without an origin is that place's
    assigned, unplaced = drift.assign_servers(listing, {(SOURCE, REGION): PLACE})
    assert [item["sourceServerID"] for item in assigned[(SOURCE, REGION)]] == ["s-a", "s-d"] and not unplaced


def test_extension_errors_are_the_extended_servers_whose_staging_server_is_gone():
    gone = "arn:aws:drs:us-east-1:333333333333:source-server/s-gone"
    servers = [server(None, "s-ok", account=TARGET, extended_from="arn:aws:drs:us-east-1:333333333333:source-server/s-1"),
               server(None, "s-broken", account=TARGET, extended_from=gone, area_status="EXTENSION_ERROR"),
               server("i-0000000a", "s-own", account=TARGET)]
    [entry] = drift.extension_errors((TARGET, REGION), servers)
    assert (entry["source_server_id"], entry["staging_source_server_arn"]) == ("s-broken", gone)


def _entry(**fields):
    entry = {"account_id": SOURCE, "drs_region": REGION, "staging_account_id": STAGING, "source_server_id": "s-e",
             "replication_state": "CONTINUOUS", "recovery_instance_id": None, "extended_servers": []}
    entry.update(fields)
    return entry


@pytest.mark.parametrize("entry, unreadable, blocked", [
    (_entry(), (), None),
    (_entry(recovery_instance_id="i-recovery1"), (), "recovery instance i-recovery1"),
    (_entry(extended_servers=[{"source_server_id": "s-x", "account_id": TARGET, "recovery_instance_id": "i-recovery2"}]),
     (), "recovery instance i-recovery2"),
    (_entry(), (TARGET,), "could not be read"),
])
def test_a_server_with_a_recovery_instance_is_never_retired(entry, unreadable, blocked):
    reason = drift.retire_blocker(entry, unreadable)
    if blocked is None:
        assert reason is None
    else:
        assert blocked in reason


def test_a_server_from_a_recovery_instance_field_of_describe_source_servers_is_kept():
    """The field DescribeSourceServers returns (recoveryInstanceId) reaches the rule through classify."""
    found = classify([], [server("i-0000000e", "s-e", recovery="i-0123456789abcdef0")],
                     others={"i-0000000e": {"state": "terminated", "name": ""}})
    [entry] = found["terminated"]
    assert "i-0123456789abcdef0" in drift.retire_blocker(entry)


def test_retiring_deletes_extended_servers_first_and_disconnects_only_what_is_connected():
    entry = _entry(replication_state="DISCONNECTED", extended_servers=[
        {"source_server_id": "s-x", "account_id": TARGET, "replication_state": "CONTINUOUS"}])
    assert drift.retire_steps(entry) == [(TARGET, REGION, "s-x", True), (STAGING, REGION, "s-e", False)]


def test_last_records_keep_the_newest_entry_of_each_instance():
    deployments = [
        {"deployment_id": "new", "updated_at": "2026-02-01", "unprotected_instances": [
            {"instance_id": "i-0000000a", "status": "skipped_ssm_offline"}]},
        {"deployment_id": "old", "updated_at": "2026-01-01", "unprotected_instances": [
            {"instance_id": "i-0000000a", "status": "failed"}, {"instance_id": "i-0000000b", "status": "failed"}]},
    ]
    records = drift.last_records(deployments)
    assert (records["i-0000000a"]["deployment_id"], records["i-0000000a"]["status"]) == ("new", "skipped_ssm_offline")
    assert records["i-0000000b"]["deployment_id"] == "old"


ROLE_VARIABLES = Names("drs_reconcile_")


def defaults(**overrides):
    values = {option: copy.deepcopy(spec.get("default")) for option, spec in rules.ARGUMENT_SPEC.items()}
    values["accounts"] = [dict(dict.fromkeys(ACCOUNT_OPTIONS), account_id=SOURCE, regions=[REGION])]
    values.update(overrides)
    return values


def account(**fields):
    return dict(dict.fromkeys(ACCOUNT_OPTIONS), **dict({"account_id": SOURCE, "regions": [REGION]}, **fields))


def test_good_settings_pass():
    assert rules.setting_errors(defaults(
        accounts=[account(staging_account_id=STAGING, target_account_id=TARGET)],
        staging_accounts=[{"account_id": STAGING, "role_arn": f"arn:aws:iam::{STAGING}:role/S", "external_id": None}],
        target_accounts=[{"account_id": TARGET, "role_arn": None, "external_id": None}]), ROLE_VARIABLES) == []


@pytest.mark.parametrize("overrides, message", [
    ({"accounts": []}, "drs_reconcile_accounts is empty"),
    ({"accounts": [account(regions=["mars-1"])]},
     "drs_reconcile_accounts[0] (222222222222) regions[0] 'mars-1' is not an AWS region name"),
    ({"accounts": [account(staging_account_id=STAGING)]},
     "staging_account_id 333333333333 is another account: list it in drs_reconcile_staging_accounts"),
    ({"accounts": [account(target_account_id=TARGET)]},
     "target_account_id 444444444444: to read its extended servers, the target account must be listed in "
     "drs_reconcile_target_accounts"),
    ({"external_id": "x"}, "drs_reconcile_external_id must be 2 to 1224"),
    ({"tag_filters": {"dr:enabled": True}}, "drs_reconcile_tag_filters['dr:enabled']: the value True is a bool"),
    ({"history_days": 365}, "drs_reconcile_history_days 365 must be a whole number of days from 1 to 90"),
    ({"history_table": "x"}, "drs_reconcile_history_table 'x' must be 3 to 255"),
])
def test_bad_settings_are_named_with_the_entry_and_the_rule(overrides, message):
    errors = rules.setting_errors(defaults(**overrides), ROLE_VARIABLES)
    assert any(message in error for error in errors), errors


def test_a_misspelled_role_variable_is_named():
    [message] = unknown_variables("drs_reconcile_", ["drs_reconcile_retier", "drs_reconcile_retire",
                                                     "drs_reconcile_result"], rules.ARGUMENT_SPEC, rules.ROLE_OUTPUTS)
    assert "drs_reconcile_retier" in message and "drs_reconcile_retire" in message


def test_the_external_id_is_never_logged():
    assert rules.ARGUMENT_SPEC["external_id"]["no_log"] is True
    for entries in ("staging_accounts", "target_accounts", "accounts"):
        assert rules.ARGUMENT_SPEC[entries]["options"]["external_id"]["no_log"] is True
