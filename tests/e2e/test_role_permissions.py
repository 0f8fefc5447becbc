"""The orchestration roles grant what the collection uses, no less and hardly more.

Real setup and deployment runs go against the lab; its call statistics say which actions each role's
sessions called. Each role's CloudFormation template (roles/drs_account_setup/files/) must grant all
of them, and nothing beyond them but the short, explained ALLOW_LIST.

The event forwarding role of the source accounts (roles/drs_event_setup/files/event-forwarding.yml)
is used by EventBridge, not by the collection, and is named per region: it has its own check, from
the calls the lab counts for it when its rules deliver events to the orchestration account's bus.
"""

import json

import pytest
import yaml

from tests.e2e.conftest import run_playbook
from tests.e2e import test_event_setup as event_setup
from tests.e2e.test_deploy_agents import _ansible, _deploy
from tests.e2e.test_setup_accounts import PLAYBOOK as SETUP_PLAYBOOK
from tests.e2e.test_setup_accounts import SCENARIO as SETUP_SCENARIO
from tests.e2e.test_setup_accounts import EXTERNAL_ID as SETUP_EXTERNAL_ID
from tests.e2e.test_setup_accounts import setup_vars
from tests.lab_fixture import REPO_ROOT, RunningLab

TEMPLATES = sorted((REPO_ROOT / "roles" / "drs_account_setup" / "files").glob("*-account-role.yml"))
DOCUMENT = REPO_ROOT / "roles" / "drs_account_setup" / "files" / "DRSOrchestration-InstallDRAgentCrossAccount.yml"
DEMO_EXTERNAL_ID = "lab-demo-external-id"
SOURCE, STAGING, TARGET = "222222222222", "333333333333", "444444444444"
ROLES = {SOURCE: "DRSOrchestrationSourceRole", STAGING: "DRSOrchestrationStagingRole", TARGET: "DRSOrchestrationTargetRole"}

# The lab's service names (the "service" of "service:Operation" in its statistics) and the IAM
# prefix of their actions. An unknown service fails the test, so that it is looked at.
IAM_PREFIX = {"cloudformation": "cloudformation", "drs": "drs", "ec2": "ec2", "events": "events", "iam": "iam",
              "ssm": "ssm", "sts": "sts"}
FORWARDING_TEMPLATE = REPO_ROOT / "roles" / "drs_event_setup" / "files" / "event-forwarding.yml"

# Called, but no policy needs to grant it.
NOT_NEEDED = {
    "sts:GetCallerIdentity",  # "No permissions are required to perform this operation" (STS API Reference)
    # amazon.aws.aws_caller_info (the setup's account check) asks for the account alias and goes on
    # without it when denied; the check only needs the account id.
    "iam:ListAccountAliases",
}

# Granted although the lab runs below never call it, and why. Keep it short and honest: an action no
# code of the collection calls belongs out of its template, not here.
ALLOW_LIST = {
    "DRSOrchestrationSourceRole": {
        # Only with SameAccountReplication=true: drs_ssm_install confirms registrations in the source
        # account itself. The demo replicates cross-account, into its staging account.
        "drs:DescribeSourceServers",
        # Only when an install runs past drs_agent_deploy_install_timeout, which the demo does not set.
        "ssm:CancelCommand",
    },
    "DRSOrchestrationStagingRole": {
        # Not an API call: IAM checks it when drs_initialize gives tags to
        # CreateReplicationConfigurationTemplate (the statement's drs:CreateAction condition).
        "drs:TagResource",
        # InitializeService makes these calls itself, with the caller's permissions (DRS User Guide,
        # "Elastic Disaster Recovery initialization and permissions"); the lab records only the
        # calls clients make.
        "iam:CreateServiceLinkedRole",
        "iam:GetRole",
        "iam:CreateRole",
        "iam:AttachRolePolicy",
        "iam:GetInstanceProfile",
        "iam:CreateInstanceProfile",
        "iam:AddRoleToInstanceProfile",
        # A drill recovers in the staging account only the servers of accounts without a target account, and
        # reconcile retires servers only of untagged or terminated instances; the demo has neither
        # (tests/e2e/test_drill.py and test_reconcile.py run them in their own scenarios).
        "drs:StartRecovery",
        "drs:DescribeJobs",
        "drs:DescribeJobLogItems",
        "drs:TerminateRecoveryInstances",
        "drs:DisconnectSourceServer",
        "drs:DeleteSourceServer",
    },
    "DRSOrchestrationTargetRole": {
        # Not an API call: IAM checks it for the tags drs_extend_source_server gives to
        # CreateExtendedSourceServer (tag on create).
        "drs:TagResource",
        # drs_drill reads a job's log only when a launch failed; the demo's drill launches every server
        "drs:DescribeJobLogItems",
        # reconcile retires servers only of untagged or terminated instances, which the demo has none of
        # (tests/e2e/test_reconcile.py)
        "drs:DisconnectSourceServer",
        "drs:DeleteSourceServer",
    },
}


