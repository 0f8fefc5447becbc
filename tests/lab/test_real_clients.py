"""The lab driven by clients this project did not write: the amazon.aws inventory plugin and
modules, run by ansible-inventory and ansible-playbook exactly as an operator runs them, with only
AWS_ENDPOINT_URL pointing at the lab."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from lab.scenario import load_scenario
from tests.e2e.conftest import collection_environment
from tests.lab_fixture import REPO_ROOT

ANSIBLE_BIN = Path(sys.executable).parent
LAB_INVENTORY = REPO_ROOT / "inventories" / "lab"
DEMO = load_scenario("demo")
ACCOUNTS = {account["name"]: account for account in DEMO["accounts"]}
SOURCE = ACCOUNTS["source"]
SOURCE_ROLE = SOURCE["roles"][0]
SOURCE_ROLE_ARN = f"arn:aws:iam::{SOURCE['id']}:role/{SOURCE_ROLE['name']}"


@pytest.fixture(scope="module")
def lab(lab_factory):
    return lab_factory("demo")


def profile_environment(lab):
    """What an operator sets to aim the AWS profiles in inventories/lab/aws_config at the lab."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update({
        "AWS_ENDPOINT_URL": lab.url,
        "AWS_CONFIG_FILE": str(LAB_INVENTORY / "aws_config"),
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    })
    # the lab inventory groups waves with the collection's drs_wave filter, as an operator's installed collection does
    env.update(collection_environment(lab_clock=False))
    return env


def run_inventory(lab, inventory):
    return subprocess.run([str(ANSIBLE_BIN / "ansible-inventory"), "-i", str(inventory), "--list"],
                          cwd=REPO_ROOT, env=profile_environment(lab), capture_output=True, text=True, timeout=120)


def tag(instance, key):
    return next((t["Value"] for t in instance.get("Tags", []) if t["Key"] == key), None)


def dr_instances_seen_by_ec2(lab):
    """The source account's running instances marked for DRS, from the lab's own EC2 answers."""
    credentials = lab.assume(SOURCE_ROLE_ARN, SOURCE_ROLE["external_id"])
    found = {}
    for region in DEMO["regions"]:
        pages = lab.client("ec2", region, credentials).get_paginator("describe_instances").paginate()
        for page in pages:
            for reservation in page["Reservations"]:
                for instance in reservation["Instances"]:
                    marked = tag(instance, "dr:enabled") == "true" and tag(instance, "dr:recovery-strategy") == "drs"
                    if marked and instance["State"]["Name"] == "running":
                        found[instance["InstanceId"]] = instance
    return found


# --- the amazon.aws.aws_ec2 inventory plugin ---------------------------------------------------------

def test_the_inventory_plugin_lists_the_source_account_dr_hosts_by_wave(lab):
    result = run_inventory(lab, LAB_INVENTORY / "demo_source.aws_ec2.yml")
    assert result.returncode == 0, result.stderr
    inventory = json.loads(result.stdout)
    expected = dr_instances_seen_by_ec2(lab)

    assert set(inventory["_meta"]["hostvars"]) == set(expected)
    waves = {tag(instance, "dr:wave") for instance in expected.values()}
    assert len(waves) == 3
    for wave in waves:
        members = {iid for iid, instance in expected.items() if tag(instance, "dr:wave") == wave}
        assert set(inventory[f"wave_{wave}"]["hosts"]) == members
    assert set(inventory[f"account_{SOURCE['id']}"]["hosts"]) == set(expected)
    for instance_id, instance in expected.items():
        hostvars = inventory["_meta"]["hostvars"][instance_id]
        assert hostvars["dr_wave"] == int(tag(instance, "dr:wave"))
        assert _plain(hostvars["ansible_host"]) == instance["PrivateIpAddress"]


def test_the_inventory_plugin_is_denied_with_the_wrong_external_id(lab, tmp_path):
    inventory = yaml.safe_load((LAB_INVENTORY / "demo_source.aws_ec2.yml").read_text())
    inventory["profile"] = "lab-source-wrong-external-id"
    path = tmp_path / "wrong_external_id.aws_ec2.yml"
    path.write_text(yaml.safe_dump(inventory))
    result = run_inventory(lab, path)
    assert "An error occurred (AccessDenied) when calling the AssumeRole operation" in result.stderr
    assert f"sts:AssumeRole on resource: {SOURCE_ROLE_ARN}" in result.stderr
    # ansible-inventory only warns about a source it cannot read: what matters is that no host leaks
    assert json.loads(result.stdout)["_meta"]["hostvars"] == {}


