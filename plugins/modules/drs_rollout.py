# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: drs_rollout
short_description: Run a wave-by-wave DRS agent rollout across AWS accounts, from the controller
version_added: 0.1.0
description:
  - Installs AWS Elastic Disaster Recovery agents on the DR-tagged EC2 instances of every listed account and
    region, wave by wave, and keeps the record of the run. This is what the C(drs_agent_deploy) role runs; its
    variables are this action's options with the prefix C(drs_agent_deploy_).
  - "Order: checks every option (each error names the option, the entry and the rule; a misspelled role
    variable is named too), before any AWS call; assumes every account's role at once (credentials are
    refreshed before they expire); discovers every account-region at once; plans the waves in numeric order;
    records the run in the history table (status V(in_progress)); then, wave after wave, installs in every
    account-region of the wave at once, records the wave, extends the registered servers into target accounts
    (O(auto_extend_source_servers)), and stops the rollout when the wave's failure rate is above
    O(max_failure_rate); at the end, records the run's outcome, sends its metrics and writes O(summary_file)."
  - "Never two installers on one instance: before sending in an account-region, the installs already running
    there (sent by an earlier run that was stopped, or by a run going on at the same time) are found with one
    paged C(ListCommands) of the commands executing in the account-region and adopted: they are waited for, not sent again. Runs that
    share the history table also take a short send lock per account-region, so that two runs started at the same
    moment do not both send."
  - "Nothing in the background: the installs of a wave are followed in this task's own process, a thread per
    account-region for the AWS calls, on one clock. Progress is printed at least every O(progress_interval)
    seconds. Ctrl-C or SIGTERM stop it within seconds: the installs already sent go on on the instances, the last
    lines name them, and the run is recorded as V(stopped) with them as C(in_flight); a re-run adopts them and
    counts them when they end. If ansible-playbook itself is killed, the task notices and stops the same way."
  - "Every run is recorded from its start: the history item of each source account is written when the run starts,
    after each wave (before its extension or replication verification, otherwise once the next wave's installs are
    sent, so that they do not wait behind the write), at least every 5 minutes while a wave runs (renewing its
    lease), and at the end with status V(success), V(partial), V(failed) or V(stopped). A run killed without a
    chance to record its end keeps V(in_progress) with a lease that expires 15 minutes after its last write;
    readers then show it V(interrupted) (see M(drs_orchestration.agent_deployer.drs_history_info)). When DynamoDB
    cannot be written, every write is spooled and written by the next one."
  - "Each instance ends with one status: V(installed), V(already_registered) (protected); V(failed),
    V(timed_out), V(not_registered_after_success) (failed); V(skipped_ssm_offline), V(skipped_not_managed)
    (skipped: nothing could be sent through SSM); V(in_flight) (still running when the run stopped), V(not_started)
    (its wave never started); V(no_wave) (its wave tag is missing or not a whole number). Attempted = protected +
    failed; success rate = protected / attempted; failure rate = failed / attempted. The wave gate, the summary,
    the history, the metrics and the report all use these definitions. An input this action refuses is never
    counted as a failed install: it is refused before any AWS call."
  - "Every instance that is not protected is listed with its reason and remediation: by id on the console, in
    O(summary_file), in the history item and in the report."
  - "A run with nothing to deploy fails, saying why: no DR-tagged instance in the accounts, inventory hosts
    none of which was discovered, a O(waves) filter that matches no wave. A run where every instance is already
    protected succeeds unchanged and says so."
  - "In check mode, the action reads DRS, SSM and the installs in flight once per account-region and prints what
    each wave would install, adopt and skip; nothing is sent, and nothing is written but the plan files of
    O(plan_dir). With C(--diff), the plan is shown as Markdown."
  - "Check mode's exit rule, for pipelines that gate on it: the task succeeds when every account-region was reached
    and planned and every input is valid; whether there is work to do is in C(changed) and in the plan's
    C(totals). It fails, naming the accounts, when an account or account-region could not be reached or planned
    (the plan files are written all the same, with the reasons), and when there is nothing to deploy."
extends_documentation_fragment:
  - drs_orchestration.agent_deployer.estate
author:
  - DRS orchestration contributors (@drs-orchestration)
