#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: drs_initialize
short_description: Initialize AWS Elastic Disaster Recovery and create its default replication settings
version_added: 0.1.0
description:
  - Makes one account and region ready to receive DRS replication, as the DRS console's first-time setup does.
  - Calls C(InitializeService) if DRS answers C(UninitializedAccountException) there.
  - Creates a replication configuration template (the default replication settings) only if the region has none;
    an existing template is never modified.
  - Reports C(changed=true) only when it initialized DRS or created a template. In check mode it only reads and
    reports what it would do.
author:
  - DRS orchestration contributors (@drs-orchestration)
options:
  staging_area_subnet_id:
    description:
      - The subnet where DRS launches replication servers.
      - When omitted, the default subnet of the region's default VPC (first availability zone) is used; the task
        fails if a template must be created and the region has no default VPC.
    type: str
  replication_servers_security_group_ids:
    description:
      - Security groups for the replication servers (at most 32).
      - When empty, DRS creates and attaches its default security group (TCP 1500 inbound from the source servers).
    type: list
    elements: str
    default: []
  replication_server_instance_type:
    description:
      - The EC2 instance type of the replication servers.
    type: str
    default: t3.small
  default_large_staging_disk_type:
    description:
      - The EBS volume type for staging disks of large source disks.
    type: str
    choices: [GP2, GP3, ST1, AUTO]
    default: GP3
  ebs_encryption:
    description:
      - How staging disks are encrypted. C(CUSTOM) needs I(ebs_encryption_key_arn).
    type: str
    choices: [DEFAULT, CUSTOM, NONE]
    default: DEFAULT
  ebs_encryption_key_arn:
    description:
      - The KMS key ARN for C(ebs_encryption=CUSTOM).
    type: str
  bandwidth_throttling:
    description:
      - The replication bandwidth limit per source server in Mbps; C(0) for no limit.
    type: int
    default: 0
  data_plane_routing:
    description:
      - Whether agents reach replication servers on their private or public IP addresses.
    type: str
    choices: [PRIVATE_IP, PUBLIC_IP]
    default: PRIVATE_IP
  create_public_ip:
    description:
      - Whether replication servers get a public IP address.
    type: bool
    default: false
  staging_area_tags:
    description:
      - Tags for the resources DRS creates in the staging area (replication servers, staging disks, snapshots).
    type: dict
    default: {}
  tags:
    description:
      - Tags for the replication configuration template itself.
    type: dict
    default: {}
notes:
  - The caller needs C(drs:DescribeReplicationConfigurationTemplates), C(drs:InitializeService),
    C(drs:CreateReplicationConfigurationTemplate), C(drs:TagResource) when I(tags) are given, C(ec2:DescribeSubnets)
    when I(staging_area_subnet_id) is omitted, and the IAM permissions C(InitializeService) uses to create the DRS
    roles (see the staging account template of the C(drs_account_setup) role).
  - The point-in-time policy is the DRS default (every 10 minutes for an hour, hourly for a day, daily for a week).
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Initialize DRS in the staging account's region and create its replication settings
  drs_orchestration.agent_deployer.drs_initialize:
    region: us-east-1
    staging_area_subnet_id: subnet-0a1b2c3d4e5f60718
    ebs_encryption: DEFAULT
    bandwidth_throttling: 100
    staging_area_tags:
      CostCenter: disaster-recovery
"""

RETURN = r"""
service_initialized:
  description: Whether DRS was not initialized in the region, so that this task initialized it (or would, in check mode).
  returned: always
  type: bool
  sample: true
template_created:
  description: Whether the region had no replication configuration template, so that this task created one (or would).
  returned: always
  type: bool
  sample: true
replication_configuration_template:
  description:
    - The replication configuration template in force (the existing one, or the new one).
    - Empty in check mode when it would be created.
  returned: always
  type: dict
  contains:
    replication_configuration_template_id:
      description: The template id.
      type: str
      sample: rct-0123456789abcdef0
    arn:
      description: The template ARN.
      type: str
    staging_area_subnet_id:
      description: The subnet of the replication servers.
      type: str
      sample: subnet-0a1b2c3d4e5f60718
    replication_server_instance_type:
      description: The instance type of the replication servers.
      type: str
      sample: t3.small
    ebs_encryption:
      description: How staging disks are encrypted.
      type: str
      sample: DEFAULT
    bandwidth_throttling:
      description: The bandwidth limit in Mbps (0 for none).
      type: int
      sample: 0
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule
from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.aws import RETRY
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.drs_setup import (
    NoStagingSubnet,
    SetupInputError,
    check_template_options,
    ensure_drs_ready,
)

try:
    import botocore
except ImportError:
    pass  # AnsibleAWSModule reports a missing botocore


def main():
    argument_spec = dict(
        staging_area_subnet_id=dict(type="str"),
        replication_servers_security_group_ids=dict(type="list", elements="str", default=[]),
        replication_server_instance_type=dict(type="str", default="t3.small"),
        default_large_staging_disk_type=dict(type="str", choices=["GP2", "GP3", "ST1", "AUTO"], default="GP3"),
        ebs_encryption=dict(type="str", choices=["DEFAULT", "CUSTOM", "NONE"], default="DEFAULT"),
        ebs_encryption_key_arn=dict(type="str", no_log=False),
        bandwidth_throttling=dict(type="int", default=0),
        data_plane_routing=dict(type="str", choices=["PRIVATE_IP", "PUBLIC_IP"], default="PRIVATE_IP"),
        create_public_ip=dict(type="bool", default=False),
        staging_area_tags=dict(type="dict", default={}),
        tags=dict(type="dict", default={}),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    try:
        check_template_options(module.params)
    except SetupInputError as error:
        module.fail_json(msg=str(error))

    drs = module.client("drs", retry_decorator=RETRY)
    ec2 = module.client("ec2", retry_decorator=RETRY)
    try:
        result = ensure_drs_ready(drs, ec2, module.params, module.check_mode)
    except NoStagingSubnet:
        module.fail_json(
            msg=f"No replication configuration template exists in {module.region} and the region has no default "
            "subnet to put replication servers in: set staging_area_subnet_id to a subnet of the staging account"
        )
    except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as error:
        module.fail_json_aws(
            error,
            msg=f"Failed to initialize DRS or create its replication configuration template in {module.region}: check "
            "that the role has the staging account permissions (drs:InitializeService, replication templates, and the "
            "IAM permissions InitializeService uses)",
        )
    # Tag keys are case-sensitive: keep them as they are.
    template = camel_dict_to_snake_dict(result["replication_configuration_template"], ignore_list=["tags", "stagingAreaTags"])
    module.exit_json(
        changed=result["changed"],
        service_initialized=result["service_initialized"],
        template_created=result["template_created"],
        replication_configuration_template=template,
    )


if __name__ == "__main__":
    main()
