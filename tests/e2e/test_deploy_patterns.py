"""playbooks/deploy_agents.yml on the same-account and multi-account scenarios, and its refusals of bad
input, run on localhost without an inventory (every discovered instance is a target) and judged by what
the lab holds and saw."""

import json

import pytest

from tests.e2e.conftest import run_playbook

DEPLOY = "playbooks/deploy_agents.yml"
SETUP = "playbooks/setup_accounts.yml"
HISTORY_SETUP = "playbooks/setup_history.yml"
EXTERNAL_ID = "lab-demo-external-id"
DEFAULT_TAG_FILTERS = [{"Name": "tag:dr:enabled", "Values": ["true"]}, {"Name": "tag:dr:recovery-strategy", "Values": ["drs"]}]

# multi-account.yml: four source accounts, two staging accounts (the operator's mapping)
RETAIL, ANALYTICS, HR, LEGACY = "222222222222", "555555555555", "777777777777", "888888888888"
STAGING, STAGING_SECONDARY = "333333333333", "666666666666"
MULTI_SOURCES = {RETAIL: STAGING, ANALYTICS: STAGING, HR: STAGING_SECONDARY, LEGACY: STAGING_SECONDARY}
REGIONS = ("us-east-1", "us-west-2")


def _role(account_id, name="DRSOrchestrationSourceRole"):
    return f"arn:aws:iam::{account_id}:role/{name}"


def _deploy(lab, tmp_path, **variables):
    summary_file = tmp_path / "summary.json"
    summary_file.unlink(missing_ok=True)
    settings = {
        "drs_deploy_hosts": "localhost",
        "drs_agent_deploy_summary_file": str(summary_file),
        "drs_agent_deploy_ssm_online_timeout": 2,
        "drs_agent_deploy_poll_interval": 2,
        "drs_agent_deploy_registration_timeout": 60,
        "drs_agent_deploy_max_failure_rate": 1,
        "drs_agent_deploy_history_spool_dir": str(tmp_path / "spool"),
    }
    settings.update(variables)
    # the default stdout callback: what an operator reads
    run = run_playbook(lab, DEPLOY, extra_vars=settings, env={"ANSIBLE_STDOUT_CALLBACK": "default"})
    summary = json.loads(summary_file.read_text()) if summary_file.exists() else None
    return run, summary


def _commands(lab, account_id, credentials):
    """Every SSM command an account received, as (requested at, document, instance ids)."""
    commands = []
    for region in REGIONS:
        ssm = lab.client("ssm", region, credentials)
        for page in ssm.get_paginator("list_commands").paginate():
            commands.extend((command["RequestedDateTime"], command["DocumentName"], command["InstanceIds"])
                            for command in page["Commands"])
    return commands


def _tagged_instances(lab, credentials, regions=REGIONS):
    """Instance id -> wave of an account's running DR-tagged instances."""
    waves = {}
    for region in regions:
        ec2 = lab.client("ec2", region, credentials)
        filters = DEFAULT_TAG_FILTERS + [{"Name": "instance-state-name", "Values": ["running"]}]
        for page in ec2.get_paginator("describe_instances").paginate(Filters=filters):
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    tags = {tag["Key"]: tag["Value"] for tag in instance.get("Tags", [])}
                    waves[instance["InstanceId"]] = int(tags["dr:wave"])
    return waves


def _registered(lab, credentials, regions=REGIONS):
    """The instance ids with a live (not DISCONNECTED) source server in an account."""
    registered = set()
    for region in regions:
        drs = lab.client("drs", region, credentials)
        for page in drs.get_paginator("describe_source_servers").paginate(filters={}):
            for server in page["items"]:
                if server["dataReplicationInfo"].get("dataReplicationState") != "DISCONNECTED":
                    registered.add(server["sourceProperties"]["identificationHints"].get("awsInstanceID"))
    return registered


@pytest.fixture(scope="module")
def single_lab(lab_factory):
    lab = lab_factory("single-account")
    lab.control("clock", {"time_scale": 600})
    assert run_playbook(lab, HISTORY_SETUP).returncode == 0
    return lab


@pytest.fixture(scope="module")
def multi_lab(lab_factory):
    lab = lab_factory("multi-account")
    # slow enough that a wave's installs in one account-region are still running when the next
    # account-region's start (a second or two later), so the concurrency test can see them overlap
    lab.control("clock", {"time_scale": 40})
    setup = run_playbook(lab, SETUP, extra_vars={
        "drs_account_setup_orchestration_account_id": "111111111111",
        "drs_account_setup_external_id": EXTERNAL_ID,
        "drs_account_setup_deploy_roles": False,
        "drs_account_setup_accounts": [
            {"account_id": source, "role": "source", "regions": list(REGIONS), "assume_role_arn": _role(source),
             "external_id": EXTERNAL_ID}
            for source in MULTI_SOURCES
        ],
    })
    assert setup.returncode == 0, setup.stdout[-3000:] + setup.stderr[-2000:]
    assert run_playbook(lab, HISTORY_SETUP).returncode == 0
    return lab