options:
  session_name:
    description: The role session name, seen in the accounts' CloudTrail.
    type: str
    default: drs-agent-deploy
  instance_ids:
    description: Restrict the rollout to these instances (the inventory hosts after C(--limit)). Empty means all.
    type: list
    elements: str
    default: []
  limit_to_instance_ids:
    description:
      - O(instance_ids) is the whole scope, even when empty (the play ran on inventory hosts); an empty list then
        fails the run instead of meaning every discovered instance.
    type: bool
    default: false
  deployment_pattern:
    description:
      - Records the run under this pattern instead of the one its accounts make (V(same-account), V(cross-account)
        or V(multi-account)). V(event) is what the rulebook's deploy (playbooks/protect_instances.yml) records.
    type: str
    choices: [event]
  waves:
    description: Deploy only these waves. Empty means every wave.
    type: list
    elements: int
    default: []
  agent_tags:
    description: Tags given to new DRS source servers (the rules of M(drs_orchestration.agent_deployer.drs_ssm_install)).
    type: dict
    default: {}
  max_failure_rate:
    description: The wave gate; the rollout stops after a wave whose failure rate (failed / attempted) is above it.
    type: float
    default: 0.0
  max_concurrency:
    description: SSM MaxConcurrency of each install command.
    type: str
    default: "50"
  max_errors:
    description: SSM MaxErrors of each install command.
    type: str
    default: "100%"
  ssm_online_timeout:
    description: Seconds to wait for instances that are not Online in SSM before skipping them.
    type: int
    default: 120
  timeout:
    description: Seconds one account-region's installs of one wave may take.
    type: int
    default: 4200
  install_timeout:
    description:
      - Seconds one install may run; an install still running then is cancelled (CancelCommand) and reported
        V(timed_out), so that a hung installer does not hold the wave. Not set, installs run to their end or
        O(timeout).
    type: int
  poll_interval:
    description: Seconds between two looks at SSM and DRS in an account-region (see M(drs_orchestration.agent_deployer.drs_ssm_install)).
    type: int
    default: 15
  registration_timeout:
    description: Seconds to wait for a source server in DRS after SSM reports success.
    type: int
    default: 300
  progress_interval:
    description: Seconds between two progress lines while a wave runs (1 to 60).
    type: int
    default: 30
  reinstall:
    description: Install again on instances already registered in DRS.
    type: bool
    default: false
  summary_file:
    description: Write the run's summary (JSON) to this file. Empty writes none. Not written in check mode.
    type: str
    default: ""
  plan_dir:
    description:
      - In check mode, write the plan into this directory (created if needed) as C(plan.json) and C(plan.md), each
        replaced in one step. Empty writes none; ignored outside check mode.
      - "C(plan.json): C(clean) (every account-region reached), C(changed) (something would be installed),
        C(totals), C(waves) (per wave, its account-regions with the instances it would C(install), C(reinstall),
        C(adopt) (installs in flight, with their command) and C(skip) (each with its status and reason), and its
        C(totals)), C(no_wave), C(excluded) (left out by the inventory limit or the waves filter, with the reason),
        C(unreachable) (account, region or null for the whole account, reason) and C(inputs) (the deployment
        pattern, the accounts without external ids, the waves, tag filters and tag keys). C(plan.md) is the same
        plan as a pull-request comment."
    type: str
    default: ""
  history_table:
    description: The DynamoDB history table, in the controller's own account. Empty records nothing (and takes no send locks).
    type: str
    default: drs-deployment-history
  history_region:
    description: The region of the history table and of the metrics.
    type: str
    default: us-east-1
  history_spool_dir:
    description: Where records wait when the history table cannot be written. Empty uses C(~/.ansible/drs_history_spool).
    type: str
    default: ""
  metrics_namespace:
    description: The CloudWatch namespace of the run's metrics, sent at its end. Empty sends none.
    type: str
    default: DRSOrchestration/AgentDeployment
  deployment_id:
    description:
      - The deployment's id in the history and on extended servers.
      - Empty, in an AWX / Automation Platform job, uses its workflow job's id (C(awx-workflow-<awx_workflow_job_id>))
        so that every slice of a sliced job records one deployment, else the job's own (C(awx-job-<awx_job_id>));
        outside AWX, the run's own id.
    type: str
    default: ""
  auto_extend_source_servers:
    description: After each wave, extend the servers it registered into each account's C(target_account_id).
    type: bool
    default: false
  extension_tags:
    description: Tags for the extended servers, besides C(ExtendedFrom) and C(DeploymentId).
    type: dict
    default: {}
  extension_capacity_limit:
    description: The most source servers a target account may hold per region.
    type: int
    default: 300
  extension_capacity_warning_thresholds:
    description: Percentages of the capacity limit that each give a warning.
    type: list
    elements: int
    default: [80, 90]
  extension_wait_timeout:
    description: Seconds to wait for registered servers to become extensible and for extended servers to show.
    type: int
    default: 300
  verify_replication:
    description:
      - After each wave, wait until the source servers of the instances it installed (and those already registered)
        replicate healthy (C(CONTINUOUS) within O(rpo_seconds), nothing in backlog), or until
        O(verify_replication_timeout) passes, showing the counts at least every O(progress_interval) seconds; each
        instance's verdict (V(healthy), V(syncing), V(stalled), V(disconnected), V(stopped), V(not_found)) is kept
        in the summary and the history.
      - A wave whose servers are not all healthy at the end stops the rollout before the next wave, naming them with
        their remediation (see the module M(drs_orchestration.agent_deployer.drs_replication_health)).
      - One paged C(drs:DescribeSourceServers) listing per staging account and region per look.
    type: bool
    default: false
  verify_replication_timeout:
    description: Seconds a wave's verification waits at most.
    type: int
    default: 3600
  rpo_seconds:
    description: The recovery point objective of the verification, in seconds.
    type: int
    default: 300
  variable_prefix:
    description:
      - When the action runs for a role, the prefix of the role's variables (C(drs_agent_deploy_)); messages then
        name the variables, and variables with the prefix that are none of the options are refused as misspelled.
    type: str
    default: ""
