# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Account setup: the collection's SSM install document, DRS initialization and the default
replication configuration template.

Every change is made only when it is needed, so a second run changes nothing; in check mode the
same decisions are taken from read-only calls and nothing is written. User input is checked by
``check_document_input`` and ``check_template_options`` before any AWS call; they raise
``SetupInputError`` with a message that names the option and says what to write instead.
"""

import json
import re

try:
    import yaml

    HAS_YAML = True
except ImportError:
    HAS_YAML = False  # drs_ssm_document reports it as a missing requirement

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.aws import pages

# SSM document names: 3 to 128 letters, digits, _ - and .; the prefixes aws, amazon and amzn are
# reserved for AWS's own documents.
DOCUMENT_NAME = re.compile(r"^[a-zA-Z0-9_.-]{3,128}$")
RESERVED_DOCUMENT_PREFIXES = ("aws", "amazon", "amzn")

# DRS's default point-in-time policy (the console's default replication settings).
DEFAULT_PIT_POLICY = [
    {"ruleID": 1, "units": "MINUTE", "interval": 10, "retentionDuration": 60, "enabled": True},
    {"ruleID": 2, "units": "HOUR", "interval": 1, "retentionDuration": 24, "enabled": True},
    {"ruleID": 3, "units": "DAY", "interval": 1, "retentionDuration": 7, "enabled": True},
]
SUBNET_ID = re.compile(r"^subnet-[0-9a-fA-F]{8,}$")
SECURITY_GROUP_ID = re.compile(r"^sg-[0-9a-fA-F]{8,}$")
KMS_KEY_ARN = re.compile(r"^arn:.{16,2044}$")
MAX_SECURITY_GROUPS = 32


class SetupInputError(ValueError):
    """An option given by the user that cannot be used."""


# --- the SSM document ---------------------------------------------------------------------------


def parse_document(content, document_format):
    """The document's content as data, to compare versions regardless of layout."""
    return json.loads(content) if document_format == "JSON" else yaml.safe_load(content)


def check_document_input(name, content, document_format):
    if not DOCUMENT_NAME.match(name):
        raise SetupInputError(
            f"name: {name!r} is not a valid SSM document name; use 3 to 128 letters, digits, _, - or ."
        )
    if name.lower().startswith(RESERVED_DOCUMENT_PREFIXES):
        raise SetupInputError(
            f"name: {name!r} starts with a prefix AWS reserves for its own documents (aws, amazon, amzn); "
            "choose another name"
        )
    try:
        parsed = parse_document(content, document_format)
    except (ValueError, yaml.YAMLError) as error:
        raise SetupInputError(
            f"content: it is not valid {document_format} ({error}); fix the document or set document_format"
        ) from None
    if not isinstance(parsed, dict) or "schemaVersion" not in parsed:
        raise SetupInputError(
            "content: a Command document is a mapping with schemaVersion, parameters and mainSteps; "
            "this one has no schemaVersion"
        )


def _document_content(ssm, name, version, document_format):
    return ssm.get_document(aws_retry=True, Name=name, DocumentVersion=version, DocumentFormat=document_format)[
        "Content"
    ]


def _version_with_content(ssm, name, latest_version, wanted, document_format):
    """The newest version of the document whose content is ``wanted``, or None.

    SSM numbers a document's versions 1, 2, ... up to its latest version.
    """
    for version in range(int(latest_version), 0, -1):
        if parse_document(_document_content(ssm, name, str(version), document_format), document_format) == wanted:
            return str(version)
    return None


def _describe_document(ssm, name):
    try:
        return ssm.describe_document(aws_retry=True, Name=name)["Document"]
    except is_boto3_error_code("InvalidDocument"):
        return None


def ensure_document(ssm, name, content, document_format, check_mode):
    """Create the Command document, or make ``content`` its default version if it is not already.

    Returns ``(changed, document, diff)``: ``document`` is DescribeDocument's answer after the
    change (``{}`` when check mode would create it), ``diff`` the default content before and after.
    """
    wanted = parse_document(content, document_format)
    current = _describe_document(ssm, name)
    if current is None:
        diff = {"before": "", "after": content, "before_header": f"{name} (absent)", "after_header": f"{name} (new)"}
        if check_mode:
            return True, {}, diff
        ssm.create_document(
            aws_retry=True, Name=name, Content=content, DocumentType="Command", DocumentFormat=document_format
        )
        return True, _describe_document(ssm, name), diff

    if current.get("DocumentType") != "Command":
        raise SetupInputError(
            f"name: the document {name} exists as a {current.get('DocumentType')} document; "
            "the install document must be a Command document, so choose another name"
        )
    default_version = current["DefaultVersion"]
    default_content = _document_content(ssm, name, default_version, document_format)
    if parse_document(default_content, document_format) == wanted:
        return False, current, {}

    diff = {
        "before": default_content,
        "after": content,
        "before_header": f"{name} (default version {default_version})",
        "after_header": f"{name} (new default version)",
    }
    if check_mode:
        return True, current, diff
    try:
        updated = ssm.update_document(
            aws_retry=True, Name=name, Content=content, DocumentVersion="$LATEST", DocumentFormat=document_format
        )
        new_version = updated["DocumentDescription"]["DocumentVersion"]
    except is_boto3_error_code("DuplicateDocumentContent"):
        # SSM refuses content that an existing version already has (an earlier content restored,
        # or a run that stopped before UpdateDocumentDefaultVersion): make that version the default.
        new_version = _version_with_content(ssm, name, current["LatestVersion"], wanted, document_format)
        if new_version is None:
            raise
    ssm.update_document_default_version(aws_retry=True, Name=name, DocumentVersion=new_version)
    return True, _describe_document(ssm, name), diff


