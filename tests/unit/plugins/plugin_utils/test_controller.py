"""The controller configuration's objects, checked against the awx.awx modules that receive them: no controller
runs here, so each definition is validated with the argument specification the module itself builds."""

import copy
import importlib
import json
import re
from pathlib import Path

import pytest
import yaml
from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.drs_orchestration.agent_deployer.plugins.filter.controller import FilterModule
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils import controller
from ansible_collections.drs_orchestration.agent_deployer.plugins.plugin_utils import instance_events

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


def eda_settings(**overrides):
    """The settings with Event-Driven Ansible enabled and its secrets given."""
    values = settings(
        eda_enabled=True, eda_decision_environment_image="registry.example.com/dr/de:1",
        eda_queue_url="https://sqs.us-east-1.amazonaws.com/999999999999/drs-instance-events", eda_queue_region="us-east-1",
        eda_queue_credential_inputs={"access_key_id": "AKIAQUEUE", "secret_access_key": "queue-secret-key"},
        eda_controller_credential_inputs={"host": "https://gateway.example.com/api/controller/",
                                          "oauth_token": "controller-token-secret"})
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
    sources = {source["inventory"]: source for source in objects["inventory_sources"]}
    for wave, (deploy, gate) in zip([1, 2, 10], zip(order[0::2], order[1::2])):
        assert deploy["limit"] == f"wave_{wave}"
        # AWX deals the slices from the job's inventory before the limit: the wave's own inventory, of its hosts only
        assert deploy["inventory"] == {"name": f"DRS fleet wave {wave}", "organization": {"name": "Default"}}
        assert sources[f"DRS fleet wave {wave}"]["source_vars"] == {"DRS_FLEET_WAVES": str(wave)}
        assert deploy["extra_data"]["drs_agent_deploy_waves"] == [wave]
        # the slices never stop on their share of the wave: the gate judges the whole wave
        assert deploy["extra_data"]["drs_agent_deploy_max_failure_rate"] == 1.0
        assert gate["extra_data"] == {"drs_wave_gate_wave": wave, "drs_wave_gate_max_failure_rate": 0.05}
    deploy_template = templates[order[0]["unified_job_template"]["name"]]
    assert deploy_template["job_slice_count"] == 6 and deploy_template["ask_limit_on_launch"]
    assert deploy_template["ask_inventory_on_launch"]
    # a workflow's own inventory would win over every node's
    assert "inventory" not in objects["workflow_job_templates"][0]


def test_the_waves_inventory_sources_set_the_environment_key_drs_fleet_reads_its_waves_from():
    from ansible_collections.drs_orchestration.agent_deployer.plugins.inventory import drs_fleet

    option = yaml.safe_load(drs_fleet.DOCUMENTATION)["options"]["waves"]
    assert option["env"] == [{"name": controller.WAVES_ENVIRONMENT_KEY}]
    sources = controller.definitions(settings(waves=[1, 2]))["inventory_sources"]
    assert [source.get("source_vars") for source in sources] == [None, {"DRS_FLEET_WAVES": "1"}, {"DRS_FLEET_WAVES": "2"}]
    # each wave's source lists the same project file, with the same credential, as the whole fleet's
    assert len({(source["source_path"], source["credential"], source["source"]) for source in sources}) == 1


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
    objects = controller.definitions(eda_settings())
    secrets = {"credentials": ("very-secret", "ext-id-secret"),
               "eda_credentials": ("queue-secret-key", "controller-token-secret")}
    assert set(secrets) == set(controller.SECRET_KINDS)
    every_secret = [secret for kind_secrets in secrets.values() for secret in kind_secrets]
    for kind, entries in objects.items():
        text = repr(entries)
        for secret in every_secret:
            assert (secret in text) == (secret in secrets.get(kind, ())), (kind, secret)
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


