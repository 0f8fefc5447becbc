#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: drs_discover
version_added: 0.1.0
short_description: Find the EC2 instances tagged for disaster recovery and arrange them in waves
description:
  - Finds the EC2 instances of one account and region that carry the disaster recovery tags, and
    returns them ready for planning an agent deployment, wave by wave.
  - Waves come from a tag holding a whole number (O(wave_tag_key)) and are returned in numeric order,
    so wave V(10) comes after wave V(2).
  - Instances whose wave tag is missing, not a whole number or negative are never dropped silently;
    they are listed in RV(invalid_wave_instances) with the reason.
  - With O(include_ssm_status=true) each instance carries its Systems Manager (SSM) status, so a plan
    can tell which instances can receive the agent through SSM.
  - The options are checked before any AWS call; a bad tag filter or wave number fails with a
    message naming the option.
  - Read-only; it never changes anything and is safe in check mode.
  - AWS calls, whatever the size of the fleet, are one paged C(ec2:DescribeInstances) (1,000 instances
    a page), one C(sts:GetCallerIdentity), and one C(ssm:DescribeInstanceInformation) per 50 instances found.
  - The C(drs_agent_deploy) role discovers every account-region of a deployment at once with the same code (see
    M(drs_orchestration.agent_deployer.drs_rollout)).
author:
  - DRS orchestration contributors (@drs-orchestration)
options:
  tag_filters:
    description:
      - The tags an instance must carry, as a mapping of tag key to a value or a list of values
        (any of them matches; EC2 wildcards V(*) and V(?) work).
      - Every key must match. Keys have 1 to 128 characters, values 1 to 256; values are strings, so quote
        V("true").
      - If not set, the environment variable E(DRS_TAG_FILTERS) (a JSON object) is used, then the default.
    type: dict
    default: {"dr:enabled": "true", "dr:recovery-strategy": "drs"}
  wave_tag_key:
    description:
      - The tag that holds an instance's wave number (a whole number, 0 or more).
      - If not set, the environment variable E(DRS_WAVE_TAG_KEY) is used, then the default.
    type: str
    default: "dr:wave"
  priority_tag_key:
    description:
      - The tag that holds an instance's priority within its wave, reported as it is.
      - If not set, the environment variable E(DRS_PRIORITY_TAG_KEY) is used, then the default.
    type: str
    default: "dr:priority"
  waves:
    description:
      - Only report instances in these waves (whole numbers). Instances without a usable wave tag are
        always reported in RV(invalid_wave_instances).
      - If not set, every wave is reported.
    type: list
    elements: raw
  instance_states:
    description:
      - The EC2 instance states to report.
    type: list
    elements: str
    choices: [pending, running, shutting-down, terminated, stopping, stopped]
    default: [running]
  include_ssm_status:
    description:
      - Look up each instance in Systems Manager and report its ping status, platform and agent version.
    type: bool
    default: true
notes:
  - Permissions used are C(sts:GetCallerIdentity), C(ec2:DescribeInstances) and, with
    O(include_ssm_status=true), C(ssm:DescribeInstanceInformation).
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Find the instances tagged for DRS in the current account and region
  drs_orchestration.agent_deployer.drs_discover:
    region: us-east-1
  register: discovered

- name: Show the waves in the order they will run
  ansible.builtin.debug:
    msg: "wave {{ item.wave }}: {{ item.instance_ids | join(', ') }}"
  loop: "{{ discovered.waves }}"

- name: Only the instances of waves 1 and 2 that belong to two applications, without SSM lookups
  drs_orchestration.agent_deployer.drs_discover:
    region: us-west-2
    tag_filters:
      dr:enabled: "true"
      Application: [orders, storefront]
    waves: [1, 2]
    include_ssm_status: false
"""

RETURN = r"""
account_id:
  description: The account the credentials belong to, where the instances were searched.
  returned: always
  type: str
  sample: "222222222222"
region:
  description: The region searched.
  returned: always
  type: str
  sample: us-east-1
instances:
  description: Every instance found, ordered by wave then instance id (instances without a usable wave last).
  returned: always
  type: list
  elements: dict
  contains:
    instance_id:
      description: The EC2 instance id.
      type: str
      sample: i-0123456789abcdef0
    name:
      description: The value of the C(Name) tag, or an empty string.
      type: str
      sample: app-01
    account_id:
      description: The instance's account.
      type: str
      sample: "222222222222"
    region:
      description: The instance's region.
      type: str
      sample: us-east-1
    platform:
      description: V(windows) or V(linux), from EC2.
      type: str
      sample: linux
    state:
      description: The EC2 instance state.
      type: str
      sample: running
    instance_type:
      description: The EC2 instance type.
      type: str
      sample: t3.medium
    private_ip_address:
      description: The instance's private IPv4 address.
      type: str
      sample: 10.0.1.15
    wave:
      description: The wave number, or V(null) when the wave tag is missing or not usable.
      type: int
      sample: 2
    wave_error:
      description: Why the wave tag is not usable, or V(null).
      type: str
      sample: null
    priority:
      description: The value of the priority tag, or V(null).
      type: str
      sample: high
    tags:
      description: All the instance's tags, as a mapping of key to value.
      type: dict
      sample: {"Name": "app-01", "dr:wave": "2"}
    ssm:
      description:
        - The instance as Systems Manager sees it.
        - C(ping_status) is V(NotManaged) (and C(managed) V(false)) for an instance SSM does not manage.
      returned: when O(include_ssm_status=true)
      type: dict
      contains:
        managed:
          description: Whether SSM manages the instance.
          type: bool
        ping_status:
          description: V(Online), V(ConnectionLost), V(Inactive) or V(NotManaged).
          type: str
        last_ping_date_time:
          description: When the SSM agent last answered (ISO 8601).
          type: str
        platform_type:
          description: V(Linux), V(Windows) or V(MacOS).
          type: str
        platform_name:
          description: The operating system's name.
          type: str
        platform_version:
          description: The operating system's version.
          type: str
        agent_version:
          description: The SSM agent's version.
          type: str
      sample: {"managed": true, "ping_status": "Online", "platform_type": "Linux", "agent_version": "3.3.40.0"}
