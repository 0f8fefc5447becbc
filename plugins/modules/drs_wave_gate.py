#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: drs_wave_gate
version_added: 0.1.0
short_description: Judge one wave of a deployment over every run that recorded it
description:
  - Reads the wave items of one wave of a deployment (one per run that recorded the wave, written by the
    C(drs_agent_deploy) role with each source account's figures of that wave) with one key-condition query, and
    adds up the wave's figures over all of them, so that a wave run as several AWX / Automation Platform job
    slices, each its own run, is judged as one, and judging a late wave reads no more than an early one.
  - Fails when the wave's failure rate (failed over attempted instances, the definition of
    C(drs_agent_deploy_max_failure_rate)) is over O(max_failure_rate); when a run that recorded the wave has
    not recorded its end (still V(in_progress), or V(interrupted) once its lease passed); and when no run of the
    deployment recorded the wave, so that a gate never passes on nothing.
  - A run started again with the same deployment id records items of its own, so an instance it retried counts
    in both runs, so the gate errs on the strict side.
  - Read-only; safe in check mode. The options are checked before any AWS call.
author:
  - DRS orchestration contributors (@drs-orchestration)
options:
  table_name:
    description: The deployment history table.
    type: str
    required: true
  deployment_id:
    description:
      - The deployment whose wave to judge. C(playbooks/deploy_agents.yml) passes it on to a workflow's later
        nodes as the artifact C(drs_agent_deploy_deployment_id).
    type: str
    required: true
  wave:
    description: The wave to judge.
    type: int
    required: true
  max_failure_rate:
    description: The highest failure rate (0 to 1) with which the wave passes.
    type: float
    required: true
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Stop the workflow when wave 2 failed too often across all its slices
  drs_orchestration.agent_deployer.drs_wave_gate:
    table_name: drs-deployment-history
    region: us-east-1
    deployment_id: "{{ drs_agent_deploy_deployment_id }}"
    wave: 2
    max_failure_rate: 0.1
"""

RETURN = r"""
passed:
  description: Whether the wave passed the gate.
  returned: always
  type: bool
reason:
  description: The verdict in one line, with the wave's figures.
  returned: always
  type: str
figures:
  description:
    - The wave's figures over every run (C(attempted), C(installed), C(already_registered), C(protected),
      C(failed), C(skipped), C(unsettled), C(unprotected), C(success_rate), C(failure_rate), C(by_status)).
  returned: always
  type: dict
runs:
  description: Each run and source account that recorded the wave, with C(run_id), C(source_account_id),
    C(status) and its own C(figures) of the wave.
  returned: always
  type: list
  elements: dict
unsettled_runs:
  description: The runs of RV(runs) that have not recorded their end (V(in_progress) or V(interrupted)).
  returned: always
  type: list
  elements: dict
"""

import datetime

try:
    from botocore.exceptions import BotoCoreError
    from botocore.exceptions import ClientError
except ImportError:
    pass  # Handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import history
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import inputs
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.aws import RETRY


def option_errors(params):
    errors = [inputs.table_name_error("table_name", params["table_name"]),
              inputs.deployment_id_error("deployment_id", params["deployment_id"])]
    if params["wave"] < 0:
        errors.append(f"wave must be a whole number, 0 or more, not {params['wave']}")
    if not 0 <= params["max_failure_rate"] <= 1:
        errors.append(f"max_failure_rate must be from 0 to 1, not {params['max_failure_rate']}")
    return [error for error in errors if error]


def main():
    argument_spec = dict(
        table_name=dict(type="str", required=True),
        deployment_id=dict(type="str", required=True),
        wave=dict(type="int", required=True),
        max_failure_rate=dict(type="float", required=True),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)

    errors = option_errors(module.params)
    if errors:
        module.fail_json(msg="; ".join(errors))

    try:
        runs = history.wave_runs(module.client("dynamodb", retry_decorator=RETRY), module.params["table_name"],
                                 module.params["deployment_id"], module.params["wave"],
                                 datetime.datetime.now(datetime.timezone.utc))
    except (BotoCoreError, ClientError) as e:
        module.fail_json_aws(e, msg=f"Could not read deployment {module.params['deployment_id']} from the history "
                                    f"table {module.params['table_name']}")

    verdict = history.judge_wave(runs, module.params["wave"], module.params["max_failure_rate"])
    if not verdict["passed"]:
        module.fail_json(msg=f"Deployment {module.params['deployment_id']}: {verdict['reason']}", changed=False,
                         **verdict)
    module.exit_json(changed=False, **verdict)


if __name__ == "__main__":
    main()
