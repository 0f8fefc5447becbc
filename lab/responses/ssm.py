"""Systems Manager on the wire: managed instances and Run Command, shaped as the SSM model says."""

from lab.models.ssm import (
    PLATFORM_DETAILS,
    PLATFORM_TYPES,
    PLUGIN_OUTPUT_LIMIT,
    STDERR_LIMIT,
    STDOUT_LIMIT,
    LATEST_AGENT_VERSION,
    clip,
    iso_string,
)
from lab.errors import AwsError

DEFAULT_INSTANCE_PAGE = 10
DEFAULT_COMMAND_PAGE = 50


def describe_instance_information(world, call):
    params = call.params
    page, next_token = world.ssm.describe_instance_information(
        call.account_id, call.region,
        params.get("InstanceInformationFilterList"), params.get("Filters"),
        params.get("MaxResults") or DEFAULT_INSTANCE_PAGE, params.get("NextToken"),
    )
    result = {"InstanceInformationList": [_instance_information(world, managed) for managed in page]}
    if next_token:
        result["NextToken"] = next_token
    return result


def _instance_information(world, managed):
    fleet = managed.fleet
    ping_status, last_ping = world.ssm.ping(managed)
    platform_name, platform_version = PLATFORM_DETAILS[fleet.platform]
    return {
        "InstanceId": fleet.instance_id,
        "PingStatus": ping_status,
        "LastPingDateTime": last_ping,
        "AgentVersion": managed.agent_version,
        "IsLatestVersion": managed.agent_version == LATEST_AGENT_VERSION,
        "PlatformType": PLATFORM_TYPES[fleet.platform],
        "PlatformName": platform_name,
        "PlatformVersion": platform_version,
        "ResourceType": "EC2Instance",
        "IPAddress": fleet.private_ip,
        "ComputerName": managed.computer_name,
        "SourceId": fleet.instance_id,
        "SourceType": "AWS::EC2::Instance",
    }


def send_command(world, call):
    command = world.ssm.send_command(call.account_id, call.region, call.params)
    return {"Command": _command(world, command)}


def _command(world, command):
    status, details, counts = command.summary_at(world.elapsed())
    return {
        "CommandId": command.command_id,
        "DocumentName": command.document.name,
        "DocumentVersion": command.document_version_requested,
        "Comment": command.comment,
        "ExpiresAfter": world.clock.at(command.expires_at),
        "Parameters": command.parameters_given,
        "InstanceIds": command.instance_ids,
        "Targets": [],
        "RequestedDateTime": world.clock.at(command.requested_at),
        "Status": status,
        "StatusDetails": details,
        "OutputS3Region": command.region,
        "OutputS3KeyPrefix": "",
        "MaxConcurrency": command.max_concurrency,
        "MaxErrors": command.max_errors,
        "TargetCount": len(command.invocations),
        "CompletedCount": counts["completed"],
        "ErrorCount": counts["errors"],
        "DeliveryTimedOutCount": counts["delivery_timed_out"],
        "ServiceRole": command.service_role,
        "NotificationConfig": {"NotificationArn": "", "NotificationEvents": []},
        "CloudWatchOutputConfig": {"CloudWatchOutputEnabled": False},
        "TimeoutSeconds": command.timeout_seconds,
    }


def list_commands(world, call):
    params = call.params
    page, next_token = world.ssm.list_commands(
        call.account_id, call.region, params.get("CommandId"), params.get("InstanceId"), params.get("Filters"),
        params.get("MaxResults") or DEFAULT_COMMAND_PAGE, params.get("NextToken"),
    )
    result = {"Commands": [_command(world, command) for command in page]}
    if next_token:
        result["NextToken"] = next_token
    return result


def list_command_invocations(world, call):
    params = call.params
    page, next_token = world.ssm.list_invocations(
        call.account_id, call.region, params.get("CommandId"), params.get("InstanceId"), params.get("Filters"),
        params.get("MaxResults") or DEFAULT_COMMAND_PAGE, params.get("NextToken"),
    )
    details = bool(params.get("Details"))
    result = {"CommandInvocations": [_invocation(world, invocation, details) for invocation in page]}
    if next_token:
        result["NextToken"] = next_token
    return result


def _invocation(world, invocation, with_plugins):
    command = invocation.command
    status, details = invocation.state_at(world.elapsed())
    shaped = {
        "CommandId": command.command_id,
        "InstanceId": invocation.instance_id,
        "InstanceName": invocation.managed.computer_name,
        "Comment": command.comment,
        "DocumentName": command.document.name,
        "DocumentVersion": command.document_version_requested,
        "RequestedDateTime": world.clock.at(command.requested_at),
        "Status": status,
        "StatusDetails": details,
        "TraceOutput": "",
        "StandardOutputUrl": "",
        "StandardErrorUrl": "",
        "CommandPlugins": [],
        "ServiceRole": command.service_role,
        "NotificationConfig": {"NotificationArn": "", "NotificationEvents": []},
        "CloudWatchOutputConfig": {"CloudWatchOutputEnabled": False},
    }
    if with_plugins:
        shaped["CommandPlugins"] = [_plugin(world, invocation, report) for report in plugin_reports(world, invocation)]
    return shaped