waves:
  description: The waves in numeric order, each with the ids of its instances.
  returned: always
  type: list
  elements: dict
  contains:
    wave:
      description: The wave number.
      type: int
    instance_ids:
      description: The instances in the wave, by instance id.
      type: list
      elements: str
    count:
      description: How many instances the wave holds.
      type: int
  sample: [{"wave": 1, "instance_ids": ["i-0123456789abcdef0"], "count": 1}]
invalid_wave_instances:
  description: Instances whose wave tag is missing, not a whole number, or negative; they are in no wave.
  returned: always
  type: list
  elements: dict
  contains:
    instance_id:
      description: The EC2 instance id.
      type: str
    name:
      description: The value of the C(Name) tag, or an empty string.
      type: str
    reason:
      description: What is wrong with the wave tag.
      type: str
  sample: [{"instance_id": "i-0123456789abcdef0", "name": "batch-01", "reason": "the wave tag dr:wave='two' is not an integer"}]
counts:
  description: How many instances were found, by kind.
  returned: always
  type: dict
  contains:
    instances:
      description: Instances found.
      type: int
    in_waves:
      description: Instances with a usable wave.
      type: int
    invalid_wave:
      description: Instances without a usable wave.
      type: int
    waves:
      description: Distinct waves.
      type: int
    ssm_online:
      description: Instances whose SSM ping status is V(Online).
      type: int
      returned: when O(include_ssm_status=true)
    ssm_not_online:
      description: Instances SSM manages that are not V(Online).
      type: int
      returned: when O(include_ssm_status=true)
    ssm_not_managed:
      description: Instances SSM does not manage.
      type: int
      returned: when O(include_ssm_status=true)
  sample: {"instances": 40, "in_waves": 39, "invalid_wave": 1, "waves": 3, "ssm_online": 37, "ssm_not_online": 2, "ssm_not_managed": 1}
"""

try:
    from botocore.exceptions import BotoCoreError
    from botocore.exceptions import ClientError
except ImportError:
    pass  # Handled by AnsibleAWSModule

from ansible.module_utils.basic import env_fallback

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.aws import RETRY
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.discovery import discover
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.tags import DEFAULT_PRIORITY_TAG_KEY
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.tags import DEFAULT_TAG_FILTERS
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.tags import DEFAULT_WAVE_TAG_KEY
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.tags import TagInputError
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.tags import check_tag_filters
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.tags import check_tag_key
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.tags import parse_wave_filter

INSTANCE_STATES = ["pending", "running", "shutting-down", "terminated", "stopping", "stopped"]


def checked_options(params):
    """The module's options, checked and normalized; TagInputError names the one at fault."""
    return {
        "tag_filters": check_tag_filters(params["tag_filters"]),
        "wave_tag_key": check_tag_key("wave_tag_key", params["wave_tag_key"]),
        "priority_tag_key": check_tag_key("priority_tag_key", params["priority_tag_key"]),
        "waves": parse_wave_filter(params["waves"]),
        "instance_states": params["instance_states"],
        "include_ssm_status": params["include_ssm_status"],
    }


PERMISSIONS = "sts:GetCallerIdentity, ec2:DescribeInstances and ssm:DescribeInstanceInformation"


def main():
    argument_spec = dict(
        tag_filters=dict(type="dict", default=dict(DEFAULT_TAG_FILTERS), fallback=(env_fallback, ["DRS_TAG_FILTERS"])),
        # "key" here is a tag's name, not a secret.
        wave_tag_key=dict(
            type="str", default=DEFAULT_WAVE_TAG_KEY, fallback=(env_fallback, ["DRS_WAVE_TAG_KEY"]), no_log=False
        ),
        priority_tag_key=dict(
            type="str", default=DEFAULT_PRIORITY_TAG_KEY, fallback=(env_fallback, ["DRS_PRIORITY_TAG_KEY"]), no_log=False
        ),
        waves=dict(type="list", elements="raw"),
        instance_states=dict(type="list", elements="str", choices=INSTANCE_STATES, default=["running"]),
        include_ssm_status=dict(type="bool", default=True),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)

    try:
        options = checked_options(module.params)
    except TagInputError as e:
        module.fail_json(msg=str(e))

    try:
        account_id = module.client("sts", retry_decorator=RETRY).get_caller_identity(aws_retry=True)["Account"]
        result = discover(
            module.client("ec2", retry_decorator=RETRY),
            module.client("ssm", retry_decorator=RETRY),
            account_id,
            module.region,
            options,
        )
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(
            e, msg=f"Could not discover instances in {module.region}: check the credentials and that they allow "
            f"{PERMISSIONS}"
        )

    module.exit_json(changed=False, account_id=account_id, region=module.region, **result)


if __name__ == "__main__":
    main()
