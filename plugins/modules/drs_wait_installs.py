# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
module: drs_wait_installs
short_description: Wait for background agent installs and show their progress
version_added: 0.1.0
description:
  - Waits for C(drs_orchestration.agent_deployer.drs_ssm_install) tasks started with C(async) and C(poll=0), for
    example the account-regions of one deployment wave, and returns their results.
  - While it waits, it prints one progress line at least every O(progress_interval) seconds, summed over the
    jobs' C(progress_file) documents (instances done, failed, in flight, waiting for SSM, waiting for DRS).
  - It fails only when O(timeout) passes first, naming the jobs still running; the results of the jobs say how
    each install went.
  - This is an action plugin. It runs on the controller and reads the jobs on the host the task runs on, so run
    it delegated to the host that ran the jobs. Each look at a job reads the job's results file in the async
    folder with one shell command (the progress files likewise), rather than running C(async_status).
author:
  - DRS orchestration contributors (@drs-orchestration)
options:
  jobs:
    description:
      - The background jobs to wait for, that is the C(results) registered by a looped task run with C(async)
        and C(poll=0). Each has C(ansible_job_id) and the loop C(item), whose C(name) labels the job in progress
        lines and results (for example C(222222222222/us-east-1)) and whose optional C(progress_file) is the
        file the job writes its progress to.
      - Or, with O(targets), the result registered by one task run with C(async) and C(poll=0).
    type: list
    elements: dict
    required: true
  targets:
    description:
      - The install targets of jobs started by one C(drs_ssm_install) task with its C(targets) option (all the
        account-regions of a wave in one background job), each with a C(name) matching the C(name) given to
        C(drs_ssm_install), and optionally a C(progress_file) and any other keys to keep with the result.
        Give no credentials here; these entries are returned as the results' C(item).
      - With O(targets), O(jobs) may hold such a job registered without a loop, and its result is returned as
        one entry per target (the target's own result from the job's C(targets) return value); a job that
        failed before any target answered gives each target its failure.
    type: list
    elements: dict
  label:
    description:
      - What is being waited for, shown at the start of every progress line (for example C(wave 2)).
    type: str
    default: installs
  timeout:
    description:
      - Seconds to wait for all jobs.
    type: int
    default: 7200
  poll_interval:
    description:
      - Seconds between two looks at the jobs. Once the jobs' progress files say every instance is settled, the
        jobs are only writing their results, and they are looked at every tenth of a second until they have.
    type: int
    default: 5
  progress_interval:
    description:
      - Seconds between two progress lines; at most 60 keeps long waits visibly alive.
    type: int
    default: 30
notes:
  - Start no background jobs in check mode; there is then nothing to wait for.
"""

EXAMPLES = r"""
- name: Start the wave's installs in every account-region
  drs_orchestration.agent_deployer.drs_ssm_install:
    instance_ids: "{{ item.instance_ids }}"
    region: "{{ item.region }}"
    progress_file: "{{ item.progress_file }}"
  async: 7800
  poll: 0
  loop: "{{ wave_targets }}"  # each with name, region, instance_ids, progress_file
  register: started

- name: Wait for the wave's installs
  drs_orchestration.agent_deployer.drs_wait_installs:
    label: "wave {{ wave }}"
    jobs: "{{ started.results }}"
    timeout: 7800
  register: finished

- name: Start every account-region of the wave in one background job
  drs_orchestration.agent_deployer.drs_ssm_install:
    targets: "{{ wave_targets_with_credentials }}"  # each with name, instance_ids, region, keys, progress_file
    max_failure_rate: 1
  async: 7800
  poll: 0
  register: wave_job

- name: Wait for it, with one result per account-region
  drs_orchestration.agent_deployer.drs_wait_installs:
    label: "wave {{ wave }}"
    jobs: ["{{ wave_job }}"]
    targets: "{{ wave_targets }}"  # the same names and progress files, without credentials
    timeout: 7800
  register: finished
"""

RETURN = r"""
results:
  description: One entry per job, in the order of O(jobs); with O(targets), one entry per target instead.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The job's name (with O(targets), the target's).
      type: str
    jid:
      description: The job id.
      type: str
    item:
      description: The loop item that started the job (with O(targets), the entry of O(targets)).
      type: dict
    result:
      description:
        - The result of the job's task, as the module returned it (C(failed) and C(msg) included); with
          O(targets), the target's own entry of the module's C(targets) return value.
      type: dict
waited_seconds:
  description: How long the wait took.
  returned: always
  type: float
"""
