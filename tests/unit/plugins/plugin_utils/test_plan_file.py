"""The plan files of check mode: plan.json built from the plan and each account-region's install plan, and
plan.md, its rendering for a pull-request comment."""

import json
import os

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import outcomes
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout import plan as planning
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout import plan_file

from ansible_collections.drs_orchestration.agent_deployer.tests.unit.plugins.plugin_utils.test_rollout import (
    SOURCE, account, defaults, discovered)

OTHER = "444444444444"
SECRET = "external-id-never-shown"


def iid(number):
    return f"i-{number:017x}"


def planned(discoveries, accounts, unreachable=(), **overrides):
    settings = defaults(accounts=accounts, **overrides)
    return planning.build_plan(accounts, discoveries, list(unreachable), settings), settings


def install_plan(install=(), adopt=(), skip=()):
    return {"would_install": [iid(n) for n in install], "would_reinstall": [],
            "would_adopt": [{"instance_id": iid(n), "command_id": f"cmd-{n}"} for n in adopt],
            "would_skip": [{"instance_id": iid(n), "status": status, "reason": reason} for n, status, reason in skip]}


def two_wave_plan(**overrides):
    accounts = [account(external_id=SECRET, role_arn=f"arn:aws:iam::{SOURCE}:role/Source")]
    found = {(SOURCE, "us-east-1"): {"instances": [discovered(n, 1) for n in range(1, 5)]
                                     + [discovered(5, 2), discovered(6, None), discovered(7, 3)]}}
    built, settings = planned(found, accounts, waves=[1, 2], **overrides)
    first, second = built.waves[0].places[0], built.waves[1].places[0]
    details = {first: install_plan(install=[1], adopt=[2],
                                   skip=[(3, outcomes.ALREADY_REGISTERED, "registered in DRS"),
                                         (4, outcomes.SKIPPED_SSM_OFFLINE, "ping status ConnectionLost")]),
               second: install_plan(install=[5])}
    return built, details, settings, accounts


def test_the_plan_lists_per_wave_and_place_what_would_be_installed_adopted_and_skipped_with_reasons():
    built, details, settings, accounts = two_wave_plan()
    document = plan_file.plan_document(built, details, settings, accounts)
    first = document["waves"][0]["places"][0]
    assert (document["waves"][0]["wave"], first["account_id"], first["region"]) == (1, SOURCE, "us-east-1")
    assert [item["instance_id"] for item in first["install"]] == [iid(1)]
    assert first["adopt"] == [{"instance_id": iid(2), "name": "server-2", "command_id": "cmd-2"}]
    assert [(item["instance_id"], item["status"], item["reason"]) for item in first["skip"]] == [
        (iid(3), "already_registered", "registered in DRS"), (iid(4), "skipped_ssm_offline", "ping status ConnectionLost")]
    assert [item["instance_id"] for item in document["no_wave"]] == [iid(6)]
    assert document["no_wave"][0]["status"] == outcomes.NO_WAVE
    assert [(item["instance_id"], item["wave"]) for item in document["excluded"]] == [(iid(7), 3)]
    assert "wave 3" in document["excluded"][0]["reason"]
    assert document["totals"] == {"install": 2, "reinstall": 0, "adopt": 1, "skip": 2,
                                  "skip_by_status": {"already_registered": 1, "skipped_ssm_offline": 1},
                                  "no_wave": 1, "excluded": 1, "unreachable": 0}
    assert document["waves"][1]["totals"]["install"] == 1
    assert document["clean"] is True and document["changed"] is True


def test_the_inputs_are_shown_without_the_external_id():
    built, details, settings, accounts = two_wave_plan(external_id=SECRET)
    document = plan_file.plan_document(built, details, settings, accounts)
    assert document["inputs"]["waves"] == [1, 2]
    assert document["inputs"]["accounts"][0]["role_arn"].endswith(":role/Source")
    text = json.dumps(document) + plan_file.markdown(document)
    assert SECRET not in text


def test_unreachable_accounts_and_places_that_cannot_be_planned_make_the_plan_not_clean():
    accounts = [account(), account(account_id=OTHER)]
    found = {(SOURCE, "us-east-1"): {"instances": [discovered(1, 1)]}}
    gone = [{"account_id": OTHER, "region": None, "reason": "AccessDenied on sts:AssumeRole"}]
    built, settings = planned(found, accounts, unreachable=gone)
    place = built.waves[0].places[0]
    document = plan_file.plan_document(built, {place: {"error": "DRS answered AccessDenied"}}, settings, accounts)
    assert document["clean"] is False and document["changed"] is False
    assert [(entry["account_id"], entry["region"]) for entry in document["unreachable"]] == [
        (OTHER, None), (SOURCE, "us-east-1")]
    assert "DRS answered AccessDenied" in document["unreachable"][1]["reason"]
    text = plan_file.markdown(document)
    assert "**Not clean**: 2 account(s) or account-region(s) could not be reached" in text
    assert f"| {OTHER} | all | AccessDenied on sts:AssumeRole |" in text


def test_nothing_to_install_is_clean_and_unchanged():
    accounts = [account()]
    built, settings = planned({(SOURCE, "us-east-1"): {"instances": [discovered(1, 1)]}}, accounts)
    details = {built.waves[0].places[0]: install_plan(skip=[(1, outcomes.ALREADY_REGISTERED, "registered")])}
    document = plan_file.plan_document(built, details, settings, accounts)
    assert (document["clean"], document["changed"], document["totals"]["install"]) == (True, False, 0)
    assert "Would install 0, reinstall 0, adopt 0 install(s) already running, skip 1 (1 already_registered)" in \
        plan_file.markdown(document)


def test_the_markdown_has_a_row_per_wave_and_account_and_folds_long_lists():
    built, details, settings, accounts = two_wave_plan()
    text = plan_file.markdown(plan_file.plan_document(built, details, settings, accounts))
    assert f"| 1 | {SOURCE} | us-east-1 | 1 | 0 | 1 | 2 (1 already_registered, 1 skipped_ssm_offline) |" in text
    assert f"| 2 | {SOURCE} | us-east-1 | 1 | 0 | 0 | 0 |" in text
    assert f"- `{iid(4)}` server-4: skipped_ssm_offline: ping status ConnectionLost" in text
    assert "<details>" not in text
    many = [account()]
    built, settings = planned({(SOURCE, "us-east-1"): {"instances": [discovered(n, 1) for n in range(1, 13)]}}, many)
    details = {built.waves[0].places[0]: install_plan(install=range(1, 13))}
    text = plan_file.markdown(plan_file.plan_document(built, details, settings, many))
    assert f"<details><summary>Wave 1, {SOURCE}/us-east-1: install (12)</summary>" in text
    assert text.count("\n- `i-") == 12


def test_the_files_are_written_whole_and_nothing_else_is_left(tmp_path):
    built, details, settings, accounts = two_wave_plan()
    document = plan_file.plan_document(built, details, settings, accounts)
    directory = tmp_path / "plan"
    plan_file.write_plan(str(directory), document, plan_file.markdown(document))
    plan_file.write_plan(str(directory), document, plan_file.markdown(document))
    assert sorted(os.listdir(directory)) == ["plan.json", "plan.md"]
    assert json.loads((directory / "plan.json").read_text())["totals"] == document["totals"]
    assert (directory / "plan.md").read_text() == plan_file.markdown(document)
