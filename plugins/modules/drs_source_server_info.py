#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: drs_source_server_info
version_added: 0.1.0
short_description: List AWS Elastic Disaster Recovery source servers and match them to EC2 instances
description:
  - Lists the Elastic Disaster Recovery (DRS) source servers of one account and region, optionally
    only those of given EC2 instances, source server ids or staging accounts (all given filters apply).
  - Each server comes with the EC2 instance id it was registered from, its replication state and error,
    its lifecycle timestamps, its staging area (whether it is extended from a staging account) and its tags.
  - Servers whose replication is C(DISCONNECTED) are stale records (the agent was uninstalled or the
    instance replaced) and are marked with RV(source_servers[].stale=true).
  - The servers are listed once and matched locally, so asking for many instances costs no more calls
    than listing the account (C(drs:DescribeSourceServers), paged); a single instance id uses the
    C(hardwareId) filter.
  - When DRS is not initialized in the account and region, the module fails and says how to initialize it.
author:
  - DRS orchestration contributors (@drs-orchestration)
options:
  instance_ids:
    description:
      - Only servers registered from these EC2 instances.
    type: list
    elements: str
  source_server_ids:
    description:
      - Only these source servers (C(s-) followed by 17 hexadecimal characters).
    type: list
    elements: str
  staging_account_ids:
    description:
      - Only extended source servers whose staging servers are in these accounts (12 digits). Use it in a
        target account to see what was extended from a staging account.
    type: list
    elements: str
notes:
  - The permission used is C(drs:DescribeSourceServers).
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: The source servers of two instances
  drs_orchestration.agent_deployer.drs_source_server_info:
    region: us-west-2
    instance_ids:
      - i-0123456789abcdef0
      - i-0fedcba9876543210
  register: servers

- name: Instances that replicate (stale records left out)
  ansible.builtin.debug:
    msg: "{{ servers.source_servers | rejectattr('stale') | map(attribute='instance_id') | list }}"

- name: Servers a target account holds, extended from the staging account
  drs_orchestration.agent_deployer.drs_source_server_info:
    region: us-east-1
    staging_account_ids: ["333333333333"]
"""

RETURN = r"""
source_servers:
  description: The matching source servers, with the DRS fields in snake case (tags keep their keys).
  returned: always
  type: list
  elements: dict
  contains:
    source_server_id:
      description: The source server id.
      type: str
      sample: s-1234567890abcdef0
    arn:
      description: The source server ARN.
      type: str
    instance_id:
      description: The EC2 instance the server was registered from, or V(null) for a non-EC2 server.
      type: str
      sample: i-0123456789abcdef0
    stale:
      description: V(true) when replication is C(DISCONNECTED); such a record does not count as registered.
      type: bool
      sample: false
    data_replication_info:
      description: Replication state (C(data_replication_state)), error (C(data_replication_error)), lag and disks.
      type: dict
      sample: {"data_replication_state": "CONTINUOUS", "lag_duration": "PT0S"}
    life_cycle:
      description: When the server was added to DRS, first replicated a byte, was last seen, and its last launch.
      type: dict
      sample: {"added_to_service_date_time": "2026-11-25T18:00:00Z"}
    staging_area:
      description: >-
        C(status) V(NOT_EXTENDED) for a server replicating in this account, V(EXTENDED) with
        C(staging_account_id) and C(staging_source_server_arn) for one extended from a staging account,
        V(EXTENSION_ERROR) with C(error_message).
      type: dict
      sample: {"status": "NOT_EXTENDED"}
    source_properties:
      description: What DRS knows of the machine (identification hints, disks, operating system).
      type: dict
    replication_direction:
      description: V(FAILOVER), or V(FAILBACK) for reverse replication.
      type: str
    tags:
      description: The server's tags.
      type: dict
      sample: {"Application": "storefront"}
counts:
  description: How many servers were returned, and how many of them are stale.
  returned: always
  type: dict
  contains:
    source_servers:
      description: Servers returned.
      type: int
    stale:
      description: Servers whose replication is C(DISCONNECTED).
      type: int
  sample: {"source_servers": 2, "stale": 0}
"""

import re

try:
    from botocore.exceptions import BotoCoreError
    from botocore.exceptions import ClientError
except ImportError:
    pass  # Handled by AnsibleAWSModule

from ansible.module_utils.common.dict_transformations import camel_dict_to_snake_dict

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.aws import RETRY
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.source_servers import instance_id_of
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.source_servers import is_stale
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.source_servers import list_source_servers

ID_PATTERNS = {
    "instance_ids": (re.compile(r"^i-[0-9a-fA-F]{8,}$"), "an EC2 instance id such as i-0123456789abcdef0"),
    "source_server_ids": (re.compile(r"^s-[0-9a-zA-Z]{17}$"), "a source server id such as s-1234567890abcdef0"),
    "staging_account_ids": (re.compile(r"^[0-9]{12}$"), "a 12-digit account id, quoted"),
}


def check_ids(params):
    for option, (pattern, expected) in ID_PATTERNS.items():
        for value in params[option] or []:
            if not pattern.match(value):
                return f"{option}: {value!r} is not {expected}"
    return None


def main():
    argument_spec = dict(
        instance_ids=dict(type="list", elements="str"),
        source_server_ids=dict(type="list", elements="str"),
        staging_account_ids=dict(type="list", elements="str"),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    problem = check_ids(module.params)
    if problem:
        module.fail_json(msg=problem)

    try:
        servers = list_source_servers(
            module.client("drs", retry_decorator=RETRY),
            instance_ids=module.params["instance_ids"],
            source_server_ids=module.params["source_server_ids"],
            staging_account_ids=module.params["staging_account_ids"],
        )
    except is_boto3_error_code("UninitializedAccountException") as e:
        module.fail_json_aws(
            e, msg=f"Elastic Disaster Recovery is not initialized in this account in {module.region}. Initialize it "
            "once per account and region: run playbooks/setup_accounts.yml with DRS initialization enabled for this "
            "account, or choose Get started in the Elastic Disaster Recovery console of that region"
        )
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(
            e, msg=f"Could not list DRS source servers in {module.region}: check that the credentials allow "
            "drs:DescribeSourceServers in this account"
        )

    described = [dict(server, instanceId=instance_id_of(server), stale=is_stale(server)) for server in servers]
    module.exit_json(
        changed=False,
        source_servers=[camel_dict_to_snake_dict(server, ignore_list=["tags"]) for server in described],
        counts={"source_servers": len(described), "stale": sum(1 for server in described if server["stale"])},
    )


if __name__ == "__main__":
    main()
