#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

DOCUMENTATION = r"""
---
module: drs_replication_health
version_added: 0.1.0
short_description: Check that AWS Elastic Disaster Recovery source servers replicate, and wait until they do
description:
  - Reads the replication of the DRS source servers of one account and region (the staging account's, where
    the servers are registered) and gives each a verdict. V(healthy) is C(CONTINUOUS) replication with a lag
    within O(rpo_seconds) and nothing in backlog. V(syncing) is on its way (initiation, initial sync, backlog,
    rescan), or behind the RPO, with the ETA DRS gives. V(stalled) is C(STALLED), a replication error or a
    failed initiation step, with the error's category and a one-line remediation. V(disconnected) and
    V(stopped) are C(DISCONNECTED), C(STOPPED) or C(PAUSED). V(not_found) is an asked-for instance without a
    source server.
  - With O(wait=true), it reads again every O(poll_interval) seconds until every server is V(healthy) or none is
    V(syncing) any more, or until O(wait_timeout) passes, and records the counts of every look in RV(progress).
  - Each look is one paged C(drs:DescribeSourceServers) listing of the account and region, matched locally, so
    the calls do not grow with the number of servers asked for.
  - Read-only; check mode reads and waits as well.
author:
  - DRS orchestration contributors (@drs-orchestration)
options:
  instance_ids:
    description:
      - The EC2 instances whose source servers to check. With neither this nor O(source_server_ids), every
        source server of the account and region that is not a stale C(DISCONNECTED) record.
    type: list
    elements: str
  source_server_ids:
    description:
      - The source servers to check (C(s-) followed by 17 characters).
    type: list
    elements: str
  rpo_seconds:
    description:
      - The recovery point objective, in seconds. A C(CONTINUOUS) server lagging more is V(syncing), not
        V(healthy).
    type: int
    default: 300
  wait:
    description:
      - Wait until every server is V(healthy) (or none is V(syncing) any more) or O(wait_timeout) passes.
    type: bool
    default: false
  wait_timeout:
    description:
      - How long to wait, in seconds.
    type: int
    default: 3600
  poll_interval:
    description:
      - Seconds between two looks while waiting (at most 60, so that a look comes at least once a minute).
    type: int
    default: 30
  fail_unhealthy:
    description:
      - Fail when a server is not V(healthy) at the end (after the wait, if any).
    type: bool
    default: false
notes:
  - The permission used is C(drs:DescribeSourceServers).
extends_documentation_fragment:
  - amazon.aws.common.modules
  - amazon.aws.region.modules
  - amazon.aws.boto3
"""

EXAMPLES = r"""
- name: Wait until the wave's servers replicate within a 5-minute RPO, for at most an hour
  drs_orchestration.agent_deployer.drs_replication_health:
    region: us-east-1
    instance_ids: "{{ wave_instance_ids }}"
    rpo_seconds: 300
    wait: true
    wait_timeout: 3600
    fail_unhealthy: true
  register: health

- name: The stalled servers and what to do about them
  ansible.builtin.debug:
    msg: "{{ health.servers | selectattr('verdict', 'equalto', 'stalled') | map(attribute='remediation') | list }}"
"""

RETURN = r"""
servers:
  description: One entry per server (and per asked-for instance without a server), ordered by verdict then id.
  returned: always
  type: list
  elements: dict
  contains:
    instance_id:
      description: The EC2 instance the server replicates.
      type: str
    source_server_id:
      description: The source server, or V(null) for V(not_found).
      type: str
    verdict:
      description: V(healthy), V(syncing), V(stalled), V(disconnected), V(stopped) or V(not_found).
      type: str
    reason:
      description: The verdict in one line.
      type: str
      sample: "replication is STALLED: FAILED_TO_CONNECT_AGENT_TO_REPLICATION_SERVER at step CONNECT_AGENT_TO_REPLICATION_SERVER"
    replication_state:
      description: C(dataReplicationState).
      type: str
    initiation_steps:
      description: The initiation steps with their status.
      type: list
      elements: dict
    failed_step:
      description: The first initiation step that failed.
      type: str
    error:
      description: C(dataReplicationError.error), or the error of the failed step.
      type: str
    error_category:
      description: V(network), V(permissions), V(quota), V(capacity), V(agent) or V(unknown).
      type: str
    remediation:
      description: What to do, in one line.
      type: str
    lag_seconds:
      description: The replication lag.
      type: float
    backlog_bytes:
      description: Bytes waiting to be replicated.
      type: int
    replicated_bytes:
      description: Bytes replicated of RV(servers[].total_bytes) (the initial sync's progress).
      type: int
    total_bytes:
      description: The size of the replicated disks.
      type: int
    eta:
      description: When DRS expects the initial sync to end.
      type: str
    last_seen:
      description: When DRS last heard from the agent.
      type: str
counts:
  description: How many servers have each verdict.
  returned: always
  type: dict
  sample: {"healthy": 10, "syncing": 1, "stalled": 1, "disconnected": 0, "stopped": 0, "not_found": 0}
progress:
  description: The counts at every look, with the seconds since the first.
  returned: always
  type: list
  elements: dict
  sample: [{"seconds": 0, "healthy": 8, "syncing": 4}, {"seconds": 30, "healthy": 12, "syncing": 0}]
waited_seconds:
  description: How long the module waited.
  returned: always
  type: float
timed_out:
  description: V(true) when O(wait_timeout) passed with servers still V(syncing).
  returned: always
  type: bool
"""

