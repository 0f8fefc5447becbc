import copy

import botocore.exceptions
import pytest

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.drs_setup import (
    DEFAULT_PIT_POLICY,
    NoStagingSubnet,
    SetupInputError,
    check_document_input,
    check_template_options,
    default_subnet_id,
    ensure_document,
    ensure_drs_ready,
    template_request,
)

CONTENT = """schemaVersion: "2.2"
description: Install
parameters:
  Region: {type: String}
mainSteps: []
"""
SAME_CONTENT_OTHER_LAYOUT = """# a comment
schemaVersion: '2.2'
description: Install
parameters:
  Region:
    type: String
mainSteps: []
"""
OTHER_CONTENT = CONTENT.replace("Install", "Install the agent")


def client_error(code, operation):
    return botocore.exceptions.ClientError({"Error": {"Code": code, "Message": code}}, operation)


class FakeSsm:
    """An account's SSM documents: versions of one document, and the calls made."""

    def __init__(self, versions=None, default_version=None):
        self.versions = dict(versions or {})
        self.default_version = default_version
        self.calls = []

    def describe_document(self, aws_retry, Name):
        self.calls.append(("DescribeDocument", Name))
        if not self.versions:
            raise client_error("InvalidDocument", "DescribeDocument")
        latest = str(max(int(version) for version in self.versions))
        return {"Document": {"Name": Name, "DocumentType": "Command", "DefaultVersion": self.default_version,
                             "LatestVersion": latest}}

    def get_document(self, aws_retry, Name, DocumentVersion, DocumentFormat):
        self.calls.append(("GetDocument", DocumentVersion))
        return {"Content": self.versions[DocumentVersion]}

    def create_document(self, aws_retry, Name, Content, DocumentType, DocumentFormat):
        self.calls.append(("CreateDocument", DocumentType, DocumentFormat))
        self.versions, self.default_version = {"1": Content}, "1"

    def update_document(self, aws_retry, Name, Content, DocumentVersion, DocumentFormat):
        self.calls.append(("UpdateDocument", DocumentVersion))
        if Content in self.versions.values():
            raise client_error("DuplicateDocumentContent", "UpdateDocument")
        version = str(len(self.versions) + 1)
        self.versions[version] = Content
        return {"DocumentDescription": {"DocumentVersion": version}}

    def update_document_default_version(self, aws_retry, Name, DocumentVersion):
        self.calls.append(("UpdateDocumentDefaultVersion", DocumentVersion))
        self.default_version = DocumentVersion

    def writes(self):
        return [call for call in self.calls if call[0] not in ("DescribeDocument", "GetDocument")]


@pytest.mark.parametrize("name, content, message", [
    ("ab", CONTENT, "name: 'ab' is not a valid SSM document name"),
    ("bad name", CONTENT, "is not a valid SSM document name"),
    ("AWS-MyInstaller", CONTENT, "prefix AWS reserves"),
    ("Amazon-Installer", CONTENT, "prefix AWS reserves"),
    ("MyInstaller", "a: [unclosed", "content: it is not valid YAML"),
    ("MyInstaller", "mainSteps: []\n", "this one has no schemaVersion"),
    ("MyInstaller", "- a list\n", "this one has no schemaVersion"),
])
def test_bad_document_input_names_the_option(name, content, message):
    with pytest.raises(SetupInputError, match=message.replace("(", r"\(").replace("[", r"\[")):
        check_document_input(name, content, "YAML")


def test_json_content_is_checked_as_json():
    check_document_input("MyInstaller", '{"schemaVersion": "2.2", "mainSteps": []}', "JSON")
    with pytest.raises(SetupInputError, match="not valid JSON"):
        check_document_input("MyInstaller", CONTENT, "JSON")


def test_an_absent_document_is_created_as_a_command_document():
    ssm = FakeSsm()
    changed, document, diff = ensure_document(ssm, "MyInstaller", CONTENT, "YAML", check_mode=False)

    assert changed is True
    assert ("CreateDocument", "Command", "YAML") in ssm.calls
    assert document["DefaultVersion"] == "1"
    assert diff["before"] == "" and diff["after"] == CONTENT


def test_check_mode_does_not_create_an_absent_document():
    ssm = FakeSsm()
    changed, document, diff = ensure_document(ssm, "MyInstaller", CONTENT, "YAML", check_mode=True)

    assert (changed, document, ssm.writes()) == (True, {}, [])
    assert diff["after"] == CONTENT


def test_the_same_content_in_another_layout_is_no_change():
    ssm = FakeSsm({"1": SAME_CONTENT_OTHER_LAYOUT}, "1")
    changed, _document, diff = ensure_document(ssm, "MyInstaller", CONTENT, "YAML", check_mode=False)

    assert (changed, diff, ssm.writes()) == (False, {}, [])


