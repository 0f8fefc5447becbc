#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: drs_history_info
version_added: 0.1.0
short_description: Query the DynamoDB deployment history of DRS agent deployments
description:
  - Returns recorded deployments (one item per source account and deployment, see
    M(drs_orchestration.agent_deployer.drs_history_record)) newest first, and their failed instances flattened.
  - Every combination of filters is answered by DynamoDB Query on the table or one of its indexes, never by a Scan.
    O(deployment_id) queries the table; else O(account_id) queries C(AccountIndex); else O(deployment_pattern)
    queries C(PatternIndex); else C(StatusIndex) is queried once per status wanted (O(status); with
    O(failures_only) V(partial) and V(failed); with no filter or only a time range all three) and the answers are
    merged by time. O(since) and O(until) are a key condition on C(timestamp); the other filters are applied as a
    filter expression.
  - At most O(limit) deployments are returned per call; RV(next_token) resumes where the call stopped when given
    back as O(next_token) with the same filters.
  - Read-only; safe in check mode. The options are checked before any AWS call.
author:
  - DRS orchestration contributors (@drs-orchestration)
options:
  table_name:
    description:
      - The deployment history table.
    type: str
    required: true
  deployment_id:
    description:
      - Only the items of this deployment (one per source account).
    type: str
  account_id:
    description:
      - Only the deployments of this source account (12 digits).
    type: str
  status:
    description:
      - Only deployments with this status.
    type: str
    choices: [success, partial, failed]
  deployment_pattern:
    description:
      - Only deployments with this pattern.
    type: str
    choices: [same-account, cross-account, multi-account]
  since:
    description:
      - Only deployments that ended at or after this time, ISO 8601 (a time without zone is UTC) or epoch seconds.
    type: str
  until:
    description:
      - Only deployments that ended at or before this time, ISO 8601 or epoch seconds.
    type: str
  failures_only:
    description:
      - Only deployments with status V(partial) or V(failed).
    type: bool
    default: false
  limit:
    description:
      - The most deployments to return in one call, 1 to 1000.
    type: int
    default: 100
  next_token:
    description:
      - The RV(next_token) of an earlier call with the same filters, to get the deployments after those it returned.
    type: str
notes:
  - Permissions used are C(dynamodb:Query) on the table and its indexes.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: The failed and partial deployments of the last week
  drs_orchestration.agent_deployer.drs_history_info:
    table_name: drs-deployment-history
    since: "{{ '%Y-%m-%dT%H:%M:%SZ' | strftime(now(utc=true).timestamp() - 7 * 86400, utc=true) }}"
    failures_only: true
  register: history

- name: Every deployment of one account, page by page
  drs_orchestration.agent_deployer.drs_history_info:
    table_name: drs-deployment-history
    account_id: "222222222222"
    limit: 50
    next_token: "{{ previous_page.next_token | default(omit) }}"
  register: page

- name: One deployment, all its source accounts
  drs_orchestration.agent_deployer.drs_history_info:
    table_name: drs-deployment-history
    deployment_id: "{{ recorded.deployment_id }}"
"""

RETURN = r"""
deployments:
  description:
    - The deployments found, newest first, as M(drs_orchestration.agent_deployer.drs_history_record) wrote them (one
      item per source account and deployment); numbers are integers or floats.
  returned: always
  type: list
  elements: dict
  contains:
    deployment_id:
      description: The deployment's id.
      type: str
    timestamp:
      description: The deployment's end as ISO 8601 UTC with milliseconds, C(#) and the source account.
      type: str
    source_account_id:
      description: The source account.
      type: str
    source_account_name:
      description: The source account's name, or its id.
      type: str
    deployment_pattern:
      description: V(same-account), V(cross-account) or V(multi-account).
      type: str
    status:
      description: V(success), V(partial) or V(failed).
      type: str
    regions:
      description: The account's regions in the deployment.
      type: list
      elements: str
    staging_account_id:
      description: The account the agents register in.
      type: str
    started_at:
      description: When the deployment started (ISO 8601 UTC).
      type: str
    finished_at:
      description: When the deployment ended (ISO 8601 UTC).
      type: str
    duration_seconds:
      description: Seconds from start to end.
      type: float
    attempted:
      description: Instances attempted.
      type: int
    installed:
      description: Instances installed.
      type: int
    already_registered:
      description: Instances already registered.
      type: int
    failed:
      description: Instances failed, timed out or not registered after SSM success.
      type: int
    skipped:
      description: Instances skipped, not attempted.
      type: int
    success_rate:
      description: Installed plus already registered over attempted (0 to 1), V(null) when nothing was attempted.
      type: float
    stopped_after_wave:
      description: The wave after which the rollout stopped, or V(null).
      type: int
    failed_instances:
      description: The account's unsuccessful instances (see RV(failed_instances) for their fields).
      type: list
      elements: dict
    unreachable:
      description: The account's regions not reached, each with C(region) and C(reason).
      type: list
      elements: dict
    ttl:
      description: When DynamoDB expires the item, in epoch seconds.
      type: int
    extension:
      description: Extension data recorded with the deployment.
      type: dict
      returned: when recorded
failed_instances:
  description: The failed instances of the returned deployments, flattened, each with its deployment's fields.
  returned: always
  type: list
  elements: dict
  contains:
    deployment_id:
      description: The deployment's id.
      type: str
    timestamp:
      description: The deployment item's sort key.
      type: str
    source_account_id:
      description: The deployment item's source account.
      type: str
    source_account_name:
      description: The source account's name.
      type: str
    deployment_pattern:
      description: The deployment's pattern.
      type: str
    instance_id:
      description: The EC2 instance id.
      type: str
    name:
      description: The instance's name.
      type: str
    account_id:
      description: The instance's account.
      type: str
    region:
      description: The instance's region.
      type: str
    status:
      description: V(failed), V(timed_out) or V(not_registered_after_success).
      type: str
    wave:
      description: The instance's wave.
      type: int
    priority:
      description: The instance's priority.
      type: str
    ssm_status:
      description: The last SSM status of the install.
      type: str
    error_category:
      description: Why it failed.
      type: str
    error_message:
      description: The error message, trimmed.
      type: str
    remediation:
      description: What the operator should do.
      type: str
next_token:
  description: Give it back as O(next_token), with the same filters, for the next deployments; V(null) when there are
    no more.
  returned: always
  type: str
count:
  description: How many deployments were returned.
  returned: always
  type: int
  sample: 2
"""

try:
    from botocore.exceptions import BotoCoreError
    from botocore.exceptions import ClientError
except ImportError:
    pass  # Handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.aws import RETRY
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import history


def main():
    argument_spec = dict(
        table_name=dict(type="str", required=True),
        deployment_id=dict(type="str"),
        account_id=dict(type="str"),
        status=dict(type="str", choices=list(history.DEPLOYMENT_STATUSES)),
        deployment_pattern=dict(type="str", choices=list(history.PATTERNS)),
        since=dict(type="str"),
        until=dict(type="str"),
        failures_only=dict(type="bool", default=False),
        limit=dict(type="int", default=100),
        next_token=dict(type="str", no_log=False),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)

    errors = history.info_option_errors(module.params)
    if errors:
        module.fail_json(msg="; ".join(errors))

    try:
        result = history.query_history(module.client("dynamodb", retry_decorator=RETRY), module.params)
    except history.HistoryInputError as e:
        module.fail_json(msg=str(e))
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Could not query the deployment history table {module.params['table_name']}")

    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