# --- the templates ---

class _TolerantLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form intrinsic functions (!Sub, !Ref, ...) as their long form."""


def _intrinsic(loader, tag_suffix, node):
    name = "Ref" if tag_suffix == "Ref" else f"Fn::{tag_suffix}"
    if isinstance(node, yaml.ScalarNode):
        return {name: loader.construct_scalar(node)}
    if isinstance(node, yaml.SequenceNode):
        return {name: loader.construct_sequence(node, deep=True)}
    return {name: loader.construct_mapping(node, deep=True)}


_TolerantLoader.add_multi_constructor("!", _intrinsic)


def _as_list(value):
    return value if isinstance(value, list) else [value]


def _statements(statement):
    """A policy statement, or both branches of an Fn::If around one (either may be deployed)."""
    if isinstance(statement, dict) and "Fn::If" in statement:
        _condition, when_true, when_false = statement["Fn::If"]
        return [branch for option in (when_true, when_false) for branch in _statements(option)]
    if isinstance(statement, dict) and statement.get("Ref") == "AWS::NoValue":
        return []
    return [statement]


def granted_actions(path):
    """(role name, the actions its inline policies allow) of a role template."""
    template = yaml.load(path.read_text(encoding="utf-8"), Loader=_TolerantLoader)
    roles = [resource for resource in template["Resources"].values() if resource["Type"] == "AWS::IAM::Role"]
    assert len(roles) == 1, f"{path.name}: expected one AWS::IAM::Role"
    assert roles[0]["Properties"]["RoleName"] == {"Ref": "RoleName"}, f"{path.name}: the role must be named by RoleName"
    role_name = template["Parameters"]["RoleName"]["Default"]
    actions = set()
    for policy in roles[0]["Properties"].get("Policies", []):
        for statement in _as_list(policy["PolicyDocument"]["Statement"]):
            for branch in _statements(statement):
                assert "NotAction" not in branch, f"{path.name}: NotAction grants everything else"
                if branch["Effect"] == "Allow":
                    actions.update(_as_list(branch["Action"]))
    return role_name, actions


TEMPLATE_OF = {granted_actions(path)[0]: path.name for path in TEMPLATES}
GRANTED = dict(granted_actions(path) for path in TEMPLATES)


# --- what the lab saw ---

def _role_name(principal):
    """The role of an IAM role ARN or of an assumed-role session ARN; None for users."""
    resource = principal.split(":", 5)[-1]
    kind, _slash, rest = resource.partition("/")
    return rest.split("/")[0] if kind in ("role", "assumed-role") else None


def used_actions(stats):
    """Role name -> the IAM actions its sessions called, from the lab's per-principal statistics."""
    used = {}
    for principal, calls in stats["principals"].items():
        role = _role_name(principal)
        if role not in GRANTED:
            continue
        for call in calls:
            service, operation = call.split(":", 1)
            assert service in IAM_PREFIX, f"no IAM prefix known for the lab's service {service!r} ({call})"
            used.setdefault(role, set()).add(f"{IAM_PREFIX[service]}:{operation}")
    return used


