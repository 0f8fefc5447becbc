# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The drift between the DR-tagged instances and the DRS source servers: the one definition of each kind.

Pure functions over what was read (discovery's instances, DescribeSourceServers' servers, DescribeInstances'
answer for the servers' other instances, the history's last record of each instance); nothing here calls AWS.

A place is one source account and region, with the staging account and DRS region it replicates into. For
each place:

- ``tagged_not_protected``: a tagged instance without a live source server, with its reason: ``stale_record``
  (its only server is ``DISCONNECTED``), ``failed`` (no server, and the history's last record of the instance is
  a failed install), ``never_installed`` (no server, and no failed install recorded) or ``not_installed`` (no
  server, and the history could not be read to tell the two apart);
- ``untagged``: a source server whose instance exists but no longer carries the DR tags;
- ``terminated``: a source server whose instance is terminated (or shutting down), or no longer known to EC2;
- ``protected``: the tagged instances with a live source server.

``extension_errors`` are the extended servers of a target account whose staging server is gone
(``stagingArea.status`` ``EXTENSION_ERROR``).
"""

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import outcomes
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.extension import EXTENDED
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.extension import EXTENSION_ERROR
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.source_servers import STALE_STATE
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.source_servers import instance_id_of
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.source_servers import is_stale
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.source_servers import servers_by_instance_id

# The states in which an instance still counts as the tagged instance it is; shutting-down and terminated
# instances are gone.
TAGGED_STATES = ("pending", "running", "stopping", "stopped")
GONE_STATES = ("shutting-down", "terminated")
NOT_FOUND = "not_found"
# The deploy installs on running instances only (discovery.INSTANCE_STATES_DEPLOYED).
INSTALLABLE_STATE = "running"

NEVER_INSTALLED = "never_installed"
FAILED = "failed"
STALE_RECORD = "stale_record"
NOT_INSTALLED = "not_installed"
REASONS = (NEVER_INSTALLED, FAILED, STALE_RECORD, NOT_INSTALLED)
KINDS = ("tagged_not_protected", "untagged", "terminated")


def origin_of(server):
    """(account id, region) of the EC2 instance a source server replicates, or None when DRS does not say."""
    cloud = server.get("sourceCloudProperties") or {}
    if cloud.get("originAccountID") and cloud.get("originRegion"):
        return cloud["originAccountID"], cloud["originRegion"]
    return None


def is_extended(server):
    """An extended server (of a target account), as opposed to a server its agent registered."""
    return (server.get("stagingArea") or {}).get("status") in (EXTENDED, EXTENSION_ERROR)


def account_of_arn(arn):
    """The account id of an ARN (arn:aws:drs:<region>:<account>:...), or None."""
    parts = (arn or "").split(":")
    return parts[4] if len(parts) > 5 else None


def replication_state(server):
    return (server.get("dataReplicationInfo") or {}).get("dataReplicationState")


def assign_servers(listings, places):
    """The EC2 servers of staging listings, by place: ({place key: [servers]}, [unplaced entries]).

    ``listings`` maps (staging account id, DRS region) to the servers listed there; ``places`` maps a place key
    (source account id, region) to its place dict (``staging_account_id``, ``drs_region``). A server goes to the
    place its ``sourceCloudProperties`` name; a server that names none goes to the one place that replicates
    into its staging account-region, and is unplaced when several do (it is reported, never retired). Extended
    servers, servers of no EC2 instance, and servers of places out of scope are left alone.
    """
    feeding = {}
    for key, place in places.items():
        feeding.setdefault((place["staging_account_id"], place["drs_region"]), []).append(key)
    assigned = {key: [] for key in places}
    unplaced = []
    for listing_key, servers in listings.items():
        fed = feeding.get(listing_key, [])
        for server in servers:
            if is_extended(server) or instance_id_of(server) is None:
                continue
            origin = origin_of(server)
            if origin is None and len(fed) == 1:
                origin = fed[0]
            if origin is None:
                unplaced.append({"staging_account_id": listing_key[0], "drs_region": listing_key[1],
                                 "source_server_id": server.get("sourceServerID"),
                                 "instance_id": instance_id_of(server),
                                 "reason": "DRS does not say which account and region the instance is in, and "
                                           "several source account-regions replicate here"})
                continue
            if origin in fed:
                assigned[origin].append(server)
    return assigned, unplaced


def extended_by_staging_arn(target_listings):
    """{staging server ARN: [the extended servers made from it]} over every target listing."""
    found = {}
    for servers in target_listings.values():
        for server in servers:
            if is_extended(server):
                found.setdefault((server.get("stagingArea") or {}).get("stagingSourceServerArn"), []).append(server)
    return found


def last_records(deployments):
    """{instance id: its newest unprotected entry} of history deployments given newest first (drs_history_info's
    answer), each with the deployment's id and time. Items list the unprotected instances of a run only, so this
    is the instance's last recorded outcome among the runs that did not protect it."""
    found = {}
    for deployment in deployments:
        for entry in deployment.get("unprotected_instances") or []:
            instance_id = entry.get("instance_id")
            if instance_id and instance_id not in found:
                found[instance_id] = {"status": entry.get("status"), "error_category": entry.get("error_category"),
                                      "reason": entry.get("reason"), "remediation": entry.get("remediation"),
                                      "deployment_id": deployment.get("deployment_id"),
                                      "recorded_at": deployment.get("updated_at") or deployment.get("started_at")}
    return found


