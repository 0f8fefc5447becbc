# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The AWX / Automation Platform objects of the collection, as data: the one definition that the
``drs_controller`` role sends with the ``awx.awx`` modules and that the AWX rehearsal runs.

``definitions(settings)`` returns ``{kind: [entry, ...]}`` for the kinds of ``KINDS``, each entry exactly the
parameters of the ``awx.awx`` module of its kind (``MODULES``); only ``credentials`` entries hold secrets.

The workflow "DRS rollout" has, per wave ``n`` in order, a deploy node (the deploy template, ``limit: wave_<n>``,
sliced by the template's ``job_slice_count``) whose success leads to a gate node (``playbooks/wave_gate.yml``
judging wave ``n`` over all its slices), whose success leads to the next wave; after the last gate passes, the
report. The deploy nodes raise the slices' own failure-rate limit to 1 so that no slice stops on its share of
the wave: the gate decides on the whole wave. A failed node ends the workflow as failed.
"""

import copy

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
SECRET_KINDS = ("credentials",)

# the deploy role's defaults (roles/drs_agent_deploy/defaults/main.yml)
DEFAULT_HISTORY_TABLE = "drs-deployment-history"
DEFAULT_HISTORY_REGION = "us-east-1"
DEPLOY_PLAYBOOK = "playbooks/deploy_agents.yml"
GATE_PLAYBOOK = "playbooks/wave_gate.yml"
PLAYBOOKS = {
    "setup": "playbooks/setup_accounts.yml",
    "deploy": DEPLOY_PLAYBOOK,
    "extension": "playbooks/extend_source_servers.yml",
    "report": "playbooks/report.yml",
    "gate": GATE_PLAYBOOK,
}
# What the credential type injects: the orchestration account's keys as AWS's own environment keys (boto3, the
# inventory plugin and the deploy read them), the external id for the inventory plugin and for the deploy.
CREDENTIAL_FIELDS = (
    {"id": "access_key_id", "label": "Access key id", "type": "string"},
    {"id": "secret_access_key", "label": "Secret access key", "type": "string", "secret": True},
    {"id": "session_token", "label": "Session token", "type": "string", "secret": True},
    {"id": "external_id", "label": "External id of the accounts' roles", "type": "string", "secret": True},
)
CREDENTIAL_INJECTORS = {
    "env": {
        "AWS_ACCESS_KEY_ID": "{{ access_key_id }}",
        "AWS_SECRET_ACCESS_KEY": "{{ secret_access_key }}",
        "AWS_SESSION_TOKEN": "{{ session_token }}",
        "DRS_EXTERNAL_ID": "{{ external_id }}",
    },
    "extra_vars": {"drs_agent_deploy_external_id": "{{ external_id }}"},
}


def definitions(settings):
    """Every object, from the role's settings (the ``drs_controller_*`` variables without their prefix)."""
    s = settings
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
        }],
        "inventory_sources": [{
            "name": names["inventory_source"], "inventory": names["inventory"], "source": "scm",
            "source_project": names["project"], "source_path": s["inventory_source_path"],
            "credential": names["credential"], "overwrite": True, "update_on_launch": True,
            "execution_environment": names["execution_environment"],
        }],
        "job_templates": [_job_template(s, kind, shared_vars) for kind in PLAYBOOKS],
        "workflow_job_templates": [_workflow(s)],
    }
    return result


def _job_template(s, kind, shared_vars):
    names = s["names"]
    template = {
        "name": names["job_templates"][kind], "organization": s["organization"], "job_type": "run",
        "inventory": names["inventory"], "project": names["project"], "playbook": PLAYBOOKS[kind],
        "credentials": [names["credential"]], "execution_environment": names["execution_environment"],
        "extra_vars": dict(shared_vars), "ask_variables_on_launch": True,
    }
    if kind == "report":
        # the report reads the table the deploy writes, and a job's environment names no region of its own
        template["extra_vars"].update(
            drs_report_output_dir=s["report_output_dir"],
            drs_report_table_name=shared_vars.get("drs_agent_deploy_history_table", DEFAULT_HISTORY_TABLE),
            drs_report_region=shared_vars.get("drs_agent_deploy_history_region", DEFAULT_HISTORY_REGION))
    if kind == "deploy":
        template.update(
            job_slice_count=s["job_slice_count"], allow_simultaneous=False, ask_limit_on_launch=True,
            ask_job_type_on_launch=True, ask_diff_mode_on_launch=True, survey_enabled=True,
            survey_spec=survey_spec(s))
    return template


def survey_spec(s):
    """The deploy dialog: which waves, the failure-rate limit, extension after each wave. Accounts and regions are
    the launch's limit (``account_<id>``, ``region_<name>`` groups of the inventory), check mode its job type."""
    waves = [str(wave) for wave in s["waves"]]
    return {
        "name": "Deploy DRS agents",
        "description": "Which waves to deploy; limit the launch to account_<id> / region_<name> groups to choose "
                       "accounts and regions, and launch as job type 'check' to see what it would do.",
        "spec": [
            {"question_name": "Waves", "question_description": "The waves to deploy, in order (empty: all).",
             "variable": "drs_agent_deploy_waves", "type": "multiselect", "choices": waves, "default": "",
             "required": False},
            {"question_name": "Highest failure rate of a wave",
             "question_description": "Failed over attempted instances above which the rollout stops (0 to 1).",
             "variable": "drs_agent_deploy_max_failure_rate", "type": "float", "min": 0, "max": 1,
             "default": s["max_failure_rate"], "required": True},
            {"question_name": "Extend into the target account",
             "question_description": "After each wave, extend the registered servers into each account's "
                                     "target account.",
             "variable": "auto_extend_source_servers", "type": "multiplechoice", "choices": ["false", "true"],
             "default": "false", "required": True},
        ],
    }


def _workflow(s):
    names = s["names"]
    templates = names["job_templates"]
    waves = list(s["waves"])
    nodes = []
    for position, wave in enumerate(waves):
        following = (f"deploy_wave_{waves[position + 1]}" if position + 1 < len(waves) else "report")
        nodes.append(_node(f"deploy_wave_{wave}", templates["deploy"], s["organization"], success=[f"gate_wave_{wave}"],
                           limit=f"wave_{wave}",
                           extra_data={"drs_agent_deploy_waves": [wave], "drs_agent_deploy_max_failure_rate": 1.0}))
        nodes.append(_node(f"gate_wave_{wave}", templates["gate"], s["organization"], success=[following],
                           extra_data={"drs_wave_gate_wave": wave,
                                       "drs_wave_gate_max_failure_rate": s["max_failure_rate"]}))
    nodes.append(_node("report", templates["report"], s["organization"]))
    return {
        "name": names["workflow"], "organization": s["organization"], "inventory": names["inventory"],
        "description": "One deploy node per wave (sliced), a gate on the whole wave after each, then the report",
        "extra_vars": dict(s.get("extra_vars") or {}), "allow_simultaneous": False, "ask_variables_on_launch": True,
        "destroy_current_nodes": True, "workflow_nodes": nodes,
    }


def _node(identifier, template, organization, success=(), limit=None, extra_data=None):
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
    return node
