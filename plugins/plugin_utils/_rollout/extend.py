# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""After a wave: extend the servers it registered in staging accounts into their target accounts.

One extension run per target account, staging account and DRS region, with the target account's
credentials; a run's failure is shown and recorded and never fails the rollout. The runs into one target
account and region list its servers once per wave (``extension.TargetListing``): a target that holds
every earlier wave's servers would otherwise be listed whole by each staging account's run.
"""

try:
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass  # the action reports a missing botocore

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import extension
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import outcomes


def source_server_arn(region, account_id, source_server_id):
    partition = "aws-us-gov" if region.startswith("us-gov-") else "aws-cn" if region.startswith("cn-") else "aws"
    return f"arn:{partition}:drs:{region}:{account_id}:source-server/{source_server_id}"


def runs_after(wave):
    """The extension runs a wave calls for, with the ARNs of its servers registered in their staging account
    (installed or already registered)."""
    runs = {}
    for place in wave.places:
        if not place.extend_into:
            continue
        key = (place.extend_into, place.staging_account_id, place.drs_region)
        run = runs.setdefault(key, {"target_account_id": place.extend_into, "staging_account_id": place.staging_account_id,
                                    "region": place.drs_region, "source_server_arns": []})
        run["source_server_arns"].extend(
            source_server_arn(place.drs_region, place.staging_account_id, instance.result["source_server_id"])
            for instance in place.instances
            if outcomes.is_protected(instance.status) and instance.result.get("source_server_id"))
    return [run for run in runs.values() if run["source_server_arns"]]


def extend_after(wave, sessions, settings, deployment_id, clock, warn):
    """Run the wave's extensions; one entry per run with counts, failures, capacity and warnings."""
    entries = []
    listings = {}  # (target account, region) -> its servers, listed by the first run into it
    for run in runs_after(wave):
        requested = len(run["source_server_arns"])
        entry = {"wave": wave.number, "target_account_id": run["target_account_id"],
                 "staging_account_id": run["staging_account_id"], "region": run["region"], "requested": requested}
        unreachable = sessions.unreachable.get(run["target_account_id"])
        if unreachable:
            entry.update(dict.fromkeys(("extended", "already_extended", "left_out"), 0), failed=requested,
                         message=f"not extended: target account {run['target_account_id']} could not be reached: "
                                 f"{unreachable}")
            entries.append(entry)
            continue
        params = dict(extension_params(settings, deployment_id), staging_account_id=run["staging_account_id"],
                      source_server_arns=run["source_server_arns"], region=run["region"])
        try:
            listing = listings.setdefault((run["target_account_id"], run["region"]), extension.TargetListing())
            result = extension.extend(sessions.client(run["target_account_id"], "drs", run["region"]), params,
                                      run["target_account_id"], run["region"], False, warn, clock, listing=listing)
        except extension.ExtensionSetupError as error:
            entry.update(dict.fromkeys(("extended", "already_extended", "left_out"), 0), failed=requested,
                         message=str(error))
        except (BotoCoreError, ClientError) as error:
            entry.update(dict.fromkeys(("extended", "already_extended", "left_out"), 0), failed=requested,
                         message=f"the extension stopped on an AWS error: {error}")
        else:
            failures = result.get("failed_servers") or []
            entry.update(
                extended=len(result["extended"]), already_extended=len(result.get("already_extended") or []),
                failed=len(failures), left_out=len(result.get("left_out") or []),
                failed_servers=[{key: failure.get(key) for key in ("staging_source_server_arn", "error_code", "message")}
                                for failure in failures],
                left_out_servers=[server["staging_source_server_arn"] for server in result.get("left_out") or []],
                capacity=result.get("capacity"),
                warnings=result.get("extension_warnings") or [],
            )
            if failures:
                entry["message"] = f"{len(failures)} server(s) could not be extended"
        entries.append(entry)
    return entries


def extension_params(settings, deployment_id):
    return {
        "tags": settings["extension_tags"], "default_tags": True, "deployment_id": deployment_id,
        "capacity_limit": settings["extension_capacity_limit"],
        "capacity_warning_thresholds": settings["extension_capacity_warning_thresholds"],
        "wait": True, "wait_timeout": settings["extension_wait_timeout"], "poll_interval": 5, "metrics_namespace": None,
    }


def lines(entries):
    shown = []
    for entry in entries:
        text = (f"Extension after wave {entry['wave']}: {entry['staging_account_id']}/{entry['region']} into "
                f"{entry['target_account_id']}: {entry['extended']} extended, {entry['already_extended']} already "
                f"extended, {entry['failed']} failed, {entry['left_out']} left out")
        if entry.get("capacity"):
            capacity = entry["capacity"]
            text += f"; capacity {capacity['after']}/{capacity['limit']} ({capacity['utilization_percent']}%)"
        shown.append(text)
        shown.extend(f"  warning: {warning}" for warning in entry.get("warnings", []))
        if entry.get("message"):
            shown.append(f"  {entry['message']}")
    return shown
