"""playbooks/setup_accounts.yml against fresh lab accounts reachable only through a bootstrap role."""

import re

import botocore.exceptions
import pytest

from tests.e2e.conftest import run_playbook
from tests.lab_fixture import REPO_ROOT

SCENARIO = REPO_ROOT / "tests" / "e2e" / "scenarios" / "setup-accounts.yml"
PLAYBOOK = REPO_ROOT / "playbooks" / "setup_accounts.yml"
ORCHESTRATION, SOURCE, STAGING, TARGET = "111111111111", "222222222222", "333333333333", "444444444444"
BOOTSTRAP_EXTERNAL_ID = "lab-bootstrap-external-id"
EXTERNAL_ID = "lab-setup-external-id"
DOCUMENT = "DRSOrchestration-InstallDRAgentCrossAccount"
ROLES = {
    SOURCE: "DRSOrchestrationSourceRole",
    STAGING: "DRSOrchestrationStagingRole",
    TARGET: "DRSOrchestrationTargetRole",
}
STACKS = {SOURCE: "drs-orchestration-source-role", STAGING: "drs-orchestration-staging-role",
          TARGET: "drs-orchestration-target-role"}
SOURCE_REGIONS = ["us-east-1", "us-west-2"]


def bootstrap_role(account):
    return f"arn:aws:iam::{account}:role/DRSSetupBootstrapRole"


def setup_vars(bootstrap_external_id=BOOTSTRAP_EXTERNAL_ID):
    def account(account_id, role, regions):
        return {"account_id": account_id, "role": role, "regions": regions,
                "assume_role_arn": bootstrap_role(account_id), "external_id": bootstrap_external_id}

    return {
        "drs_account_setup_orchestration_account_id": ORCHESTRATION,
        "drs_account_setup_external_id": EXTERNAL_ID,
        "drs_account_setup_initialize_drs": True,
        "drs_account_setup_accounts": [
            account(SOURCE, "source", SOURCE_REGIONS),
            account(STAGING, ["staging"], ["us-east-1"]),
            account(TARGET, "target", ["us-east-1"]),
        ],
    }


def as_bootstrap(lab, account, service, region="us-east-1"):
    credentials = lab.assume(bootstrap_role(account), BOOTSTRAP_EXTERNAL_ID)
    return lab.client(service, region, credentials)


def task_results(run):
    """(task name without its role prefix, result) for every task that ran on localhost."""
    return [(task["task"]["name"].split(" : ", 1)[-1], task["hosts"]["localhost"])
            for play in run.report["plays"] for task in play["tasks"] if "localhost" in task["hosts"]]


def write_calls(stats):
    """Every call that creates or changes something, as account/service:Operation."""
    return sorted(
        f"{account}/{service}:{operation}"
        for account, services in stats["calls"].items()
        for service, operations in services.items()
        for operation in operations
        if re.match(r"(Create|Update|Initialize|Put|Attach|Delete|Execute|Tag)", operation)
    )


@pytest.fixture(scope="module")
def lab(lab_factory):
    return lab_factory(SCENARIO)


@pytest.fixture(scope="module")
def configured(lab):
    """The accounts before setup, the first setup run and a second, verbose one."""
    lab.reset()
    staging_drs = as_bootstrap(lab, STAGING, "drs")
    with pytest.raises(botocore.exceptions.ClientError) as uninitialized:
        staging_drs.describe_replication_configuration_templates()
    first = run_playbook(lab, PLAYBOOK, setup_vars())
    second = run_playbook(lab, PLAYBOOK, setup_vars(), extra_args=["-vvv"])
    return {"before": uninitialized.value.response["Error"]["Code"], "first": first, "second": second}


def test_check_mode_on_fresh_accounts_reports_changes_and_makes_none(lab):
    lab.reset()
    run = run_playbook(lab, PLAYBOOK, setup_vars(), check=True)

    assert run.returncode == 0, run.stdout + run.stderr
    assert write_calls(lab.stats()) == []
    would_change = {name for name, result in task_results(run) if result.get("changed")}
    assert {"Deploy the roles the orchestration account assumes",
            "Create or update the install document in each region of the source account",
            "Initialize DRS and create the replication template in each region of the staging account"} <= would_change
    for account, stack in STACKS.items():
        with pytest.raises(botocore.exceptions.ClientError, match="does not exist"):
            as_bootstrap(lab, account, "cloudformation").describe_stacks(StackName=stack)