# --- the controller's own rules, which no awx.awx argument spec holds ---------------------------------------------
# AWX checks a survey spec when it is saved (api/views JobTemplateSurveySpec._validate_spec_data) and the variables
# of a launch against it (models/mixins.py SurveyJobTemplateMixin._survey_element_validation); a workflow node's
# prompts are accepted only when its template asks for them (ask_*_on_launch) or its survey has the variable.
SURVEY_TYPES = {"text": str, "textarea": str, "password": str, "multiplechoice": str, "multiselect": str,
                "integer": int, "float": (float, int)}


def _choices(question):
    choices = question["choices"]
    return [choice for choice in choices.splitlines() if choice.strip()] if isinstance(choices, str) else choices


def survey_spec_errors(survey):
    """What AWX answers with 400 when this survey spec is saved."""
    for field, kind in (("name", str), ("description", str), ("spec", list)):
        if not isinstance(survey.get(field), kind):
            return [f"survey {field} missing or not a {kind.__name__}"]
    if not survey["spec"]:
        return ["the survey has no question"]
    errors, seen = [], set()
    for index, question in enumerate(survey["spec"]):
        for field, kind in (("type", str), ("question_name", str), ("variable", str), ("required", bool)):
            if not isinstance(question.get(field), kind):
                errors.append(f"question {index}: {field} missing or not a {kind.__name__}")
        if question.get("variable") in seen:
            errors.append(f"question {index}: variable {question['variable']} twice")
        seen.add(question.get("variable"))
        qtype = question.get("type")
        if qtype not in SURVEY_TYPES:
            errors.append(f"question {index}: type {qtype!r}")
            continue
        default = question.get("default", "")
        if default != "" and not isinstance(default, SURVEY_TYPES[qtype]):
            errors.append(f"question {index}: default {default!r} is not a {qtype}")
        for key in ("min", "max"):
            if question.get(key) is not None and not isinstance(question[key], int):
                errors.append(f"question {index}: {key} is not an integer")
        if qtype in ("multiplechoice", "multiselect"):
            if "choices" not in question:
                errors.append(f"question {index}: no choices")
                continue
            defaults = default.splitlines() if isinstance(default, str) else default
            if qtype == "multiplechoice" and len(defaults) > 1:
                errors.append(f"question {index}: more than one default")
            if any(value not in _choices(question) for value in defaults):
                errors.append(f"question {index}: default not among the choices")
    return errors


def answer_errors(question, answers):
    """What AWX says of the answer to ``question`` in ``answers`` (a launch's or a node's variables)."""
    variable, value = question["variable"], answers.get(question["variable"])
    if variable not in answers:
        return [f"{variable} missing"] if question["required"] else []
    qtype = question["type"]
    if qtype in ("text", "textarea", "password") and not isinstance(value, str):
        return [f"{variable}: {value!r} is not a string"]
    # AWX compares the type itself: a boolean is no number
    if qtype == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
        return [f"{variable}: {value!r} is not an integer"]
    if qtype == "float" and (isinstance(value, bool) or not isinstance(value, (float, int))):
        return [f"{variable}: {value!r} is not a number"]
    if qtype in ("integer", "float"):
        if question.get("min") not in ("", None) and value < question["min"]:
            return [f"{variable}: {value!r} below {question['min']}"]
        if question.get("max") not in ("", None) and value > question["max"]:
            return [f"{variable}: {value!r} above {question['max']}"]
    if qtype == "multiselect":
        if not isinstance(value, list):
            return [f"{variable}: {value!r} is not a list"]
        return [f"{variable}: {item!r} not among {_choices(question)}" for item in value
                if item not in _choices(question)]
    if qtype == "multiplechoice" and value not in _choices(question):
        return [f"{variable}: {value!r} not among {_choices(question)}"]
    return []


def launch_variables(template, answers):
    """The extra variables of a launch with ``answers``, as AWX builds them: the template's, the survey's defaults
    that pass their own question, then the answers."""
    variables = dict(template.get("extra_vars") or {})
    for question in (template.get("survey_spec") or {}).get("spec", []) if template.get("survey_enabled") else []:
        if "default" in question and not answer_errors(question, {question["variable"]: question["default"]}):
            variables[question["variable"]] = question["default"]
    variables.update(answers)
    return variables


