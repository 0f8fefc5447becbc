# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The AWX / Automation Platform objects of the collection, as data: the one definition that the
``drs_controller`` role sends with the ``awx.awx`` modules and that the AWX rehearsal runs.

``definitions(settings)`` returns ``{kind: [entry, ...]}`` for the kinds of ``KINDS``, each entry exactly the
parameters of the ``awx.awx`` module of its kind (``MODULES``), and for the kinds of ``EDA_KINDS``, each entry the
parameters of the ``ansible.eda`` module of its kind (``EDA_MODULES``); only the credentials' entries
(``SECRET_KINDS``) hold secrets.

The workflow "DRS rollout" has, per wave ``n`` in order, a deploy node (the deploy template on the inventory of wave
``n``'s instances only, ``limit: wave_<n>``, sliced by the template's ``job_slice_count``) whose success leads to a
gate node (``playbooks/wave_gate.yml`` judging wave ``n`` over all its slices), whose success leads to the next
wave; after the last gate passes, the report. The deploy nodes raise the slices' own failure-rate limit to 1 so that
no slice stops on its share of the wave: the gate decides on the whole wave. A failed node ends the workflow as
failed.

The deploy template's survey is the deploy dialog (accounts, regions, deployment pattern, waves, check mode, the
failure-rate limit, extension). Its variables are never those the workflow's nodes set, whose values the controller
would check against the questions. ``playbooks/deploy_agents.yml`` maps the answers onto the deploy role's
variables; ``deploy_scope`` (filter ``drs_deploy_scope``) turns the accounts, regions and pattern into
``drs_agent_deploy_accounts``, from the accounts the deploy template holds as ``drs_deploy_accounts``.

The job template "DRS protect instances" runs ``playbooks/protect_instances.yml`` for one window of instance
events: the rulebook activation (Event-Driven Ansible) launches it with the window as the extra variable
``ansible_eda``. It holds the deploy's variables as they are, ``drs_agent_deploy_accounts`` included: no survey
scopes them. The Event-Driven Ansible objects (decision environment, project, the queue reader's credential type,
the credentials, the activation running ``extensions/eda/rulebooks/protect_new_instances_controller.yml``) are
built only when ``eda_enabled`` is set; otherwise their kinds are empty.