def _demo_runs(lab, tmp_path):
    """In the demo: setup creates the install document, the rollout installs every wave and extends
    its servers into the target account, a drill of wave 1 recovers them in the target account, a changed
    document is updated, and the target account's source servers are read through its role."""
    lab.reset()
    # simulated installs of minutes take a fraction of a real second
    lab.control("clock", {"time_scale": 600})
    _ansible(lab, "playbooks/setup_accounts.yml", "-e", "@playbooks/vars/lab_demo_setup.yml")
    _completed, summary = _deploy(lab, tmp_path)
    assert summary["totals"]["installed"] > 0
    assert summary["extension"]["totals"]["extended"] > 0

    changed = tmp_path / "document.yml"
    changed.write_text(DOCUMENT.read_text(encoding="utf-8").replace("Install the AWS Replication Agent", "Install the DRS agent"),
                       encoding="utf-8")
    update = run_playbook(lab, "ssm_document.yml", {
        "role_arn": f"arn:aws:iam::{SOURCE}:role/DRSOrchestrationSourceRole", "external_id": DEMO_EXTERNAL_ID,
        "region": "us-west-2", "document_name": DOCUMENT.stem, "content_file": str(changed)})
    assert update.task("Create or update the document")["changed"] is True, update.stdout + update.stderr

    # wave 1's servers replicate continuously for a while: they have points in time to launch from
    lab.control("clock", {"advance_seconds": 900})
    drill = run_playbook(lab, "playbooks/drill.yml", {"drs_drill_waves": [1], "drs_drill_summary_file": str(tmp_path / "drill.json")},
                         extra_args=("-e", "@playbooks/vars/lab_demo_deploy.yml"))
    assert json.loads((tmp_path / "drill.json").read_text())["totals"]["launched"] > 0, drill.stdout[-3000:]

    listed = run_playbook(lab, "source_server_info.yml", {
        "role_arn": f"arn:aws:iam::{TARGET}:role/DRSOrchestrationTargetRole", "external_id": DEMO_EXTERNAL_ID})
    assert listed.returncode == 0, listed.stdout + listed.stderr
    return lab.stats()


def _setup_runs(lab):
    """In fresh accounts: the bootstrap roles deploy the role stacks from the templates under test,
    then a second setup run through those roles initializes DRS in staging."""
    lab.reset()
    bootstrap = setup_vars()
    bootstrap["drs_account_setup_initialize_drs"] = False
    first = run_playbook(lab, SETUP_PLAYBOOK, bootstrap)
    assert first.returncode == 0, first.stdout + first.stderr

    through_roles = dict(bootstrap, drs_account_setup_deploy_roles=False, drs_account_setup_initialize_drs=True)
    through_roles["drs_account_setup_accounts"] = [
        dict(account, assume_role_arn=f"arn:aws:iam::{account['account_id']}:role/{ROLES[account['account_id']]}",
             external_id=SETUP_EXTERNAL_ID)
        for account in bootstrap["drs_account_setup_accounts"]
    ]
    second = run_playbook(lab, SETUP_PLAYBOOK, through_roles)
    assert second.returncode == 0, second.stdout + second.stderr
    initialized = [result for play in second.report["plays"] for task in play["tasks"] if "localhost" in task["hosts"]
                   for result in task["hosts"]["localhost"].get("results", []) if result.get("service_initialized")]
    assert initialized, "the setup run through the staging role initialized no DRS region"
    return lab.stats()


@pytest.fixture(scope="module")
def used(lab_factory, tmp_path_factory):
    """Role name -> the IAM actions it used, over the demo and the fresh-account runs."""
    used_by_role = {role: set() for role in GRANTED}
    demo = _demo_runs(lab_factory("demo"), tmp_path_factory.mktemp("demo"))
    fresh = RunningLab(SETUP_SCENARIO)
    try:
        setup = _setup_runs(fresh)
    finally:
        fresh.stop()
    for stats in (demo, setup):
        for role, actions in used_actions(stats).items():
            used_by_role[role] |= actions
    return used_by_role


def test_there_is_a_template_for_each_role():
    assert set(GRANTED) == set(ROLES.values())
    assert set(ALLOW_LIST) <= set(GRANTED)


def test_the_templates_grant_no_wildcard_actions():
    wildcards = {role: sorted(action for action in actions if "*" in action or "?" in action) for role, actions in GRANTED.items()}
    assert wildcards == {role: [] for role in GRANTED}


def test_every_role_was_used(used):
    # a role no run used would make the checks below vacuous
    assert all(used[role] - NOT_NEEDED for role in GRANTED), used


@pytest.mark.parametrize("role", sorted(ROLES.values()))
def test_the_template_grants_every_action_the_role_used(used, role):
    missing = sorted(used[role] - NOT_NEEDED - GRANTED[role])
    assert not missing, f"{TEMPLATE_OF[role]} does not grant {role} the actions it used: {missing}"


