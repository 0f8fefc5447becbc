#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: drs_ssm_install
short_description: Install the AWS Elastic Disaster Recovery agent on EC2 instances through SSM
version_added: 0.1.0
description:
  - Installs the AWS Replication Agent on EC2 instances with SSM Run Command and does not return until every
    instance is proven registered in AWS Elastic Disaster Recovery (DRS), failed, skipped or timed out.
  - Instances already registered in DRS (a source server that is not C(DISCONNECTED)) are skipped unless
    O(reinstall=true).
  - Instances that are not C(Online) in Systems Manager are waited for up to O(ssm_online_timeout), then skipped
    with the reason. Online instances are sent the install at once, in SendCommand batches of at most 50.
  - Invocations are followed with one paginated ListCommandInvocations per command and poll; the full output of
    an invocation is read only when it fails. An SSM C(Success) counts as installed only once the instance's
    source server appears in DRS, checked with one paginated DescribeSourceServers listing per poll.
  - Agent tags are given to new source servers only; re-installs on registered servers are sent without them,
    because the installer refuses tags for an existing server.
  - For cross-account installs (O(staging_account_id) is not the account of the module's credentials) the
    collection's own document C(DRSOrchestration-InstallDRAgentCrossAccount) is used, which the
    C(drs_account_setup) role creates; registrations are confirmed with the staging credentials.
  - In check mode, the module reads DRS and SSM once and returns the plan; nothing is sent.
  - With O(targets), one run installs into several account-regions at once, each followed in its own thread;
    the top-level return values then sum up all targets and RV(targets) holds each target's own.
  - Near the end of a run (at most two invocations, or a tenth of those sent, still running in SSM, or only
    registrations left to confirm) it polls at a third of O(poll_interval), at least every second, to notice the
    end sooner. An instance not registered by its O(registration_timeout), or still offline at
    O(ssm_online_timeout), is settled at that deadline rather than at the next poll.
  - "Progress: a task run with C(async) cannot print while it waits, so O(progress_file) receives a JSON document,
    replaced at every poll, with keys C(updated_at), C(elapsed_seconds), C(total), C(done), C(failed),
    C(in_flight), C(awaiting_registration), C(waiting_for_ssm) and C(counts) (per status)."
author:
  - DRS orchestration contributors (@drs-orchestration)
options:
  instance_ids:
    description:
      - The EC2 instances to install the agent on, in the module's account and region.
      - Duplicates are ignored.
      - One of O(instance_ids) and O(targets) is required.
    type: list
    elements: str
  targets:
    description:
      - Install into several account-regions at once, in one run of the module, for example every
        account-region of a deployment wave. Each target is planned, sent, followed and confirmed as a run with
        O(instance_ids) would be, in its own thread with its own AWS clients, with the common options (document,
        agent tags, timeouts, intervals, O(max_failure_rate)) and its own account, region and staging settings.
      - A target that cannot be installed (credentials, document, AWS errors, failure rate) does not stop the
        others; the task fails after all of them ended, and RV(targets) says how each one went.
      - Mutually exclusive with O(instance_ids); the module's own options then apply to a single target.
    type: list
    elements: dict
    suboptions:
      name:
        description:
          - The target's name in RV(targets) and messages, unique among the targets. Defaults to
            C(<account_id>/<region>) (or the region).
        type: str
      instance_ids:
        description:
          - The EC2 instances to install the agent on, in the target's account and region.
        type: list
        elements: str
        required: true
      region:
        description:
          - The target's region. Defaults to the module's O(region).
        type: str
      account_id:
        description:
          - The account of the target's credentials, when known (for example from the role that was assumed).
            It spares a C(sts:GetCallerIdentity) call to find it when O(targets[].staging_account_id) is given.
        type: str
      access_key:
        description:
          - Access key of the target's credentials. Defaults to the module's credentials.
        type: str
      secret_key:
        description:
          - Secret key that goes with O(targets[].access_key).
        type: str
      session_token:
        description:
          - Session token that goes with O(targets[].access_key), for temporary (assumed role) credentials.
        type: str
      drs_region:
        description:
          - The DRS region of the target's agents. Defaults to the target's region.
        type: str
      staging_account_id:
        description:
          - The account the target's agents register in, as O(staging_account_id).
        type: str
      staging_access_key:
        description:
          - Access key of credentials in O(targets[].staging_account_id), as O(staging_access_key).
        type: str
      staging_secret_key:
        description:
          - Secret key that goes with O(targets[].staging_access_key).
        type: str
      staging_session_token:
        description:
          - Session token that goes with O(targets[].staging_access_key).
        type: str
      progress_file:
        description:
          - The target's progress file, as O(progress_file).
        type: path
  drs_region:
    description:
      - The region the agents replicate into (the DRS region). Defaults to the module's region.
    type: str
  staging_account_id:
    description:
      - The 12-digit account the agents register in. Leave it out, or give the module's own account, for
        same-account replication.
    type: str
  staging_access_key:
    description:
      - Access key of credentials in O(staging_account_id), used to confirm registrations in its DRS when it is
        not the module's own account.
    type: str
  staging_secret_key:
    description:
      - Secret key that goes with O(staging_access_key).
    type: str
  staging_session_token:
    description:
      - Session token that goes with O(staging_access_key), for temporary (assumed role) credentials.
    type: str
  document_name:
    description:
      - The SSM Command document that installs the agent.
      - Defaults to C(AWSDisasterRecovery-InstallDRAgentOnInstance) for same-account installs and to the
        collection's C(DRSOrchestration-InstallDRAgentCrossAccount) for cross-account installs.
      - A document of your own needs the parameters C(Region) and C(Tags) (and C(AccountId) for cross-account),
        and steps named C(InstallLinuxAgent) and C(InstallWindowsAgent) for the failure output to be read.
    type: str
  document_version:
    description:
      - The document version to run, V($DEFAULT), V($LATEST) or a version number. SSM's default version if
        not given.
    type: str
  agent_tags:
    description:
      - Tags for new DRS source servers.
      - "Keys are 1 to 128 and values 0 to 256 letters, digits, inner spaces and C(_ . : / + @ -); keys cannot
        start with C(aws:); at most 50 tags. Values must be strings."
    type: dict
    default: {}
  max_concurrency:
    description:
      - SendCommand C(MaxConcurrency) of each batch, a number or a percentage.
    type: str
    default: "50"
  max_errors:
    description:
      - SendCommand C(MaxErrors) of each batch, a number or a percentage. Once exceeded, SSM starts no new
        invocations of that batch (they end C(Terminated)).
    type: str
    default: "100%"
  ssm_online_timeout:
    description:
      - Seconds to wait for instances that are not C(Online) in SSM; V(0) looks once.
      - Check mode always looks once.
    type: int
    default: 120
  timeout:
    description:
      - Seconds the whole task may take; instances still in flight then end C(timed_out).
      - Commands already sent keep running on the instances; a later run skips those that registered.
    type: int
    default: 4200
  poll_interval:
    description:
      - Seconds between two polls of SSM and DRS.
    type: int
    default: 15
  registration_timeout:
    description:
      - Seconds to wait, after SSM reports C(Success), for the instance's source server to appear in DRS before
        reporting C(not_registered_after_success).
    type: int
    default: 300
  reinstall:
    description:
      - Install again on instances already registered in DRS (without agent tags).
    type: bool
    default: false
  max_failure_rate:
    description:
      - The share (0 to 1) of attempted instances that may end C(failed), C(timed_out) or
        C(not_registered_after_success) without failing the task. With the default V(0), any such instance
        fails the task; all results are returned either way.
    type: float
    default: 0
  progress_file:
    description:
      - A file replaced at every poll with the run's progress as JSON (see the description). Not written in
        check mode.
    type: path
notes:
  - The instances' own profile needs C(AmazonSSMManagedInstanceCore) and C(AWSElasticDisasterRecoveryEc2InstancePolicy).
  - The module's credentials need ssm:DescribeInstanceInformation, ssm:SendCommand, ssm:ListCommandInvocations,
    ssm:GetCommandInvocation and (same-account) drs:DescribeSourceServers; the staging credentials need
    drs:DescribeSourceServers.
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Install the DRS agent on two instances (same account)
  drs_orchestration.agent_deployer.drs_ssm_install:
    instance_ids: [i-0123456789abcdef0, i-0fedcba9876543210]
    region: us-east-1
    agent_tags:
      Application: orders

- name: Install into a staging account, following progress from another task
  drs_orchestration.agent_deployer.drs_ssm_install:
    instance_ids: "{{ wave_instance_ids }}"
    region: us-east-1
    staging_account_id: "333333333333"
    staging_access_key: "{{ staging.sts_creds.access_key }}"
    staging_secret_key: "{{ staging.sts_creds.secret_key }}"
    staging_session_token: "{{ staging.sts_creds.session_token }}"
    progress_file: /tmp/drs-install-wave-1.json
    max_failure_rate: 0.05
  async: 7200
  poll: 0
  register: install_job

- name: Install in two account-regions at once, each with its own credentials, in one background job
  drs_orchestration.agent_deployer.drs_ssm_install:
    targets:
      - name: 222222222222/us-east-1
        instance_ids: "{{ east_instance_ids }}"
        region: us-east-1
        account_id: "222222222222"
        access_key: "{{ source.sts_creds.access_key }}"
        secret_key: "{{ source.sts_creds.secret_key }}"
        session_token: "{{ source.sts_creds.session_token }}"
        progress_file: /tmp/drs-install-east.json
      - name: 222222222222/us-west-2
        instance_ids: "{{ west_instance_ids }}"
        region: us-west-2
        account_id: "222222222222"
        access_key: "{{ source.sts_creds.access_key }}"
        secret_key: "{{ source.sts_creds.secret_key }}"
        session_token: "{{ source.sts_creds.session_token }}"
        progress_file: /tmp/drs-install-west.json
    max_failure_rate: 1
  async: 7200
  poll: 0
  register: wave_job

- name: Show what would be installed and skipped
  drs_orchestration.agent_deployer.drs_ssm_install:
    instance_ids: "{{ wave_instance_ids }}"
  check_mode: true
  register: install_plan
"""

RETURN = r"""
results:
  description: One result per instance, in the order of O(instance_ids) (with O(targets), target after target).
  returned: always
  type: list
  elements: dict
  contains:
    instance_id:
      description: The EC2 instance id.
      type: str
      sample: i-0123456789abcdef0
    status:
      description: How the instance ended.
      type: str
      sample: installed
      choices: [installed, already_registered, skipped_ssm_offline, skipped_not_managed, failed, timed_out,
                not_registered_after_success]
    command_id:
      description: The SSM command that installed on the instance, if one was sent.
      type: str
    ssm_status:
      description: The invocation's last SSM C(Status).
      type: str
      sample: Failed
    ssm_status_details:
      description: The invocation's last SSM C(StatusDetails), or SSM's refusal message.
      type: str
      sample: Failed
    response_code:
      description: The install step's exit code, when SSM reported one.
      type: int
    error_category:
      description:
        - Why it failed, for unsuccessful results; one of C(account_not_initialized), C(credentials),
          C(registered_elsewhere), C(reboot_required), C(unsupported_os), C(disks), C(security_modules),
          C(network), C(ssm_delivery), C(timeout) or C(unknown).
      type: str
      sample: network
    remediation:
      description: One line telling the operator what to do, for unsuccessful results.
      type: str
    stderr_tail:
      description: The last 20 lines of the install step's standard error, for unsuccessful results.
      type: str
    stdout_tail:
      description: The last 20 lines of the install step's standard output, for unsuccessful results.
      type: str
    source_server_id:
      description: The DRS source server of the instance, when it is registered.
      type: str
      sample: s-1234567890abcdef0
    reason:
      description: A one-line explanation for results other than C(installed).
      type: str
    duration_seconds:
      description: Seconds from the start of the task until the instance's result was known.
      type: float
counts:
  description: How many instances ended in each status (every status is present).
  returned: always
  type: dict
  sample: {installed: 18, already_registered: 2, skipped_ssm_offline: 1, skipped_not_managed: 1, failed: 1,
           timed_out: 0, not_registered_after_success: 0}
attempted:
  description: Instances the module tried to install (installed, failed, timed out or not registered after success).
  returned: always
  type: int
success_rate:
  description: Installed instances over attempted ones, 1.0 when nothing was attempted.
  returned: always
  type: float
failure_rate:
  description: Failed, timed out and not registered instances over attempted ones, 0.0 when nothing was attempted.
  returned: always
  type: float
commands:
  description: The SendCommand calls made, one per batch of at most 50 instances.
  returned: always
  type: list
  elements: dict
  contains:
    command_id:
      description: The SSM command id.
      type: str
    instance_ids:
      description: The batch's instances.
      type: list
      elements: str
    with_tags:
      description: Whether the batch carried agent tags (new servers) or not (re-installs).
      type: bool
    document_name:
      description: The document sent.
      type: str
    parameters:
      description: The document parameters sent.
      type: dict
targets:
  description:
    - One entry per target of O(targets), in their order, with the target's own return values (C(results),
      C(counts), C(attempted), C(success_rate), C(failure_rate), C(commands), C(plan), C(changed)), as a run with
      O(instance_ids) returns them, and C(failed) and C(msg) when the target did not complete. No credentials.
  returned: when O(targets) is given
  type: list
  elements: dict
  contains:
    name:
      description: The target's name.
      type: str
      sample: 222222222222/us-east-1
    region:
      description: The target's region.
      type: str
    instance_ids:
      description: The target's instances.
      type: list
      elements: str
    failed:
      description: Whether the target did not complete (or went over O(max_failure_rate)).
      type: bool
    msg:
      description: Why the target did not complete.
      type: str
      returned: when the target failed
