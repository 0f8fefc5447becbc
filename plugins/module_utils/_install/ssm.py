# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Reading Run Command: commands in flight, command counts, invocations and their install step's output.

Every listing is paged. A command's ``CompletedCount`` and ``ErrorCount`` (ListCommands, one page for up to
50 commands) say whether any of its invocations ended since the last look, so its invocations are read
only then, with their output (``Details``), instead of one GetCommandInvocation per failure.
"""

import datetime

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.aws import pages
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils._install.options import PLUGIN_BY_PLATFORM

IN_FLIGHT_STATUSES = ("Pending", "InProgress", "Delayed", "Cancelling")
ENDED_COMMAND_STATUSES = ("Success", "Cancelled", "Failed", "TimedOut")
PAGE_SIZE = 50  # ListCommands and ListCommandInvocations return at most 50 a page
OUTPUT_SEPARATOR = "----------ERROR-------"
SKIPPED_STEP = "Step execution skipped due to unsatisfied preconditions"


def command_progress(command):
    """What changes in a command when any of its invocations ends (not when one merely starts)."""
    return (command.get("CompletedCount", 0), command.get("ErrorCount", 0), command.get("DeliveryTimedOutCount", 0),
            command.get("Status") in ENDED_COMMAND_STATUSES)


NOTHING_ENDED = (0, 0, 0, False)


def list_commands(ssm, document_name=None, executing=False, invoked_after=None):
    """The commands in the client's account and region, of one document (None: any): those still executing, or
    those requested from ``invoked_after`` (a datetime) on."""
    filters = [{"key": "DocumentName", "value": document_name}] if document_name else []
    if executing:
        filters.append({"key": "ExecutionStage", "value": "Executing"})
    if invoked_after is not None:
        filters.append({"key": "InvokedAfter", "value": _instant(invoked_after)})
    commands = []
    for page in pages(ssm.list_commands, Filters=filters, MaxResults=PAGE_SIZE):
        commands.extend(page.get("Commands", []))
    return commands


def invocations(ssm, command_id, details=False):
    """Every invocation of a command that SSM shows now (right after SendCommand it may show none yet)."""
    found = []
    for page in pages(ssm.list_command_invocations, CommandId=command_id, Details=details, MaxResults=PAGE_SIZE):
        found.extend(page.get("CommandInvocations", []))
    return found


def installs_in_flight(ssm, document_names, instance_ids):
    """{instance id: (command id, the command)} of the commands of ``document_names`` still running on any of
    ``instance_ids``, whoever sent them: one paged listing of the commands executing in the account-region
    (ListCommands takes one document a filter, and a region runs few commands at once), and the invocations of
    only the install commands that touch these instances. An instance a command names that shows no invocation
    yet is in flight too: SSM may list a new command before its invocations."""
    wanted = set(instance_ids)
    documents = set(document_names)
    found = {}
    for command in list_commands(ssm, executing=True):
        if command.get("DocumentName") not in documents:
            continue
        targets = set(command.get("InstanceIds") or [])
        if targets and not targets & wanted:
            continue
        shown = set()
        for invocation in invocations(ssm, command["CommandId"]):
            instance_id = invocation["InstanceId"]
            shown.add(instance_id)
            if instance_id in wanted and invocation["Status"] in IN_FLIGHT_STATUSES:
                found.setdefault(instance_id, (command["CommandId"], command))
        for instance_id in sorted(targets & wanted - shown):
            found.setdefault(instance_id, (command["CommandId"], command))
    return found


def install_step(invocation, platform=None):
    """(Status, StatusDetails, ResponseCode, stdout, stderr) of the step that installed on the instance, from
    an invocation read with ``Details``; the invocation's own status when it shows no step."""
    plugins = invocation.get("CommandPlugins") or []
    wanted = PLUGIN_BY_PLATFORM.get(platform)
    step = next((plugin for plugin in plugins if plugin.get("Name") == wanted), None)
    if step is None:
        ran = [plugin for plugin in plugins if not (plugin.get("Output") or "").startswith(SKIPPED_STEP)]
        step = ran[-1] if ran else None
    status = invocation["Status"]
    details = invocation.get("StatusDetails") or status
    if step is None:
        return status, details, None, "", ""
    stdout, _separator, stderr = (step.get("Output") or "").partition(OUTPUT_SEPARATOR)
    code = step.get("ResponseCode")
    return status, step.get("StatusDetails") or details, code if code != -1 else None, stdout.strip("\n"), stderr.strip("\n")


def _instant(moment):
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