def test_new_content_becomes_a_new_default_version():
    ssm = FakeSsm({"1": CONTENT}, "1")
    changed, _document, diff = ensure_document(ssm, "MyInstaller", OTHER_CONTENT, "YAML", check_mode=False)

    assert changed is True
    assert ssm.writes() == [("UpdateDocument", "$LATEST"), ("UpdateDocumentDefaultVersion", "2")]
    assert ssm.versions["2"] == OTHER_CONTENT
    assert (diff["before"], diff["after"]) == (CONTENT, OTHER_CONTENT)


def test_check_mode_shows_new_content_without_updating():
    ssm = FakeSsm({"1": CONTENT}, "1")
    changed, _document, diff = ensure_document(ssm, "MyInstaller", OTHER_CONTENT, "YAML", check_mode=True)

    assert (changed, ssm.writes()) == (True, [])
    assert (diff["before"], diff["after"]) == (CONTENT, OTHER_CONTENT)


def test_content_of_an_earlier_version_makes_that_version_the_default_again():
    ssm = FakeSsm({"1": CONTENT, "2": OTHER_CONTENT}, "2")
    changed, document, _diff = ensure_document(ssm, "MyInstaller", CONTENT, "YAML", check_mode=False)

    assert changed is True
    assert ssm.writes()[-1] == ("UpdateDocumentDefaultVersion", "1")
    assert sorted(ssm.versions) == ["1", "2"]
    assert document["DefaultVersion"] == "1"


def test_a_stopped_update_is_completed_without_a_duplicate_version():
    ssm = FakeSsm({"1": CONTENT, "2": OTHER_CONTENT}, "1")
    changed, document, _diff = ensure_document(ssm, "MyInstaller", OTHER_CONTENT, "YAML", check_mode=False)

    assert changed is True
    assert (document["DefaultVersion"], sorted(ssm.versions)) == ("2", ["1", "2"])


def test_a_document_of_another_type_is_refused():
    ssm = FakeSsm({"1": CONTENT}, "1")
    ssm.describe_document = lambda aws_retry, Name: {"Document": {"DocumentType": "Automation"}}
    with pytest.raises(SetupInputError, match="exists as a Automation document"):
        ensure_document(ssm, "MyInstaller", CONTENT, "YAML", check_mode=False)


TEMPLATE_DEFAULTS = {
    "staging_area_subnet_id": None,
    "replication_servers_security_group_ids": [],
    "replication_server_instance_type": "t3.small",
    "default_large_staging_disk_type": "GP3",
    "ebs_encryption": "DEFAULT",
    "ebs_encryption_key_arn": None,
    "bandwidth_throttling": 0,
    "data_plane_routing": "PRIVATE_IP",
    "create_public_ip": False,
    "staging_area_tags": {},
    "tags": {},
}


def options(**changes):
    return dict(copy.deepcopy(TEMPLATE_DEFAULTS), **changes)


@pytest.mark.parametrize("changes, message", [
    ({"staging_area_subnet_id": "subnet-12"}, "staging_area_subnet_id: 'subnet-12' is not a subnet id"),
    ({"replication_servers_security_group_ids": ["sg-0123456789abcdef0", "default"]}, "'default' is not a security group id"),
    ({"replication_servers_security_group_ids": ["sg-0123456789abcdef0"] * 33}, "33 groups given"),
    ({"ebs_encryption": "CUSTOM"}, "ebs_encryption_key_arn: required when ebs_encryption is CUSTOM"),
    ({"ebs_encryption_key_arn": "arn:aws:kms:us-east-1:333333333333:key/abc"}, "only used when ebs_encryption is CUSTOM"),
    ({"ebs_encryption": "CUSTOM", "ebs_encryption_key_arn": "my-key"}, "'my-key' is not an ARN"),
    ({"bandwidth_throttling": -1}, "bandwidth_throttling"),
])
def test_bad_template_options_name_the_option(changes, message):
    with pytest.raises(SetupInputError, match=message):
        check_template_options(options(**changes))


def test_good_template_options_pass():
    check_template_options(options(staging_area_subnet_id="subnet-0a1b2c3d", ebs_encryption="CUSTOM",
                                   ebs_encryption_key_arn="arn:aws:kms:us-east-1:333333333333:key/abc"))