plan:
  description: What the module found before sending anything, and would do (the whole answer in check mode).
  returned: always
  type: dict
  contains:
    would_install:
      description: Instances new to DRS and Online in SSM.
      type: list
      elements: str
    would_reinstall:
      description: Registered instances that O(reinstall=true) installs again, without tags.
      type: list
      elements: str
    would_skip:
      description: Instances left out (or, with DRS not initialized, failed), each with C(instance_id), C(status) and C(reason).
      type: list
      elements: dict
"""

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import install
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.aws import ClientFactory

# The options a target of O(targets) sets for itself; every other option is common to all targets.
TARGET_OPTIONS = dict(
    name=dict(type="str"),
    instance_ids=dict(type="list", elements="str", required=True),
    region=dict(type="str"),
    account_id=dict(type="str"),
    access_key=dict(type="str", no_log=True),
    secret_key=dict(type="str", no_log=True),
    session_token=dict(type="str", no_log=True),
    drs_region=dict(type="str"),
    staging_account_id=dict(type="str"),
    staging_access_key=dict(type="str", no_log=True),
    staging_secret_key=dict(type="str", no_log=True),
    staging_session_token=dict(type="str", no_log=True),
    progress_file=dict(type="path"),
)
TARGET_FIELDS = tuple(TARGET_OPTIONS)


def target_settings(module):
    """The settings of each target: the common options with the target's own on top. Without
    O(targets), the module's own options make the one target."""
    common = {key: value for key, value in module.params.items() if key != "targets"}
    common.update(region=module.region, account_id=None, access_key=None, secret_key=None, session_token=None)
    targets = module.params["targets"] or [{key: module.params.get(key) for key in TARGET_FIELDS if key in module.params}]
    settings = []
    for target in targets:
        merged = dict(common)
        merged.update({key: value for key, value in target.items() if value is not None})
        merged["drs_region"] = target.get("drs_region") or merged["region"]
        merged["name"] = target.get("name") or "/".join(part for part in (merged["account_id"], merged["region"]) if part)
        settings.append(merged)
    return settings