try:
    from botocore.exceptions import BotoCoreError
    from botocore.exceptions import ClientError
except ImportError:
    pass  # Handled by AnsibleAWSModule

from ansible_collections.amazon.aws.plugins.module_utils.botocore import is_boto3_error_code
from ansible_collections.amazon.aws.plugins.module_utils.modules import AnsibleAWSModule

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import replication
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.inputs import instance_id_error
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.inputs import source_server_id_error
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.aws import RETRY
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.clock import module_clock
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.source_servers import is_stale
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.source_servers import list_source_servers
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.source_servers import servers_by_instance_id

MAX_POLL_INTERVAL = 60


def option_errors(params):
    errors = [instance_id_error(f"instance_ids[{index}]", value) for index, value in enumerate(params["instance_ids"] or [])]
    errors += [source_server_id_error(f"source_server_ids[{index}]", value)
               for index, value in enumerate(params["source_server_ids"] or [])]
    errors = [error for error in errors if error]
    for option in ("rpo_seconds", "wait_timeout"):
        if params[option] < 0:
            errors.append(f"{option} must be 0 or more, not {params[option]}")
    if not 1 <= params["poll_interval"] <= MAX_POLL_INTERVAL:
        errors.append(f"poll_interval must be between 1 and {MAX_POLL_INTERVAL} seconds, not {params['poll_interval']}")
    return errors


def look(drs, params, region):
    """Every asked-for server's health, from one listing of the account and region."""
    instance_ids = params["instance_ids"] or []
    servers = list_source_servers(drs, source_server_ids=params["source_server_ids"])
    if instance_ids:
        chosen = servers_by_instance_id(servers)
        healths = [replication.assess(chosen[iid], params["rpo_seconds"], region) if iid in chosen
                   else replication.not_found(iid) for iid in instance_ids]
    else:
        healths = [replication.assess(server, params["rpo_seconds"], region) for server in servers
                   if params["source_server_ids"] or not is_stale(server)]
    order = {verdict: index for index, verdict in enumerate(replication.VERDICTS)}
    return sorted(healths, key=lambda health: (order[health["verdict"]], health["instance_id"] or "",
                                               health["source_server_id"] or ""))


def run(module, drs, clock):
    params = module.params
    started = clock.now()
    deadline = started + (params["wait_timeout"] if params["wait"] else 0)
    progress = []
    while True:
        healths = look(drs, params, module.region)
        counts = replication.count(healths)
        progress.append(dict(seconds=round(clock.now() - started, 1), **{k: v for k, v in counts.items() if v}))
        pending = any(counts[verdict] for verdict in replication.PENDING)
        if not params["wait"] or not pending or clock.now() >= deadline:
            break
        clock.sleep(min(params["poll_interval"], max(deadline - clock.now(), 0)))
    result = {"changed": False, "servers": healths, "counts": counts, "progress": progress,
              "waited_seconds": round(clock.now() - started, 1), "timed_out": bool(params["wait"] and pending)}
    unhealthy = len(healths) - counts[replication.HEALTHY]
    if params["fail_unhealthy"] and unhealthy:
        waited = f" after waiting {int(result['waited_seconds'])} s" if params["wait"] else ""
        module.fail_json(msg=f"{unhealthy} of {len(healths)} server(s) are not healthy{waited}: "
                             + ", ".join(f"{counts[v]} {v}" for v in replication.VERDICTS if counts[v] and v != replication.HEALTHY)
                             + ". See servers[].reason and servers[].remediation.", **result)
    module.exit_json(**result)


def main():
    argument_spec = dict(
        instance_ids=dict(type="list", elements="str"),
        source_server_ids=dict(type="list", elements="str"),
        rpo_seconds=dict(type="int", default=300),
        wait=dict(type="bool", default=False),
        wait_timeout=dict(type="int", default=3600),
        poll_interval=dict(type="int", default=30),
        fail_unhealthy=dict(type="bool", default=False),
    )
    module = AnsibleAWSModule(argument_spec=argument_spec, supports_check_mode=True)
    errors = option_errors(module.params)
    if errors:
        module.fail_json(msg="invalid options: " + "; ".join(errors))
    clock = module_clock(module)
    drs = module.client("drs", retry_decorator=RETRY)
    try:
        run(module, drs, clock)
    except is_boto3_error_code("UninitializedAccountException") as e:
        module.fail_json_aws(e, msg=f"Elastic Disaster Recovery is not initialized in this account in {module.region}: "
                                    "no server replicates here. Check the account and region (the staging account's)")
    except (BotoCoreError, ClientError) as e:  # pylint: disable=duplicate-except
        module.fail_json_aws(e, msg=f"Could not read DRS source servers in {module.region}: check that the credentials "
                                    "allow drs:DescribeSourceServers in this account")


if __name__ == "__main__":
    main()
