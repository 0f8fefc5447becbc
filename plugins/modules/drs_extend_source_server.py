#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: drs_extend_source_server
version_added: 0.1.0
short_description: Extend a staging account's DRS source servers into a target account, within its capacity
description:
  - Creates Elastic Disaster Recovery (DRS) extended source servers in the target account (the account of the
    module's credentials) from the source servers of a staging account, so that the target account can recover
    them. Run it with the target account's credentials, in the region the servers replicate in.
  - Before changing anything, lists the target account's source servers. This proves access (DRS initialized,
    the role allowed; otherwise the module fails and names the setup step to run), counts the servers against
    O(capacity_limit), and shows which staging servers are already extended.
  - Servers already extended are reported in RV(already_extended) and left unchanged, so a second run changes
    nothing. The error DRS returns when a server is extended twice is matched on its code and confirmed with a
    fresh listing.
  - Warns when the target account reaches each of O(capacity_warning_thresholds) percent of O(capacity_limit)
    after extension, and never extends past the limit; the servers left out are listed in RV(left_out). When DRS
    itself refuses more servers (C(ServiceQuotaExceededException)), the rest are left out too.
  - A server DRS rejects (C(ValidationException), C(ResourceNotFoundException)) is skipped with its reason and the
    others go on; the module then fails with every result returned. Access denied or an uninitialized account
    stops the run with the setup step to take.
  - Throttling errors are retried with jittered backoff; connection errors and timeouts are retried by botocore.
author:
  - DRS orchestration contributors (@drs-orchestration)
options:
  staging_account_id:
    description:
      - The staging account whose source servers are extended (12 digits, quoted as a string). It must trust the
        target account in its DRS settings.
    type: str
    required: true
  source_server_arns:
    description:
      - Only these staging source servers (ARNs in O(staging_account_id) and this region). By default, every server
        the staging account can extend into the target account.
    type: list
    elements: str
  tags:
    description:
      - Tags for every extended server, over the default tags.
    type: dict
    default: {}
  default_tags:
    description:
      - Also tag every extended server with C(ExtendedFrom) (the staging account id) and, when O(deployment_id) is
        given, C(DeploymentId).
    type: bool
    default: true
  deployment_id:
    description:
      - The deployment the extension belongs to, for the C(DeploymentId) tag (see O(default_tags)).
    type: str
  capacity_limit:
    description:
      - The most source servers the target account may hold in the region, its own and extended ones. DRS allows
        300 per account and region.
    type: int
    default: 300
  capacity_warning_thresholds:
    description:
      - Percentages of O(capacity_limit); a warning is given for each one the target account reaches after extension.
    type: list
    elements: int
    default: [80, 90]
  wait:
    description:
      - Confirm each new extended server in C(DescribeSourceServers) before returning.
    type: bool
    default: true
  wait_timeout:
    description:
      - How long to wait for the confirmation, in seconds. Servers not seen by then are reported in a warning.
    type: int
    default: 300
  poll_interval:
    description:
      - Seconds between two confirmation checks.
    type: int
    default: 5
  metrics_namespace:
    description:
      - Publish the run's figures to this CloudWatch namespace, in the target account (C(ExtendedSourceServers),
        C(ExtensionFailures), C(AlreadyExtendedCount), C(ExtensionDuration)), with dimension C(StagingAccountId)
        and without dimensions. A failure to publish only warns.
    type: str
notes:
  - >-
    Permissions used in the target account: C(drs:DescribeSourceServers), C(drs:ListExtensibleSourceServers),
    C(drs:CreateExtendedSourceServer), C(drs:TagResource) (tags on create), C(cloudwatch:PutMetricData) when
    O(metrics_namespace) is set; C(sts:GetCallerIdentity) names the account in messages.
  - Supports check mode; it returns the plan (RV(would_extend)) and creates nothing.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Extend every server of the staging account into the target account
  drs_orchestration.agent_deployer.drs_extend_source_server:
    region: us-east-1
    staging_account_id: "333333333333"
    access_key: "{{ target_credentials.access_key }}"
    secret_key: "{{ target_credentials.secret_key }}"
    session_token: "{{ target_credentials.session_token }}"
  register: extension

- name: Extend the servers of one deployment, tagged with its id, warning early
  drs_orchestration.agent_deployer.drs_extend_source_server:
    region: us-east-1
    staging_account_id: "333333333333"
    source_server_arns: "{{ registered_arns }}"
    deployment_id: "{{ deployment_id }}"
    tags:
      Application: orders
    capacity_warning_thresholds: [70, 80, 90]
    metrics_namespace: DRSOrchestration/Extension
"""

RETURN = r"""
extended:
  description: The servers extended by this run.
  returned: always
  type: list
  elements: dict
  contains:
    staging_source_server_arn:
      description: The staging server's ARN.
      type: str
      sample: arn:aws:drs:us-east-1:333333333333:source-server/s-1234567890abcdef0
    source_server_id:
      description: The new extended source server's id in the target account.
      type: str
      sample: s-0fedcba9876543210
    arn:
      description: The new extended source server's ARN.
      type: str
    hostname:
      description: The server's hostname.
      type: str
    staging_area_status:
      description: C(EXTENDED) once confirmed.
      type: str
    confirmed:
      description: Whether C(DescribeSourceServers) showed the server as extended (with O(wait)).
      type: bool