def main():
    argument_spec = dict(
        instance_ids=dict(type="list", elements="str"),
        targets=dict(type="list", elements="dict", options=TARGET_OPTIONS),
        drs_region=dict(type="str"),
        staging_account_id=dict(type="str"),
        staging_access_key=dict(type="str", no_log=True),
        staging_secret_key=dict(type="str", no_log=True),
        staging_session_token=dict(type="str", no_log=True),
        document_name=dict(type="str"),
        document_version=dict(type="str"),
        agent_tags=dict(type="dict", default={}),
        max_concurrency=dict(type="str", default="50"),
        max_errors=dict(type="str", default="100%"),
        ssm_online_timeout=dict(type="int", default=120),
        timeout=dict(type="int", default=4200),
        poll_interval=dict(type="int", default=15),
        registration_timeout=dict(type="int", default=300),
        reinstall=dict(type="bool", default=False),
        max_failure_rate=dict(type="float", default=0),
        progress_file=dict(type="path"),
    )
    module = AnsibleAWSModule(
        argument_spec=argument_spec,
        supports_check_mode=True,
        required_one_of=[("instance_ids", "targets")],
        mutually_exclusive=[("instance_ids", "targets")],
    )
    multi = module.params["targets"] is not None
    targets = target_settings(module)
    errors = []
    for index, settings in enumerate(targets):
        where = f"targets[{index}] ({settings['name']}): " if multi else ""
        if not settings["drs_region"]:
            errors.append(where + "no region: set region (or AWS_REGION), or drs_region")
            continue
        errors.extend(where + error for error in install.option_errors(settings))
    if multi and not targets:
        errors.append("targets is empty: give at least one target")
    if multi and len({settings["name"] for settings in targets}) < len(targets):
        errors.append("targets need distinct names (by default account_id/region)")
    if errors:
        if not multi and errors[0].startswith("no region"):
            module.fail_json(msg=errors[0])
        module.fail_json(msg="invalid options: " + "; ".join(errors))

    outcomes = install.install_targets(ClientFactory(module), targets, module.check_mode)

    if not multi:
        outcome = outcomes[0]
        if outcome.error is not None and not isinstance(outcome.error, str):
            module.fail_json_aws(outcome.error, msg=outcome.message, **outcome.partial)
        if outcome.failed:
            module.fail_json(msg=outcome.message, **outcome.partial)
        module.exit_json(**outcome.report)

    results = [outcome.as_result(settings["name"]) for outcome, settings in zip(outcomes, targets)]
    report = install.merge_reports(results)
    report["targets"] = results
    failed = [result for result in results if result["failed"]]
    if failed:
        module.fail_json(msg=f"{len(failed)} of {len(results)} targets did not complete: "
                             + "; ".join(f"{result['name']}: {result['msg']}" for result in failed), **report)
    module.exit_json(**report)


if __name__ == "__main__":
    main()