def _plugin(world, invocation, report):
    plugin = {
        "Name": report["name"],
        "Status": report["status"],
        "StatusDetails": report["details"],
        "ResponseCode": report["response_code"],
        "Output": clip(_combined_output(report["stdout"], report["stderr"]), PLUGIN_OUTPUT_LIMIT),
        "StandardOutputUrl": "",
        "StandardErrorUrl": "",
        "OutputS3Region": invocation.command.region,
        "OutputS3KeyPrefix": "",
    }
    if report["start"] is not None:
        plugin["ResponseStartDateTime"] = world.clock.at(report["start"])
    if report["end"] is not None:
        plugin["ResponseFinishDateTime"] = world.clock.at(report["end"])
    return plugin


def _combined_output(stdout, stderr):
    if not stderr:
        return stdout
    return f"{stdout}\n\n----------ERROR-------\n{stderr}"


# The plugin statuses an invocation that never ran shows for each of its steps
_NOT_RUN_PLUGIN_STATUS = {
    "Pending": "Pending", "Delayed": "Pending", "Cancelled": "Cancelled", "TimedOut": "TimedOut", "Failed": "Failed",
}


def plugin_reports(world, invocation):
    """What each step of the document shows for this invocation, now."""
    now = world.elapsed()
    status, details = invocation.state_at(now)
    window = invocation.execution_window(now)
    platform = PLATFORM_TYPES[invocation.managed.fleet.platform]
    steps = invocation.command.document.steps
    running = [step for step in steps if platform in step.platforms]
    main_step = running[-1] if running else None
    reports = []
    for step in steps:
        report = {"name": step.name, "start": None, "end": None, "stdout": "", "stderr": "", "response_code": -1}
        if window is None:
            report.update(status=_NOT_RUN_PLUGIN_STATUS.get(status, status), details=details)
        elif step is not main_step and step not in running:
            report.update(status="Success", details="Success", response_code=0, start=window[0], end=window[0],
                          stdout=f"Step execution skipped due to unsatisfied preconditions: {step.precondition_text} failed. "
                                 f"Step name: {step.name}")
        elif step is not main_step:
            report.update(status="Success", details="Success", response_code=0, start=window[0], end=window[0])
        elif window[1] is None:
            report.update(status="InProgress", details="In Progress", start=window[0])
        else:
            ending = invocation.ending_at(now)
            finished_as_planned = ending is invocation.ending
            report.update(
                status=ending.status, details=ending.details, start=window[0], end=window[1],
                response_code=ending.response_code if finished_as_planned else -1,
                stdout=invocation.ending.stdout if finished_as_planned else "",
                stderr=invocation.ending.stderr if finished_as_planned else "",
            )
        reports.append(report)
    return reports


def get_command_invocation(world, call):
    params = call.params
    invocation = world.ssm.invocation(call.account_id, call.region, params["CommandId"], params["InstanceId"])
    reports = plugin_reports(world, invocation)
    plugin_name = params.get("PluginName")
    if plugin_name is None:
        if len(reports) != 1:
            names = ", ".join(report["name"] for report in reports)
            raise AwsError("InvalidPluginName", f"Document {invocation.command.document.name} has more than one step; "
                                                f"specify PluginName, one of: {names}.")
        report = reports[0]
    else:
        report = next((r for r in reports if r["name"] == plugin_name), None)
        if report is None:
            raise AwsError("InvalidPluginName", f"The plugin name {plugin_name} is not a step of document {invocation.command.document.name}.")
    command = invocation.command
    now = world.elapsed()
    status, details = invocation.state_at(now)
    if invocation.execution_window(now) is not None:
        status, details = report["status"], report["details"]
    start, end = report["start"], report["end"]
    return {
        "CommandId": command.command_id,
        "InstanceId": invocation.instance_id,
        "Comment": command.comment,
        "DocumentName": command.document.name,
        "DocumentVersion": command.document_version_requested,
        "PluginName": report["name"],
        "ResponseCode": report["response_code"],
        "ExecutionStartDateTime": iso_string(world.clock, start) if start is not None else "",
        "ExecutionElapsedTime": _elapsed_text(start, end if end is not None else now) if start is not None else "",
        "ExecutionEndDateTime": iso_string(world.clock, end) if end is not None else "",
        "Status": status,
        "StatusDetails": details,
        "StandardOutputContent": clip(report["stdout"], STDOUT_LIMIT),
        "StandardOutputUrl": "",
        "StandardErrorContent": clip(report["stderr"], STDERR_LIMIT),
        "StandardErrorUrl": "",
        "CloudWatchOutputConfig": {"CloudWatchOutputEnabled": False},
    }


def _elapsed_text(start, end):
    return f"PT{max(0.0, end - start):.3f}S"


def cancel_command(world, call):
    params = call.params
    world.ssm.cancel_command(call.account_id, call.region, params["CommandId"], params.get("InstanceIds"))
    return {}
