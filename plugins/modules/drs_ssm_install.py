#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: drs_ssm_install
short_description: Install the AWS Elastic Disaster Recovery agent on EC2 instances through SSM
version_added: 0.1.0
description:
  - Installs the AWS Replication Agent on the EC2 instances of one account and region with SSM Run Command and
    does not return until every instance is proven registered in AWS Elastic Disaster Recovery (DRS), failed,
    skipped or timed out.
  - Before sending, it looks for agent installs already running on the instances (sent by an earlier run that was
    stopped, or by a run going on at the same time) and waits for those instead of sending a second one, so that no
    instance ever runs two installers at once.
  - Instances already registered in DRS (a source server that is not C(DISCONNECTED)) are skipped unless
    O(reinstall=true). Instances that are not C(Online) in Systems Manager are waited for up to
    O(ssm_online_timeout), then skipped with the reason. Online instances are sent the install at once, in
    SendCommand batches of at most 50.
  - An SSM C(Success) counts as installed only once the instance's source server appears in DRS.
  - Agent tags are given to new source servers only; re-installs on registered servers are sent without them,
    because the installer refuses tags for an existing server.
  - For cross-account installs (O(staging_account_id) is not the account of the module's credentials) the
    collection's own document C(DRSOrchestration-InstallDRAgentCrossAccount) is used, which the
    C(drs_account_setup) role creates; registrations are confirmed with the staging credentials.
  - With O(install_timeout), an install still running that long is cancelled (CancelCommand) and reported
    C(timed_out), so that one hung installer does not hold the rest.
  - In check mode, the module reads DRS and SSM once and returns the plan; nothing is sent.
  - The AWS calls grow with batches and changes, not with instances per poll; the statuses, the success rate
    and the failure rate are those of the collection's outcome model (see RV(figures)).
  - To install in many account-regions wave by wave, use the C(drs_agent_deploy) role (action
    C(drs_orchestration.agent_deployer.drs_rollout)), which runs this same engine in every account-region of a
    wave at once.
author:
  - DRS orchestration contributors (@drs-orchestration)
options:
  instance_ids:
    description:
      - The EC2 instances to install the agent on, in the module's account and region. Duplicates are ignored.
    type: list
    elements: str
    required: true
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
      - Seconds the whole task may take; instances still in flight then end C(timed_out) and their installs go on
        (a later run adopts them).
    type: int
    default: 4200
  install_timeout:
    description:
      - Seconds one install may run. An install still running then is cancelled (CancelCommand) and ends
        C(timed_out). Not set, installs run until they end or O(timeout) passes.
    type: int
  poll_interval:
    description:
      - Seconds between two looks at SSM and DRS. Near the end (at most two invocations, or a tenth of those sent,
        still running) a third of it, at least a second; while looks find nothing new, each waits twice as long
        as the one before, up to four poll intervals. Deadlines are looked at when they fall due.
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
      - The failure rate (RV(figures.failure_rate), 0 to 1) above which the task fails. With the default V(0), any
        failed, timed out or unregistered instance fails the task; all results are returned either way.
    type: float
    default: 0.0
notes:
  - The instances' own profile needs C(AmazonSSMManagedInstanceCore) and C(AWSElasticDisasterRecoveryEc2InstancePolicy).
  - The module's credentials need ssm:DescribeInstanceInformation, ssm:SendCommand, ssm:ListCommands,
    ssm:ListCommandInvocations, ssm:CancelCommand (with O(install_timeout)) and (same-account)
    drs:DescribeSourceServers; the staging credentials need drs:DescribeSourceServers.
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

- name: Install into a staging account; cancel any install running over 30 minutes
  drs_orchestration.agent_deployer.drs_ssm_install:
    instance_ids: "{{ wave_instance_ids }}"
    region: us-east-1
    staging_account_id: "333333333333"
    staging_access_key: "{{ staging.sts_creds.access_key }}"
    staging_secret_key: "{{ staging.sts_creds.secret_key }}"
    staging_session_token: "{{ staging.sts_creds.session_token }}"
    install_timeout: 1800
    max_failure_rate: 0.05

- name: Show what would be installed, adopted and skipped
  drs_orchestration.agent_deployer.drs_ssm_install:
    instance_ids: "{{ wave_instance_ids }}"
  check_mode: true
  register: install_plan
"""

RETURN = r"""
results:
  description: One result per instance, in the order of O(instance_ids).
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
      choices: [installed, already_registered, failed, timed_out, not_registered_after_success, skipped_ssm_offline,
                skipped_not_managed]
    command_id:
      description: The SSM command that installed on the instance (sent by this run, or adopted), if any.
      type: str
    adopted:
      description: Whether the install was already running when the module started, and was waited for rather than sent.
      type: bool
    ssm_status:
      description: The invocation's last SSM C(Status).
      type: str
      sample: Failed
    ssm_status_details:
      description: The install step's last SSM C(StatusDetails), or SSM's refusal message.
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
      description: One line telling the operator what to do, for results other than C(installed) and C(already_registered).
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
figures:
  description:
    - The figures of the results, as the collection's outcome model defines them (the same as the deploy role's
      summary and history use).
  returned: always
  type: dict
  contains:
    by_status:
      description: How many instances ended in each status (every status of the model is present).
      type: dict
      sample: {installed: 18, already_registered: 2, failed: 1, timed_out: 0, not_registered_after_success: 0,
               skipped_ssm_offline: 1, skipped_not_managed: 1, in_flight: 0, not_started: 0, no_wave: 0}
    attempted:
      description: Instances whose outcome was judged, that is protected (installed or already registered) or failed.
      type: int
    installed:
      description: Instances installed by this run (or by an install it adopted), proven in DRS.
      type: int
    already_registered:
      description: Instances that were registered in DRS already.
      type: int
    protected:
      description: Installed plus already registered instances.
      type: int
    failed:
      description: Failed, timed out and not registered instances.
      type: int
    skipped:
      description: Instances skipped because SSM could not reach them.
      type: int
    unsettled:
      description: Instances whose install was still running when the run stopped (none for a run that ended).
      type: int
    unplanned:
      description: Instances without a wave (none here).
      type: int
    unprotected:
      description: Instances that are not protected.
      type: int
    success_rate:
      description: Protected over attempted instances; none when nothing was attempted.
      type: float
    failure_rate:
      description: Failed over attempted instances (1 - success rate); 0.0 when nothing was attempted.
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
    would_adopt:
      description: Instances with an install already running, each with C(instance_id) and C(command_id); they are
        waited for, not sent a second install.
      type: list
      elements: dict
    would_skip:
      description: Instances left out (or, with DRS not initialized, failed), each with C(instance_id), C(status) and C(reason).
      type: list
      elements: dict