def test_setup_deploys_a_stack_per_account_whose_role_needs_the_external_id(lab, configured):
    assert configured["first"].returncode == 0, configured["first"].stdout + configured["first"].stderr
    for account, stack in STACKS.items():
        described = as_bootstrap(lab, account, "cloudformation").describe_stacks(StackName=stack)["Stacks"][0]
        assert described["StackStatus"] == "CREATE_COMPLETE"
        role_arn = f"arn:aws:iam::{account}:role/{ROLES[account]}"
        assert {"OutputKey": "RoleArn", "OutputValue": role_arn} in [
            {key: output[key] for key in ("OutputKey", "OutputValue")} for output in described["Outputs"]
        ]

        credentials = lab.assume(role_arn, EXTERNAL_ID)
        identity = lab.client("sts", credentials=credentials).get_caller_identity()
        assert identity["Account"] == account
        for wrong in (None, BOOTSTRAP_EXTERNAL_ID):
            with pytest.raises(botocore.exceptions.ClientError, match="AccessDenied"):
                lab.assume(role_arn, wrong)


def test_setup_puts_the_install_document_in_every_source_region(lab, configured):
    credentials = lab.assume(f"arn:aws:iam::{SOURCE}:role/{ROLES[SOURCE]}", EXTERNAL_ID)
    for region in SOURCE_REGIONS:
        document = lab.client("ssm", region, credentials).describe_document(Name=DOCUMENT)["Document"]
        assert document["DocumentType"] == "Command"
        assert {parameter["Name"] for parameter in document["Parameters"]} == {"Region", "AccountId", "Tags"}
    with pytest.raises(botocore.exceptions.ClientError, match="InvalidDocument"):
        as_bootstrap(lab, STAGING, "ssm").describe_document(Name=DOCUMENT)


def test_setup_initializes_drs_and_creates_a_replication_template_in_staging(lab, configured):
    assert configured["before"] == "UninitializedAccountException"
    credentials = lab.assume(f"arn:aws:iam::{STAGING}:role/{ROLES[STAGING]}", EXTERNAL_ID)
    drs = lab.client("drs", "us-east-1", credentials)
    templates = drs.describe_replication_configuration_templates()["items"]
    assert len(templates) == 1
    assert templates[0]["stagingAreaSubnetId"].startswith("subnet-")
    assert drs.describe_source_servers()["items"] == []


def test_a_second_run_changes_nothing_and_shows_no_credentials(configured):
    second = configured["second"]
    assert second.returncode == 0, second.stdout + second.stderr
    changed = [name for name, result in task_results(second) if result.get("changed")]
    assert changed == []
    output = second.stdout + second.stderr
    assert "sts_creds" not in output
    for secret_option in ("secret_key", "session_token"):
        shown = re.findall(rf'"{secret_option}": "([^"]*)"', output)
        assert set(shown) <= {"VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"}, shown


def test_a_bootstrap_role_that_cannot_be_assumed_stops_with_the_reason(lab):
    run = run_playbook(lab, PLAYBOOK, setup_vars(bootstrap_external_id="not-the-external-id"))

    assert run.returncode != 0
    result = dict(task_results(run))[f"Stop unless the bootstrap role was assumed in account {SOURCE}"]
    assert f"Cannot assume {bootstrap_role(SOURCE)}" in result["msg"]
    assert "AccessDenied" in result["msg"]
    assert "external_id" in result["msg"]


@pytest.mark.parametrize("tags, accepted", [
    ("Name=web-01,Team=dr ops", True),
    ("", True),
    ("Name=web;reboot", False),
    ("Name=$(reboot)", False),
    ("Name=`reboot`", False),
    ("Name=web-01,", False),
])
def test_the_install_document_only_accepts_plain_tags(lab, configured, tags, accepted):
    credentials = lab.assume(f"arn:aws:iam::{SOURCE}:role/{ROLES[SOURCE]}", EXTERNAL_ID)
    reservations = lab.client("ec2", "us-east-1", credentials).describe_instances()["Reservations"]
    instance_id = reservations[0]["Instances"][0]["InstanceId"]
    ssm = lab.client("ssm", "us-east-1", credentials)

    def send():
        return ssm.send_command(DocumentName=DOCUMENT, InstanceIds=[instance_id],
                                Parameters={"Region": ["us-east-1"], "AccountId": [STAGING], "Tags": [tags]})

    if accepted:
        assert send()["Command"]["DocumentName"] == DOCUMENT
    else:
        with pytest.raises(botocore.exceptions.ClientError, match="InvalidParameters"):
            send()


