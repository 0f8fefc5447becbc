# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""A wave's replication, verified before the next wave (``verify_replication``).

The wave's protected instances (installed or already registered) are looked at in the DRS of their staging
account and region: one paged DescribeSourceServers listing per staging account-region per look, matched
locally, so the calls do not grow with the instances. The looks go on until none is ``syncing`` any more or the
deadline passes; the counts are shown at least every progress interval.
"""

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import outcomes
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import replication
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.source_servers import list_source_servers
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.source_servers import servers_by_instance_id

PROTECTED = (outcomes.INSTALLED, outcomes.ALREADY_REGISTERED)
# Looks come at this interval at most (the progress interval when it is shorter).
LOOK_SECONDS = 30


def verify_wave(wave, sessions, settings, clock, show, stop, pool):
    """Wait for the wave's protected instances to replicate healthy; each gets ``result["replication"]`` (its
    verdict, reason and remediation). Returns the counts per verdict."""
    by_place = {}
    for place in wave.places:
        protected = [instance for instance in place.instances if instance.status in PROTECTED]
        if protected:
            by_place.setdefault((place.staging_account_id, place.drs_region), []).extend(protected)
    if not by_place:
        return replication.count([])
    started = clock.now()
    deadline = started + settings["verify_replication_timeout"]
    interval = min(LOOK_SECONDS, settings["progress_interval"])
    shown_at = None
    while True:
        healths = {}
        futures = {key: pool.submit(_look, sessions, key, instances, settings["rpo_seconds"])
                   for key, instances in by_place.items()}
        for future in futures.values():
            healths.update(future.result())
        counts = replication.count(healths.values())
        now = clock.now()
        pending = counts[replication.SYNCING] > 0
        if shown_at is None or now - shown_at >= settings["progress_interval"] or not pending or now >= deadline:
            shown_at = now
            shown = ", ".join(f"{counts[verdict]} {verdict}" for verdict in replication.VERDICTS if counts[verdict])
            show([f"Wave {wave.number} replication: {shown} ({int(now - started)} s of at most "
                  f"{settings['verify_replication_timeout']} s)"])
        if not pending or now >= deadline or stop.is_set():
            break
        if clock.wait(min(interval, deadline - now), stop):
            break
    for instances in by_place.values():
        for instance in instances:
            health = healths[instance.instance_id]
            instance.result["replication"] = {key: health.get(key) for key in (
                "verdict", "reason", "replication_state", "error", "error_category", "remediation", "lag_seconds")}
    return counts


def _look(sessions, key, instances, rpo_seconds):
    staging_account_id, region = key
    servers = servers_by_instance_id(list_source_servers(sessions.client(staging_account_id, "drs", region)))
    return {instance.instance_id: replication.assess(servers[instance.instance_id], rpo_seconds, region)
            if instance.instance_id in servers else replication.not_found(instance.instance_id)
            for instance in instances}


def unhealthy_lines(wave):
    """One line per instance of the wave whose replication was verified and is not healthy."""
    lines = []
    for instance in wave.instances:
        health = instance.result.get("replication")
        if health and health["verdict"] != replication.HEALTHY:
            lines.append(f"    {instance.instance_id} {health['verdict']}: {health['reason']}"
                         + (f"; {health['remediation']}" if health.get("remediation") else ""))
    return lines
