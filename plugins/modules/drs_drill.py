# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: drs_drill
short_description: Rehearse recovery wave by wave with DRS drill launches, and measure each wave's recovery time
version_added: 0.2.0
description:
  - "Launches drill recovery instances of the DRS source servers of the DR-tagged instances (the same accounts,
    tags and waves as M(drs_orchestration.agent_deployer.drs_rollout)), wave after wave in wave order, measures
    each wave's recovery time, explains every launch that failed, and terminates the drill's recovery instances.
    This is what the C(drs_drill) role runs; its variables are this action's options with the prefix C(drs_drill_)."
  - "Each instance's source server is looked up once, with one paged C(DescribeSourceServers) listing per staging
    account-region; an instance without a live source server (never installed, or only a C(DISCONNECTED) record) is
    reported as C(not_protected) and not drilled."
  - "A wave starts when the one before it has ended. Its servers go out in C(StartRecovery) jobs (C(isDrill)) of at
    most 100 servers, as many at once as DRS allows in each account-region: 20 active jobs and 500 servers across
    active jobs. A job DRS refuses for its limits (C(ServiceQuotaExceededException), C(ConflictException)) waits for
    the next look. Each look is one paged C(DescribeJobs) per account-region with jobs running, so the calls do not
    grow with the servers."
  - "A wave's recovery time runs from the creation of its first job to the end of its last job, as DRS stamps them.
    A server whose launch failed is listed with the reason of the job log (C(DescribeJobLogItems), read once per
    job that had a failure), a category (C(no_point_in_time), C(launch_template), C(quota), C(conversion),
    C(launch_failed)) and a remediation. A server not launched within O(launch_timeout) is C(timed_out)."
  - "At the end, unless O(keep_recovery_instances), the drill's recovery instances are terminated
    (C(TerminateRecoveryInstances), in jobs within the same limits) and the C(TERMINATE) jobs waited for, up to O(terminate_timeout).
    Ctrl-C or SIGTERM stop the drill within seconds; the instances it launched are then terminated without waiting."
  - "The drill is recorded in the history table as its own record type (C(record_type) V(drill)): per wave, the
    servers, launched, failed, timed out, not protected, jobs, recovery seconds and the RTO; and its figures are sent to
    CloudWatch."
  - "The task fails when a wave took longer than O(rto_seconds), when a server did not launch, or when an account
    could not be reached; every wave is drilled all the same."
  - In check mode, each wave's servers and jobs are counted and nothing is launched.
extends_documentation_fragment:
  - drs_orchestration.agent_deployer.estate
author:
  - DRS orchestration contributors (@drs-orchestration)
options:
  poll_interval:
    description: Seconds between two looks at the DRS jobs of an account-region.
    type: int
    default: 15
  progress_interval:
    description: Seconds between two progress lines while a wave's drill runs (1 to 60).
    type: int
    default: 30
  history_table:
    description: The DynamoDB history table, in the controller's own account. Empty records nothing.
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
    description:
      - The CloudWatch namespace of the drill's metrics (C(DrillRecoverySeconds), C(DrillLaunchFailures), dimension
        C(Wave)), sent at its end. Empty sends none.
    type: str
    default: DRSOrchestration/AgentDeployment
  waves:
    description: Drill only these waves. Empty means every wave.
    type: list
    elements: int
    default: []
  summary_file:
    description: Write the drill's summary (JSON) to this file. Empty writes none.
    type: str
    default: ""
  rto_seconds:
    description: The recovery time objective of a wave, in seconds; a wave that takes longer fails the task. 0 sets none.
    type: int
    default: 0
  launch_timeout:
    description: Seconds a wave's servers have to launch; those not launched by then are C(timed_out).
    type: int
    default: 3600
  terminate_timeout:
    description: Seconds to wait for DRS to terminate the drill's recovery instances.
    type: int
    default: 1800
  keep_recovery_instances:
    description: Leave the drill's recovery instances running (to inspect them); terminate them later in DRS.
    type: bool
    default: false
  session_name:
    description: The role session name, seen in the accounts' CloudTrail.
    type: str
    default: drs-drill
  variable_prefix:
    description:
      - When the action runs for a role, the prefix of the role's variables (C(drs_drill_)); messages then name the
        variables, and variables with the prefix that are none of the options are refused as misspelled.
    type: str
    default: ""
notes:
  - This is an action plugin; it runs on the controller, which needs boto3 and botocore.
  - A drill launches real EC2 instances in the recovery accounts, which cost money while they run.
seealso:
  - module: drs_orchestration.agent_deployer.drs_rollout
  - module: drs_orchestration.agent_deployer.drs_replication_health
"""

EXAMPLES = r"""
- name: Drill waves 1 and 2, each within 30 minutes
  drs_orchestration.agent_deployer.drs_drill:
    accounts:
      - account_id: "222222222222"
        role_arn: arn:aws:iam::222222222222:role/DRSOrchestrationSourceRole
        regions: [us-east-1]
    external_id: "{{ drs_external_id }}"
    waves: [1, 2]
    rto_seconds: 1800
    summary_file: out/drill.json
  register: drill
"""

RETURN = r"""
drill:
  description:
    - "The drill's summary, also written to O(summary_file): C(drill_id), C(started_at), C(finished_at), C(stopped),
      C(termination) (V(done), V(incomplete), V(requested) when stopped, V(kept), or none when nothing launched), C(terminated), C(totals) and C(waves):
      per wave C(wave), C(servers), C(launched), C(failed), C(timed_out), C(stopped), C(not_protected), C(jobs),
      C(recovery_seconds), C(rto_seconds), C(over_rto) and C(problems) (every server not launched and every instance
      not protected, with its reason and, for a failed launch, C(error_category) and C(remediation)); and
      C(recorded) (where the drill was recorded)."
    - In check mode, C(waves) holds each wave's C(servers), C(not_protected) and C(jobs), and C(check_mode) is true.
  returned: always
  type: dict
"""