def _plain(value):
    """ansible-inventory marks strings from AWS as unsafe: {"__ansible_unsafe": "..."}."""
    return value["__ansible_unsafe"] if isinstance(value, dict) and "__ansible_unsafe" in value else value


# --- amazon.aws modules ------------------------------------------------------------------------------

PLAYBOOK = textwrap.dedent("""\
    - name: Work in the source account with amazon.aws modules
      hosts: localhost
      connection: local
      gather_facts: false
      tasks:
        - name: Assume the source account role
          amazon.aws.sts_assume_role:
            role_arn: "{{ source_role_arn }}"
            role_session_name: real-clients
            external_id: "{{ external_id }}"
          register: assumed

        - name: Use the role's credentials
          module_defaults:
            group/amazon.aws.aws:
              access_key: "{{ assumed.sts_creds.access_key }}"
              secret_key: "{{ assumed.sts_creds.secret_key }}"
              session_token: "{{ assumed.sts_creds.session_token }}"
              region: us-east-1
          block:
            - name: Who am I
              amazon.aws.aws_caller_info:
              register: caller

            - name: Wave 1 instances
              amazon.aws.ec2_instance_info:
                filters:
                  "tag:dr:wave": "1"
                  instance-state-name: running
              register: wave_one

            - name: Create a role through CloudFormation
              amazon.aws.cloudformation:
                stack_name: lab-real-clients
                state: present
                template_body: "{{ template | to_json }}"
              register: stack

            - name: Read the role back through IAM
              amazon.aws.iam_role_info:
                name: LabStackRole
              register: stack_role

        - name: Save what the modules returned
          ansible.builtin.copy:
            content: "{{ {'caller': caller, 'wave_one': wave_one, 'stack': stack, 'stack_role': stack_role} | to_json }}"
            dest: "{{ results_path }}"
            mode: "0600"
    """)

STACK_TEMPLATE = {
    "AWSTemplateFormatVersion": "2010-09-09",
    "Resources": {
        "Role": {
            "Type": "AWS::IAM::Role",
            "Properties": {
                "RoleName": "LabStackRole",
                "AssumeRolePolicyDocument": {
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Effect": "Allow",
                        "Principal": {"AWS": f"arn:aws:iam::{ACCOUNTS['orchestration']['id']}:root"},
                        "Action": "sts:AssumeRole",
                        "Condition": {"StringEquals": {"sts:ExternalId": "stack-external-id"}},
                    }],
                },
            },
        },
    },
    "Outputs": {"RoleArn": {"Value": {"Fn::GetAtt": ["Role", "Arn"]}}},
}


def test_amazon_aws_modules_work_in_the_assumed_role_account(lab, tmp_path):
    playbook = tmp_path / "real_clients.yml"
    playbook.write_text(PLAYBOOK)
    results_path = tmp_path / "results.json"
    extra_vars = {"source_role_arn": SOURCE_ROLE_ARN, "external_id": SOURCE_ROLE["external_id"],
                  "template": STACK_TEMPLATE, "results_path": str(results_path),
                  "ansible_python_interpreter": sys.executable}
    result = subprocess.run(
        [str(ANSIBLE_BIN / "ansible-playbook"), "-i", "localhost,", str(playbook), "-e", json.dumps(extra_vars)],
        cwd=tmp_path, env=lab.environment(), capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    results = json.loads(results_path.read_text())

    assert results["caller"]["account"] == SOURCE["id"]
    assert results["caller"]["arn"] == f"arn:aws:sts::{SOURCE['id']}:assumed-role/{SOURCE_ROLE['name']}/real-clients"

    expected = {iid for iid, instance in dr_instances_seen_by_ec2(lab).items()
                if tag(instance, "dr:wave") == "1" and instance["Placement"]["AvailabilityZone"].startswith("us-east-1")}
    assert {i["instance_id"] for i in results["wave_one"]["instances"]} == expected
    assert all(i["tags"]["dr:wave"] == "1" for i in results["wave_one"]["instances"])

    role_arn = results["stack"]["stack_outputs"]["RoleArn"]
    assert role_arn == f"arn:aws:iam::{SOURCE['id']}:role/LabStackRole"
    assert [role["arn"] for role in results["stack_role"]["iam_roles"]] == [role_arn]
    issued = lab.client("sts").assume_role(RoleArn=role_arn, RoleSessionName="stack", ExternalId="stack-external-id")
    assert issued["AssumedRoleUser"]["Arn"] == f"arn:aws:sts::{SOURCE['id']}:assumed-role/LabStackRole/stack"