A bad setting raises ValueError naming the role variable, the entry and the rule, before any object is built.
"""

import copy
import json

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import inputs
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.history import PATTERNS
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.tags import DEFAULT_TAG_FILTERS
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils._rollout.plan import deployment_pattern
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils.instance_events import SECONDS_ARGUMENTS

KINDS = ("execution_environments", "projects", "credential_types", "credentials", "inventories",
         "inventory_sources", "job_templates", "workflow_job_templates")
MODULES = {
    "execution_environments": "awx.awx.execution_environment",
    "projects": "awx.awx.project",
    "credential_types": "awx.awx.credential_type",
    "credentials": "awx.awx.credential",
    "inventories": "awx.awx.inventory",
    "inventory_sources": "awx.awx.inventory_source",
    "job_templates": "awx.awx.job_template",
    "workflow_job_templates": "awx.awx.workflow_job_template",
}
EDA_KINDS = ("eda_decision_environments", "eda_projects", "eda_credential_types", "eda_credentials",
             "eda_rulebook_activations")
EDA_MODULES = {
    "eda_decision_environments": "ansible.eda.decision_environment",
    "eda_projects": "ansible.eda.project",
    "eda_credential_types": "ansible.eda.credential_type",
    "eda_credentials": "ansible.eda.credential",
    "eda_rulebook_activations": "ansible.eda.rulebook_activation",
}
SECRET_KINDS = ("credentials", "eda_credentials")

# the deploy role's defaults (roles/drs_agent_deploy/defaults/main.yml)
DEFAULT_HISTORY_TABLE = "drs-deployment-history"
DEFAULT_HISTORY_REGION = "us-east-1"
DEPLOY_PLAYBOOK = "playbooks/deploy_agents.yml"
GATE_PLAYBOOK = "playbooks/wave_gate.yml"
PROTECT_PLAYBOOK = "playbooks/protect_instances.yml"
# The inventory of the job templates whose plays run on the controller only: it has no host, so that these jobs
# (a wave's gate between two waves, the report) do not load the whole fleet.
DEFAULT_CONTROLLER_INVENTORY = "DRS controller"
# AWX deals a sliced job's slices from its inventory's hosts before the limit applies: each wave's deploy node runs on
# an inventory of that wave's instances only, whose drs_fleet source reads its wave from this environment key.
WAVES_ENVIRONMENT_KEY = "DRS_FLEET_WAVES"
PLAYBOOKS = {
    "setup": "playbooks/setup_accounts.yml",
    "deploy": DEPLOY_PLAYBOOK,
    "extension": "playbooks/extend_source_servers.yml",
    "report": "playbooks/report.yml",
    "gate": GATE_PLAYBOOK,
    "protect": PROTECT_PLAYBOOK,
}
NAME_KEYS = ("execution_environment", "project", "credential_type", "credential", "inventory", "inventory_source",
             "workflow")
# AWS keys as a credential's fields, injected as AWS's own environment keys (boto3 reads them)
AWS_KEY_FIELDS = (
    {"id": "access_key_id", "label": "Access key id", "type": "string"},
    {"id": "secret_access_key", "label": "Secret access key", "type": "string", "secret": True},
    {"id": "session_token", "label": "Session token", "type": "string", "secret": True},
)
AWS_KEY_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "{{ access_key_id }}",
    "AWS_SECRET_ACCESS_KEY": "{{ secret_access_key }}",
    "AWS_SESSION_TOKEN": "{{ session_token }}",
}
# What the credential type injects: the orchestration account's keys (boto3, the inventory plugin and the deploy
# read them), the external id for the inventory plugin and for the deploy.
CREDENTIAL_FIELDS = AWS_KEY_FIELDS + (
    {"id": "external_id", "label": "External id of the accounts' roles", "type": "string", "secret": True},
)
CREDENTIAL_INJECTORS = {
    "env": dict(AWS_KEY_ENVIRONMENT, DRS_EXTERNAL_ID="{{ external_id }}"),
    # the roles of the setup, deploy and extension templates each read the external id as their own variable
    "extra_vars": {"drs_agent_deploy_external_id": "{{ external_id }}",
                   "drs_account_setup_external_id": "{{ external_id }}",
                   "drs_extension_external_id": "{{ external_id }}"},
}

# Event-Driven Ansible. The rulebook a rulebook activation runs is named by its file in the project's
# extensions/eda/rulebooks/.
CONTROLLER_RULEBOOK = "protect_new_instances_controller.yml"
EDA_NAME_KEYS = ("decision_environment", "project", "credential_type", "queue_credential", "controller_credential",
                 "activation")
# Event-Driven Ansible's own credential type for reaching the controller: the activation's run_job_template action
# launches the job template with it.
EDA_CONTROLLER_CREDENTIAL_TYPE = "Red Hat Ansible Automation Platform"
EDA_CONTROLLER_CREDENTIAL_FIELDS = ("host", "username", "password", "oauth_token", "verify_ssl")
# The event source reads the queue with boto3, which takes the keys from AWS's own environment keys.
QUEUE_CREDENTIAL_FIELDS = AWS_KEY_FIELDS
QUEUE_CREDENTIAL_INJECTORS = {"env": dict(AWS_KEY_ENVIRONMENT)}

# The deploy survey's variables, mapped onto the deploy role's by playbooks/deploy_agents.yml.
SURVEY_ACCOUNTS = "drs_deploy_accounts"  # not a question: the deploy template's accounts, which the survey scopes
SURVEY_ACCOUNT_IDS = "drs_deploy_account_ids"
SURVEY_REGIONS = "drs_deploy_regions"
SURVEY_PATTERN = "drs_deploy_pattern"
SURVEY_WAVES = "drs_deploy_waves"
SURVEY_CHECK = "drs_deploy_check"
PREFIX = "drs_controller_"
# what extra_vars may not fix, and why
NOT_FIXED = dict(
    {key: "it comes from the credential's external_id" for key in CREDENTIAL_INJECTORS["extra_vars"]},
    drs_agent_deploy_waves="the workflow's nodes and the survey choose the waves",
    **{key: "the deploy survey sets it"
       for key in (SURVEY_ACCOUNTS, SURVEY_ACCOUNT_IDS, SURVEY_REGIONS, SURVEY_PATTERN, SURVEY_WAVES, SURVEY_CHECK)})


def _check(s):
    """The settings' rules, each error naming the role variable, the entry and the rule."""
    names = s["names"]
    missing = [key for key in NAME_KEYS if not isinstance(names, dict) or not names.get(key)]
    missing += [f"job_templates.{kind}" for kind in PLAYBOOKS
                if not isinstance(names, dict) or not (names.get("job_templates") or {}).get(kind)]
    if missing:
        raise ValueError(f"{PREFIX}names must name every object: {', '.join(missing)} missing")
    waves = s["waves"]
    if not isinstance(waves, list) or not waves:
        raise ValueError(f"{PREFIX}waves must list the waves of the workflow, such as [1, 2, 3]")
    for index, wave in enumerate(waves):
        if isinstance(wave, bool) or not isinstance(wave, int) or wave < 0:
            raise ValueError(f"{PREFIX}waves[{index}] {wave!r} is not a wave number (a whole number from 0)")
    if len(set(waves)) != len(waves):
        raise ValueError(f"{PREFIX}waves {waves} lists a wave twice")
    count = s["job_slice_count"]
    if isinstance(count, bool) or not isinstance(count, int) or count < 1:
        raise ValueError(f"{PREFIX}job_slice_count {count!r} must be a whole number from 1")
    error = inputs.rate_error(f"{PREFIX}max_failure_rate", s["max_failure_rate"])
    if error:
        raise ValueError(error)
    extra_vars = s.get("extra_vars") or {}
    if not isinstance(extra_vars, dict):
        raise ValueError(f"{PREFIX}extra_vars must be a mapping of variable names to values")
    for key in sorted(set(extra_vars) & set(NOT_FIXED)):
        raise ValueError(f"{PREFIX}extra_vars.{key} cannot be fixed: {NOT_FIXED[key]}")
    accounts = extra_vars.get("drs_agent_deploy_accounts", [])
    if not isinstance(accounts, list):
        raise ValueError(f"{PREFIX}extra_vars.drs_agent_deploy_accounts must be a list of accounts")
    for index, account in enumerate(accounts):
        name = f"{PREFIX}extra_vars.drs_agent_deploy_accounts[{index}]"
        if not isinstance(account, dict):
            raise ValueError(f"{name} must be a mapping with account_id and regions")
        error = inputs.account_id_error(f"{name}.account_id", account.get("account_id"))
        regions = account.get("regions")
        if not error and (not isinstance(regions, list) or not regions):
            error = f"{name}.regions must list the account's regions"
        error = error or inputs.first(*(inputs.region_error(f"{name}.regions[{position}]", region)
                                        for position, region in enumerate(regions)))
        if error:
            raise ValueError(error)
    if s.get("eda_enabled"):
        _check_eda(s)


