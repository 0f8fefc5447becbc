"""The outcome model: one table of statuses and their arithmetic, and the documentation pinned to it."""

import re
from pathlib import Path

import pytest
import yaml

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import history
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import outcomes

REPO_ROOT = Path(__file__).resolve().parents[4]


def documentation(module, section="DOCUMENTATION"):
    source = (REPO_ROOT / "plugins" / "modules" / f"{module}.py").read_text(encoding="utf-8")
    return yaml.safe_load(source.split(f'{section} = r"""', 1)[1].split('"""', 1)[0])


def test_already_registered_instances_weigh_in_the_failure_rate_as_they_do_in_the_success_rate():
    # one wave of 8 already registered and 2 failed instances: the module, the wave gate and the history all
    # read 0.2, where they once read 1.0 and 0.2
    figures = outcomes.tally({"already_registered": 8, "failed": 2})
    assert (figures["attempted"], figures["failure_rate"], figures["success_rate"]) == (10, 0.2, 0.8)


def test_skipped_unsettled_and_unplanned_instances_are_not_attempted_but_are_unprotected():
    figures = outcomes.tally({"installed": 3, "timed_out": 1, "skipped_ssm_offline": 2, "in_flight": 1,
                              "not_started": 4, "no_wave": 1})
    assert (figures["attempted"], figures["failed"], figures["skipped"], figures["unsettled"],
            figures["unplanned"]) == (4, 1, 2, 5, 1)
    assert figures["unprotected"] == 1 + 2 + 5 + 1 and figures["failure_rate"] == 0.25


def test_nothing_attempted_has_no_success_rate_and_no_failure():
    figures = outcomes.tally({"skipped_not_managed": 3})
    assert figures["success_rate"] is None and figures["failure_rate"] == 0.0


def test_a_status_outside_the_table_is_refused_not_counted_as_something_else():
    with pytest.raises(outcomes.UnknownStatus, match="'done' is not an instance status"):
        outcomes.count(["installed", "done"])
    with pytest.raises(outcomes.UnknownStatus):
        outcomes.tally({"done": 1})


def test_every_status_belongs_to_one_group_and_sums_add_up():
    assert set(outcomes.GROUP_OF.values()) == set(outcomes.GROUPS)
    counts = outcomes.add({"installed": 2, "failed": 1}, {"installed": 1, "no_wave": 2})
    assert counts["installed"] == 3 and sum(counts.values()) == 6


def test_the_install_modules_documented_statuses_are_the_engines():
    status = documentation("drs_ssm_install", "RETURN")["results"]["contains"]["status"]
    assert status["choices"] == list(outcomes.INSTALL_STATUSES)


def test_the_history_record_accepts_exactly_the_models_statuses():
    text = " ".join(documentation("drs_history_record")["options"]["results"]["description"])
    listed = text.split("a status of the outcome model:", 1)[1].split("C(account_id)", 1)[0]
    assert re.findall(r"C\((\w+)\)", listed) == list(outcomes.STATUSES)


def test_the_history_filters_are_the_histories_statuses():
    assert documentation("drs_history_info")["options"]["status"]["choices"] == list(history.FILTER_STATUSES)
    specs = yaml.safe_load((REPO_ROOT / "roles" / "drs_report" / "meta" / "argument_specs.yml").read_text())
    report_status = specs["argument_specs"]["main"]["options"]["drs_report_status"]
    assert [choice for choice in report_status["choices"] if choice] == list(history.FILTER_STATUSES)


def test_the_rollout_documents_every_status_and_the_rates():
    text = " ".join(documentation("drs_rollout")["description"])
    assert all(f"V({status})" in text for status in outcomes.STATUSES)
    assert "Attempted = protected + failed; success rate = protected / attempted; failure rate = failed / attempted" in text
