"""The drs_fleet inventory against the lab's multi-account scenario, with ansible-inventory as users run it."""

import json
import subprocess

import pytest

from tests.e2e.conftest import ANSIBLE_BIN, collection_environment
from tests.lab_fixture import REPO_ROOT

EXTERNAL_ID = "lab-demo-external-id"
ROLE = "arn:aws:iam::{}:role/DRSOrchestrationSourceRole"
SOURCE_ACCOUNTS = {"222222222222": "retail", "555555555555": "analytics", "777777777777": "hr", "888888888888": "legacy"}
REGIONS = ["us-east-1", "us-west-2"]
DR_FILTERS = [{"Name": "tag:dr:enabled", "Values": ["true"]}, {"Name": "tag:dr:recovery-strategy", "Values": ["drs"]},
              {"Name": "instance-state-name", "Values": ["running"]}]
LAB_CONFIG = REPO_ROOT / "inventories" / "lab" / "aws_config"


@pytest.fixture(scope="module")
def lab(lab_factory):
    running = lab_factory("multi-account")
    # one instance whose wave tag is no whole number, as happens in real estates
    ec2 = running.client("ec2", "us-west-2", running.assume(ROLE.format("555555555555"), EXTERNAL_ID, "us-west-2"))
    reservations = ec2.describe_instances(Filters=DR_FILTERS)["Reservations"]
    broken = reservations[0]["Instances"][0]["InstanceId"]
    ec2.create_tags(Resources=[broken], Tags=[{"Key": "dr:wave", "Value": "second"}])
    running.broken_wave_instance = broken
    return running


@pytest.fixture(scope="module")
def holdings(lab):
    """What the lab holds: {instance id: (account, region, tags)} of the running DR-tagged instances."""
    found = {}
    for account_id in SOURCE_ACCOUNTS:
        for region in REGIONS:
            keys = lab.assume(ROLE.format(account_id), EXTERNAL_ID, region)
            for reservation in lab.client("ec2", region, keys).describe_instances(Filters=DR_FILTERS)["Reservations"]:
                for raw in reservation["Instances"]:
                    tags = {tag["Key"]: tag["Value"] for tag in raw.get("Tags", [])}
                    found[raw["InstanceId"]] = (account_id, region, tags)
    return found