@pytest.mark.parametrize("role", sorted(ROLES.values()))
def test_the_template_grants_nothing_unused_beyond_the_allow_list(used, role):
    extra = sorted(GRANTED[role] - used[role] - ALLOW_LIST.get(role, set()))
    assert not extra, f"{TEMPLATE_OF[role]} grants {role} actions no run used and ALLOW_LIST does not explain: {extra}"


@pytest.mark.parametrize("role", sorted(ROLES.values()))
def test_the_allow_list_holds_only_granted_actions_the_runs_did_not_use(used, role):
    stale = sorted(ALLOW_LIST.get(role, set()) - (GRANTED[role] - used[role]))
    assert not stale, f"ALLOW_LIST entries of {role} that are used or not granted in {TEMPLATE_OF[role]}: {stale}"


# --- the event forwarding role ---

def forwarding_grants():
    """(the role's name prefix, {action: the resources its statements allow it on}) of the forwarding template,
    whose role is named RoleName, a hyphen and the region."""
    template = yaml.load(FORWARDING_TEMPLATE.read_text(encoding="utf-8"), Loader=_TolerantLoader)
    [role] = [resource for resource in template["Resources"].values() if resource["Type"] == "AWS::IAM::Role"]
    assert role["Properties"]["RoleName"] == {"Fn::Sub": "${RoleName}-${AWS::Region}"}
    grants = {}
    for policy in role["Properties"].get("Policies", []):
        for statement in _as_list(policy["PolicyDocument"]["Statement"]):
            assert "NotAction" not in statement and "NotResource" not in statement
            if statement["Effect"] == "Allow":
                for action in _as_list(statement["Action"]):
                    grants.setdefault(action, []).extend(_as_list(statement["Resource"]))
    return template["Parameters"]["RoleName"]["Default"], grants


@pytest.fixture(scope="module")
def forwarding_used():
    """Region -> the IAM actions the forwarding role of that region was used for, in every source account, after
    setup_events.yml and instances launched and tagged in each source region."""
    prefix, _grants = forwarding_grants()
    lab = RunningLab(event_setup.SCENARIO)
    try:
        lab.control("clock", {"time_scale": 0.001})
        run = run_playbook(lab, event_setup.PLAYBOOK, event_setup.event_vars())
        assert run.returncode == 0, run.stdout + run.stderr
        for account, regions in event_setup.SOURCE_REGIONS.items():
            name = next(a["name"] for a in yaml.safe_load(event_setup.SCENARIO.read_text())["accounts"] if a["id"] == account)
            for region in regions:
                launched = lab.control("instances", {"account": name, "region": region, "count": 1})
                lab.control("tags", {"instance_ids": launched["instance_ids"], "tag": {"dr:wave": "1"}})
        lab.control("clock", {"advance_seconds": 10})
        stats = lab.stats()
    finally:
        lab.stop()
    used = {}
    for principal, calls in stats["principals"].items():
        role = _role_name(principal)
        if role and role.startswith(f"{prefix}-"):
            account = principal.split(":")[4]
            used[(account, role.removeprefix(f"{prefix}-"))] = {f"{IAM_PREFIX[c.split(':')[0]]}:{c.split(':')[1]}" for c in calls}
    return used


def test_every_forwarding_role_was_used_for_exactly_what_its_template_grants(forwarding_used):
    _prefix, grants = forwarding_grants()
    assert set(forwarding_used) == {(account, region) for account, regions in event_setup.SOURCE_REGIONS.items()
                                    for region in regions}
    for actions in forwarding_used.values():
        assert actions == set(grants) == {"events:PutEvents"}


def test_the_forwarding_role_may_put_events_only_on_the_orchestration_bus():
    _prefix, grants = forwarding_grants()
    assert grants == {"events:PutEvents": [{"Ref": "EventBusArn"}]}


def test_the_role_name_is_read_from_session_and_role_arns():
    assert _role_name("arn:aws:sts::222222222222:assumed-role/DRSOrchestrationSourceRole/session") == "DRSOrchestrationSourceRole"
    assert _role_name("arn:aws:iam::333333333333:role/DRSOrchestrationStagingRole") == "DRSOrchestrationStagingRole"
    assert _role_name("arn:aws:iam::111111111111:user/operator") is None