def _server_fields(server, extended):
    fields = {
        "source_server_id": server.get("sourceServerID"),
        "arn": server.get("arn"),
        "replication_state": replication_state(server),
        "recovery_instance_id": server.get("recoveryInstanceId"),
    }
    fields["extended_servers"] = [
        {"source_server_id": item.get("sourceServerID"), "arn": item.get("arn"),
         "account_id": account_of_arn(item.get("arn")), "replication_state": replication_state(item),
         "recovery_instance_id": item.get("recoveryInstanceId")}
        for item in extended.get(server.get("arn"), [])]
    return fields


def classify(place, tagged, servers, others, extended, history, retry_failed, retry_option="retry_failed"):
    """The drift of one place.

    ``place``: ``account_id``, ``region``, ``staging_account_id``, ``drs_region``. ``tagged``: discovery's
    instances (``instance_id``, ``name``, ``state``, ``wave``, ``wave_error``). ``servers``: the place's source
    servers (EC2, not extended). ``others``: {instance id: {"state", "name"}} for the servers' instances that are
    not among the tagged ones (state ``not_found`` when EC2 does not know the instance). ``extended``: {staging
    server ARN: [extended servers]}. ``history``: {instance id: last record} (``last_records``), or None when
    the history was not read. ``retry_failed``: whether an instance whose last install failed is installed
    again (``retry_option`` names that setting in messages).

    Returns {"protected": [instance ids], "tagged_not_protected": [...], "untagged": [...], "terminated": [...]}.
    """
    where = {"account_id": place["account_id"], "region": place["region"],
             "staging_account_id": place["staging_account_id"], "drs_region": place["drs_region"]}
    chosen = servers_by_instance_id(servers)
    drift = {"protected": [], "tagged_not_protected": [], "untagged": [], "terminated": []}
    tagged_ids = set()
    for instance in sorted(tagged, key=lambda item: item["instance_id"]):
        instance_id = instance["instance_id"]
        tagged_ids.add(instance_id)
        server = chosen.get(instance_id)
        if server is not None and not is_stale(server):
            drift["protected"].append(instance_id)
            continue
        entry = dict(where, instance_id=instance_id, name=instance.get("name") or "", state=instance.get("state"),
                     wave=instance.get("wave"))
        record = (history or {}).get(instance_id)
        if server is not None:
            entry["reason"] = STALE_RECORD
            entry["detail"] = (f"its source server {server.get('sourceServerID')} is {STALE_STATE}: the agent was "
                               "uninstalled or stopped reporting; installing again reconnects it")
            entry["source_server_id"] = server.get("sourceServerID")
        elif history is None:
            entry["reason"] = NOT_INSTALLED
            entry["detail"] = "no source server; the history was not read, so a failed install cannot be told apart"
        elif record is not None and record["status"] in outcomes.FAILED_STATUSES:
            entry["reason"] = FAILED
            entry["detail"] = (f"no source server; its last install ({record['deployment_id']}) ended "
                               f"{record['status']}: {record.get('reason') or 'no reason recorded'}")
        else:
            entry["reason"] = NEVER_INSTALLED
            entry["detail"] = "no source server, and no failed install recorded"
        if record is not None:
            entry["last_recorded"] = record
        entry["not_installed_because"] = _not_installable(instance, entry["reason"], retry_failed, retry_option)
        entry["installable"] = entry["not_installed_because"] is None
        drift["tagged_not_protected"].append(entry)
    for instance_id, server in sorted(_all_servers_by_instance(servers).items()):
        if instance_id in tagged_ids:
            continue
        seen = others.get(instance_id) or {"state": NOT_FOUND, "name": ""}
        for each in server:
            entry = dict(where, instance_id=instance_id, name=seen.get("name") or "", state=seen["state"],
                         **_server_fields(each, extended))
            kind = "terminated" if seen["state"] in GONE_STATES + (NOT_FOUND,) else "untagged"
            drift[kind].append(entry)
    return drift


