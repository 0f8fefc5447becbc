# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: drs_reconcile
short_description: Find the drift between DR-tagged instances and DRS source servers across accounts, and clean up
version_added: 0.1.0
description:
  - Compares the DR-tagged EC2 instances of every listed account and region with the DRS source servers of their
    staging accounts (and the extended servers of their target accounts), and lists the drift. This is what the
    C(drs_reconcile) role runs; its variables are this action's options with the prefix C(drs_reconcile_).
  - "Tagged but not protected: a tagged instance without a live source server, with its reason. V(stale_record):
    its only server is C(DISCONNECTED) (the agent was uninstalled or stopped reporting; installing again
    reconnects it). V(failed): no server, and the history's last record of the instance (the newest run that left
    it unprotected, within O(history_days)) is a failed install (V(failed), V(timed_out),
    V(not_registered_after_success)), given with its category, reason and remediation. V(never_installed): no
    server and no failed install recorded. V(not_installed): no server, and no history was read (O(history_table)
    empty, or unreadable), so the two cannot be told apart."
  - "Protected but no longer tagged: a source server whose instance exists but does not carry the tags of
    O(tag_filters). Protected but terminated: a source server whose instance is terminated or shutting down, or no
    longer known to EC2. Extended servers whose staging server is gone: the servers of the target accounts whose
    C(stagingArea.status) is C(EXTENSION_ERROR)."
  - "A source server belongs to the source account and region its C(sourceCloudProperties) name; a server that
    names none belongs to the one source account-region that replicates into its staging account-region, and is
    listed as not placed (and never retired) when several do. Servers of accounts not listed are left alone."
  - "AWS calls, all at once: one paged C(DescribeInstances) per source account-region (the tag filters, every state
    but shutting-down and terminated); one paged C(DescribeSourceServers) per staging and per target account-region;
    for the servers whose instance is not among the tagged ones, C(DescribeInstances) with an C(instance-id) filter
    of 200 ids a call; one paged C(Query) of the history's account index per source account. Calls do not grow
    with the number of instances, but for the pages. Throttling is retried with backoff."
  - "The instances to install (C(install_instance_ids)) are the tagged, unprotected, running instances with a usable
    wave tag, but for those whose last install failed unless O(retry_failed): the role's playbook
    (C(playbooks/reconcile.yml)) runs the deploy role for exactly them; this action installs nothing itself."
  - "With O(retire), and not in check mode, the source servers of untagged and terminated instances are
    disconnected (unless they already are) and deleted, their extended servers in the target accounts first, so
    that none is left in C(EXTENSION_ERROR). Never a server that has a recovery instance (C(recoveryInstanceId), on
    it or on one of its extended servers), and never one whose target account could not be read; those are listed
    as kept, with the reason. Extended servers in C(EXTENSION_ERROR) are listed with a remediation, not deleted."
  - "In check mode nothing is changed: the output says what would be installed and retired, and the task is
    C(changed) when something would be. A second run after a complete one changes nothing."
  - "Every input is checked before any AWS call, each error naming the option (or the role variable), the entry and
    the rule. The task fails, after reporting what it could read, when an account or account-region could not be
    reached or read, or when a server could not be retired."
extends_documentation_fragment:
  - drs_orchestration.agent_deployer.estate
author:
  - DRS orchestration contributors (@drs-orchestration)
options:
  session_name:
    description: The role session name, seen in the accounts' CloudTrail.
    type: str
    default: drs-reconcile
  history_table:
    description: The deployment history table, read for each instance's last recorded outcome. Empty reads none.
    type: str
    default: drs-deployment-history
  history_region:
    description: The region of the history table.
    type: str
    default: us-east-1
  history_days:
    description: How many days of history to read, from 1 to 90 (the history keeps its items 90 days).
    type: int
    default: 30
  retire:
    description:
      - Disconnect and delete the source servers of untagged and terminated instances (never in check mode, never
        one with a recovery instance).
    type: bool
    default: false
  retry_failed:
    description: Count the instances whose last recorded install failed among those to install.
    type: bool
    default: false
  report_file:
    description: A JSON file for the report (the task's result without C(changed)), written in check mode too.
    type: str
    default: ""
  variable_prefix:
    description:
      - When the action runs for a role, the prefix of the role's variables (C(drs_reconcile_)); messages then name
        the variables, and variables with the prefix that are none of the options are refused as misspelled.
    type: str
    default: ""
notes:
  - This is an action plugin; it runs on the controller, which needs boto3 and botocore.
  - The history lists a run's unprotected instances only; an instance's last recorded outcome is therefore that of
    the newest run that did not protect it.
seealso:
  - module: drs_orchestration.agent_deployer.drs_rollout
  - module: drs_orchestration.agent_deployer.drs_source_server_info
"""

EXAMPLES = r"""
- name: Report the drift of one cross-account estate, changing nothing
  drs_orchestration.agent_deployer.drs_reconcile:
    accounts:
      - {account_id: "222222222222", role_arn: "arn:aws:iam::222222222222:role/DRSOrchestrationSourceRole",
         regions: [us-east-1], staging_account_id: "333333333333", target_account_id: "444444444444"}
    staging_accounts:
      - {account_id: "333333333333", role_arn: "arn:aws:iam::333333333333:role/DRSOrchestrationStagingRole"}
    target_accounts:
      - {account_id: "444444444444", role_arn: "arn:aws:iam::444444444444:role/DRSOrchestrationTargetRole"}
    external_id: "{{ vault_external_id }}"
    report_file: out/drift.json
  check_mode: true
  register: drift

- name: Retire the servers of untagged and terminated instances
  drs_orchestration.agent_deployer.drs_reconcile:
    accounts:
      - {account_id: "222222222222", regions: [us-east-1]}
    retire: true
"""

RETURN = r"""
counts:
  description:
    - "The figures: C(tagged), C(protected), C(tagged_not_protected) (and per reason C(never_installed), C(failed),
      C(stale_record), C(not_installed)), C(untagged), C(terminated), C(extension_errors), C(unplaced),
      C(to_install), C(retired), C(would_retire), C(retire_candidates), C(kept) and C(retire_failed)."
  returned: always
  type: dict
drift:
  description:
    - "The drift, every entry with its account, region and instance: C(tagged_not_protected) (C(reason), C(detail),
      C(state), C(wave), C(installable), C(not_installed_because), C(last_recorded), C(source_server_id) of a stale
      record); C(untagged) and C(terminated) (C(state), C(source_server_id), C(replication_state),
      C(recovery_instance_id), C(extended_servers)); C(extension_errors) (target account, server, staging server
      ARN, remediation); C(unplaced)."
  returned: always
  type: dict
install_instance_ids:
  description: The instances the deploy should install (tagged, not protected, running, with a wave).
  returned: always
  type: list
  elements: str
retire:
  description:
    - "C(asked) (O(retire)), C(retired) (each with the server ids C(deleted)), C(would_retire) (check mode),
      C(candidates) (what O(retire) would retire), C(kept) (with the C(reason) they are not retired) and C(failed)
      (with the error)."
  returned: always
  type: dict
unreachable:
  description: The accounts or account-regions that could not be reached or read, with the reason.
  returned: always
  type: list
  elements: dict
clean:
  description: True when there is no drift at all.
  returned: always
  type: bool
"""