def deploy_survey(**overrides):
    [deploy] = [template for template in controller.definitions(settings(**overrides))["job_templates"]
                if template["playbook"] == controller.DEPLOY_PLAYBOOK]
    return deploy, deploy["survey_spec"]


ACCOUNTS = [
    {"account_id": "111111111111", "role_arn": "arn:aws:iam::111111111111:role/Source", "regions": ["us-east-1", "us-west-2"],
     "staging_account_id": "333333333333"},
    {"account_id": "222222222222", "role_arn": "arn:aws:iam::222222222222:role/Source", "regions": ["eu-west-1"]},
]


def test_the_deploy_survey_is_one_the_controller_saves():
    for extra_vars in ({}, {"drs_agent_deploy_accounts": ACCOUNTS}):
        assert survey_spec_errors(deploy_survey(extra_vars=extra_vars)[1]) == []


def test_the_survey_check_catches_what_the_controller_refuses():
    broken = copy.deepcopy(deploy_survey()[1])
    waves = next(question for question in broken["spec"] if question["type"] == "multiselect")
    waves["default"] = "7"
    del broken["spec"][0]["required"]
    assert len(survey_spec_errors(broken)) == 2


def test_the_survey_is_the_deploy_dialog_and_every_answer_reaches_the_deploy_role():
    deploy, survey = deploy_survey(extra_vars={"drs_agent_deploy_accounts": ACCOUNTS}, waves=[1, 2, 10])
    questions = {question["variable"]: question for question in survey["spec"]}
    assert _choices(questions[controller.SURVEY_ACCOUNT_IDS]) == ["111111111111", "222222222222"]
    assert _choices(questions[controller.SURVEY_REGIONS]) == ["eu-west-1", "us-east-1", "us-west-2"]
    assert _choices(questions[controller.SURVEY_PATTERN]) == ["same-account", "cross-account", "multi-account"]
    assert _choices(questions[controller.SURVEY_WAVES]) == ["1", "2", "10"]
    assert _choices(questions[controller.SURVEY_CHECK]) == ["no", "yes"]
    # the accounts are the template's under the name the playbook scopes; an extra variable could not be scoped
    assert deploy["extra_vars"][controller.SURVEY_ACCOUNTS] == ACCOUNTS
    assert "drs_agent_deploy_accounts" not in deploy["extra_vars"]
    playbook = yaml.safe_load((REPO / controller.DEPLOY_PLAYBOOK).read_text())
    mapped = repr(playbook)
    for variable in (controller.SURVEY_ACCOUNTS, *questions):
        assert variable in DEPLOY_SPEC["argument_specs"]["main"]["options"] or variable in mapped, variable


def test_a_launch_with_no_answer_is_valid():
    deploy, survey = deploy_survey(extra_vars={"drs_agent_deploy_accounts": ACCOUNTS})
    variables = launch_variables(deploy, {})
    assert [error for question in survey["spec"] for error in answer_errors(question, variables)] == []
    assert variables[controller.SURVEY_CHECK] == "no"


def test_every_workflow_node_prompt_is_one_its_template_accepts():
    objects = controller.definitions(settings(extra_vars={"drs_agent_deploy_accounts": ACCOUNTS}, waves=[1, 2, 10]))
    templates = {template["name"]: template for template in objects["job_templates"]}
    [workflow] = objects["workflow_job_templates"]
    for node in workflow["workflow_nodes"]:
        template = templates[node["unified_job_template"]["name"]]
        if node.get("limit"):
            assert template.get("ask_limit_on_launch"), node["identifier"]
        if node.get("inventory"):
            assert template.get("ask_inventory_on_launch"), node["identifier"]
            assert node["inventory"]["name"] in {inventory["name"] for inventory in objects["inventories"]}
        questions = (template.get("survey_spec") or {}).get("spec", []) if template.get("survey_enabled") else []
        asked = {question["variable"] for question in questions}
        for variable in node["extra_data"]:
            assert variable in asked or template.get("ask_variables_on_launch"), (node["identifier"], variable)
        variables = launch_variables(template, node["extra_data"])
        errors = [error for question in questions for error in answer_errors(question, variables)]
        assert errors == [], node["identifier"]


