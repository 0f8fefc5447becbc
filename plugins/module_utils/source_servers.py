# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""DRS source servers: list them in few calls and match them to EC2 instances.

DescribeSourceServers' ``hardwareId`` filter takes a single instance id, so asking for many
instances one call each costs a call per instance. Instead the account's servers are listed once
(paged) and matched locally on ``sourceProperties.identificationHints.awsInstanceID``; the filtered
call is used only when exactly one instance is asked for. Servers whose replication is
``DISCONNECTED`` are stale records (the agent was uninstalled or the instance is gone): they never
count as "registered".
"""

import itertools

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.aws import pages

# The sourceServerIDs and stagingAccountIDs filters take at most 200 values each.
FILTER_CHUNK = 200
# The model sets no upper bound on maxResults; large pages keep a 4,000-server account to a few calls.
PAGE_SIZE = 1000
STALE_STATE = "DISCONNECTED"


def _chunks(values):
    values = sorted(set(values))
    return [values[start:start + FILTER_CHUNK] for start in range(0, len(values), FILTER_CHUNK)]


def instance_id_of(server):
    """The EC2 instance id a source server was registered from, or None (not an EC2 instance)."""
    hints = server.get("sourceProperties", {}).get("identificationHints", {})
    return hints.get("awsInstanceID")


def is_stale(server):
    return server.get("dataReplicationInfo", {}).get("dataReplicationState") == STALE_STATE


def list_source_servers(drs_client, instance_ids=None, source_server_ids=None, staging_account_ids=None):
    """Source servers (boto3 shapes) matching every filter given; no filter lists them all.

    ``drs_client`` is a client made with the collection's ``RETRY`` decorator.
    """
    instance_ids = set(instance_ids or [])
    filter_sets = []
    if source_server_ids:
        filter_sets.append([{"sourceServerIDs": chunk} for chunk in _chunks(source_server_ids)])
    if staging_account_ids:
        filter_sets.append([{"stagingAccountIDs": chunk} for chunk in _chunks(staging_account_ids)])
    if len(instance_ids) == 1:
        filter_sets.append([{"hardwareId": next(iter(instance_ids))}])

    servers = []
    for combination in itertools.product(*filter_sets):
        filters = {}
        for part in combination:
            filters.update(part)
        params = {"maxResults": PAGE_SIZE}
        if filters:
            params["filters"] = filters
        for page in pages(drs_client.describe_source_servers, "nextToken", **params):
            servers.extend(page.get("items", []))
    if instance_ids:
        # hardwareId may also match other hardware identifiers; the instance id hint is authoritative.
        servers = [server for server in servers if instance_id_of(server) in instance_ids]
    return servers


def servers_by_instance_id(servers):
    """{instance id: the server that stands for it}: a live one before a stale one, then the newest."""
    chosen = {}
    for server in servers:
        instance_id = instance_id_of(server)
        if instance_id is None:
            continue
        current = chosen.get(instance_id)
        if current is None or _preference(server) > _preference(current):
            chosen[instance_id] = server
    return chosen


def _preference(server):
    added = server.get("lifeCycle", {}).get("addedToServiceDateTime") or ""
    return (not is_stale(server), added)


def replication_summary(server):
    """The few facts about a server's replication that results and messages need."""
    replication = server.get("dataReplicationInfo", {})
    error = replication.get("dataReplicationError", {})
    life_cycle = server.get("lifeCycle", {})
    return {
        "source_server_id": server.get("sourceServerID"),
        "arn": server.get("arn"),
        "instance_id": instance_id_of(server),
        "state": replication.get("dataReplicationState"),
        "error": error.get("error"),
        "raw_error": error.get("rawError"),
        "lag_duration": replication.get("lagDuration"),
        "eta_date_time": replication.get("etaDateTime"),
        "added_to_service_date_time": life_cycle.get("addedToServiceDateTime"),
        "last_seen_by_service_date_time": life_cycle.get("lastSeenByServiceDateTime"),
        "stale": is_stale(server),
    }