# --- DRS initialization and the replication configuration template -----------------------------


def check_template_options(options):
    subnet = options.get("staging_area_subnet_id")
    if subnet is not None and not SUBNET_ID.match(subnet):
        raise SetupInputError(
            f"staging_area_subnet_id: {subnet!r} is not a subnet id; write it as subnet- followed by hex digits"
        )
    groups = options.get("replication_servers_security_group_ids") or []
    if len(groups) > MAX_SECURITY_GROUPS:
        raise SetupInputError(
            f"replication_servers_security_group_ids: {len(groups)} groups given; DRS takes at most {MAX_SECURITY_GROUPS}"
        )
    for group in groups:
        if not SECURITY_GROUP_ID.match(group):
            raise SetupInputError(
                f"replication_servers_security_group_ids: {group!r} is not a security group id; "
                "write it as sg- followed by hex digits"
            )
    key = options.get("ebs_encryption_key_arn")
    if options.get("ebs_encryption") == "CUSTOM" and not key:
        raise SetupInputError("ebs_encryption_key_arn: required when ebs_encryption is CUSTOM; give the KMS key ARN")
    if key and options.get("ebs_encryption") != "CUSTOM":
        raise SetupInputError("ebs_encryption_key_arn: only used when ebs_encryption is CUSTOM; set both or neither")
    if key and not KMS_KEY_ARN.match(key):
        raise SetupInputError(f"ebs_encryption_key_arn: {key!r} is not an ARN; write arn:aws:kms:<region>:<account>:key/<id>")
    if options.get("bandwidth_throttling", 0) < 0:
        raise SetupInputError("bandwidth_throttling: give a number of Mbps, 0 for no limit")


def _templates_or_uninitialized(drs):
    """The replication configuration templates, or None when DRS is not initialized here."""
    try:
        return [
            template
            for page in pages(drs.describe_replication_configuration_templates, "nextToken")
            for template in page.get("items", [])
        ]
    except is_boto3_error_code("UninitializedAccountException"):
        return None


def default_subnet_id(ec2):
    """The default subnet of the region's default VPC in the first availability zone, or None."""
    subnets = [
        subnet
        for page in pages(ec2.describe_subnets, Filters=[{"Name": "default-for-az", "Values": ["true"]}])
        for subnet in page.get("Subnets", [])
    ]
    if not subnets:
        return None
    return min(subnets, key=lambda subnet: subnet["AvailabilityZone"])["SubnetId"]


def template_request(options, subnet_id):
    """CreateReplicationConfigurationTemplate's parameters from the module options."""
    groups = options.get("replication_servers_security_group_ids") or []
    request = {
        "stagingAreaSubnetId": subnet_id,
        "associateDefaultSecurityGroup": not groups,
        "replicationServersSecurityGroupsIDs": groups,
        "replicationServerInstanceType": options["replication_server_instance_type"],
        "useDedicatedReplicationServer": False,
        "defaultLargeStagingDiskType": options["default_large_staging_disk_type"],
        "ebsEncryption": options["ebs_encryption"],
        "bandwidthThrottling": options["bandwidth_throttling"],
        "dataPlaneRouting": options["data_plane_routing"],
        "createPublicIP": options["create_public_ip"],
        "stagingAreaTags": options.get("staging_area_tags") or {},
        "pitPolicy": DEFAULT_PIT_POLICY,
        "tags": options.get("tags") or {},
    }
    if options.get("ebs_encryption_key_arn"):
        request["ebsEncryptionKeyArn"] = options["ebs_encryption_key_arn"]
    return request


class NoStagingSubnet(Exception):
    """A template must be created, no subnet was given and the region has no default subnet."""


def ensure_drs_ready(drs, ec2, options, check_mode):
    """Initialize DRS if it is not, and create a replication configuration template if none exists.

    Returns ``{"changed", "service_initialized", "template_created", "replication_configuration_template"}``;
    the template is the one in force (the first existing one, or the new one; ``{}`` when check
    mode would create it).
    """
    templates = _templates_or_uninitialized(drs)
    service_initialized = templates is None
    if service_initialized:
        if not check_mode:
            drs.initialize_service(aws_retry=True)
        templates = []
    if templates:
        return {
            "changed": service_initialized,
            "service_initialized": service_initialized,
            "template_created": False,
            "replication_configuration_template": templates[0],
        }
    subnet_id = options.get("staging_area_subnet_id") or default_subnet_id(ec2)
    if subnet_id is None:
        raise NoStagingSubnet()
    template = {}
    if not check_mode:
        template = drs.create_replication_configuration_template(aws_retry=True, **template_request(options, subnet_id))
        template.pop("ResponseMetadata", None)
    return {
        "changed": True,
        "service_initialized": service_initialized,
        "template_created": True,
        "replication_configuration_template": template,
    }