def test_a_node_that_sets_a_survey_variable_with_another_type_is_caught():
    deploy = deploy_survey()[0]
    waves_question = {"question_name": "Waves", "variable": "drs_agent_deploy_waves", "type": "multiselect",
                      "choices": ["1", "2"], "required": False}
    assert answer_errors(waves_question, launch_variables(deploy, {"drs_agent_deploy_waves": [1]}))


def _argument_spec(documented):
    """An argument spec from documented options (a module's DOCUMENTATION), suboptions and all."""
    spec = {}
    for name, option in documented.items():
        entry = {key: option[key] for key in ("type", "choices", "required", "elements", "aliases") if key in option}
        if "suboptions" in option:
            entry["options"] = _argument_spec(option["suboptions"])
        spec[name] = entry
    return spec


def test_every_workflow_node_is_accepted_by_the_documented_node_options():
    module = importlib.import_module("ansible_collections.awx.awx.plugins.modules.workflow_job_template")
    spec = _argument_spec(yaml.safe_load(module.DOCUMENTATION)["options"]["workflow_nodes"]["suboptions"])
    [workflow] = controller.definitions(settings())["workflow_job_templates"]
    for node in workflow["workflow_nodes"]:
        result = ArgumentSpecValidator(spec).validate(copy.deepcopy(node))
        assert not result.error_messages and not result.unsupported_parameters, (node["identifier"], result.error_messages)
    bad = dict(copy.deepcopy(workflow["workflow_nodes"][0]), related={"success_nodes": [{"identifier": "x", "when": 1}]})
    assert ArgumentSpecValidator(spec).validate(bad).unsupported_parameters


def test_every_template_role_gets_the_external_id_from_the_credential():
    [credential_type] = controller.definitions(settings())["credential_types"]
    injected = credential_type["injectors"]["extra_vars"]
    for role in ("drs_account_setup", "drs_agent_deploy", "drs_extension"):
        options = yaml.safe_load((REPO / f"roles/{role}/meta/argument_specs.yml").read_text())["argument_specs"]["main"]["options"]
        assert f"{role}_external_id" in options
        assert injected[f"{role}_external_id"] == "{{ external_id }}"


@pytest.mark.parametrize("overrides, message", [
    ({"waves": []}, "drs_controller_waves must list"),
    ({"waves": [1, "2"]}, "drs_controller_waves[1] '2' is not a wave number"),
    ({"waves": [1, 2, 1]}, "drs_controller_waves [1, 2, 1] lists a wave twice"),
    ({"job_slice_count": 0}, "drs_controller_job_slice_count 0 must be a whole number from 1"),
    ({"max_failure_rate": 1.5}, "drs_controller_max_failure_rate 1.5 must be a share from 0 to 1"),
    ({"extra_vars": {"drs_agent_deploy_external_id": "x"}},
     "drs_controller_extra_vars.drs_agent_deploy_external_id cannot be fixed: it comes from the credential"),
    ({"extra_vars": {"drs_agent_deploy_waves": [1]}}, "drs_controller_extra_vars.drs_agent_deploy_waves cannot be fixed"),
    ({"extra_vars": {"drs_agent_deploy_accounts": [{"account_id": "1111", "regions": ["us-east-1"]}]}},
     "drs_controller_extra_vars.drs_agent_deploy_accounts[0].account_id '1111' is not an AWS account id"),
    ({"extra_vars": {"drs_agent_deploy_accounts": [{"account_id": "111111111111", "regions": ["mars-1"]}]}},
     "drs_controller_extra_vars.drs_agent_deploy_accounts[0].regions[0] 'mars-1' is not an AWS region"),
])
def test_a_bad_setting_is_refused_naming_the_variable_and_the_rule(overrides, message):
    with pytest.raises(ValueError) as error:
        controller.definitions(settings(**overrides))
    assert message in str(error.value)