def _check_eda(s):
    """The Event-Driven Ansible settings' rules, checked only when its objects are built."""
    names = s.get("eda_names")
    missing = [key for key in EDA_NAME_KEYS if not isinstance(names, dict) or not names.get(key)]
    if missing:
        raise ValueError(f"{PREFIX}eda_names must name every Event-Driven Ansible object: {', '.join(missing)} missing")
    for key, what in (("eda_decision_environment_image", "the decision environment's image"),
                      ("eda_queue_url", "the URL of the SQS queue (playbooks/setup_events.yml's output QueueUrl)")):
        if not isinstance(s.get(key), str) or not s[key].strip():
            raise ValueError(f"{PREFIX}{key} is required when {PREFIX}eda_enabled is true: {what}")
    error = inputs.region_error(f"{PREFIX}eda_queue_region", s.get("eda_queue_region"))
    if error:
        raise ValueError(error)
    for argument in ("window_seconds", "throttle_seconds"):
        key, lowest, highest = f"eda_{argument}", SECONDS_ARGUMENTS[argument][1], SECONDS_ARGUMENTS[argument][2]
        value = s.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not lowest <= value <= highest:
            raise ValueError(f"{PREFIX}{key} {value!r} must be a whole number of seconds from {lowest} to {highest}")
    queue_fields = [field["id"] for field in QUEUE_CREDENTIAL_FIELDS]
    _check_credential_inputs("eda_queue_credential_inputs", s.get("eda_queue_credential_inputs"), queue_fields,
                             required=("access_key_id", "secret_access_key"))
    controller_inputs = s.get("eda_controller_credential_inputs")
    _check_credential_inputs("eda_controller_credential_inputs", controller_inputs, EDA_CONTROLLER_CREDENTIAL_FIELDS,
                             required=("host",))
    if not controller_inputs.get("oauth_token") and not (controller_inputs.get("username")
                                                         and controller_inputs.get("password")):
        raise ValueError(f"{PREFIX}eda_controller_credential_inputs needs oauth_token, or username and password: "
                         "the activation launches the job template with them")