already_extended:
  description: Servers extended before this run, left unchanged; same fields as RV(extended).
  returned: always
  type: list
  elements: dict
would_extend:
  description: In check mode, the servers that would be extended (C(staging_source_server_arn), C(hostname)).
  returned: in check mode
  type: list
  elements: dict
failed_servers:
  description: Servers that could not be extended.
  returned: always
  type: list
  elements: dict
  contains:
    staging_source_server_arn:
      description: The staging server's ARN.
      type: str
    error_code:
      description: The DRS error code, C(NotExtensible) for a server the staging account cannot extend here, or
        C(EXTENSION_ERROR) for one DRS created but reports broken.
      type: str
      sample: ValidationException
    message:
      description: What went wrong.
      type: str
    remediation:
      description: The setup step to take, when the error points to one.
      type: str
      returned: when known
left_out:
  description: Servers not extended because the target account would exceed its capacity, with the reason.
  returned: always
  type: list
  elements: dict
capacity:
  description: The target account's source servers in the region against O(capacity_limit).
  returned: always
  type: dict
  contains:
    limit:
      description: O(capacity_limit).
      type: int
      sample: 300
    before:
      description: Source servers before this run.
      type: int
      sample: 235
    after:
      description: Source servers after this run (in check mode, after the plan).
      type: int
      sample: 300
    room_before:
      description: How many servers could be added before this run.
      type: int
      sample: 65
    utilization_percent:
      description: RV(capacity.after) as a percentage of the limit.
      type: float
      sample: 100.0
    thresholds_reached:
      description: The warning thresholds reached after this run.
      type: list
      elements: int
      sample: [80, 90]
extension_warnings:
  description: Capacity, confirmation and metrics warnings, also shown as Ansible warnings.
  returned: always
  type: list
  elements: str
tags:
  description: The tags given to each extended server.
  returned: always
  type: dict
  sample: {"ExtendedFrom": "333333333333", "DeploymentId": "5f0c..."}
counts:
  description: How many servers are in RV(extended), RV(already_extended), RV(failed_servers) (as C(failed)), RV(left_out), and RV(would_extend).
  returned: always
  type: dict
  sample: {"extended": 12, "already_extended": 3, "failed": 0, "left_out": 0}
duration_seconds:
  description: How long the run took.
  returned: always
  type: float
target_account_id:
  description: The target account (the module's credentials).
  returned: always
  type: str
  sample: "444444444444"
metrics_published:
  description: Whether the metrics reached CloudWatch.
  returned: when O(metrics_namespace) is set and not in check mode
  type: bool
"""

try:
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass  # AnsibleAWSModule reports a missing botocore

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import extension
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.aws import RETRY
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.clock import module_clock


def main():
    argument_spec = dict(
        staging_account_id=dict(type="str", required=True),
        source_server_arns=dict(type="list", elements="str"),
        tags=dict(type="dict", default={}),
        default_tags=dict(type="bool", default=True),
        deployment_id=dict(type="str"),
        capacity_limit=dict(type="int", default=300),
        capacity_warning_thresholds=dict(type="list", elements="int", default=[80, 90]),
        wait=dict(type="bool", default=True),
        wait_timeout=dict(type="int", default=300),
        poll_interval=dict(type="int", default=5),
        metrics_namespace=dict(type="str"),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    params = dict(module.params, region=module.region)
    errors = extension.option_errors(params) + list(filter(None, [extension.tag_count_error(extension.server_tags(params))]))
    if not module.region:
        errors.insert(0, "region: no region given; set region (or AWS_REGION) to the servers' region")
    if errors:
        module.fail_json(msg="invalid options: " + "; ".join(errors))
    clock = module_clock(module)

    try:
        account_id = module.client("sts", retry_decorator=RETRY).get_caller_identity(aws_retry=True)["Account"]
        cloudwatch = module.client("cloudwatch", retry_decorator=RETRY) if params["metrics_namespace"] else None
        result = extension.extend(module.client("drs", retry_decorator=RETRY), params, account_id, module.region,
                                  module.check_mode, module.warn, clock, cloudwatch)
    except extension.ExtensionSetupError as error:
        module.fail_json(msg=str(error), **error.partial)
    except (BotoCoreError, ClientError) as error:
        module.fail_json_aws(error, msg=f"Could not extend the servers of staging account {params['staging_account_id']}")

    result["target_account_id"] = account_id
    if result["failed_servers"]:
        module.fail_json(
            msg=f"{len(result['failed_servers'])} server(s) could not be extended: "
                + "; ".join(f"{entry['staging_source_server_arn']}: {entry['error_code']}: {entry['message']}"
                            for entry in result["failed_servers"]),
            **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