# --- the survey's answers, mapped onto the deploy role's accounts -------------------------------------------------

def test_no_answer_deploys_every_account_and_region():
    assert controller.deploy_scope(ACCOUNTS, [], [], "") == ACCOUNTS


def test_the_chosen_accounts_and_regions_are_deployed_and_an_account_left_with_no_region_is_dropped():
    assert controller.deploy_scope(ACCOUNTS, [], ["us-west-2"], "") == [dict(ACCOUNTS[0], regions=["us-west-2"])]
    assert controller.deploy_scope(ACCOUNTS, ["222222222222"], [], "") == [ACCOUNTS[1]]
    assert controller.deploy_scope(ACCOUNTS, ["111111111111"], [], "cross-account") == [ACCOUNTS[0]]
    assert controller.deploy_scope(ACCOUNTS, [], [], "multi-account") == ACCOUNTS


@pytest.mark.parametrize("answers, message", [
    ((["999999999999"], [], ""), "drs_deploy_account_ids[0] '999999999999' is not one of the accounts"),
    ((["222222222222"], ["us-east-1"], ""), "drs_deploy_regions[0] 'us-east-1' is a region of none of the chosen"),
    ((["222222222222"], [], "cross-account"), "drs_deploy_pattern is cross-account, but the chosen accounts make a "
                                              "same-account deployment"),
    (([], [], "one-account"), "drs_deploy_pattern 'one-account' must be one of"),
])
def test_an_answer_that_does_not_fit_the_accounts_is_refused_naming_the_survey_variable(answers, message):
    with pytest.raises(ValueError) as error:
        controller.deploy_scope(ACCOUNTS, *answers)
    assert message in str(error.value)


def test_the_scope_filter_fails_as_a_filter():
    with pytest.raises(AnsibleFilterError, match="drs_deploy_account_ids"):
        FilterModule().filters()["drs_deploy_scope"](ACCOUNTS, ["999999999999"])
    with pytest.raises(AnsibleFilterError, match="drs_controller_waves"):
        FilterModule().filters()["drs_controller_definitions"](settings(waves=[]))


# --- event-driven protection --------------------------------------------------------------------------------------
# ansible.eda cannot be installed here, so its modules' argument specs are not at hand: these tests check what holds
# without them, that the objects name one another, the rulebook and the job template, and carry the rulebook's
# variables and no secret outside the credentials.
RULEBOOKS = REPO / "extensions/eda/rulebooks"
PROTECT_PLAYBOOK = (REPO / controller.PROTECT_PLAYBOOK).read_text()


def templates_by_playbook(objects):
    return {template["playbook"]: template for template in objects["job_templates"]}


def test_the_protect_template_gives_the_deploy_role_its_variables_as_they_are_and_prompts_for_the_window():
    objects = controller.definitions(settings(extra_vars={"drs_agent_deploy_accounts": ACCOUNTS,
                                                          "drs_agent_deploy_history_table": "dr-history"}))
    templates = templates_by_playbook(objects)
    protect, deploy = templates[controller.PROTECT_PLAYBOOK], templates[controller.DEPLOY_PLAYBOOK]
    assert protect["name"] == ROLE_DEFAULTS["drs_controller_names"]["job_templates"]["protect"]
    for key in ("organization", "project", "credentials", "execution_environment"):
        assert protect[key] == deploy[key], key
    # the window names its instances: an inventory without hosts or a source, so no fleet update runs per window
    controller_inventory = ROLE_DEFAULTS["drs_controller_names"]["controller_inventory"]
    assert protect["inventory"] == controller_inventory != deploy["inventory"]
    assert controller_inventory in {inventory["name"] for inventory in objects["inventories"]}
    assert controller_inventory not in {source["inventory"] for source in objects["inventory_sources"]}
    # Event-Driven Ansible hands the window on as the extra variable ansible_eda, which the playbook reads
    assert protect["ask_variables_on_launch"] is True
    assert "ansible_eda.event.drs_instances" in PROTECT_PLAYBOOK
    # no survey maps anything: the deploy role reads these variables themselves
    assert not protect.get("survey_enabled") and "survey_spec" not in protect
    assert protect["extra_vars"] == {"drs_agent_deploy_accounts": ACCOUNTS, "drs_agent_deploy_history_table": "dr-history"}
    deploy_options = DEPLOY_SPEC["argument_specs"]["main"]["options"]
    assert set(protect["extra_vars"]) <= set(deploy_options)
    assert protect["allow_simultaneous"] is True