def _check_credential_inputs(variable, given, fields, required):
    """A credential's inputs: a mapping of the type's fields only, the required ones given. Names the keys, never
    the values."""
    if not isinstance(given, dict):
        raise ValueError(f"{PREFIX}{variable} must be a mapping of the credential's fields ({', '.join(fields)})")
    unknown = sorted(set(given) - set(fields))
    if unknown:
        raise ValueError(f"{PREFIX}{variable}.{unknown[0]} is not a field of the credential ({', '.join(fields)})")
    missing = [key for key in required if given.get(key) in (None, "")]
    if missing:
        raise ValueError(f"{PREFIX}{variable} needs {', '.join(missing)}")


def definitions(settings):
    """Every object, from the role's settings (the ``drs_controller_*`` variables without their prefix)."""
    s = settings
    _check(s)
    organization = s["organization"]
    names = s["names"]
    shared_vars = dict(s.get("extra_vars") or {})
    result = {
        "execution_environments": [{
            "name": names["execution_environment"], "image": s["execution_environment_image"],
            "organization": organization, "pull": "missing",
            "description": "drs_orchestration.agent_deployer with amazon.aws, boto3 and ansible-runner",
        }],
        "projects": [{
            "name": names["project"], "organization": organization, "scm_type": "git", "scm_url": s["project_scm_url"],
            "scm_branch": s["project_scm_branch"], "scm_update_on_launch": True,
            "default_environment": names["execution_environment"],
        }],
        "credential_types": [{
            "name": names["credential_type"], "kind": "cloud",
            "description": "The orchestration account's keys and the external id of the accounts' roles",
            "inputs": {"fields": [dict(field) for field in CREDENTIAL_FIELDS],
                       "required": ["access_key_id", "secret_access_key"]},
            "injectors": copy.deepcopy(CREDENTIAL_INJECTORS),
        }],
        "credentials": [{
            "name": names["credential"], "organization": organization, "credential_type": names["credential_type"],
            "inputs": {key: value for key, value in (s.get("credential_inputs") or {}).items() if value not in (None, "")},
        }],
        "inventories": [{
            "name": names["inventory"], "organization": organization,
            "description": "The DR-tagged instances of every account (drs_orchestration.agent_deployer.drs_fleet)",
        }] + [{
            "name": wave_inventory(names, wave), "organization": organization,
            "description": f"The DR-tagged instances of wave {wave} (the workflow's deploy node of that wave)",
        } for wave in s["waves"]] + [{
            "name": controller_inventory(names), "organization": organization,
            "description": "No host: the jobs that run on the controller only (setup, extension, gates, report)",
        }],
        "inventory_sources": [_inventory_source(s, names["inventory_source"], names["inventory"])] + [
            _inventory_source(s, wave_inventory_source(names, wave), wave_inventory(names, wave), wave)
            for wave in s["waves"]],
        "job_templates": [_job_template(s, kind, shared_vars) for kind in PLAYBOOKS],
        "workflow_job_templates": [_workflow(s)],
    }
    result.update(_eda(s, shared_vars) if s.get("eda_enabled") else {kind: [] for kind in EDA_KINDS})
    return result


def _given(credential_inputs):
    return {key: value for key, value in (credential_inputs or {}).items() if value not in (None, "")}