"""

import threading

try:
    from botocore.exceptions import BotoCoreError
    from botocore.exceptions import ClientError
except ImportError:
    pass  # Handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import inputs
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import install
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import outcomes
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.aws import ClientFactory
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.clock import module_clock


class TargetError(Exception):
    """The installs cannot start as given (credentials, document); nothing was sent."""


def option_errors(params):
    """Every problem with the options, found before any AWS call."""
    errors = install.setting_errors(params)
    if not params["instance_ids"]:
        errors.append("instance_ids is empty: give at least one EC2 instance id")
    for index, instance_id in enumerate(params["instance_ids"]):
        errors.append(inputs.instance_id_error(f"instance_ids[{index}]", instance_id))
    if params["drs_region"]:
        errors.append(inputs.region_error("drs_region", params["drs_region"]))
    if params["staging_account_id"] is not None:
        errors.append(inputs.account_id_error("staging_account_id", params["staging_account_id"]))
    staging_keys = [params.get(name) for name in ("staging_access_key", "staging_secret_key")]
    if any(staging_keys) and not all(staging_keys):
        errors.append("staging_access_key and staging_secret_key go together: give both or neither")
    if params.get("staging_session_token") and not all(staging_keys):
        errors.append("staging_session_token needs staging_access_key and staging_secret_key")
    if any(staging_keys) and params["staging_account_id"] is None:
        errors.append("staging credentials were given without staging_account_id: name the account they belong to")
    return [error for error in errors if error]


def connect(module, factory, params):
    """(SSM client, DRS client of the account agents register in, cross-account). Cross-account needs credentials
    in the staging account, checked here so that wrong ones fail before anything is sent rather than as
    unconfirmed registrations."""
    ssm = factory.client("ssm")
    staging = params["staging_account_id"]
    if staging is None:
        return ssm, factory.client("drs", region=params["drs_region"]), False
    own_account = factory.client("sts").get_caller_identity(aws_retry=True)["Account"]
    if staging == own_account:
        return ssm, factory.client("drs", region=params["drs_region"]), False
    if not params["staging_access_key"]:
        raise TargetError(
            f"staging_account_id {staging} is not the account of the module's credentials ({own_account}): give "
            "staging_access_key, staging_secret_key (and staging_session_token) for a role in the staging account "
            "so that registrations can be confirmed in its DRS")
    staging_keys = {"access_key": params["staging_access_key"], "secret_key": params["staging_secret_key"],
                    "session_token": params["staging_session_token"]}
    staging_account = factory.client("sts", credentials=staging_keys).get_caller_identity(aws_retry=True)["Account"]
    if staging_account != staging:
        raise TargetError(f"the staging credentials belong to account {staging_account}, not to staging_account_id "
                          f"{staging}: give credentials for a role in {staging}")
    return ssm, factory.client("drs", region=params["drs_region"], credentials=staging_keys), True


def run(module, clock):
    """Plan, adopt, send, follow and confirm; the module's answer, or fail_json."""
    params = dict(module.params, drs_region=module.params["drs_region"] or module.region)
    try:
        ssm, drs, cross_account = connect(module, ClientFactory(module), params)
        document = install.choose_document(params["document_name"], cross_account, params["staging_account_id"])
    except (TargetError, install.DocumentError) as error:
        module.fail_json(msg=str(error))
    except (BotoCoreError, ClientError) as error:
        module.fail_json_aws(error, msg=install.AWS_ERROR_MESSAGE)
    settings = dict(params, document_name=document, cross_account=cross_account, comment=install.comment())
    account_region = install.AccountRegionInstall(ssm, drs, settings, clock.now())
    with install.thread_pool(1) as pool:
        installs = install.Installs([account_region], clock, pool)
        installs.each(lambda target: target.prepare(clock.now(), module.check_mode))
        if not module.check_mode:
            installs.each(lambda target: target.send(clock.now()))
            installs.follow(threading.Event())
    report = account_region.report()
    if account_region in installs.failures:
        module.fail_json(msg=installs.failures[account_region], **report)
    figures = report["figures"]
    if figures["failure_rate"] > params["max_failure_rate"]:
        categories = {}
        for result in report["results"]:
            if outcomes.is_failure(result["status"]):
                categories[result["error_category"]] = categories.get(result["error_category"], 0) + 1
        ranked = sorted(categories.items(), key=lambda item: (-item[1], item[0]))[:3]
        top = ", ".join(f"{name}: {count}" for name, count in ranked)
        module.fail_json(msg=f"{figures['failed']} of {figures['attempted']} attempted instances did not install "
                             f"(failure rate {figures['failure_rate']} > max_failure_rate {params['max_failure_rate']}); "
                             f"top causes: {top}. See results[].remediation.", **report)
    module.exit_json(**report)


def main():
    argument_spec = dict(
        instance_ids=dict(type="list", elements="str", required=True),
        drs_region=dict(type="str"),
        staging_account_id=dict(type="str"),
        staging_access_key=dict(type="str", no_log=True),
        staging_secret_key=dict(type="str", no_log=True),
        staging_session_token=dict(type="str", no_log=True),
        document_name=dict(type="str"),
        document_version=dict(type="str"),
        **install.SETTINGS_SPEC,
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    if not (module.params["drs_region"] or module.region):
        module.fail_json(msg="no region: set region (or AWS_REGION), or drs_region")
    errors = option_errors(module.params)
    if errors:
        module.fail_json(msg="invalid options: " + "; ".join(errors))
    clock = module_clock(module)
    run(module, clock)


if __name__ == "__main__":
    main()