def write_inventory(directory, **extra):
    config = {"plugin": "drs_orchestration.agent_deployer.drs_fleet", "regions": REGIONS,
              "accounts": [{"account_id": account_id, "name": name, "role_arn": ROLE.format(account_id)}
                           for account_id, name in SOURCE_ACCOUNTS.items()]}
    config.update(extra)
    path = directory / "fleet.drs_fleet.yml"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def unsafe_free(value):
    """ansible-inventory's JSON with the {"__ansible_unsafe": ...} wrappers of remote strings removed."""
    if isinstance(value, dict):
        if set(value) == {"__ansible_unsafe"}:
            return value["__ansible_unsafe"]
        return {key: unsafe_free(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unsafe_free(item) for item in value]
    return value


def inventory_list(lab, path, drop_env_keys=False, **env):
    environment = lab.environment(**collection_environment(lab_clock=False), DRS_EXTERNAL_ID=EXTERNAL_ID)
    if drop_env_keys:
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            environment.pop(key, None)
    environment.update(env)
    completed = subprocess.run([str(ANSIBLE_BIN / "ansible-inventory"), "-i", str(path), "--list"], cwd=REPO_ROOT,
                               env=environment, capture_output=True, text=True, timeout=120, check=False)
    listing = unsafe_free(json.loads(completed.stdout)) if completed.returncode == 0 else None
    return completed, listing


def members(listing, group):
    return set(listing.get(group, {}).get("hosts", []))


def test_hosts_vars_and_groups_are_what_the_lab_holds_across_accounts(lab, holdings, tmp_path):
    # env keys win over AWS_PROFILE: this profile would assume the source role with a wrong external id
    completed, listing = inventory_list(lab, write_inventory(tmp_path), AWS_CONFIG_FILE=str(LAB_CONFIG),
                                        AWS_PROFILE="lab-source-wrong-external-id")
    assert completed.returncode == 0, completed.stderr
    hostvars = listing["_meta"]["hostvars"]
    assert set(hostvars) == set(holdings)
    for instance_id, (account_id, region, tags) in holdings.items():
        variables = hostvars[instance_id]
        assert (variables["instance_id"], variables["drs_account_id"], variables["drs_region"],
                variables["drs_priority"], variables["drs_name"]) == (
            instance_id, account_id, region, tags["dr:priority"], tags["Name"])
        assert instance_id in members(listing, f"account_{account_id}")
        assert instance_id in members(listing, f"region_{region.replace('-', '_')}")
        assert instance_id in members(listing, f"priority_{tags['dr:priority']}")
    tags_of = {instance_id: held[2] for instance_id, held in holdings.items()}
    for wave in {tags["dr:wave"] for tags in tags_of.values() if tags["dr:wave"].isdigit()}:
        expected = {instance_id for instance_id, tags in tags_of.items() if tags["dr:wave"] == wave}
        assert members(listing, f"wave_{int(wave)}") == expected
        assert {hostvars[i]["drs_wave"] for i in expected} == {int(wave)}
    broken = lab.broken_wave_instance
    assert hostvars[broken]["drs_wave"] is None
    assert not [group for group, body in listing.items() if group.startswith("wave_") and broken in body.get("hosts", [])]
    assert broken in completed.stderr and "is in no wave" in completed.stderr
    assert EXTERNAL_ID not in completed.stdout + completed.stderr


def test_a_profile_gives_the_operator_credentials(lab, holdings, tmp_path):
    completed, listing = inventory_list(lab, write_inventory(tmp_path, profile="lab-operator"), drop_env_keys=True,
                                        AWS_CONFIG_FILE=str(LAB_CONFIG))
    assert completed.returncode == 0, completed.stderr
    assert set(listing["_meta"]["hostvars"]) == set(holdings)


def test_a_wrong_external_id_fails_naming_the_account_and_not_the_id(lab, tmp_path):
    wrong = "wrong-id-4d1f9b"
    completed, _listing = inventory_list(lab, write_inventory(tmp_path), DRS_EXTERNAL_ID=wrong,
                                         ANSIBLE_INVENTORY_UNPARSED_FAILED="1")
    output = completed.stdout + completed.stderr
    assert completed.returncode != 0
    for account_id, name in SOURCE_ACCOUNTS.items():
        assert f"account {account_id} ({name})" in output
    assert wrong not in output


def test_a_second_run_with_the_cache_makes_no_aws_call(lab, holdings, tmp_path):
    cache = tmp_path / "cache"
    path = write_inventory(tmp_path, cache=True, cache_plugin="ansible.builtin.jsonfile",
                           cache_connection=str(cache), cache_timeout=600)
    first, listing = inventory_list(lab, path)
    assert first.returncode == 0, first.stderr
    calls = lab.stats()["total_calls"]
    second, cached = inventory_list(lab, path)
    assert second.returncode == 0, second.stderr
    assert lab.stats()["total_calls"] == calls
    assert cached == listing and set(listing["_meta"]["hostvars"]) == set(holdings)
    stored = "".join(entry.read_text(encoding="utf-8") for entry in cache.iterdir())
    assert EXTERNAL_ID not in stored and "lab-operator-secret" not in stored and "SessionToken" not in stored


def test_the_waves_option_or_its_environment_key_lists_only_those_waves(lab, holdings, tmp_path):
    waves_of = {instance_id: held[2]["dr:wave"] for instance_id, held in holdings.items()}
    broken = lab.broken_wave_instance
    for waves, options, env in (("2", {}, {"DRS_FLEET_WAVES": "2"}), ("1,10", {"waves": [1, 10]}, {})):
        completed, listing = inventory_list(lab, write_inventory(tmp_path, **options), **env)
        assert completed.returncode == 0, completed.stderr
        wanted = {str(int(wave)) for wave in waves.split(",")}
        expected = {instance_id for instance_id, wave in waves_of.items() if wave in wanted}
        assert expected and expected < set(holdings)
        # an instance whose wave tag is unusable is listed in every wave's inventory, in no wave group, with its warning
        assert set(listing["_meta"]["hostvars"]) == expected | {broken}
        assert {group for group in listing if group.startswith("wave_")} == {f"wave_{wave}" for wave in wanted}
        assert "is in no wave" in completed.stderr


def test_a_bad_wave_in_the_environment_key_is_refused_before_any_aws_call(lab, tmp_path):
    calls = lab.stats()["total_calls"]
    completed, _listing = inventory_list(lab, write_inventory(tmp_path), DRS_FLEET_WAVES="2,second",
                                         ANSIBLE_INVENTORY_UNPARSED_FAILED="1")
    assert completed.returncode != 0
    assert "waves: 'second' is not a wave number" in completed.stderr
    assert "DRS_FLEET_WAVES" in completed.stderr
    assert lab.stats()["total_calls"] == calls


def test_each_waves_inventory_has_its_own_cache_entry(lab, holdings, tmp_path):
    cache = tmp_path / "cache"
    path = write_inventory(tmp_path, cache=True, cache_plugin="ansible.builtin.jsonfile",
                           cache_connection=str(cache), cache_timeout=600)
    _first, wave_1 = inventory_list(lab, path, DRS_FLEET_WAVES="1")
    _second, wave_2 = inventory_list(lab, path, DRS_FLEET_WAVES="2")
    assert "wave_1" in wave_1 and "wave_1" not in wave_2 and "wave_2" in wave_2
    assert len(list(cache.iterdir())) == 2