def activation_variables(s, shared_vars):
    """The variables of the controller rulebook (protect_new_instances_controller.yml)."""
    return {
        "drs_events_queue_url": s["eda_queue_url"].strip(),
        "drs_events_region": s["eda_queue_region"],
        "drs_events_window_seconds": s["eda_window_seconds"],
        "drs_events_throttle_seconds": s["eda_throttle_seconds"],
        # the deploy's own, so that the events handed on are of instances the deploy installs on
        "drs_events_tag_filters": copy.deepcopy(shared_vars.get("drs_agent_deploy_tag_filters", DEFAULT_TAG_FILTERS)),
        "drs_events_job_template": s["names"]["job_templates"]["protect"],
        "drs_events_organization": s["organization"],
    }


def _eda(s, shared_vars):
    organization = s["organization"]
    names = s["eda_names"]
    return {
        "eda_decision_environments": [{
            "name": names["decision_environment"], "organization_name": organization,
            "image_url": s["eda_decision_environment_image"],
            "description": "ansible-rulebook with drs_orchestration.agent_deployer (its drs_instance_events source) "
                           "and boto3",
        }],
        "eda_projects": [{
            "name": names["project"], "organization_name": organization, "url": s["project_scm_url"],
            "scm_branch": s["project_scm_branch"],
            "description": "The rulebooks of drs_orchestration.agent_deployer (extensions/eda/rulebooks)",
        }],
        "eda_credential_types": [{
            "name": names["credential_type"],
            "description": "Keys that may receive and delete the messages of the instance events queue",
            "inputs": {"fields": [dict(field) for field in QUEUE_CREDENTIAL_FIELDS],
                       "required": ["access_key_id", "secret_access_key"]},
            "injectors": copy.deepcopy(QUEUE_CREDENTIAL_INJECTORS),
        }],
        "eda_credentials": [
            {"name": names["queue_credential"], "organization_name": organization,
             "credential_type_name": names["credential_type"], "inputs": _given(s.get("eda_queue_credential_inputs")),
             "description": "Reads the instance events queue (setup_events.yml)"},
            {"name": names["controller_credential"], "organization_name": organization,
             "credential_type_name": EDA_CONTROLLER_CREDENTIAL_TYPE,
             "inputs": _given(s.get("eda_controller_credential_inputs")),
             "description": "Launches the job template that protects a window's instances"},
        ],
        "eda_rulebook_activations": [{
            "name": names["activation"], "organization_name": organization,
            "description": "Deploys the DRS agent to instances as they are launched or get the DR tags",
            "project_name": names["project"], "rulebook_name": CONTROLLER_RULEBOOK,
            "decision_environment_name": names["decision_environment"],
            "eda_credentials": [names["queue_credential"], names["controller_credential"]],
            # the module takes the variables as text; JSON, in a stable order, is YAML the server reads and
            # compares the same on every run
            "extra_vars": json.dumps(activation_variables(s, shared_vars), sort_keys=True),
            # a listener that ends on an error (a queue briefly out of reach) comes back; one that is stopped stays
            "restart_policy": "on-failure",
            # a change of the rulebook in the project reaches the running listener
            "restart_on_project_update": True,
            # the source logs each closed window (account, region, instances) at info
            "log_level": "info",
        }],
    }


def controller_inventory(names):
    return names.get("controller_inventory") or DEFAULT_CONTROLLER_INVENTORY


def wave_inventory(names, wave):
    return f"{names['inventory']} wave {wave}"


def wave_inventory_source(names, wave):
    return f"{names['inventory_source']} wave {wave}"


def _inventory_source(s, name, inventory, wave=None):
    """The drs_fleet source of ``inventory``: the project's inventory file, limited to ``wave`` when given (AWX
    hands an SCM source's variables to the update as environment keys, and drs_fleet reads its waves from
    DRS_FLEET_WAVES)."""
    names = s["names"]
    source = {
        "name": name, "inventory": inventory, "source": "scm",
        "source_project": names["project"], "source_path": s["inventory_source_path"],
        "credential": names["credential"], "overwrite": True, "update_on_launch": True,
        "execution_environment": names["execution_environment"],
    }
    if wave is not None:
        source["source_vars"] = {WAVES_ENVIRONMENT_KEY: str(wave)}
    return source