def test_same_account_deployment_registers_in_its_own_account(single_lab, tmp_path):
    before = _registered(single_lab, None, ["us-east-1"])
    run, summary = _deploy(single_lab, tmp_path, drs_agent_deploy_accounts=[
        {"account_id": "111111111111", "regions": ["us-east-1"]},
    ])
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    waves = _tagged_instances(single_lab, None, ["us-east-1"])
    newly_registered = (_registered(single_lab, None, ["us-east-1"]) - before) & set(waves)

    assert summary["deployment_pattern"] == "same-account"
    assert [wave["wave"] for wave in summary["waves"]] == sorted(set(waves.values()))
    assert summary["totals"]["installed"] == len(newly_registered) > 0
    assert summary["totals"]["failed"] > 0 and summary["totals"]["skipped"] > 0
    # same-account installs run the AWS document itself
    documents = {document for _at, document, _ids in _commands(single_lab, "111111111111", None)}
    assert documents == {"AWSDisasterRecovery-InstallDRAgentOnInstance"}


@pytest.fixture(scope="module")
def multi_run(multi_lab, tmp_path_factory):
    run, summary = _deploy(
        multi_lab, tmp_path_factory.mktemp("multi"),
        drs_agent_deploy_external_id=EXTERNAL_ID,
        drs_agent_deploy_accounts=[
            {"account_id": source, "role_arn": _role(source), "regions": list(REGIONS), "staging_account_id": staging}
            for source, staging in MULTI_SOURCES.items()
        ],
        drs_agent_deploy_staging_accounts=[
            {"account_id": staging, "role_arn": _role(staging, "DRSOrchestrationStagingRole")}
            for staging in sorted(set(MULTI_SOURCES.values()))
        ],
    )
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    return run, summary


def test_multi_account_waves_run_in_numeric_order_across_all_accounts(multi_lab, multi_run):
    _run, summary = multi_run
    sent = []
    waves = {}
    for source in MULTI_SOURCES:
        credentials = multi_lab.assume(_role(source), EXTERNAL_ID)
        waves.update(_tagged_instances(multi_lab, credentials))
        sent.extend(_commands(multi_lab, source, credentials))
    assert summary["deployment_pattern"] == "multi-account"
    assert summary["planned_waves"] == [1, 2, 10]
    # wave 10 after wave 2, not before it as a string sort would have it; every command holds one wave
    sent_waves = [{waves[instance] for instance in instances} for _at, _document, instances in sorted(sent)]
    assert all(len(wave) == 1 for wave in sent_waves)
    order = [wave.pop() for wave in sent_waves]
    assert order == sorted(order) and set(order) == {1, 2, 10}
    # cross-account installs run the collection's document, which carries the staging account
    assert {document for _at, document, _ids in sent} == {"DRSOrchestration-InstallDRAgentCrossAccount"}


def test_multi_account_wave_installs_every_account_region_at_once(multi_lab, multi_run):
    """Wave 1 has instances in retail/us-east-1 and analytics/us-west-2: their installs overlap in time
    (a wave lasts as long as its slowest account-region, not the sum of them)."""
    spans = {}
    for source in (RETAIL, ANALYTICS):
        credentials = multi_lab.assume(_role(source), EXTERNAL_ID)
        waves = _tagged_instances(multi_lab, credentials)
        for region in REGIONS:
            ssm = multi_lab.client("ssm", region, credentials)
            for page in ssm.get_paginator("list_command_invocations").paginate(Details=True):
                for invocation in page["CommandInvocations"]:
                    if waves.get(invocation["InstanceId"]) != 1:
                        continue
                    finished = max(plugin["ResponseFinishDateTime"] for plugin in invocation["CommandPlugins"])
                    started, ended = spans.get(source, (invocation["RequestedDateTime"], finished))
                    spans[source] = (min(started, invocation["RequestedDateTime"]), max(ended, finished))
    assert set(spans) == {RETAIL, ANALYTICS}
    (retail_start, retail_end), (analytics_start, analytics_end) = spans[RETAIL], spans[ANALYTICS]
    assert retail_start < analytics_end and analytics_start < retail_end


def test_multi_account_reports_each_misconfigured_account_with_its_cause(multi_run):
    run, summary = multi_run
    accounts = summary["accounts"]
    assert set(accounts) == set(MULTI_SOURCES)
    # hr replicates into a staging region where DRS is not initialized; legacy into a staging account
    # that does not trust it: every attempted install there fails, and the output says why
    assert accounts[HR]["failed"] == accounts[HR]["attempted"] > 0
    assert accounts[LEGACY]["failed"] == accounts[LEGACY]["attempted"] > 0
    assert accounts[RETAIL]["installed"] > 0 and accounts[ANALYTICS]["installed"] > 0
    assert "[account_not_initialized]" in run.stdout
    assert "[credentials]" in run.stdout