@pytest.mark.parametrize("account_id", ["33333333333", "33333333333a", "$(id)"])
def test_the_install_document_only_accepts_a_twelve_digit_account(lab, configured, account_id):
    credentials = lab.assume(f"arn:aws:iam::{SOURCE}:role/{ROLES[SOURCE]}", EXTERNAL_ID)
    reservations = lab.client("ec2", "us-east-1", credentials).describe_instances()["Reservations"]
    ssm = lab.client("ssm", "us-east-1", credentials)
    with pytest.raises(botocore.exceptions.ClientError, match="InvalidParameters"):
        ssm.send_command(DocumentName=DOCUMENT, InstanceIds=[reservations[0]["Instances"][0]["InstanceId"]],
                         Parameters={"Region": ["us-east-1"], "AccountId": [account_id]})


def test_a_changed_document_is_shown_in_check_mode_then_becomes_the_new_default_version(lab, configured, tmp_path):
    content = (REPO_ROOT / "roles" / "drs_account_setup" / "files" / f"{DOCUMENT}.yml").read_text()
    changed_content = content.replace("Install the AWS Replication Agent", "Install the DRS agent")
    assert changed_content != content
    content_file = tmp_path / "document.yml"
    content_file.write_text(changed_content)
    variables = {"role_arn": f"arn:aws:iam::{SOURCE}:role/{ROLES[SOURCE]}", "external_id": EXTERNAL_ID,
                 "region": "us-west-2", "document_name": DOCUMENT, "content_file": str(content_file)}
    ssm = as_bootstrap(lab, SOURCE, "ssm", "us-west-2")

    preview = run_playbook(lab, "ssm_document.yml", variables, check=True, extra_args=["--diff"])
    result = dict(task_results(preview))["Create or update the document"]
    assert result["changed"] is True, result.get("msg")
    assert "Install the AWS Replication Agent" in result["diff"]["before"]
    assert "Install the DRS agent" in result["diff"]["after"]
    assert ssm.describe_document(Name=DOCUMENT)["Document"]["LatestVersion"] == "1"

    update = run_playbook(lab, "ssm_document.yml", variables)
    assert dict(task_results(update))["Create or update the document"]["changed"] is True
    document = ssm.describe_document(Name=DOCUMENT)["Document"]
    assert (document["DefaultVersion"], document["LatestVersion"]) == ("2", "2")
    assert "Install the DRS agent" in ssm.get_document(Name=DOCUMENT)["Content"]

    again = run_playbook(lab, "ssm_document.yml", variables)
    assert dict(task_results(again))["Create or update the document"]["changed"] is False


def test_an_account_that_is_its_own_staging_account_gets_drs_reads_in_its_source_role(lab, configured):
    """Runs last: turns the configured source account into a same-account (source and staging) one."""
    variables = setup_vars()
    variables["drs_account_setup_accounts"] = [dict(variables["drs_account_setup_accounts"][0], role=["source", "staging"])]

    run = run_playbook(lab, PLAYBOOK, variables)

    assert run.returncode == 0, run.stdout + run.stderr
    cloudformation = as_bootstrap(lab, SOURCE, "cloudformation")
    source_stack = cloudformation.describe_stacks(StackName=STACKS[SOURCE])["Stacks"][0]
    assert source_stack["StackStatus"] == "UPDATE_COMPLETE"
    assert {"ParameterKey": "SameAccountReplication", "ParameterValue": "true"} in source_stack["Parameters"]
    assert cloudformation.describe_stacks(StackName=STACKS[STAGING])["Stacks"][0]["StackStatus"] == "CREATE_COMPLETE"
    for region in SOURCE_REGIONS:
        templates = as_bootstrap(lab, SOURCE, "drs", region).describe_replication_configuration_templates()["items"]
        assert len(templates) == 1