def test_the_protect_template_is_not_in_the_workflow():
    objects = controller.definitions(settings())
    protect = templates_by_playbook(objects)[controller.PROTECT_PLAYBOOK]
    [workflow] = objects["workflow_job_templates"]
    assert protect["name"] not in {node["unified_job_template"]["name"] for node in workflow["workflow_nodes"]}


def test_no_event_driven_object_is_built_unless_enabled():
    objects = controller.definitions(settings(eda_queue_url="", eda_decision_environment_image=""))
    assert {kind: objects[kind] for kind in controller.EDA_KINDS} == {kind: [] for kind in controller.EDA_KINDS}


def test_the_role_defaults_enable_no_event_driven_object_and_name_each():
    assert ROLE_DEFAULTS["drs_controller_eda_enabled"] is False
    assert set(ROLE_DEFAULTS["drs_controller_eda_names"]) == set(controller.EDA_NAME_KEYS)
    objects = controller.definitions(eda_settings())
    assert {kind for kind in controller.EDA_KINDS if objects[kind]} == set(controller.EDA_KINDS)


def test_every_event_driven_definition_names_objects_of_the_same_data():
    objects = controller.definitions(eda_settings())
    names = {kind: {entry["name"] for entry in objects[kind]} for kind in objects}
    [activation] = objects["eda_rulebook_activations"]
    assert activation["project_name"] in names["eda_projects"]
    assert activation["decision_environment_name"] in names["eda_decision_environments"]
    assert set(activation["eda_credentials"]) == names["eda_credentials"]
    assert (RULEBOOKS / activation["rulebook_name"]).is_file()
    variables = json.loads(activation["extra_vars"])
    protect = templates_by_playbook(objects)[controller.PROTECT_PLAYBOOK]
    assert variables["drs_events_job_template"] == protect["name"]
    assert variables["drs_events_organization"] == protect["organization"]
    for credential in objects["eda_credentials"]:
        assert credential["credential_type_name"] in names["eda_credential_types"] | {controller.EDA_CONTROLLER_CREDENTIAL_TYPE}
    # the Event-Driven Ansible project is the controller's: the rulebook and the job template's playbook come
    # from the same repository and branch
    [project], [eda_project] = objects["projects"], objects["eda_projects"]
    assert (eda_project["url"], eda_project["scm_branch"]) == (project["scm_url"], project["scm_branch"])
    organizations = {entry["organization_name"] for kind in controller.EDA_KINDS for entry in objects[kind]
                     if "organization_name" in entry}
    assert organizations == {"Default"}


def rulebook_variables(rulebook):
    """The variables a rulebook's templates use: name -> whether every use gives a default."""
    found = {}

    def walk(value):
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str):
            for expression in re.findall(r"\{\{(.*?)\}\}", value):
                name = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*)", expression).group(1)
                defaulted = re.search(r"\|\s*default\(", expression) is not None
                found[name] = found.get(name, True) and defaulted

    walk(yaml.safe_load(rulebook.read_text()))
    return found


def test_the_rulebook_check_finds_what_has_no_default():
    used = rulebook_variables(RULEBOOKS / controller.CONTROLLER_RULEBOOK)
    assert {name for name, defaulted in used.items() if not defaulted} >= {
        "drs_events_queue_url", "drs_events_job_template", "drs_events_organization"}
    assert used["drs_events_region"] is True