def _all_servers_by_instance(servers):
    """{instance id: every server of it}: an untagged or terminated instance's stale duplicates are leftovers too."""
    found = {}
    for server in servers:
        found.setdefault(instance_id_of(server), []).append(server)
    return found


def _not_installable(instance, reason, retry_failed, retry_option):
    """Why the deploy is not run for a tagged, unprotected instance, or None when it is."""
    if instance.get("state") != INSTALLABLE_STATE:
        return f"it is {instance.get('state')}: the deploy installs on running instances only"
    if instance.get("wave") is None:
        return f"it has no usable wave: {instance.get('wave_error') or 'no wave tag'}"
    if reason == FAILED and not retry_failed:
        return f"its last install failed: fix the cause (see the remediation), then run with {retry_option}: true"
    return None


def extension_errors(target_key, servers):
    """The extended servers of one target account-region whose staging server is gone."""
    account_id, region = target_key
    found = []
    for server in servers:
        area = server.get("stagingArea") or {}
        if area.get("status") != EXTENSION_ERROR:
            continue
        hints = (server.get("sourceProperties") or {}).get("identificationHints") or {}
        found.append({
            "target_account_id": account_id, "region": region, "source_server_id": server.get("sourceServerID"),
            "arn": server.get("arn"), "staging_account_id": area.get("stagingAccountID"),
            "staging_source_server_arn": area.get("stagingSourceServerArn"), "instance_id": instance_id_of(server),
            "hostname": hints.get("hostname"), "error_message": area.get("errorMessage"),
            "recovery_instance_id": server.get("recoveryInstanceId"),
            "remediation": "its staging server was deleted: delete this extended server in the target account (after "
                           "any recovery from it), then extend the instance's new staging server again",
        })
    return found


def retire_blocker(entry, unreadable_targets=()):
    """Why a server of an untagged or terminated instance must not be retired, or None.

    Never one with a recovery instance (on its own server or on one of its extended servers: DRS refuses to
    disconnect such a server, and the recovery instance may be the workload now); never one whose target
    accounts could not be read (their extended servers, and recovery instances, are unknown).
    """
    if entry.get("recovery_instance_id"):
        return f"it has the recovery instance {entry['recovery_instance_id']}"
    for extended in entry.get("extended_servers") or []:
        if extended.get("recovery_instance_id"):
            return (f"its extended server {extended['source_server_id']} in account {extended['account_id']} has the "
                    f"recovery instance {extended['recovery_instance_id']}")
    if unreadable_targets:
        return (f"the target account(s) {', '.join(sorted(unreadable_targets))} could not be read, so its extended "
                "servers and their recovery instances are unknown")
    return None


def retire_steps(entry):
    """The calls that retire one entry's servers, in order: (account id, region, server id, disconnect first).

    Its extended servers first (so that none is left in EXTENSION_ERROR), then its own; each is disconnected
    first unless it already is (DRS deletes only disconnected servers)."""
    steps = []
    for extended in entry.get("extended_servers") or []:
        steps.append((extended["account_id"], entry["drs_region"], extended["source_server_id"],
                      extended.get("replication_state") != STALE_STATE))
    steps.append((entry["staging_account_id"], entry["drs_region"], entry["source_server_id"],
                  entry.get("replication_state") != STALE_STATE))
    return steps
