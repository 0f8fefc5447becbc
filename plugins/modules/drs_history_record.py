#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: drs_history_record
version_added: 0.1.0
short_description: Record a finished DRS agent deployment in the DynamoDB deployment history
description:
  - Records one finished deployment, from per-instance results (for example those of
    M(drs_orchestration.agent_deployer.drs_ssm_install)), in the deployment history table that the
    C(drs_history_table) role creates, as one item per source account. The C(drs_agent_deploy) role records its
    runs itself, from their start (see M(drs_orchestration.agent_deployer.drs_rollout)); this module is for
    deployments made otherwise.
  - Computes per account the figures of the collection's outcome model (attempted, installed, already registered,
    protected, failed, skipped, unprotected, success and failure rate; see M(drs_orchestration.agent_deployer.drs_rollout))
    and the status, and lists every unprotected instance with its status, reason and remediation (failed ones with
    their SSM status and error category).
  - "Status: V(success) when every attempted instance is protected (or nothing was to be done); V(failed) when
    none is, when nothing could be attempted though instances were there, or when the account could not be
    reached (O(unreachable)); V(partial) otherwise."
  - Account names come from the C(name) of the O(accounts) entries, else AWS Organizations C(DescribeAccount), else
    the IAM account alias when the account is the credentials' own, else the account id; each is looked up once
    per call and a failed lookup is never fatal.
  - Writes are conditional on the table holding no newer revision of the item, so a retried write is never
    duplicated.
  - When DynamoDB is unavailable or throttles beyond a few retries, the items are written to files in
    O(spool_dir), the task warns and succeeds (unless O(fail_on_error=true)); every later write to the table
    (this module's, or a deployment's) first writes the spooled items and removes their files.
  - Optionally sends CloudWatch metrics per source account and for the whole run (O(metrics_namespace)).
  - Check mode writes nothing (not even the spool) and returns the items it would write.
  - The options are checked before any AWS call; a problem fails with a message naming the option.
author:
  - DRS orchestration contributors (@drs-orchestration)
