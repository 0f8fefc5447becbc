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
  - Returns recorded deployments (one item per source account and run, written by the C(drs_agent_deploy) role as
    its runs go, or by M(drs_orchestration.agent_deployer.drs_history_record)) newest first, and their failed and
    unprotected instances flattened.
  - A run that is still going shows V(in_progress). A run whose item still says V(in_progress) after its lease
    (C(lease_until), renewed by a running run at every write and at least every 5 minutes, 15 minutes long) was
    killed without a chance to record its end, so it shows V(interrupted), with the recorded status in
    C(recorded_status). A run stopped by Ctrl-C or a termination signal shows V(stopped).
  - Every combination of filters is answered by DynamoDB Query on the table or one of its indexes, never by a Scan.
    O(deployment_id) queries the table; else O(account_id) queries C(AccountIndex); else O(deployment_pattern)
    queries C(PatternIndex); else C(StatusIndex) is queried once per status wanted (O(status); with
    O(failures_only) V(partial), V(failed), V(stopped) and V(interrupted); with no filter or only a time range
    every status) and the answers are merged by time. O(since) and O(until) are a key condition on C(timestamp); the other filters are applied as a
    filter expression.
  - With O(record_type=drill) it returns the recovery drills instead (one item per drill, written by the
    C(drs_drill) role), in RV(drills). O(deployment_id) (C(drill#) and the drill id) queries the table, else
    C(StatusIndex) is queried for V(finished) and V(stopped), the drill statuses; O(since) and O(until) select
    drills by their start. O(account_id), O(status), O(deployment_pattern) and O(failures_only) filter
    deployments only and are refused with drills.
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
    choices: [in_progress, success, partial, failed, stopped, interrupted]
  deployment_pattern:
    description:
      - Only deployments with this pattern.
    type: str
    choices: [same-account, cross-account, multi-account, event]
  since:
    description:
      - Only deployments that started at or after this time, ISO 8601 (a time without zone is UTC) or epoch seconds.
    type: str
  until:
    description:
      - Only deployments that started at or before this time, ISO 8601 or epoch seconds.
    type: str
  record_type:
    description:
      - What to read, V(deployment) (the deployments, one item per source account and run) or V(drill) (the
        recovery drills, returned in RV(drills)).
    type: str
    choices: [deployment, drill]
    default: deployment
  failures_only:
    description:
      - Only deployments with status V(partial), V(failed), V(stopped) or V(interrupted).
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
    - The deployments found, newest first (one item per source account and run), with the attributes described
      in the C(items) that M(drs_orchestration.agent_deployer.drs_history_record) returns; numbers are integers or floats.
    - Besides, C(status) is the effective status (V(interrupted) for a run killed without recording its end, the
      stored one then in C(recorded_status)), and C(failed_instances) lists the account's failed instances.
  returned: always
  type: list
  elements: dict
  contains:
    deployment_id:
      description: The deployment's id.
      type: str
    timestamp:
      description: The item's sort key (the run's start, its source account and run).
      type: str
    source_account_id:
      description: The source account.
      type: str
    status:
      description: V(in_progress), V(success), V(partial), V(failed), V(stopped) or V(interrupted).
      type: str
    recorded_status:
      description: The stored status, when RV(deployments[].status) differs from it (V(in_progress) of an interrupted run).
      type: str
      returned: for interrupted runs
    lease_until:
      description: Until when a run still in progress is known to be going.
      type: str
      returned: for runs in progress
    in_flight:
      description: The installs a stopped or interrupted run left running, each with C(instance_id), C(command_id),
        C(region) and C(wave); the next run that covers them adopts them and sets C(claimed_by).
      type: list
      elements: dict
    failed_instances:
      description: The account's failed instances (see RV(failed_instances) for their fields).
      type: list
      elements: dict
    unprotected_instances:
      description: The account's unprotected instances (see RV(unprotected_instances) for their fields).
      type: list
      elements: dict
drills:
  description:
    - The drills found (O(record_type=drill)), newest first, one item per drill as the drill action records it.
  returned: when O(record_type=drill)
  type: list
  elements: dict
  contains:
    deployment_id:
      description: C(drill#) and the drill id.
      type: str
    run_id:
      description: The drill id.
      type: str
    status:
      description: V(finished), or V(stopped) when the drill was stopped by Ctrl-C or a termination signal.
      type: str
    started_at:
      description: When the drill started, ISO 8601 UTC.
      type: str
    finished_at:
      description: When the drill ended, ISO 8601 UTC.
      type: str
    waves:
      description:
        - Each wave drilled, with C(wave), C(servers), C(launched), C(failed), C(timed_out), C(stopped),
          C(not_protected), C(jobs), C(recovery_seconds) (from its first job's creation to the end of its last
          job; null when nothing was launched), C(rto_seconds) (null without an RTO) and C(over_rto).
      type: list
      elements: dict
    totals:
      description: The servers' outcomes summed over the waves.
      type: dict
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
    instance_id:
      description: The EC2 instance id.
      type: str
    status:
      description: V(failed), V(timed_out) or V(not_registered_after_success).
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
unprotected_instances:
  description:
    - Every unprotected instance of the returned deployments (failed, skipped, still in flight, not started, without
      a wave), flattened, each with its deployment's fields, C(instance_id), C(name), C(region), C(wave),
      C(priority), C(status), C(error_category), C(reason) and C(remediation).
  returned: always
  type: list
  elements: dict
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

import datetime

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
        status=dict(type="str", choices=list(history.FILTER_STATUSES)),
        deployment_pattern=dict(type="str", choices=list(history.RECORDED_PATTERNS)),
        since=dict(type="str"),
        until=dict(type="str"),
        failures_only=dict(type="bool", default=False),
        record_type=dict(type="str", default="deployment", choices=list(history.RECORD_TYPES)),
        limit=dict(type="int", default=100),
        next_token=dict(type="str", no_log=False),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)

    errors = history.info_option_errors(module.params)
    if errors:
        module.fail_json(msg="; ".join(errors))

    try:
        result = history.query_history(module.client("dynamodb", retry_decorator=RETRY), module.params,
                                       datetime.datetime.now(datetime.timezone.utc))
    except history.HistoryInputError as e:
        module.fail_json(msg=str(e))
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Could not query the deployment history table {module.params['table_name']}")

    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
