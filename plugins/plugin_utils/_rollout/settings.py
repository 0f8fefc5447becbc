# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The rollout's settings: their argument spec, and every check of them before any AWS call.

The checks are the modules' own rules (module_utils.inputs, the install, extension and tag checks); a message
names the setting as the caller knows it: the action's option, or the role variable (``variable_prefix``),
with the entry (``drs_agent_deploy_accounts[1] (222222222222) regions[0]``) and the one rule that failed.
"""

import difflib

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import extension
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import inputs
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import install
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.history import EVENT_PATTERN
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.tags import DEFAULT_PRIORITY_TAG_KEY
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.tags import DEFAULT_TAG_FILTERS
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.tags import DEFAULT_WAVE_TAG_KEY
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.tags import TagInputError
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.tags import check_tag_filters
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.tags import check_tag_key
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.tags import parse_wave_filter

ACCOUNT_OPTIONS = dict(
    account_id=dict(type="str", required=True),
    name=dict(type="str"),
    role_arn=dict(type="str"),
    external_id=dict(type="str", no_log=True),
    regions=dict(type="list", elements="str", required=True),
    staging_account_id=dict(type="str"),
    drs_region=dict(type="str"),
    target_account_id=dict(type="str"),
)
ROLE_OPTIONS = dict(
    account_id=dict(type="str", required=True),
    role_arn=dict(type="str"),
    external_id=dict(type="str", no_log=True),
)
ARGUMENT_SPEC = dict(
    accounts=dict(type="list", elements="dict", options=ACCOUNT_OPTIONS, default=[]),
    staging_accounts=dict(type="list", elements="dict", options=ROLE_OPTIONS, default=[]),
    target_accounts=dict(type="list", elements="dict", options=ROLE_OPTIONS, default=[]),
    external_id=dict(type="str", default="", no_log=True),
    sts_region=dict(type="str", default="us-east-1"),
    session_name=dict(type="str", default="drs-agent-deploy"),
    profile=dict(type="str"),
    instance_ids=dict(type="list", elements="str", default=[]),
    limit_to_instance_ids=dict(type="bool", default=False),
    deployment_pattern=dict(type="str", choices=[EVENT_PATTERN]),
    waves=dict(type="list", elements="int", default=[]),
    tag_filters=dict(type="dict", default=dict(DEFAULT_TAG_FILTERS)),
    wave_tag_key=dict(type="str", default=DEFAULT_WAVE_TAG_KEY, no_log=False),
    priority_tag_key=dict(type="str", default=DEFAULT_PRIORITY_TAG_KEY, no_log=False),
    progress_interval=dict(type="int", default=30),
    summary_file=dict(type="str", default=""),
    plan_dir=dict(type="str", default=""),
    history_table=dict(type="str", default="drs-deployment-history"),
    history_region=dict(type="str", default="us-east-1"),
    history_spool_dir=dict(type="str", default=""),
    metrics_namespace=dict(type="str", default="DRSOrchestration/AgentDeployment"),
    deployment_id=dict(type="str", default=""),
    auto_extend_source_servers=dict(type="bool", default=False),
    extension_tags=dict(type="dict", default={}),
    extension_capacity_limit=dict(type="int", default=300),
    extension_capacity_warning_thresholds=dict(type="list", elements="int", default=[80, 90]),
    extension_wait_timeout=dict(type="int", default=300),
    verify_replication=dict(type="bool", default=False),
    verify_replication_timeout=dict(type="int", default=3600),
    rpo_seconds=dict(type="int", default=300),
    variable_prefix=dict(type="str", default=""),
    **install.SETTINGS_SPEC,
)
# The estate's settings (doc fragment ``estate``), which the drill and the reconcile take as the rollout does.
ESTATE_OPTIONS = ("accounts", "staging_accounts", "target_accounts", "external_id", "sts_region", "profile",
                  "tag_filters", "wave_tag_key", "priority_tag_key")
ESTATE_SPEC = {option: ARGUMENT_SPEC[option] for option in ESTATE_OPTIONS}
# Settings the action takes that are not the role's variables, and the role's own output variable.
NOT_ROLE_VARIABLES = ("variable_prefix", "profile")
ROLE_OUTPUTS = ("rollout",)
MAX_PROGRESS_INTERVAL = 60


class Names:
    """How settings are called in messages: the action's option names, or the role's variables."""

    def __init__(self, prefix=""):
        self.prefix = prefix

    def __call__(self, option):
        return f"{self.prefix}{option}"


def unknown_variables(prefix, variables, spec=None, outputs=ROLE_OUTPUTS):
    """Messages for the variables that start with the role's prefix but are none of its settings (``spec``, the
    rollout's by default): a misspelled name is otherwise silently ignored and its default used."""
    known = {f"{prefix}{option}" for option in spec or ARGUMENT_SPEC if option not in NOT_ROLE_VARIABLES}
    known.update(f"{prefix}{output}" for output in outputs)
    messages = []
    for variable in sorted(variables):
        if variable.startswith(prefix) and variable not in known:
            close = difflib.get_close_matches(variable, sorted(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            messages.append(f"{variable} is not a variable of this role{hint}; it would be ignored")
    return messages


def setting_errors(settings, name):
    """Every problem with the settings, each naming the setting, the entry and the rule; empty when usable."""
    errors = []
    errors.extend(account_errors(settings, name, targets_needed=f"with {name('auto_extend_source_servers')}"
                                 if settings["auto_extend_source_servers"] else None))
    errors.extend(role_entry_errors(settings["staging_accounts"], name("staging_accounts"), role_required=True))
    errors.extend(role_entry_errors(settings["target_accounts"], name("target_accounts"), role_required=False))
    if settings["external_id"]:
        errors.append(inputs.external_id_error(name("external_id"), settings["external_id"]))
    errors.append(inputs.region_error(name("sts_region"), settings["sts_region"]))
    errors.append(inputs.session_name_error(name("session_name"), settings["session_name"]))
    for index, instance_id in enumerate(settings["instance_ids"]):
        errors.append(inputs.instance_id_error(f"{name('instance_ids')}[{index}]", instance_id))
    try:
        check_tag_filters(settings["tag_filters"], name("tag_filters"))
        check_tag_key(name("wave_tag_key"), settings["wave_tag_key"])
        check_tag_key(name("priority_tag_key"), settings["priority_tag_key"])
        parse_wave_filter(settings["waves"], name("waves"))
    except TagInputError as error:
        errors.append(str(error))
    errors.extend(install.setting_errors(settings, name))
    errors.append(inputs.seconds_error(name("progress_interval"), settings["progress_interval"],
                                       maximum=MAX_PROGRESS_INTERVAL))
    if settings["history_table"]:
        errors.append(inputs.table_name_error(name("history_table"), settings["history_table"]))
        errors.append(inputs.region_error(name("history_region"), settings["history_region"]))
    if settings["metrics_namespace"]:
        errors.append(inputs.metrics_namespace_error(name("metrics_namespace"), settings["metrics_namespace"]))
    if settings["deployment_id"]:
        errors.append(inputs.deployment_id_error(name("deployment_id"), settings["deployment_id"]))
    errors.extend(extension.setting_errors(extension_settings(settings), lambda option: name(f"extension_{option}")))
    errors.append(inputs.seconds_error(name("verify_replication_timeout"), settings["verify_replication_timeout"]))
    errors.append(inputs.seconds_error(name("rpo_seconds"), settings["rpo_seconds"], minimum=0))
    return [error for error in errors if error]


def extension_settings(settings):
    return {"capacity_limit": settings["extension_capacity_limit"],
            "capacity_warning_thresholds": settings["extension_capacity_warning_thresholds"],
            "tags": settings["extension_tags"], "wait_timeout": settings["extension_wait_timeout"]}


def account_errors(settings, name, targets_needed=None):
    """The problems of ``settings["accounts"]`` (with ``staging_accounts`` and ``target_accounts``): ids, regions,
    roles, and the staging account of each listed with its role. ``targets_needed`` (None: not needed) says why
    each account's target account must be listed in ``target_accounts`` too, such as "with
    drs_agent_deploy_auto_extend_source_servers"."""
    accounts = settings["accounts"]
    variable = name("accounts")
    if not accounts:
        return [f"{variable} is empty: list the source accounts, each with account_id and regions"]
    staging_listed = {entry["account_id"] for entry in settings["staging_accounts"]}
    target_listed = {entry["account_id"] for entry in settings["target_accounts"]}
    errors, seen = [], set()
    for index, account in enumerate(accounts):
        account_id = account["account_id"]
        entry = f"{variable}[{index}] ({account_id})"
        problem = inputs.account_id_error(f"{variable}[{index}].account_id", account_id)
        if problem:
            errors.append(problem)
            continue
        if account_id in seen:
            errors.append(f"{entry} is listed twice: give each source account once, with all its regions")
        seen.add(account_id)
        if not account["regions"]:
            errors.append(f"{entry} regions is empty: give the regions to deploy in, such as [us-east-1]")
        for position, region in enumerate(account["regions"]):
            errors.append(inputs.region_error(f"{entry} regions[{position}]", region))
        if len(set(account["regions"])) < len(account["regions"]):
            errors.append(f"{entry} regions lists a region twice")
        errors.extend(_role_errors(entry, account, role_required=False))
        if account.get("drs_region"):
            errors.append(inputs.region_error(f"{entry} drs_region", account["drs_region"]))
        staging = account.get("staging_account_id")
        if staging:
            problem = inputs.account_id_error(f"{entry} staging_account_id", staging)
            if problem:
                errors.append(problem)
            elif staging != account_id and staging not in staging_listed:
                errors.append(f"{entry} staging_account_id {staging} is another account: list it in "
                              f"{name('staging_accounts')} with the role_arn of its staging role")
        target = account.get("target_account_id")
        if target:
            problem = inputs.account_id_error(f"{entry} target_account_id", target)
            if problem:
                errors.append(problem)
            elif targets_needed and target != (staging or account_id) and target not in target_listed:
                errors.append(f"{entry} target_account_id {target}: {targets_needed} the target account must be "
                              f"listed in {name('target_accounts')} (account_id, and the role_arn of its target role)")
    return errors


def role_entry_errors(entries, variable, role_required):
    errors = []
    for index, entry in enumerate(entries):
        account_id = entry["account_id"]
        where = f"{variable}[{index}] ({account_id})"
        problem = inputs.account_id_error(f"{variable}[{index}].account_id", account_id)
        if problem:
            errors.append(problem)
            continue
        errors.extend(_role_errors(where, entry, role_required))
    return errors


def _role_errors(where, entry, role_required):
    """The role to assume in an entry's account: a role ARN in that account, and the external id's form."""
    errors = []
    if entry.get("role_arn"):
        errors.append(inputs.role_arn_error(f"{where} role_arn", entry["role_arn"], entry["account_id"]))
    elif role_required:
        errors.append(f"{where} needs role_arn, the role to assume in that account")
    if entry.get("external_id"):
        errors.append(inputs.external_id_error(f"{where} external_id", entry["external_id"]))
    return errors
