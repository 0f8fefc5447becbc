"""The controller configuration's objects, checked against the awx.awx modules that receive them: no controller
runs here, so each definition is validated with the argument specification the module itself builds."""

import importlib
from pathlib import Path

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils import controller

REPO = Path(__file__).resolve().parents[4]
DEPLOY_SPEC = yaml.safe_load((REPO / "roles/drs_agent_deploy/meta/argument_specs.yml").read_text())
ROLE_DEFAULTS = yaml.safe_load((REPO / "roles/drs_controller/defaults/main.yml").read_text())


class _SpecCaptured(Exception):
    def __init__(self, spec):
        super().__init__("argument_spec captured")
        self.spec = spec


class _Capture:
    def __init__(self, argument_spec=None, **_kwargs):
        raise _SpecCaptured(argument_spec)


def module_spec(fqcn):
    """The argument spec an awx.awx module builds in main(), with the controller's connection options."""
    name = fqcn.split(".")[-1]
    module = importlib.import_module(f"ansible_collections.awx.awx.plugins.modules.{name}")
    original = module.ControllerAPIModule
    module.ControllerAPIModule = _Capture
    try:
        with pytest.raises(_SpecCaptured) as captured:
            module.main()
    finally:
        module.ControllerAPIModule = original
    return dict(captured.value.spec, **original.AUTH_ARGSPEC)


def node_suboptions():
    """The documented options of a workflow node (workflow_job_template's workflow_nodes)."""
    module = importlib.import_module("ansible_collections.awx.awx.plugins.modules.workflow_job_template")
    return set(yaml.safe_load(module.DOCUMENTATION)["options"]["workflow_nodes"]["suboptions"])


def settings(**overrides):
    values = {key[len("drs_controller_"):]: value for key, value in ROLE_DEFAULTS.items()}
    values.update(execution_environment_image="registry.example.com/dr/ee:1", project_scm_url="https://git.example.com/dr.git",
                  credential_inputs={"access_key_id": "AKIAEXAMPLE", "secret_access_key": "very-secret",
                                     "external_id": "ext-id-secret"})
    values.update(overrides)
    return values


@pytest.mark.parametrize("kind", controller.KINDS)
def test_every_definition_is_accepted_by_the_awx_module_that_receives_it(kind):
    spec = module_spec(controller.MODULES[kind])
    entries = controller.definitions(settings())[kind]
    assert entries
    for entry in entries:
        result = ArgumentSpecValidator(spec).validate(entry)
        assert not result.error_messages, (kind, entry.get("name"), result.error_messages)
        assert not result.unsupported_parameters, (kind, entry.get("name"), result.unsupported_parameters)


def test_a_key_the_module_does_not_know_is_caught():
    spec = module_spec("awx.awx.job_template")
    template = dict(controller.definitions(settings())["job_templates"][0], slices=4)
    assert ArgumentSpecValidator(spec).validate(template).unsupported_parameters


def test_workflow_nodes_use_only_documented_options_and_name_existing_templates():
    objects = controller.definitions(settings())
    templates = {template["name"] for template in objects["job_templates"]}
    documented = node_suboptions()
    [workflow] = objects["workflow_job_templates"]
    for node in workflow["workflow_nodes"]:
        assert set(node) <= documented, set(node) - documented
        assert node["unified_job_template"]["name"] in templates


def walk(workflow):
    """The nodes in the order the success edges lead from the root."""
    nodes = {node["identifier"]: node for node in workflow["workflow_nodes"]}
    children = {child["identifier"] for node in nodes.values() for child in node["related"]["success_nodes"]}
    [root] = [identifier for identifier in nodes if identifier not in children]
    order, current = [], root
    while current:
        order.append(nodes[current])
        following = nodes[current]["related"]["success_nodes"]
        current = following[0]["identifier"] if following else None
    assert len(order) == len(nodes), "every node is on the success path"
    return order


def test_the_workflow_deploys_each_wave_sliced_then_gates_the_whole_wave_then_reports():
    objects = controller.definitions(settings(waves=[1, 2, 10], job_slice_count=6, max_failure_rate=0.05))
    templates = {template["name"]: template for template in objects["job_templates"]}
    order = walk(objects["workflow_job_templates"][0])
    playbooks = [templates[node["unified_job_template"]["name"]]["playbook"] for node in order]
    assert playbooks == [controller.DEPLOY_PLAYBOOK, controller.GATE_PLAYBOOK] * 3 + ["playbooks/report.yml"]
    for wave, (deploy, gate) in zip([1, 2, 10], zip(order[0::2], order[1::2])):
        assert deploy["limit"] == f"wave_{wave}"
        assert deploy["extra_data"]["drs_agent_deploy_waves"] == [wave]
        # the slices never stop on their share of the wave: the gate judges the whole wave
        assert deploy["extra_data"]["drs_agent_deploy_max_failure_rate"] == 1.0
        assert gate["extra_data"] == {"drs_wave_gate_wave": wave, "drs_wave_gate_max_failure_rate": 0.05}
    deploy_template = templates[order[0]["unified_job_template"]["name"]]
    assert deploy_template["job_slice_count"] == 6 and deploy_template["ask_limit_on_launch"]


def test_the_survey_asks_only_for_variables_the_deploy_reads_with_valid_types():
    survey = controller.definitions(settings())["job_templates"][1]["survey_spec"]
    deploy_variables = set(DEPLOY_SPEC["argument_specs"]["main"]["options"])
    playbook = (REPO / controller.DEPLOY_PLAYBOOK).read_text()
    valid_types = {"text", "textarea", "password", "integer", "float", "multiplechoice", "multiselect"}
    assert survey["spec"]
    for question in survey["spec"]:
        assert question["type"] in valid_types
        assert question["variable"] in deploy_variables or question["variable"] in playbook, question["variable"]
        if question["type"] in ("multiplechoice", "multiselect"):
            assert question["choices"]


def test_secrets_are_only_in_the_credential():
    objects = controller.definitions(settings())
    for kind, entries in objects.items():
        text = repr(entries)
        if kind in controller.SECRET_KINDS:
            assert "very-secret" in text and "ext-id-secret" in text
        else:
            assert "very-secret" not in text and "ext-id-secret" not in text, kind
    [credential_type] = objects["credential_types"]
    secret_fields = {field["id"] for field in credential_type["inputs"]["fields"] if field.get("secret")}
    assert {"secret_access_key", "session_token", "external_id"} <= secret_fields


def test_the_report_reads_the_table_the_deploy_writes():
    role_defaults = yaml.safe_load((REPO / "roles/drs_agent_deploy/defaults/main.yml").read_text())
    for extra_vars, table, region in (
            ({}, role_defaults["drs_agent_deploy_history_table"], role_defaults["drs_agent_deploy_history_region"]),
            ({"drs_agent_deploy_history_table": "dr-history", "drs_agent_deploy_history_region": "eu-west-1"},
             "dr-history", "eu-west-1")):
        templates = controller.definitions(settings(extra_vars=extra_vars))["job_templates"]
        [report] = [template for template in templates if template["playbook"] == "playbooks/report.yml"]
        assert (report["extra_vars"]["drs_report_table_name"], report["extra_vars"]["drs_report_region"]) == (table, region)