def _job_template(s, kind, shared_vars):
    names = s["names"]
    template = {
        "name": names["job_templates"][kind], "organization": s["organization"], "job_type": "run",
        "inventory": names["inventory"] if kind == "deploy" else controller_inventory(names),
        "project": names["project"], "playbook": PLAYBOOKS[kind],
        "credentials": [names["credential"]], "execution_environment": names["execution_environment"],
        "extra_vars": dict(shared_vars), "ask_variables_on_launch": True,
    }
    if kind == "report":
        # the report reads the table the deploy writes, and a job's environment names no region of its own
        template["extra_vars"].update(
            drs_report_output_dir=s["report_output_dir"],
            drs_report_table_name=shared_vars.get("drs_agent_deploy_history_table", DEFAULT_HISTORY_TABLE),
            drs_report_region=shared_vars.get("drs_agent_deploy_history_region", DEFAULT_HISTORY_REGION))
    if kind == "deploy" and "drs_agent_deploy_accounts" in shared_vars:
        # under another name, so that the survey's answers can scope them (an extra variable cannot be overridden)
        template["extra_vars"][SURVEY_ACCOUNTS] = template["extra_vars"].pop("drs_agent_deploy_accounts")
    if kind == "protect":
        # one job per window: windows of different account-regions run side by side, as the rulebook hands them on
        template["allow_simultaneous"] = True
    if kind == "deploy":
        template.update(
            job_slice_count=s["job_slice_count"], allow_simultaneous=False, ask_limit_on_launch=True,
            ask_inventory_on_launch=True,
            ask_job_type_on_launch=True, ask_diff_mode_on_launch=True, survey_enabled=True,
            survey_spec=survey_spec(s))
    return template


def survey_spec(s):
    """The deploy dialog: accounts, regions, deployment pattern, waves, check mode, the failure-rate limit and
    extension. Every question but the last three may be left unanswered (a workflow node answers none): no account
    or region chosen means all, no wave chosen means every wave, the pattern is checked only when chosen. The
    account and region questions offer the accounts of ``extra_vars.drs_agent_deploy_accounts``; without them the
    survey leaves them out (the launch's limit, groups ``account_<id>`` and ``region_<name>``, still scopes)."""
    accounts = (s.get("extra_vars") or {}).get("drs_agent_deploy_accounts") or []
    questions = []
    if accounts:
        questions += [
            {"question_name": "Source accounts", "variable": SURVEY_ACCOUNT_IDS, "type": "multiselect",
             "question_description": "The accounts to deploy in (none chosen: every account).",
             "choices": [account["account_id"] for account in accounts], "required": False},
            {"question_name": "Regions", "variable": SURVEY_REGIONS, "type": "multiselect",
             "question_description": "The regions to deploy in (none chosen: every region of the chosen accounts).",
             "choices": sorted({region for account in accounts for region in account["regions"]}),
             "required": False},
        ]
    questions += [
        {"question_name": "Deployment pattern", "variable": SURVEY_PATTERN, "type": "multiplechoice",
         "question_description": "The pattern the chosen accounts must make (their staging accounts decide it); "
                                 "another one stops the run before any AWS call.",
         "choices": list(PATTERNS), "required": False},
        {"question_name": "Waves", "question_description": "The waves to deploy, in order (none chosen: all).",
         "variable": SURVEY_WAVES, "type": "multiselect", "choices": [str(wave) for wave in s["waves"]],
         "required": False},
        {"question_name": "Check mode", "variable": SURVEY_CHECK, "type": "multiplechoice",
         "question_description": "yes: show what each wave would install, adopt and skip, and send nothing.",
         "choices": ["no", "yes"], "default": "no", "required": True},
        {"question_name": "Highest failure rate of a wave",
         "question_description": "Failed over attempted instances above which the rollout stops (0 to 1).",
         "variable": "drs_agent_deploy_max_failure_rate", "type": "float", "min": 0, "max": 1,
         "default": s["max_failure_rate"], "required": True},
        {"question_name": "Extend into the target account",
         "question_description": "After each wave, extend the registered servers into each account's "
                                 "target account.",
         "variable": "auto_extend_source_servers", "type": "multiplechoice", "choices": ["false", "true"],
         "default": "false", "required": True},
    ]
    return {
        "name": "Deploy DRS agents",
        "description": "What to deploy: accounts, regions, pattern, waves, and whether only to check.",
        "spec": questions,
    }