class FakeDrs:
    def __init__(self, initialized, templates=()):
        self.initialized = initialized
        self.templates = list(templates)
        self.calls = []

    def describe_replication_configuration_templates(self, aws_retry, **params):
        self.calls.append("DescribeReplicationConfigurationTemplates")
        if not self.initialized:
            raise client_error("UninitializedAccountException", "DescribeReplicationConfigurationTemplates")
        return {"items": self.templates}

    def initialize_service(self, aws_retry):
        self.calls.append("InitializeService")
        self.initialized = True

    def create_replication_configuration_template(self, aws_retry, **request):
        self.calls.append("CreateReplicationConfigurationTemplate")
        self.request = request
        template = {"replicationConfigurationTemplateID": "rct-1", **request, "ResponseMetadata": {}}
        self.templates.append(template)
        return dict(template)


class FakeEc2:
    def __init__(self, pages_of_subnets):
        self.pages_of_subnets = pages_of_subnets

    def describe_subnets(self, aws_retry, Filters, NextToken=None):
        index = int(NextToken or 0)
        page = {"Subnets": self.pages_of_subnets[index]}
        if index + 1 < len(self.pages_of_subnets):
            page["NextToken"] = str(index + 1)
        return page


DEFAULT_SUBNETS = FakeEc2([
    [{"SubnetId": "subnet-0000000b", "AvailabilityZone": "us-east-1b"}],
    [{"SubnetId": "subnet-0000000a", "AvailabilityZone": "us-east-1a"}],
])


def test_the_default_subnet_is_that_of_the_first_zone_over_all_pages():
    assert default_subnet_id(DEFAULT_SUBNETS) == "subnet-0000000a"
    assert default_subnet_id(FakeEc2([[]])) is None


def test_uninitialized_drs_is_initialized_and_gets_a_template():
    drs = FakeDrs(initialized=False)
    result = ensure_drs_ready(drs, DEFAULT_SUBNETS, options(tags={"Team": "dr"}), check_mode=False)

    assert drs.calls == ["DescribeReplicationConfigurationTemplates", "InitializeService",
                         "CreateReplicationConfigurationTemplate"]
    assert (result["changed"], result["service_initialized"], result["template_created"]) == (True, True, True)
    assert result["replication_configuration_template"]["replicationConfigurationTemplateID"] == "rct-1"
    assert "ResponseMetadata" not in result["replication_configuration_template"]
    assert drs.request["stagingAreaSubnetId"] == "subnet-0000000a"
    assert drs.request["tags"] == {"Team": "dr"}
    assert drs.request["pitPolicy"] == DEFAULT_PIT_POLICY


def test_check_mode_on_uninitialized_drs_reports_both_steps_and_calls_nothing_else():
    drs = FakeDrs(initialized=False)
    result = ensure_drs_ready(drs, DEFAULT_SUBNETS, options(), check_mode=True)

    assert drs.calls == ["DescribeReplicationConfigurationTemplates"]
    assert result == {"changed": True, "service_initialized": True, "template_created": True,
                      "replication_configuration_template": {}}


def test_drs_with_a_template_is_left_alone():
    existing = {"replicationConfigurationTemplateID": "rct-0", "bandwidthThrottling": 50}
    drs = FakeDrs(initialized=True, templates=[existing])
    result = ensure_drs_ready(drs, DEFAULT_SUBNETS, options(bandwidth_throttling=0), check_mode=False)

    assert drs.calls == ["DescribeReplicationConfigurationTemplates"]
    assert result == {"changed": False, "service_initialized": False, "template_created": False,
                      "replication_configuration_template": existing}


def test_initialized_drs_without_a_template_gets_one_in_the_given_subnet():
    drs = FakeDrs(initialized=True)
    result = ensure_drs_ready(drs, FakeEc2([[]]), options(staging_area_subnet_id="subnet-0123abcd"), check_mode=False)

    assert (result["changed"], result["service_initialized"], result["template_created"]) == (True, False, True)
    assert drs.request["stagingAreaSubnetId"] == "subnet-0123abcd"


def test_no_subnet_given_and_no_default_subnet_is_reported():
    with pytest.raises(NoStagingSubnet):
        ensure_drs_ready(FakeDrs(initialized=True), FakeEc2([[]]), options(), check_mode=False)


def test_given_security_groups_replace_the_default_group():
    with_groups = template_request(options(replication_servers_security_group_ids=["sg-0123456789abcdef0"]), "subnet-1")
    without = template_request(options(), "subnet-1")

    assert (with_groups["associateDefaultSecurityGroup"], with_groups["replicationServersSecurityGroupsIDs"]) == (
        False, ["sg-0123456789abcdef0"])
    assert (without["associateDefaultSecurityGroup"], without["replicationServersSecurityGroupsIDs"]) == (True, [])
    assert "ebsEncryptionKeyArn" not in without
