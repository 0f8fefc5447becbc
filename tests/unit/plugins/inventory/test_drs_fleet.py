"""The pure parts of the drs_fleet inventory: an instance's groups and host variables, and checks of accounts."""

import pytest
from ansible.errors import AnsibleParserError

from ansible_collections.drs_orchestration.agent_deployer.plugins.inventory.drs_fleet import check_accounts
from ansible_collections.drs_orchestration.agent_deployer.plugins.inventory.drs_fleet import host_groups
from ansible_collections.drs_orchestration.agent_deployer.plugins.inventory.drs_fleet import host_vars
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.discovery import describe_instance

ROLE = "arn:aws:iam::222222222222:role/DRSOrchestrationSourceRole"


def instance(wave=None, priority=None):
    tags = [{"Key": "Name", "Value": "db-01"}]
    if wave is not None:
        tags.append({"Key": "dr:wave", "Value": wave})
    if priority is not None:
        tags.append({"Key": "dr:priority", "Value": priority})
    raw = {"InstanceId": "i-0123456789abcdef0", "State": {"Name": "running"}, "Platform": "windows",
           "PrivateIpAddress": "10.0.0.5", "Tags": tags}
    return describe_instance(raw, "222222222222", "us-west-2", "dr:wave", "dr:priority")


def test_a_tagged_instance_is_in_its_wave_account_region_and_priority_groups():
    assert host_groups(instance(wave="010", priority="high-1")) == [
        "wave_10", "account_222222222222", "region_us_west_2", "priority_high_1"]


@pytest.mark.parametrize("wave", [None, "two", "-1"])
def test_an_instance_without_a_usable_wave_is_in_no_wave_group(wave):
    assert not [group for group in host_groups(instance(wave=wave)) if group.startswith("wave_")]


def test_host_vars_name_the_instance_the_way_the_deploy_playbook_reads_it():
    variables = host_vars(instance(wave="2", priority="low"))
    assert variables["instance_id"] == "i-0123456789abcdef0"
    shown = (variables["drs_account_id"], variables["drs_region"], variables["drs_wave"], variables["drs_priority"],
             variables["drs_platform"], variables["drs_name"])
    assert shown == ("222222222222", "us-west-2", 2, "low", "windows", "db-01")
    assert host_vars(instance(wave="x"))["drs_wave"] is None


def test_accounts_take_the_default_regions_and_external_id():
    [account] = check_accounts([{"account_id": "222222222222", "role_arn": ROLE}], ["eu-west-1"], "the-ext-id")
    assert (account["regions"], account["external_id"]) == (["eu-west-1"], "the-ext-id")


@pytest.mark.parametrize("entry, message", [
    ({"account_id": 222222222222, "role_arn": ROLE}, "accounts[0].account_id"),
    ({"account_id": "333333333333", "role_arn": ROLE}, "not in account 333333333333"),
    ({"account_id": "222222222222", "role_arn": ROLE, "regions": ["useast1"]}, "accounts[0].regions[0]"),
])
def test_a_bad_account_entry_is_refused_naming_the_entry(entry, message):
    with pytest.raises(AnsibleParserError, match=message.replace("[", r"\[").replace("]", r"\]")):
        check_accounts([entry], ["us-east-1"], None)


def test_a_bad_external_id_is_refused_without_showing_it():
    with pytest.raises(AnsibleParserError) as refused:
        check_accounts([{"account_id": "222222222222", "role_arn": ROLE}], ["us-east-1"], "x")
    assert "accounts[0] external id" in str(refused.value)
    assert "'x'" not in str(refused.value)