def _workflow(s):
    names = s["names"]
    templates = names["job_templates"]
    waves = list(s["waves"])
    nodes = []
    for position, wave in enumerate(waves):
        following = (f"deploy_wave_{waves[position + 1]}" if position + 1 < len(waves) else "report")
        nodes.append(_node(f"deploy_wave_{wave}", templates["deploy"], s["organization"], success=[f"gate_wave_{wave}"],
                           limit=f"wave_{wave}", inventory=wave_inventory(names, wave),
                           extra_data={"drs_agent_deploy_waves": [wave], "drs_agent_deploy_max_failure_rate": 1.0}))
        nodes.append(_node(f"gate_wave_{wave}", templates["gate"], s["organization"], success=[following],
                           extra_data={"drs_wave_gate_wave": wave,
                                       "drs_wave_gate_max_failure_rate": s["max_failure_rate"]}))
    nodes.append(_node("report", templates["report"], s["organization"]))
    return {
        # no inventory of its own: AWX would give it to every node whose template prompts for one, over the node's
        "name": names["workflow"], "organization": s["organization"],
        "description": "One deploy node per wave (sliced), a gate on the whole wave after each, then the report",
        "extra_vars": dict(s.get("extra_vars") or {}), "allow_simultaneous": False, "ask_variables_on_launch": True,
        "destroy_current_nodes": True, "workflow_nodes": nodes,
    }


def _node(identifier, template, organization, success=(), limit=None, inventory=None, extra_data=None):
    node = {
        "identifier": identifier,
        "unified_job_template": {"name": template, "type": "job_template", "organization": {"name": organization}},
        "related": {"success_nodes": [{"identifier": child} for child in success], "failure_nodes": [],
                    "always_nodes": [], "credentials": []},
        "extra_data": extra_data or {},
        "all_parents_must_converge": False,
    }
    if limit:
        node["limit"] = limit
    if inventory:
        node["inventory"] = {"name": inventory, "organization": {"name": organization}}
    return node


def deploy_scope(accounts, account_ids, regions, pattern):
    """The accounts to deploy (``drs_agent_deploy_accounts``) from the deploy template's accounts and the survey's
    answers: the chosen accounts (none: all), each with its regions among the chosen ones (none: all), an account
    left with no region dropped. Raises ValueError naming the survey variable and the rule: an account or region
    not offered, nothing left, or a chosen pattern that the chosen accounts do not make."""
    known = [account["account_id"] for account in accounts]
    for index, account_id in enumerate(account_ids):
        if account_id not in known:
            raise ValueError(f"{SURVEY_ACCOUNT_IDS}[{index}] {account_id!r} is not one of the accounts "
                             f"({', '.join(known)})")
    chosen = [account for account in accounts if not account_ids or account["account_id"] in account_ids]
    offered = sorted({region for account in chosen for region in account["regions"]})
    for index, region in enumerate(regions):
        if region not in offered:
            raise ValueError(f"{SURVEY_REGIONS}[{index}] {region!r} is a region of none of the chosen accounts "
                             f"({', '.join(offered)})")
    scoped = []
    for account in chosen:
        kept = [region for region in account["regions"] if not regions or region in regions]
        if kept:
            scoped.append(dict(account, regions=kept))
    if not scoped:
        raise ValueError(f"{SURVEY_ACCOUNT_IDS} and {SURVEY_REGIONS} leave no account-region to deploy")
    if pattern:
        if pattern not in PATTERNS:
            raise ValueError(f"{SURVEY_PATTERN} {pattern!r} must be one of {', '.join(PATTERNS)}")
        made = deployment_pattern(scoped)
        if made != pattern:
            raise ValueError(f"{SURVEY_PATTERN} is {pattern}, but the chosen accounts make a {made} deployment "
                             "(their staging accounts decide it): choose that pattern or other accounts")
    return scoped