options:
  table_name:
    description:
      - The deployment history table (the C(TableName) output of the C(drs_history_table) role's stack).
    type: str
    required: true
  results:
    description:
      - The per-instance results of the deployment, as M(drs_orchestration.agent_deployer.drs_ssm_install) returns
        them, each with its account and region added. Other keys are allowed and ignored.
      - "Each needs C(instance_id), C(status) (a status of the outcome model: C(installed), C(already_registered),
        C(failed), C(timed_out), C(not_registered_after_success), C(skipped_ssm_offline), C(skipped_not_managed),
        C(in_flight), C(not_started), C(no_wave)), C(account_id) (12 digits) and C(region)."
      - "For the unprotected ones, each may carry C(name), C(wave), C(priority), C(ssm_status), C(command_id),
        C(error_category), C(reason) (stored trimmed) and C(remediation)."
    type: list
    elements: dict
    default: []
  deployment_pattern:
    description:
      - The deployment pattern. Derived from O(accounts) when not given (several source accounts
        V(multi-account); a staging account other than the source V(cross-account); else V(same-account)).
    type: str
    choices: [same-account, cross-account, multi-account, event]
  started_at:
    description:
      - When the deployment started, ISO 8601 (a time without zone is UTC) or epoch seconds.
      - Defaults to O(finished_at).
    type: raw
  finished_at:
    description:
      - When the deployment ended, ISO 8601 or epoch seconds. Defaults to now.
    type: raw
  accounts:
    description:
      - The source accounts of the deployment (the deployment's input). Every account listed gets an item, also
        when it has no results. Other keys (such as role ARNs) are ignored and never stored.
      - "Each needs C(account_id) (12 digits) and may have C(name) (no lookup is made then), C(staging_account_id)
        (the account its agents register in; the source account itself when not given) and C(regions)."
    type: list
    elements: dict
  unreachable:
    description:
      - Accounts (or account-regions) that could not be reached, for example because their role could not be
        assumed. Their items get status V(failed) and the reason.
      - Each needs C(account_id) and may have C(region) and C(reason).
    type: list
    elements: dict
  stopped_after_wave:
    description:
      - The wave after which the rollout stopped (its failure rate was above the limit), if it stopped.
    type: int
  extension:
    description:
      - Data of the extension of source servers into a target account, stored as-is under C(extension) (keys that
        look like credentials, such as C(secret_key) or C(session_token), are left out).
    type: dict
  deployment_id:
    description:
      - The deployment's id. A new UUID4 when not given; give the same id to record the same deployment again
        without duplicates.
    type: str
  ttl_days:
    description:
      - Days until DynamoDB expires the items (their C(ttl) attribute).
    type: int
    default: 90
  metrics_namespace:
    description:
      - When given, CloudWatch metrics are sent to this namespace per source account, with dimensions C(Account)
        and C(DeploymentPattern) - C(SuccessRate) (percent; left out when nothing was attempted), C(Attempted),
        C(Installed), C(Failed), C(Skipped), C(Unprotected) and C(DurationSeconds) - and the same for the whole run without
        dimensions, which the alarms of the C(drs_monitoring) role watch.
      - A failure to send them is a warning, never fatal.
    type: str
  spool_dir:
    description:
      - Where items are kept when DynamoDB cannot be written, one JSON file per item, readable by its owner only.
      - Give a directory that persists between runs on the controller.
    type: path
    default: ~/.ansible/drs_history_spool
  fail_on_error:
    description:
      - Fail the task when the items could not be written to DynamoDB (they are spooled all the same).
    type: bool
    default: false
notes:
  - "Item layout: partition key C(deployment_id), sort key C(timestamp) = the deployment's start as ISO 8601 UTC
    with milliseconds, then C(#), the source account id, C(#) and the first 8 characters of the run's id (for
    example C(2025-06-01T12:00:00.000Z#222222222222#0f8e4c1a)). Every index sorts items by this key. The
    attributes are those of RV(items); credentials are never stored."
  - "Permissions: C(dynamodb:PutItem) on the table; with O(metrics_namespace), C(cloudwatch:PutMetricData); for
    account names (optional), C(organizations:DescribeAccount), C(sts:GetCallerIdentity) and
    C(iam:ListAccountAliases)."
  - DynamoDB writes are retried a few times only (not the collection's usual ten), so an unavailable table costs
    seconds before the items are spooled.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Record a wave's results in the deployment history
  drs_orchestration.agent_deployer.drs_history_record:
    table_name: drs-deployment-history
    region: us-east-1
    results: "{{ install.results | map('combine', {'account_id': '222222222222', 'region': 'us-east-1'}) }}"
    deployment_pattern: same-account
    started_at: "{{ deployment_started }}"
    finished_at: "{{ now(utc=true).isoformat() }}"

- name: Record a multi-account deployment, with metrics, including an account that could not be reached
  drs_orchestration.agent_deployer.drs_history_record:
    table_name: drs-deployment-history
    results: "{{ all_results }}"
    accounts:
      - {account_id: "222222222222", name: apps, staging_account_id: "333333333333", regions: [us-east-1]}
      - {account_id: "555555555555", name: data, staging_account_id: "333333333333", regions: [us-east-1]}
    unreachable:
      - {account_id: "555555555555", reason: "AccessDenied: the role could not be assumed"}
    deployment_pattern: multi-account
    started_at: 1748779200
    finished_at: 1748781000
    stopped_after_wave: 2
    metrics_namespace: DRS/AgentDeployment
  register: recorded

- name: Show the deployment id
  ansible.builtin.debug:
    msg: "Recorded {{ recorded.deployment_id }} ({{ recorded.items | map(attribute='status') | join(', ') }})"
"""

RETURN = r"""
deployment_id:
  description: The deployment's id (generated unless O(deployment_id) was given).
  returned: always
  type: str
  sample: 0f8e4c1a-5b57-4a53-9d3f-2f0c3c5f1b6e
items:
  description: The items written, spooled, or (in check mode) that would be written; one per source account.
  returned: always
  type: list
  elements: dict
  contains:
    deployment_id:
      description: The deployment's id (partition key).
      type: str
    timestamp:
      description: The sort key (see the notes).
      type: str
      sample: "2025-06-01T12:00:00.000Z#222222222222#0f8e4c1a"
    run_id:
      description: The id of the run that wrote the item.
      type: str
    source_account_id:
      description: The source account.
      type: str
    source_account_name:
      description: The source account's name, or its id when no name was found.
      type: str
    deployment_pattern:
      description: V(same-account), V(cross-account) or V(multi-account).
      type: str
    status:
      description: V(success), V(partial) or V(failed) (a deployment action's records also V(in_progress) and V(stopped)).
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
    by_status:
      description: How many instances ended in each status of the outcome model.
      type: dict
    attempted:
      description: Protected plus failed instances.
      type: int
    success_rate:
      description: Protected over attempted (0 to 1); V(null) when nothing was attempted.
      type: float
    unprotected_instances:
      description:
        - Every unprotected instance (up to 300; C(unprotected_left_out) counts the rest), with C(instance_id),
          C(name), C(region), C(wave), C(priority), C(status), C(error_category), C(ssm_status), C(command_id),
          C(reason) and C(remediation).
      type: list
      elements: dict
    unreachable:
      description: The account's regions that were not reached, each with C(region) (or V(null)) and C(reason).
      type: list
      elements: dict
    ttl:
      description: When DynamoDB expires the item, in epoch seconds.
      type: int
spooled:
  description: The items that could not be written and were spooled by this call.
  returned: always
  type: dict
  contains:
    count:
      description: How many items were spooled.
      type: int
    paths:
      description: The spool files written.
      type: list
      elements: str
  sample: {"count": 0, "paths": []}
flushed:
  description: Spooled items of earlier calls that this call wrote, or found already written.
  returned: always
  type: int
  sample: 0
written:
  description: Items of this deployment written by this call (items already in the table are not counted).
  returned: always
  type: int
  sample: 1
error:
  description: Why the items were spooled.
  returned: when items were spooled
  type: str
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
        # Loose on purpose: drs_ssm_install results and deployment inputs carry more keys; checked below.
        results=dict(type="list", elements="dict", default=[]),
        deployment_pattern=dict(type="str", choices=list(history.RECORDED_PATTERNS)),
        started_at=dict(type="raw"),
        finished_at=dict(type="raw"),
        accounts=dict(type="list", elements="dict"),
        unreachable=dict(type="list", elements="dict"),
        stopped_after_wave=dict(type="int"),
        extension=dict(type="dict"),
        deployment_id=dict(type="str"),
        ttl_days=dict(type="int", default=90),
        metrics_namespace=dict(type="str"),
        spool_dir=dict(type="path", default=history.DEFAULT_SPOOL_DIR),
        fail_on_error=dict(type="bool", default=False),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)

    errors = history.record_option_errors(module.params)
    if not errors and not (module.params["results"] or module.params["accounts"] or module.params["unreachable"]):
        errors.append("results, accounts and unreachable are all empty: there is no source account to record")
    if errors:
        module.fail_json(msg="; ".join(errors))

    try:
        resolver = history.AccountNames(lambda service: module.client(service, retry_decorator=RETRY))
        names = {account_id: name or resolver.name(account_id)
                 for account_id, name in history.names_of(_record_accounts(module.params)).items()}
        store = history.Store(module.client("dynamodb", retry_decorator=history.WRITE_RETRY),
                              module.params["table_name"], module.params["spool_dir"], module.warn)
        cloudwatch = module.client("cloudwatch", retry_decorator=RETRY) if module.params["metrics_namespace"] else None
        result = history.record_finished(module.params, store, names, module.warn, module.check_mode, cloudwatch)
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Could not record the deployment in {module.params['table_name']}")
    except OSError as e:
        module.fail_json(msg=f"Could not write the spool directory {module.params['spool_dir']}: {e}")

    if result["spooled"]["count"] and module.params["fail_on_error"]:
        module.fail_json(msg=f"The deployment history could not be written to {module.params['table_name']}: "
                         f"{result['error']}; the items were spooled to {result['spooled']['paths'][0]}", **result)
    module.exit_json(**result)


def _record_accounts(params):
    return {"accounts": params.get("accounts") or [],
            "instances": [dict(result, account_id=str(result["account_id"])) for result in params["results"] or []],
            "unreachable": [dict(entry, account_id=str(entry["account_id"])) for entry in params.get("unreachable") or []]}


if __name__ == "__main__":
    main()