def _send_commands(lab):
    return sum(ops.get("SendCommand", 0) for services in lab.stats()["calls"].values() for ops in [services.get("ssm", {})])


def test_a_wrong_external_id_leaves_the_account_out_and_fails_the_run(multi_lab, tmp_path):
    sent_before = _send_commands(multi_lab)
    run, summary = _deploy(
        multi_lab, tmp_path, drs_agent_deploy_external_id="not-the-agreed-id",
        drs_agent_deploy_accounts=[{"account_id": RETAIL, "role_arn": _role(RETAIL), "regions": list(REGIONS),
                                    "staging_account_id": STAGING}],
        drs_agent_deploy_staging_accounts=[{"account_id": STAGING,
                                            "role_arn": _role(STAGING, "DRSOrchestrationStagingRole")}],
    )
    assert run.returncode != 0
    assert f"Account {RETAIL} is left out" in run.stdout and "AccessDenied" in run.stdout
    assert f"Not deployed, could not be reached: {RETAIL}" in run.stdout
    assert {entry["account_id"] for entry in summary["unreachable"]} == {RETAIL, STAGING}
    assert summary["totals"]["attempted"] == 0
    assert _send_commands(multi_lab) == sent_before
    # the run that reached nothing is recorded as failed for the account, with the reason
    history = multi_lab.client("dynamodb").query(
        TableName="drs-deployment-history", IndexName="AccountIndex", ScanIndexForward=False, Limit=1,
        KeyConditionExpression="source_account_id = :account", ExpressionAttributeValues={":account": {"S": RETAIL}},
    )["Items"][0]
    assert history["status"]["S"] == "failed" and history["attempted"]["N"] == "0"
    assert "AccessDenied" in json.dumps(history["unreachable"])


@pytest.mark.parametrize("variables, message", [
    ({"drs_agent_deploy_accounts": [{"account_id": "2222", "regions": ["us-east-1"]}]},
     "drs_agent_deploy_accounts[0].account_id '2222' is not an AWS account id (12 digits)"),
    ({"drs_agent_deploy_accounts": [{"account_id": RETAIL, "regions": ["us-east-1"], "staging_account_id": STAGING}]},
     f"drs_agent_deploy_accounts[0] ({RETAIL}) staging_account_id {STAGING} is another account: list it in "
     "drs_agent_deploy_staging_accounts"),
    ({"drs_agent_deploy_accounts": [{"account_id": RETAIL, "regions": ["us-east-1"], "role_arn": _role(ANALYTICS)}]},
     f"drs_agent_deploy_accounts[0] ({RETAIL}) role_arn {_role(ANALYTICS)} is a role in account {ANALYTICS}, not in "
     f"account {RETAIL}"),
    ({"drs_agent_deploy_accounts": [{"account_id": RETAIL, "regions": ["us-east-1", "mars-1"]}]},
     f"drs_agent_deploy_accounts[0] ({RETAIL}) regions[1] 'mars-1' is not an AWS region name such as us-east-1"),
    ({"drs_agent_deploy_accounts": [{"account_id": RETAIL, "regions": ["us-iso-east-1"]}],
      "drs_agent_deploy_agent_tags": {"Application": "prod;id"}},
     "drs_agent_deploy_agent_tags value 'prod;id' of 'Application' must be at most 256 of letters"),
    ({"drs_agent_deploy_accounts": [{"account_id": RETAIL, "regions": ["us-east-1"]}], "drs_agent_deploy_waves": ["two"]},
     "option 'drs_agent_deploy_waves' is of type str and we were unable to convert to int"),
    ({"drs_agent_deploy_accounts": [{"account_id": RETAIL, "regions": ["us-east-1"]}], "drs_agent_deploy_max_failure_rate": 5},
     "drs_agent_deploy_max_failure_rate 5.0 must be a share from 0 to 1"),
    ({"drs_agent_deploy_acounts": [{"account_id": RETAIL, "regions": ["us-east-1"]}]},
     "drs_agent_deploy_acounts is not a variable of this role (did you mean drs_agent_deploy_accounts?)"),
    ({}, "drs_agent_deploy_accounts is empty: list the source accounts, each with account_id and regions"),
])
def test_bad_input_is_refused_before_any_aws_call(multi_lab, tmp_path, variables, message):
    calls_before = multi_lab.stats()["total_calls"]
    run, summary = _deploy(multi_lab, tmp_path, **variables)
    assert run.returncode != 0
    assert message in " ".join(run.stdout.split()), run.stdout[-3000:]
    assert summary is None
    # nothing was asked of AWS: no discovery, no install counted as failed, no history item, no metric
    assert multi_lab.stats()["total_calls"] == calls_before