def test_the_activation_gives_every_variable_the_rulebook_uses_without_a_default():
    [activation] = controller.definitions(eda_settings())["eda_rulebook_activations"]
    variables = json.loads(activation["extra_vars"])
    used = rulebook_variables(RULEBOOKS / activation["rulebook_name"])
    assert {name for name, defaulted in used.items() if not defaulted} <= set(variables)
    # and each one it gives, the rulebook uses
    assert set(variables) <= set(used)


def test_the_event_source_accepts_the_activations_values():
    extra_vars = {"drs_agent_deploy_tag_filters": {"dr:enabled": "yes"}}
    [activation] = controller.definitions(eda_settings(extra_vars=extra_vars, eda_window_seconds=120,
                                                       eda_throttle_seconds=0))["eda_rulebook_activations"]
    variables = json.loads(activation["extra_vars"])
    checked = instance_events.check_arguments({
        "queue_url": variables["drs_events_queue_url"], "region": variables["drs_events_region"],
        "window_seconds": variables["drs_events_window_seconds"],
        "throttle_seconds": variables["drs_events_throttle_seconds"], "tag_filters": variables["drs_events_tag_filters"]})
    assert (checked["window_seconds"], checked["throttle_seconds"], checked["region"]) == (120, 0, "us-east-1")
    # the deploy's tag filters: the source hands on the instances the deploy installs on
    assert variables["drs_events_tag_filters"] == {"dr:enabled": "yes"}
    [default_activation] = controller.definitions(eda_settings())["eda_rulebook_activations"]
    assert json.loads(default_activation["extra_vars"])["drs_events_tag_filters"] == \
        yaml.safe_load((REPO / "roles/drs_agent_deploy/defaults/main.yml").read_text())["drs_agent_deploy_tag_filters"]


def test_the_queue_credential_injects_the_keys_boto3_reads_from_its_secret_fields():
    [credential_type] = controller.definitions(eda_settings())["eda_credential_types"]
    fields = {field["id"]: field for field in credential_type["inputs"]["fields"]}
    assert credential_type["injectors"] == {"env": {
        "AWS_ACCESS_KEY_ID": "{{ access_key_id }}", "AWS_SECRET_ACCESS_KEY": "{{ secret_access_key }}",
        "AWS_SESSION_TOKEN": "{{ session_token }}"}}
    assert fields["secret_access_key"]["secret"] and fields["session_token"]["secret"]
    assert set(credential_type["inputs"]["required"]) <= set(fields)


def role_tasks(path):
    """(module, the kind of drs_controller_objects its loop sends, the task) of every task of a task file."""
    found = []
    for block in yaml.safe_load((REPO / "roles/drs_controller/tasks" / path).read_text()):
        for task in block.get("block", [block]):
            modules = [key for key in task if key.startswith(("awx.awx.", "ansible.eda."))]
            if modules:
                kind = re.fullmatch(r"\{\{ drs_controller_objects\.(\w+) \}\}", task["loop"]).group(1)
                found.append((modules[0], kind, task))
    return found


@pytest.mark.parametrize("path, modules", [("main.yml", controller.MODULES), ("eda.yml", controller.EDA_MODULES)])
def test_the_role_sends_each_kind_to_its_module_once_and_the_credentials_unlogged(path, modules):
    sent = role_tasks(path)
    assert {kind: module for module, kind, _task in sent} == modules
    assert len(sent) == len(modules)
    for module, kind, task in sent:
        assert task[module] == "{{ item }}", kind
        assert task.get("no_log") is (True if kind in controller.SECRET_KINDS else None), kind