notes:
  - This is an action plugin; it runs on the controller, which needs boto3 and botocore.
  - "Environment: E(DRS_AGENT_DEPLOYER_CLOCK) may name a clock class (C(package.module:Class)) to wait on instead of
    the system clock, for rehearsals against an AWS simulator whose time runs under its own control."
seealso:
  - module: drs_orchestration.agent_deployer.drs_ssm_install
  - module: drs_orchestration.agent_deployer.drs_history_info
"""

EXAMPLES = r"""
- name: Deploy two accounts wave by wave, stopping after a wave with more than 5% failures
  drs_orchestration.agent_deployer.drs_rollout:
    accounts:
      - {account_id: "222222222222", role_arn: "arn:aws:iam::222222222222:role/DRSOrchestrationSourceRole",
         regions: [us-east-1, us-west-2], staging_account_id: "333333333333"}
    staging_accounts:
      - {account_id: "333333333333", role_arn: "arn:aws:iam::333333333333:role/DRSOrchestrationStagingRole"}
    external_id: "{{ vault_external_id }}"
    max_failure_rate: 0.05
    install_timeout: 1800
    summary_file: out/summary.json
  register: rollout

- name: Plan only (check mode), writing plan.json and plan.md for a pull request
  drs_orchestration.agent_deployer.drs_rollout:
    accounts:
      - {account_id: "222222222222", regions: [us-east-1]}
    plan_dir: out/plan
  check_mode: true
"""

RETURN = r"""
deployment_id:
  description: The deployment's id in the history.
  returned: when the rollout ran
  type: str
run_id:
  description: This run's own id (in the history items, and in the comment of the install commands it sent).
  returned: when the rollout ran
  type: str
summary:
  description:
    - "The run's summary, also written to O(summary_file): C(totals), C(accounts) (per source account) and C(waves)
      (per wave, with C(accounts)) each hold the figures of the outcome model (C(by_status), C(attempted),
      C(installed), C(already_registered), C(protected), C(failed), C(skipped), C(unsettled), C(unplanned),
      C(unprotected), C(success_rate), C(failure_rate)); C(unprotected) lists every unprotected instance with its
      account, region, wave, priority, status, reason and remediation; and C(deployment_pattern),
      C(planned_waves), C(planned_instances), C(excluded), C(unreachable), C(max_failure_rate),
      C(stopped_after_wave), C(stop_reason), C(history_status), C(wall_seconds) and, with extension, C(extension)."
  returned: when the rollout ran
  type: dict
plan:
  description: In check mode, the plan as O(plan_dir)'s C(plan.json) holds it.
  returned: in check mode
  type: dict
diff:
  description: In check mode, the plan in Markdown (C(prepared)), shown by C(--diff).
  returned: in check mode
  type: dict
"""
