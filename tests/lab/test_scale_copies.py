"""The 30,000-instance estate of make bench SCENARIO=scale-30k: its files are what scripts/scale_copies.py
writes from the scale scenario (so they cannot drift from it), the estate is as large as promised, and its
AWX mode's controller configuration and inventory are usable as they stand."""

import importlib.util
from collections import Counter

import yaml

from tests.lab_fixture import REPO_ROOT

NAME = "scale-30k"
STAGING_CAPACITY = 300


def scale_copies():
    spec = importlib.util.spec_from_file_location("scale_copies", REPO_ROOT / "scripts" / "scale_copies.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_committed_files_are_what_the_generator_writes():
    for path, text in scale_copies().generated(10, NAME).items():
        assert (REPO_ROOT / path).read_text(encoding="utf-8") == text, f"{path}: run scripts/scale_copies.py"


def test_the_estate_holds_30000_tagged_instances_in_100_account_regions_none_over_capacity():
    scenario = yaml.safe_load((REPO_ROOT / "lab" / "scenarios" / f"{NAME}.yml").read_text(encoding="utf-8"))
    tagged = Counter()
    for group in scenario["instance_groups"]:
        if (group.get("tags") or {}).get("dr:enabled") == "true":
            tagged[(group["account"], group["region"])] += group["count"]
    assert sum(tagged.values()) >= 30000
    assert len(tagged) >= 100
    assert max(tagged.values()) <= STAGING_CAPACITY


def test_the_awx_mode_configuration_slices_every_wave_over_the_whole_estate():
    variables = yaml.safe_load((REPO_ROOT / "playbooks" / "vars" / f"lab_{NAME}_controller.yml").read_text(encoding="utf-8"))
    deploy = yaml.safe_load((REPO_ROOT / "playbooks" / "vars" / f"lab_{NAME}_deploy.yml").read_text(encoding="utf-8"))
    inventory = yaml.safe_load((REPO_ROOT / variables["inventory_source_path"]).read_text(encoding="utf-8"))

    assert variables["waves"] == [1, 2, 3, 4, 5, 6]
    assert variables["job_slice_count"] == 4
    assert variables["extra_vars"]["drs_agent_deploy_accounts"] == deploy["drs_agent_deploy_accounts"]
    # AWX injects the external id from the credential; a fixed one would be refused by the controller configuration
    assert "drs_agent_deploy_external_id" not in variables["extra_vars"]
    assert variables["credential_inputs"]["external_id"] == deploy["drs_agent_deploy_external_id"]
    assert [account["account_id"] for account in inventory["accounts"]] == \
        [account["account_id"] for account in deploy["drs_agent_deploy_accounts"]]