def test_the_role_includes_the_event_driven_tasks_only_when_enabled():
    [configure] = yaml.safe_load((REPO / "roles/drs_controller/tasks/main.yml").read_text())
    [include] = [task for task in configure["block"] if "ansible.builtin.include_tasks" in task]
    assert include["ansible.builtin.include_tasks"] == "eda.yml"
    assert include["when"] == "drs_controller_eda_enabled | bool"
    settings_passed = configure["vars"]["drs_controller_settings"]
    role_options = yaml.safe_load((REPO / "roles/drs_controller/meta/argument_specs.yml").read_text())
    options = role_options["argument_specs"]["main"]["options"]
    for key in settings_passed:
        assert f"drs_controller_{key}" in options, key
    for option in ("drs_controller_eda_queue_credential_inputs", "drs_controller_eda_controller_credential_inputs",
                   "drs_controller_eda_password", "drs_controller_eda_token"):
        assert options[option].get("no_log") is True, option


@pytest.mark.parametrize("overrides, message", [
    ({"eda_decision_environment_image": ""},
     "drs_controller_eda_decision_environment_image is required when drs_controller_eda_enabled is true"),
    ({"eda_queue_url": None}, "drs_controller_eda_queue_url is required when drs_controller_eda_enabled is true"),
    ({"eda_queue_region": ""}, "drs_controller_eda_queue_region '' is not an AWS region"),
    ({"eda_window_seconds": 0}, "drs_controller_eda_window_seconds 0 must be a whole number of seconds from 1 to 900"),
    ({"eda_throttle_seconds": True}, "drs_controller_eda_throttle_seconds True must be a whole number"),
    ({"eda_names": {"project": "p"}}, "drs_controller_eda_names must name every Event-Driven Ansible object: "
                                      "decision_environment, credential_type"),
    ({"eda_queue_credential_inputs": {"access_key_id": "AKIAQUEUE", "secret": "queue-secret-key"}},
     "drs_controller_eda_queue_credential_inputs.secret is not a field of the credential"),
    ({"eda_queue_credential_inputs": {"access_key_id": "AKIAQUEUE"}},
     "drs_controller_eda_queue_credential_inputs needs secret_access_key"),
    ({"eda_controller_credential_inputs": {"oauth_token": "controller-token-secret"}},
     "drs_controller_eda_controller_credential_inputs needs host"),
    ({"eda_controller_credential_inputs": {"host": "https://gateway.example.com", "username": "eda"}},
     "drs_controller_eda_controller_credential_inputs needs oauth_token, or username and password"),
    ({"names": dict(ROLE_DEFAULTS["drs_controller_names"], job_templates={"deploy": "d"})},
     "drs_controller_names must name every object: job_templates.setup, job_templates.extension"),
])
def test_a_bad_event_driven_setting_is_refused_naming_the_variable_and_never_a_secret(overrides, message):
    with pytest.raises(ValueError) as error:
        controller.definitions(eda_settings(**overrides))
    assert message in str(error.value)
    assert "queue-secret-key" not in str(error.value) and "controller-token-secret" not in str(error.value)


@pytest.mark.parametrize("names", [{}, {"controller_inventory": "DR controller jobs"}])
def test_only_the_deploy_loads_the_fleet_the_other_jobs_run_on_an_inventory_with_no_host(names):
    chosen = dict(ROLE_DEFAULTS["drs_controller_names"], **names)
    if not names:
        del chosen["controller_inventory"]  # a names mapping from before it had this key
    objects = controller.definitions(settings(names=chosen))
    own = names.get("controller_inventory", controller.DEFAULT_CONTROLLER_INVENTORY)
    waves = [f"DRS fleet wave {wave}" for wave in ROLE_DEFAULTS["drs_controller_waves"]]
    assert [inventory["name"] for inventory in objects["inventories"]] == ["DRS fleet", *waves, own]
    # the fleet's inventory and the waves' have a source: the controller's has no host
    assert [source["inventory"] for source in objects["inventory_sources"]] == ["DRS fleet", *waves]
    inventories = {template["playbook"]: template["inventory"] for template in objects["job_templates"]}
    assert inventories.pop("playbooks/deploy_agents.yml") == "DRS fleet"
    assert set(inventories) == {"playbooks/setup_accounts.yml", "playbooks/extend_source_servers.yml",
                                "playbooks/report.yml", "playbooks/wave_gate.yml", "playbooks/protect_instances.yml"}
    assert set(inventories.values()) == {own}
