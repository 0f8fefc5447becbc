"""Systems Manager as the fleet sees it: managed instances, Command documents, and Run Command
invocations whose whole lifecycle is scheduled on the simulated clock when the command is sent.

DRS agent installs are commands like any other; their per-instance result comes from the install
outcome catalogue below (what the installer prints and how SSM reports it), after the DRS model
has had its say about DRS-side failures. Only a ``success`` registers a source server in DRS.

moto is imported inside the functions that need it, so the scenario loader can read the
catalogue's names without paying for moto.
"""

import base64
import bisect
import hashlib
import heapq
import json
import math
import random
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import yaml

from lab.errors import AwsError

DOCUMENTS_DIR = Path(__file__).resolve().parent.parent / "documents"
AWS_INSTALL_DOCUMENT = "AWSDisasterRecovery-InstallDRAgentOnInstance"
INSTALLER_MARKERS = ("aws-replication-installer-init", "AwsReplicationWindowsInstaller")
DEFAULT_DELIVERY_TIMEOUT = 3600
DEFAULT_EXECUTION_TIMEOUT = 3600
DEFAULT_MAX_CONCURRENCY = "50"
DEFAULT_MAX_ERRORS = "0"
DEFAULT_VISIBILITY_DELAY = 2.0
DEFAULT_DELIVERY_DELAY = 3.0
PLUGIN_OUTPUT_LIMIT = 2500
STDOUT_LIMIT = 24000
STDERR_LIMIT = 8000
LINUX, WINDOWS = "linux", "windows"
PLATFORM_TYPES = {LINUX: "Linux", WINDOWS: "Windows"}
ACTION_PLATFORMS = {
    "aws:runShellScript": ("Linux", "MacOS"),
    "aws:runPowerShellScript": ("Windows", "Linux"),
}
PLATFORM_DETAILS = {
    LINUX: ("Amazon Linux", "2023"),
    WINDOWS: ("Microsoft Windows Server 2022 Datacenter", "10.0.20348"),
}
LATEST_AGENT_VERSION = "3.3.2299.0"
OLDER_AGENT_VERSIONS = ("3.3.1957.0", "3.2.2303.0")
KERNEL_RELEASE = "6.1.155-176.282.amzn2023.x86_64"
SOURCE_INSTANCE_ROLE = "DRSSourceInstanceRole"

# --- install outcome catalogue -----------------------------------------------------------------


@dataclass(frozen=True)
class InstallOutcome:
    """How SSM reports one kind of agent install, and what the installer printed.

    ``kind`` is ``runs`` (the script runs for the instance's install duration), ``undeliverable``
    (the agent never receives the command) or ``execution_timeout`` (the script runs until the
    step's timeout). Texts are ``str.format`` templates over the invocation's facts.
    """

    status: str
    details: str
    response_code: int
    platforms: tuple
    linux: tuple = ("", "")
    windows: tuple = ("", "")
    kind: str = "runs"
    registers: bool = False

    @property
    def counts_as_error(self):
        return self.details in ("Failed", "Execution Timed Out")


_LINUX_START = (
    "Downloading https://aws-elastic-disaster-recovery-{region}.s3.dualstack.{region}.amazonaws.com/latest/linux/aws-replication-installer-init\n"
    "The installation of the AWS Replication Agent has started.\n"
)
_WINDOWS_START = (
    "Downloading https://aws-elastic-disaster-recovery-{region}.s3.dualstack.{region}.amazonaws.com/latest/windows/AwsReplicationWindowsInstaller.exe\n"
    "The installation of the AWS Replication Agent has started.\n"
)
_LINUX_VOLUMES = (
    "Identifying volumes for replication.\n"
    "Identified volume for replication: /dev/nvme0n1 of size 8 GiB\n"
    "All volumes for replication were successfully identified.\n"
)
_WINDOWS_VOLUMES = (
    "Identifying volumes for replication.\n"
    "Identified volume for replication: \\\\.\\PHYSICALDRIVE0 of size 30 GiB\n"
    "All volumes for replication were successfully identified.\n"
)
_INSTALLED = (
    "Downloading the AWS Replication Agent onto the source server... Finished.\n"
    "Installing the AWS Replication Agent onto the source server... Finished.\n"
    "Syncing the source server with the Elastic Disaster Recovery Console... Finished.\n"
    "The AWS Replication Agent was successfully installed.\n"
)
_LINUX_EXIT_1 = "failed to run commands: exit status 1\n"
_WINDOWS_ERROR_TAIL = (
    "At C:\\ProgramData\\Amazon\\SSM\\InstanceData\\{instance_id}\\document\\orchestration\\{command_id}\\InstallWindowsAgent\\_script.ps1:13 char:1\n"
    "+ & $installer @arguments\n"
    "    + CategoryInfo          : NotSpecified: (:) [], RemoteException\n"
    "    + FullyQualifiedErrorId : NativeCommandError\n"
    "failed to run commands: exit status 1\n"
)


def _installer_failure(platforms, linux_error=None, windows_error=None, linux_before="", windows_before=""):
    """A run of the installer that stops with an error: exit status 1, SSM ``Failed``."""
    linux = (_LINUX_START + linux_before, linux_error + "\n" + _LINUX_EXIT_1) if linux_error else ("", "")
    windows = (_WINDOWS_START + windows_before, windows_error + "\n" + _WINDOWS_ERROR_TAIL) if windows_error else ("", "")
    return InstallOutcome("Failed", "Failed", 1, platforms, linux, windows)


_BOTH = (LINUX, WINDOWS)

INSTALL_OUTCOMES = {
    # The agent installs and registers; the source server appears in DRS when the step ends.
    "success": InstallOutcome(
        "Success", "Success", 0, _BOTH,
        linux=(_LINUX_START + _LINUX_VOLUMES + _INSTALLED, ""),
        windows=(_WINDOWS_START + _WINDOWS_VOLUMES + _INSTALLED, ""),
        registers=True,
    ),
    # SSM says Success, but nothing registers: a document variant whose checksum step exits 0.
    "success_unregistered": InstallOutcome(
        "Success", "Success", 0, _BOTH,
        linux=(
            "Downloading https://aws-elastic-disaster-recovery-{region}.s3.dualstack.{region}.amazonaws.com/latest/linux/aws-replication-installer-init\n"
            "aws-replication-installer-init: FAILED\n"
            "The installer checksum does not match aws-elastic-disaster-recovery-hashes-{region}; the installer was not run.\n",
            "sha512sum: WARNING: 1 computed checksum did NOT match\n",
        ),
        windows=(
            "Downloading https://aws-elastic-disaster-recovery-{region}.s3.dualstack.{region}.amazonaws.com/latest/windows/AwsReplicationWindowsInstaller.exe\n"
            "The installer checksum does not match aws-elastic-disaster-recovery-hashes-{region}; the installer was not run.\n",
            "",
        ),
    ),
    "account_not_initialized": _installer_failure(
        _BOTH,
        linux_error="Error: The installation failed due to the account not being initialized. Initialize AWS Elastic Disaster Recovery in account {account_id}, region {region}, and run the installer again.",
        windows_error="Error: The installation failed due to the account not being initialized. Initialize AWS Elastic Disaster Recovery in account {account_id}, region {region}, and run the installer again.",
    ),
    "credentials_invalid": _installer_failure(
        _BOTH,
        linux_error="Failed to validate AWS credentials. Make sure the instance profile provides valid credentials for region {region} and that the instance clock is synchronized.",
        windows_error="Failed to validate AWS credentials. Make sure the instance profile provides valid credentials for region {region} and that the instance clock is synchronized.",
    ),
    "installation_policy_missing": _installer_failure(
        _BOTH,
        linux_error=(
            "An error occurred (AccessDeniedException) when calling the CreateSourceServerForDrs operation: User: "
            "arn:aws:sts::{source_account_id}:assumed-role/" + SOURCE_INSTANCE_ROLE + "/{instance_id} is not authorized to perform: "
            "drs:CreateSourceServerForDrs. Attach the AWSElasticDisasterRecoveryAgentInstallationPolicy (or "
            "AWSElasticDisasterRecoveryEc2InstancePolicy) to the instance role.\n"
            "Installation failed."
        ),
        windows_error=(
            "An error occurred (AccessDeniedException) when calling the CreateSourceServerForDrs operation: User: "
            "arn:aws:sts::{source_account_id}:assumed-role/" + SOURCE_INSTANCE_ROLE + "/{instance_id} is not authorized to perform: "
            "drs:CreateSourceServerForDrs. Attach the AWSElasticDisasterRecoveryAgentInstallationPolicy (or "
            "AWSElasticDisasterRecoveryEc2InstancePolicy) to the instance role.\n"
            "Installation failed."
        ),
    ),
    "cross_account_role_missing": _installer_failure(
        _BOTH,
        linux_error=(
            "An error occurred (AccessDenied) when calling the AssumeRole operation: User: "
            "arn:aws:sts::{source_account_id}:assumed-role/DRSCrossAccountAgentAuthorizedRole_{account_id}/{instance_id} "
            "is not authorized to perform: sts:AssumeRole on resource: "
            "arn:aws:iam::{account_id}:role/service-role/DRSCrossAccountAgentRole_{source_account_id}\n"
            "Installation failed."
        ),
        windows_error=(
            "An error occurred (AccessDenied) when calling the AssumeRole operation: User: "
            "arn:aws:sts::{source_account_id}:assumed-role/DRSCrossAccountAgentAuthorizedRole_{account_id}/{instance_id} "
            "is not authorized to perform: sts:AssumeRole on resource: "
            "arn:aws:iam::{account_id}:role/service-role/DRSCrossAccountAgentRole_{source_account_id}\n"
            "Installation failed."
        ),
    ),
    "registered_elsewhere": _installer_failure(
        _BOTH,
        linux_error="Cannot install agent, as this server was previously installed to replicate into another region or account. Uninstall the agent, restart the server, and run the installer again.",
        windows_error="Cannot install agent, as this server was previously installed to replicate into another region or account. Uninstall the agent, restart the server, and run the installer again.",
    ),
    "already_exists_with_tags": _installer_failure(
        _BOTH,
        linux_error="An error occurred (ConflictException) when calling the CreateSourceServerForDrs operation: Source server for hardware ID {instance_id} already exists. Tags can only be applied to a new source server; run the installer again without --tags.",
        windows_error="An error occurred (ConflictException) when calling the CreateSourceServerForDrs operation: Source server for hardware ID {instance_id} already exists. Tags can only be applied to a new source server; run the installer again without --tags.",
    ),
    "reboot_required": _installer_failure(
        _BOTH,
        linux_error="The server has not been restarted since agent uninstallation. Restart the server and run the installer again.",
        windows_error="The server has not been restarted since agent uninstallation. Restart the server and run the installer again.",
    ),
    "kernel_unsupported": _installer_failure(
        (LINUX,),
        linux_error="Your Linux kernel version is not supported: 6.12.40-64.114.amzn2023.x86_64. See the supported operating systems in the AWS Elastic Disaster Recovery User Guide.",
    ),
    "kernel_headers_missing": _installer_failure(
        (LINUX,),
        linux_before=_LINUX_VOLUMES + "Downloading the AWS Replication Agent onto the source server... Finished.\n",
        linux_error="Error: Kernel headers for the running kernel (" + KERNEL_RELEASE + ") were not found. Install the kernel-devel-" + KERNEL_RELEASE + " package (matching headers for the running kernel) and run the installer again.",
    ),
    "gcc_missing": _installer_failure(
        (LINUX,),
        linux_before=_LINUX_VOLUMES + "Downloading the AWS Replication Agent onto the source server... Finished.\n",
        linux_error="Error: gcc was not found. Install gcc, make and the kernel headers for " + KERNEL_RELEASE + ", then run the installer again.",
    ),
    "glibc_too_old": InstallOutcome(
        "Failed", "Failed", 1, (LINUX,),
        linux=(
            "Downloading https://aws-elastic-disaster-recovery-{region}.s3.dualstack.{region}.amazonaws.com/latest/linux/aws-replication-installer-init\n",
            "./aws-replication-installer-init: /lib64/libc.so.6: version `GLIBC_2.7' not found (required by ./aws-replication-installer-init)\n"
            + _LINUX_EXIT_1,
        ),
    ),
    "windows_32bit": InstallOutcome(
        "Failed", "Failed", 1, (WINDOWS,),
        windows=(
            "Downloading https://aws-elastic-disaster-recovery-{region}.s3.dualstack.{region}.amazonaws.com/latest/windows/AwsReplicationWindowsInstaller.exe\n",
            "Program 'AwsReplicationWindowsInstaller.exe' failed to run: This app can't run on your PC. The installer needs a 64-bit edition of Windows.\n"
            + _WINDOWS_ERROR_TAIL,
        ),
    ),
    "disk_too_large": _installer_failure(
        _BOTH,
        linux_before="Identifying volumes for replication.\n",
        linux_error="Error: Volume /dev/nvme1n1 (20 TiB) is larger than 16 TiB, the largest volume size AWS Elastic Disaster Recovery replicates. Exclude it with --devices and run the installer again.",
        windows_before="Identifying volumes for replication.\n",
        windows_error="Error: Volume \\\\.\\PHYSICALDRIVE1 (20 TiB) is larger than 16 TiB, the largest volume size AWS Elastic Disaster Recovery replicates. Exclude it with --devices and run the installer again.",
    ),
    "too_many_volumes": _installer_failure(
        _BOTH,
        linux_before="Identifying volumes for replication.\n",
        linux_error="Error: 64 volumes were identified for replication; a source server can replicate at most 63 volumes. Select volumes with --devices and run the installer again.",
        windows_before="Identifying volumes for replication.\n",
        windows_error="Error: 64 volumes were identified for replication; a source server can replicate at most 63 volumes. Select volumes with --devices and run the installer again.",
    ),
    "bitlocker_enabled": _installer_failure(
        (WINDOWS,),
        windows_before=_WINDOWS_VOLUMES,
        windows_error="Error: BitLocker drive encryption is enabled on volume C:. The AWS Replication Agent cannot replicate a BitLocker-encrypted volume; suspend BitLocker and run the installer again.",
    ),
    "secure_boot_blocked": _installer_failure(
        (LINUX,),
        linux_before=_LINUX_VOLUMES + "Downloading the AWS Replication Agent onto the source server... Finished.\nInstalling the AWS Replication Agent onto the source server...\n",
        linux_error="insmod: ERROR: could not insert module /var/lib/aws-replication-agent/aws-replication-driver.ko: Permission denied\nError: Failed to load the AWS Replication Agent driver. Secure Boot, SELinux or an antivirus product may block kernel modules.",
    ),
    "tmp_noexec": InstallOutcome(
        "Failed", "Failed", 1, (LINUX,),
        linux=(
            "Downloading https://aws-elastic-disaster-recovery-{region}.s3.dualstack.{region}.amazonaws.com/latest/linux/aws-replication-installer-init\n",
            "[1811] Error loading Python lib '/tmp/_MEIk2Xv9q/libpython3.10.so.1.0': dlopen: /tmp/_MEIk2Xv9q/libpython3.10.so.1.0: failed to map segment from shared object\n"
            + _LINUX_EXIT_1,
        ),
    ),
    "network_blocked": _installer_failure(
        _BOTH,
        linux_error="<urlopen error [Errno 110] Connection timed out> while connecting to https://drs.{region}.amazonaws.com. Allow outbound TCP 443 to the AWS Elastic Disaster Recovery endpoint and its S3 buckets.",
        windows_error="<urlopen error [Errno 110] Connection timed out> while connecting to https://drs.{region}.amazonaws.com. Allow outbound TCP 443 to the AWS Elastic Disaster Recovery endpoint and its S3 buckets.",
    ),
    "certificate_verify_failed": _installer_failure(
        _BOTH,
        linux_error="<urlopen error [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer certificate (_ssl.c:1006)> while connecting to https://drs.{region}.amazonaws.com",
        windows_error="<urlopen error [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer certificate (_ssl.c:1006)> while connecting to https://drs.{region}.amazonaws.com",
    ),
    # The SSM agent never receives the command: no output, and no count toward MaxErrors.
    "undeliverable": InstallOutcome("Failed", "Undeliverable", -1, _BOTH, kind="undeliverable"),
    # The installer hangs until the step's timeoutSeconds; SSM kills it.
    "execution_timeout": InstallOutcome(
        "TimedOut", "Execution Timed Out", -1, _BOTH,
        linux=(_LINUX_START + _LINUX_VOLUMES + "Downloading the AWS Replication Agent onto the source server...\n", ""),
        windows=(_WINDOWS_START + _WINDOWS_VOLUMES + "Downloading the AWS Replication Agent onto the source server...\n", ""),
        kind="execution_timeout",
    ),
}
INSTALL_OUTCOME_NAMES = tuple(INSTALL_OUTCOMES)


def outcome_platforms(name):
    """The platforms (``linux``, ``windows``) an install outcome can happen on."""
    return INSTALL_OUTCOMES[name].platforms


# --- final states that are not install outcomes ------------------------------------------------

@dataclass(frozen=True)
class Ending:
    """How an invocation ends: statuses, exit code and output (already rendered)."""

    status: str
    details: str
    response_code: int
    stdout: str = ""
    stderr: str = ""
    registers: bool = False

    @property
    def counts_as_error(self):
        return self.details in ("Failed", "Execution Timed Out")


DELIVERY_TIMED_OUT = Ending("TimedOut", "Delivery Timed Out", -1)
TERMINATED = Ending("Cancelled", "Terminated", -1)
CANCELLED = Ending("Cancelled", "Cancelled", -1)
SUCCEEDED = Ending("Success", "Success", 0)


# --- documents ---------------------------------------------------------------------------------

@dataclass
class Step:
    name: str
    action: str
    platforms: tuple
    precondition_text: str
    timeout_seconds: object


@dataclass
class CommandDocument:
    name: str
    version: str
    parameters: dict
    steps: list
    content_text: str
    aws_managed: bool

    @property
    def platform_types(self):
        return {platform for step in self.steps for platform in step.platforms}

    @property
    def runs_installer(self):
        if self.aws_managed:
            return self.name == AWS_INSTALL_DOCUMENT
        return "AccountId" in self.parameters and any(marker in self.content_text for marker in INSTALLER_MARKERS)


def _document_from_content(name, version, content, aws_managed):
    steps = []
    if str(content.get("schemaVersion")) == "1.2":
        for action, config in (content.get("runtimeConfig") or {}).items():
            properties = (config or {}).get("properties") or [{}]
            timeout = properties[0].get("timeoutSeconds", DEFAULT_EXECUTION_TIMEOUT)
            steps.append(Step(action, action, ACTION_PLATFORMS.get(action, ("Linux", "Windows", "MacOS")), "", timeout))
    else:
        for raw in content.get("mainSteps") or []:
            action = raw.get("action", "")
            platforms = ACTION_PLATFORMS.get(action, ("Linux", "Windows", "MacOS"))
            condition = (raw.get("precondition") or {}).get("StringEquals")
            precondition_text = ""
            if isinstance(condition, list) and len(condition) == 2 and condition[0] == "platformType":
                platforms = tuple(p for p in platforms if p == condition[1]) or (condition[1],)
                precondition_text = f"'\"StringEquals\": [platformType, {condition[1]}]'"
            timeout = (raw.get("inputs") or {}).get("timeoutSeconds", DEFAULT_EXECUTION_TIMEOUT)
            steps.append(Step(raw.get("name", action), action, platforms, precondition_text, timeout))
    return CommandDocument(name, version, content.get("parameters") or {}, steps, json.dumps(content), aws_managed)


_managed_documents = {}


def managed_document(name):
    """An AWS-managed document the lab ships in lab/documents (version 1), or None."""
    if not _managed_documents:
        for path in sorted(DOCUMENTS_DIR.glob("*.yml")):
            content = yaml.safe_load(path.read_text())
            _managed_documents[path.stem] = _document_from_content(path.stem, "1", content, aws_managed=True)
    return _managed_documents.get(name)


def resolve_document(account_id, region, name, version):
    """The Command document SendCommand would run: AWS-managed first, then the account's own."""
    name = name.rsplit("/", 1)[-1] if name.startswith("arn:") else name
    document = managed_document(name)
    if document is not None:
        if version not in (None, "$DEFAULT", "$LATEST", "1"):
            raise AwsError("InvalidDocumentVersion", f"The document version {version} is not valid or does not exist.")
        return document
    from moto.ssm.models import ssm_backends

    versions = ssm_backends[account_id][region]._documents.get(name)
    if versions is None:
        raise AwsError("InvalidDocument", f"Document {name} does not exist in account {account_id}, region {region}.")
    if version in (None, "$DEFAULT"):
        stored = versions.get_default_version()
    elif version == "$LATEST":
        stored = versions.get_latest_version()
    else:
        stored = versions.find_by_version(version)
        if stored is None:
            raise AwsError("InvalidDocumentVersion", f"The document version {version} is not valid or does not exist.")
    if stored.document_type != "Command":
        raise AwsError("InvalidDocument", f"Document {name} is of type {stored.document_type}; SendCommand runs Command documents only.")
    return _document_from_content(name, stored.document_version, stored.content_json, aws_managed=False)


def checked_parameters(document, given):
    """The document's parameter values for a SendCommand, or InvalidParameters as SSM words it."""
    given = given or {}
    definitions = document.parameters
    for name in given:
        if name not in definitions:
            raise AwsError("InvalidParameters", f"Parameter \"{name}\" is not defined in document {document.name}. "
                                                f"Defined parameters: {', '.join(definitions) or 'none'}.")
    values = {}
    for name, definition in definitions.items():
        definition = definition or {}
        if name in given:
            values[name] = _checked_value(name, definition, given[name])
        elif "default" in definition:
            default = definition["default"]
            values[name] = [str(v) for v in default] if isinstance(default, list) else ["" if default is None else str(default)]
        else:
            raise AwsError("InvalidParameters", f"Parameter \"{name}\" is required by document {document.name} but was not provided.")
    return values


def _checked_value(name, definition, value_list):
    kind = definition.get("type", "String")
    if kind != "StringList" and len(value_list) != 1:
        raise AwsError("InvalidParameters", f"Parameter \"{name}\" is of type {kind} and takes exactly one value; got {len(value_list)}.")
    if kind == "StringList":
        low, high = definition.get("minItems"), definition.get("maxItems")
        if low is not None and len(value_list) < low:
            raise AwsError("InvalidParameters", f"Parameter \"{name}\" needs at least {low} item(s).")
        if high is not None and len(value_list) > high:
            raise AwsError("InvalidParameters", f"Parameter \"{name}\" takes at most {high} item(s).")
    for value in value_list:
        _check_one_value(name, kind, definition, value)
    return list(value_list)


def _check_one_value(name, kind, definition, value):
    if kind == "Integer" and not re.fullmatch(r"-?\d+", value):
        raise AwsError("InvalidParameters", f"Parameter \"{name}\" \"{value}\" is not an integer.")
    if kind == "Boolean" and value not in ("true", "false"):
        raise AwsError("InvalidParameters", f"Parameter \"{name}\" \"{value}\" is not a boolean (true or false).")
    allowed = definition.get("allowedValues")
    if allowed is not None and value not in [str(v) for v in allowed]:
        raise AwsError("InvalidParameters", f"Parameter \"{name}\" \"{value}\" failed to satisfy constraint: "
                                            f"Member must be one of [{', '.join(str(v) for v in allowed)}].")
    pattern = definition.get("allowedPattern")
    if pattern is not None and not _pattern_matches(pattern, value):
        raise AwsError("InvalidParameters", f"Parameter \"{name}\" \"{value}\" failed to satisfy constraint: "
                                            f"Member must satisfy regular expression pattern: {pattern}")
    low, high = definition.get("minChars"), definition.get("maxChars")
    if (low is not None and len(value) < low) or (high is not None and len(value) > high):
        raise AwsError("InvalidParameters", f"Parameter \"{name}\" must be between {low or 0} and {high or 'any number of'} characters long.")


def _pattern_matches(pattern, value):
    try:
        return re.fullmatch(pattern, value, re.DOTALL) is not None
    except re.error:  # a Java-only construct: SSM would have rejected the document, so do not block the command
        return True


def _rendered(template, values):
    """A document input such as ``{{ executionTimeout }}`` with the command's parameter values."""
    if not isinstance(template, str):
        return template
    return re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: ",".join(values.get(m.group(1), [m.group(0)])), template)


def parse_tags(text):
    """``KEY=VALUE,KEY=VALUE`` as the installer's --tags reads it."""
    tags = {}
    for pair in filter(None, (part.strip() for part in (text or "").split(","))):
        key, _, value = pair.partition("=")
        tags[key.strip()] = value.strip()
    return tags


# --- instances ---------------------------------------------------------------------------------

@dataclass
class ManagedInstance:
    """A scenario instance registered with SSM, with its agent's fixed facts."""

    fleet: object
    computer_name: str
    agent_version: str
    last_ping_offset: float

    @property
    def instance_id(self):
        return self.fleet.instance_id


def _managed_instance(fleet):
    own = random.Random(fleet.instance_id)  # per-instance facts stay stable whatever else the scenario draws
    if fleet.platform == WINDOWS:
        computer_name = "EC2AMAZ-" + "".join(own.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") for _ in range(7))
    else:
        domain = "ec2.internal" if fleet.region == "us-east-1" else f"{fleet.region}.compute.internal"
        computer_name = f"ip-{fleet.private_ip.replace('.', '-')}.{domain}"
    agent_version = LATEST_AGENT_VERSION if own.random() < 0.8 else own.choice(OLDER_AGENT_VERSIONS)
    return ManagedInstance(fleet, computer_name, agent_version, own.uniform(5, 290))


# --- commands and invocations ------------------------------------------------------------------

@dataclass
class Invocation:
    """One instance's share of a command; every moment of it is fixed when the command is sent.

    Before ``started_at`` it is Pending; from ``started_at`` to ``ends_at`` it is InProgress, or
    Delayed when the instance is offline; from ``ends_at`` on it shows ``ending``, unless it was
    cancelled before that.
    """

    command: object
    managed: ManagedInstance
    started_at: float
    ends_at: float
    ending: Ending
    executes: bool
    delayed: bool = False
    cancelled_at: float = None

    @property
    def instance_id(self):
        return self.managed.instance_id

    def ending_at(self, elapsed):
        """The final state if the invocation has ended by ``elapsed``, else None."""
        if self.cancelled_at is not None and self.cancelled_at < self.ends_at and elapsed >= self.cancelled_at:
            return CANCELLED
        return self.ending if elapsed >= self.ends_at else None

    def state_at(self, elapsed):
        """(Status, StatusDetails) at a simulated moment."""
        ending = self.ending_at(elapsed)
        if ending is not None:
            return ending.status, ending.details
        if elapsed >= self.started_at:
            return ("Delayed", "Delayed") if self.delayed else ("InProgress", "In Progress")
        return "Pending", "Pending"

    def execution_window(self, elapsed):
        """(start, end or None) of the script's run as seen at ``elapsed``, or None if it never ran."""
        if not self.executes or elapsed < self.started_at:
            return None
        if self.cancelled_at is not None and self.cancelled_at <= self.started_at:
            return None
        ending = self.ending_at(elapsed)
        if ending is None:
            return self.started_at, None
        return self.started_at, min(self.ends_at, self.cancelled_at if self.cancelled_at is not None else self.ends_at)


@dataclass
class Command:
    command_id: str
    account_id: str
    region: str
    document: CommandDocument
    document_version_requested: str
    parameters_given: dict
    parameter_values: dict
    instance_ids: list
    comment: str
    requested_at: float
    expires_at: float
    visible_at: float
    timeout_seconds: int
    max_concurrency: str
    max_errors: str
    max_errors_allowed: int
    service_role: str
    invocations: dict = field(default_factory=dict)
    sequence: int = 0

    def summary_at(self, elapsed):
        """(Status, StatusDetails, counts) of the whole command, from its invocations."""
        counts = {"completed": 0, "errors": 0, "delivery_timed_out": 0}
        tally = {}
        started = False
        for invocation in self.invocations.values():
            ending = invocation.ending_at(elapsed)
            if ending is None:
                started = started or elapsed >= invocation.started_at
                continue
            started = True
            counts["completed"] += 1
            counts["errors"] += ending.counts_as_error
            counts["delivery_timed_out"] += ending.details == "Delivery Timed Out"
            tally[ending.details] = tally.get(ending.details, 0) + 1
        if counts["completed"] < len(self.invocations):
            if started:
                return "InProgress", "In Progress", counts
            return "Pending", "Pending", counts
        return (*_command_ending(tally, counts, self.max_errors_allowed), counts)


def _command_ending(tally, counts, max_errors_allowed):
    if tally.get("Cancelled"):
        return "Cancelled", "Cancelled"
    if counts["errors"] > max_errors_allowed:
        if tally.get("Execution Timed Out", 0) > tally.get("Failed", 0):
            return "TimedOut", "Execution Timed Out"
        return "Failed", "Failed"
    judged = {details: n for details, n in tally.items() if details != "Undeliverable"}
    if not judged:
        return "Failed", "Undeliverable"
    if set(judged) == {"Success"}:
        return "Success", "Success"
    if counts["delivery_timed_out"] > max_errors_allowed and set(judged) <= {"Success", "Delivery Timed Out"}:
        return "TimedOut", "Delivery Timed Out"
    return "Failed", "Incomplete"


def _limit(value, target_count, at_least):
    """A MaxConcurrency/MaxErrors value ("10" or "10%") as a number of instances."""
    if value.endswith("%"):
        return max(at_least, math.floor(target_count * int(value[:-1]) / 100))
    return int(value)


# --- the service -------------------------------------------------------------------------------

class SsmService:
    def __init__(self, world):
        self.world = world
        settings = world.scenario.get("ssm", {})
        self.visibility_delay = float(settings.get("visibility_delay_seconds", DEFAULT_VISIBILITY_DELAY))
        self.delivery_delay = float(settings.get("delivery_delay_seconds", DEFAULT_DELIVERY_DELAY))
        self._managed = {}
        self._fleet_order = {}
        self._ec2_instances = {}
        self._commands = {}
        self._commands_by_place = {}
        self._invocations_by_instance = {}
        self._invocations_by_place = {}

    def add_instance(self, fleet_instance):
        if fleet_instance.ssm_state == "not_managed":
            return
        managed = _managed_instance(fleet_instance)
        self._managed[fleet_instance.instance_id] = managed
        self._fleet_order.setdefault((fleet_instance.account_id, fleet_instance.region), []).append(managed)

    # --- instance facts from EC2 ---

    def _ec2_instance(self, managed):
        fleet = managed.fleet
        found = self._ec2_instances.get(fleet.instance_id)
        if found is None:
            from moto.ec2.models import ec2_backends

            backend = ec2_backends[fleet.account_id][fleet.region]
            for reservation in backend.reservations.values():
                for instance in reservation.instances:
                    self._ec2_instances[instance.id] = instance
            found = self._ec2_instances.get(fleet.instance_id)
        return found

    def _ec2_state(self, managed):
        instance = self._ec2_instance(managed)
        return instance.state if instance is not None else "terminated"

    def is_online(self, managed):
        return managed.fleet.ssm_state == "online" and self._ec2_state(managed) == "running"

    def _tags(self, managed):
        from moto.ec2.models import ec2_backends

        return ec2_backends[managed.fleet.account_id][managed.fleet.region].tags.get(managed.instance_id, {})

    def _managed_in(self, account_id, region, instance_id):
        managed = self._managed.get(instance_id)
        if managed is None or managed.fleet.account_id != account_id or managed.fleet.region != region:
            return None
        if self._ec2_state(managed) in ("terminated", "shutting-down"):
            return None
        return managed

    # --- DescribeInstanceInformation ---

    def describe_instance_information(self, account_id, region, filter_list, filters, max_results, token):
        checks = _instance_filters(filter_list, filters)
        requested_ids = checks.pop("InstanceIds", None)
        if requested_ids is not None:
            candidates = [m for m in (self._managed.get(i) for i in dict.fromkeys(requested_ids)) if m is not None]
            candidates = [m for m in candidates if m.fleet.account_id == account_id and m.fleet.region == region]
        else:
            candidates = self._fleet_order.get((account_id, region), [])
        start = _decode_token(token, "DescribeInstanceInformation")
        page, position = [], start
        while position < len(candidates) and len(page) < max_results:
            managed = candidates[position]
            position += 1
            if self._ec2_state(managed) in ("terminated", "shutting-down"):
                continue
            if all(check(self, managed) for check in checks.values()):
                page.append(managed)
        next_token = _encode_token("DescribeInstanceInformation", position) if position < len(candidates) else None
        return page, next_token

    def ping(self, managed):
        """(PingStatus, LastPingDateTime) now."""
        if self.is_online(managed):
            return "Online", self.world.clock.at(self.world.elapsed() - managed.last_ping_offset)
        return "ConnectionLost", self.world.clock.at(-3600 * 6 - managed.last_ping_offset * 60)

    # --- SendCommand ---

    def send_command(self, account_id, region, params):
        if params.get("Targets"):
            raise AwsError("InvalidParameters", "This endpoint sends commands to InstanceIds; Targets (tag and resource-group targeting) are not supported. Send InstanceIds in batches of at most 50.")
        instance_ids = params.get("InstanceIds") or []
        if not instance_ids:
            raise AwsError("ValidationException", "Either InstanceIds or Targets must be specified.")
        duplicates = sorted({i for i in instance_ids if instance_ids.count(i) > 1})
        if duplicates:
            raise AwsError("DuplicateInstanceId", f"Instance IDs {duplicates} appear more than once in the request.")
        document = resolve_document(account_id, region, params["DocumentName"], params.get("DocumentVersion"))
        managed = [self._managed_in(account_id, region, instance_id) for instance_id in instance_ids]
        invalid = [instance_id for instance_id, found in zip(instance_ids, managed) if found is None]
        if invalid:
            raise AwsError("InvalidInstanceId", f"Instances [{', '.join(invalid)}] not in a valid state for account {account_id}: "
                                                "not managed by Systems Manager in this region, terminated, or unknown.")
        platforms = document.platform_types
        unsupported = [m.instance_id for m in managed if PLATFORM_TYPES[m.fleet.platform] not in platforms]
        if unsupported:
            raise AwsError("UnsupportedPlatformType", f"The document {document.name} does not support the platform of instances {unsupported}: "
                                                      f"it runs on {', '.join(sorted(platforms))}.")
        values = checked_parameters(document, params.get("Parameters"))
        command = self._new_command(account_id, region, document, params, values, instance_ids)
        self._schedule(command, managed)
        return command

    def _new_command(self, account_id, region, document, params, values, instance_ids):
        now = self.world.elapsed()
        timeout = params.get("TimeoutSeconds") or DEFAULT_DELIVERY_TIMEOUT
        max_errors = params.get("MaxErrors") or DEFAULT_MAX_ERRORS
        command = Command(
            command_id=str(uuid.UUID(int=self.world.random.getrandbits(128), version=4)),
            account_id=account_id,
            region=region,
            document=document,
            document_version_requested=params.get("DocumentVersion") or "$DEFAULT",
            parameters_given=params.get("Parameters") or {},
            parameter_values=values,
            instance_ids=list(instance_ids),
            comment=params.get("Comment") or "",
            requested_at=now,
            expires_at=now + timeout + self._execution_timeout(document, values),
            visible_at=now + self.visibility_delay,
            timeout_seconds=timeout,
            max_concurrency=params.get("MaxConcurrency") or DEFAULT_MAX_CONCURRENCY,
            max_errors=max_errors,
            max_errors_allowed=_limit(max_errors, len(instance_ids), at_least=0),
            service_role=params.get("ServiceRoleArn") or "",
        )
        place = (account_id, region)
        command.sequence = len(self._commands_by_place.setdefault(place, []))
        self._commands[command.command_id] = command
        self._commands_by_place[place].append(command)
        return command

    def _execution_timeout(self, document, values):
        timeouts = []
        for step in document.steps:
            rendered = _rendered(step.timeout_seconds, values)
            timeouts.append(int(rendered) if str(rendered).isdigit() else DEFAULT_EXECUTION_TIMEOUT)
        return max(timeouts, default=DEFAULT_EXECUTION_TIMEOUT)

    def _schedule(self, command, managed_instances):
        """Dispatch every invocation as SSM would: at most MaxConcurrency at once, and none new
        once more than MaxErrors have failed."""
        slots = _limit(command.max_concurrency, len(managed_instances), at_least=1)
        busy_until, error_times = [], []
        install = self._install_plan(command)
        dispatch = command.requested_at
        for managed in managed_instances:
            if len(busy_until) >= slots:
                dispatch = max(dispatch, heapq.heappop(busy_until))
            errors_so_far = bisect.bisect_right(error_times, dispatch)
            if errors_so_far > command.max_errors_allowed:
                crossed_at = error_times[command.max_errors_allowed]
                invocation = Invocation(command, managed, math.inf, crossed_at, TERMINATED, executes=False)
            else:
                invocation = self._planned_invocation(command, managed, dispatch, install)
                heapq.heappush(busy_until, invocation.ends_at)
                if invocation.ending.counts_as_error:
                    bisect.insort(error_times, invocation.ends_at)
            command.invocations[managed.instance_id] = invocation
            self._invocations_by_instance.setdefault(managed.instance_id, []).append(invocation)
            self._invocations_by_place.setdefault((command.account_id, command.region), []).append(invocation)
            if invocation.ending.registers:
                self._register_when_done(invocation, install)

    def _planned_invocation(self, command, managed, dispatch, install):
        delivered = dispatch + self.delivery_delay
        if not self.is_online(managed):
            # an offline agent never picks the command up: the service retries until the command expires
            return Invocation(command, managed, delivered, command.expires_at, DELIVERY_TIMED_OUT, executes=False, delayed=True)
        if delivered >= command.expires_at:
            return Invocation(command, managed, math.inf, command.expires_at, DELIVERY_TIMED_OUT, executes=False)
        if install is None:
            ending, duration, executes = SUCCEEDED, round(self.world.random.uniform(1.0, 4.0), 3), True
        else:
            ending, duration, executes = self._install_result(command, managed, install)
        if not executes:
            return Invocation(command, managed, math.inf, delivered, ending, executes=False)
        ends = delivered + duration
        if ends > command.expires_at:
            return Invocation(command, managed, delivered, command.expires_at, DELIVERY_TIMED_OUT, executes=True)
        return Invocation(command, managed, delivered, ends, ending, executes=True)

    # --- agent installs ---

    def _install_plan(self, command):
        """Where an install command registers agents: (account, region, tags), or None."""
        if not command.document.runs_installer:
            return None
        values = command.parameter_values
        region = (values.get("Region") or [command.region])[0]
        account = (values.get("AccountId") or [""])[0] or None
        tags_text = (values.get("Tags") or [""])[0]
        return {"account": account, "region": region, "tags_text": tags_text, "tags": parse_tags(tags_text)}

    def _install_result(self, command, managed, install):
        fleet = managed.fleet
        destination = install["account"] or fleet.account_id
        name = self.world.drs.install_failure(fleet, destination, install["region"], bool(install["tags"])) or fleet.install_outcome
        outcome = INSTALL_OUTCOMES[name]
        if outcome.kind == "undeliverable":
            return Ending(outcome.status, outcome.details, outcome.response_code), 0.0, False
        facts = {
            "region": install["region"], "account_id": destination, "source_account_id": fleet.account_id,
            "instance_id": fleet.instance_id, "command_id": command.command_id, "hostname": managed.computer_name,
        }
        stdout, stderr = outcome.windows if fleet.platform == WINDOWS else outcome.linux
        ending = Ending(outcome.status, outcome.details, outcome.response_code, stdout.format(**facts), stderr.format(**facts),
                        registers=outcome.registers)
        if outcome.kind == "execution_timeout":
            duration = self._execution_timeout(command.document, command.parameter_values)
        else:
            duration = fleet.install_duration_seconds
        return ending, duration, True

    def _register_when_done(self, invocation, install):
        fleet = invocation.managed.fleet
        destination = install["account"] or fleet.account_id

        def register(due):
            if invocation.ending_at(due) is invocation.ending:  # not cancelled meanwhile
                self.world.drs.register_agent(fleet, destination, install["region"], dict(install["tags"]), due)

        self.world.schedule_at(invocation.ends_at, register)

    # --- reading commands and invocations ---

    def command(self, account_id, region, command_id):
        command = self._commands.get(command_id)
        if command is None or command.account_id != account_id or command.region != region:
            raise AwsError("InvalidCommandId", f"Command {command_id} does not exist in account {account_id}, region {region}.")
        return command

    def invocation(self, account_id, region, command_id, instance_id):
        command = self.command(account_id, region, command_id)
        invocation = command.invocations.get(instance_id)
        if invocation is None or self.world.elapsed() < command.visible_at:
            raise AwsError("InvocationDoesNotExist", f"An invocation of command {command_id} on instance {instance_id} does not exist.")
        return invocation

    def list_invocations(self, account_id, region, command_id, instance_id, filters, max_results, token):
        now = self.world.elapsed()
        if command_id is not None:
            command = self.command(account_id, region, command_id)
            source = [command.invocations[i] for i in command.instance_ids if instance_id in (None, i)]
        elif instance_id is not None:
            source = self._invocations_by_instance.get(instance_id, [])
            source = [inv for inv in source if inv.command.account_id == account_id and inv.command.region == region]
        else:
            source = self._invocations_by_place.get((account_id, region), [])
        checks = _command_filters(filters, self.world, lambda inv: inv.state_at(now)[0], lambda inv: inv.command)
        newest_first = command_id is None

        def wanted(invocation):
            return now >= invocation.command.visible_at and all(check(invocation) for check in checks)

        return _page(source, wanted, newest_first, max_results, token, "ListCommandInvocations")

    def list_commands(self, account_id, region, command_id, instance_id, filters, max_results, token):
        now = self.world.elapsed()
        if command_id is not None:
            source = [self.command(account_id, region, command_id)]
        elif instance_id is not None:
            source = [inv.command for inv in self._invocations_by_instance.get(instance_id, [])
                      if inv.command.account_id == account_id and inv.command.region == region]
        else:
            source = self._commands_by_place.get((account_id, region), [])
        checks = _command_filters(filters, self.world, lambda command: command.summary_at(now)[0], lambda command: command)
        return _page(source, lambda command: all(check(command) for check in checks), True, max_results, token, "ListCommands")

    def timeline(self):
        """Every command sent so far and when each invocation ran, in simulated seconds since the lab
        started (read-only, for the control API): what the installs cost, whatever the client saw."""
        now = self.world.elapsed()

        def moment(value):
            return None if value is None or math.isinf(value) else round(value, 3)

        commands = []
        for command in self._commands.values():
            invocations = []
            for instance_id in command.instance_ids:
                invocation = command.invocations[instance_id]
                status, details = invocation.state_at(now)
                window = invocation.execution_window(now)
                invocations.append({
                    "instance_id": instance_id,
                    "group": invocation.managed.fleet.group,
                    "status": status,
                    "status_details": details,
                    "started_at": moment(window[0]) if window else None,
                    "ended_at": moment(window[1]) if window and window[1] is not None else None,
                    "ends_at": moment(invocation.ends_at),
                    # a Success that registers no source server: a deployment waits its registration timeout
                    "registers_source_server": status == "Success" and invocation.ending.registers,
                })
            commands.append({
                "command_id": command.command_id,
                "account_id": command.account_id,
                "region": command.region,
                "document_name": command.document.name,
                "installs_agent": command.document.runs_installer,
                "requested_at": moment(command.requested_at),
                "invocations": invocations,
            })
        return {"elapsed_seconds": round(now, 3), "time_scale": self.world.clock.time_scale, "commands": commands}

    def cancel_command(self, account_id, region, command_id, instance_ids):
        command = self.command(account_id, region, command_id)
        now = self.world.elapsed()
        targets = instance_ids or command.instance_ids
        unknown = [i for i in targets if i not in command.invocations]
        if unknown:
            raise AwsError("InvalidInstanceId", f"Instances [{', '.join(unknown)}] are not targets of command {command_id}.")
        for instance_id in targets:
            invocation = command.invocations[instance_id]
            if invocation.ending_at(now) is None and invocation.cancelled_at is None:
                invocation.cancelled_at = now


# --- filters and pages -------------------------------------------------------------------------

_PING_STATUSES = ("Online", "ConnectionLost", "Inactive")
_PLATFORM_NAMES = ("Windows", "Linux", "MacOS")
_RESOURCE_TYPES = ("EC2Instance", "ManagedInstance")
_INSTANCE_FILTER_KEYS = ("InstanceIds", "AgentVersion", "PingStatus", "PlatformTypes", "ActivationIds", "IamRole",
                         "ResourceType", "AssociationStatus")
_INSTANCE_ID = re.compile(r"(^i-(\w{8}|\w{17})$)|(^mi-\w{17}$)")


def _instance_filters(filter_list, filters):
    """DescribeInstanceInformation filters as checks ``check(service, managed) -> bool``."""
    pairs = [(f["key"], f["valueSet"]) for f in filter_list or []] + [(f["Key"], f["Values"]) for f in filters or []]
    checks = {}
    for key, values in pairs:
        if key.startswith("tag:"):
            tag = key[4:]
            checks[key] = lambda service, m, tag=tag, values=tuple(values): service._tags(m).get(tag) in values
        elif key == "tag-key":
            checks[key] = lambda service, m, values=tuple(values): any(k in values for k in service._tags(m))
        elif key not in _INSTANCE_FILTER_KEYS:
            raise AwsError("InvalidFilterKey", f"The filter key {key} is not valid. Valid keys: {', '.join(_INSTANCE_FILTER_KEYS)}, tag-key, tag:<key>.")
        else:
            checks[key] = _instance_filter(key, list(values))
    return checks


def _instance_filter(key, values):
    def invalid(allowed):
        bad = [v for v in values if v not in allowed]
        if bad:
            raise AwsError("InvalidInstanceInformationFilterValue",
                           f"The filter value {bad[0]} is not valid for key {key}. Valid values: {', '.join(allowed)}.")

    if key == "InstanceIds":
        bad = [v for v in values if not _INSTANCE_ID.match(v)]
        if bad:
            raise AwsError("InvalidInstanceInformationFilterValue", f"The filter value {bad[0]} is not a valid instance ID.")
        return values
    if key == "PingStatus":
        invalid(_PING_STATUSES)
        return lambda service, m: service.ping(m)[0] in values
    if key == "PlatformTypes":
        invalid(_PLATFORM_NAMES)
        return lambda service, m: PLATFORM_TYPES[m.fleet.platform] in values
    if key == "ResourceType":
        invalid(_RESOURCE_TYPES)
        return lambda service, m: "EC2Instance" in values
    if key == "AgentVersion":
        return lambda service, m: m.agent_version in values
    # ActivationIds, IamRole and AssociationStatus describe hybrid activations and associations,
    # which scenario instances never have
    return lambda service, m: False


_COMMAND_STATUSES = ("Pending", "InProgress", "Success", "Cancelled", "Failed", "TimedOut", "Cancelling", "Delayed")
_EXECUTION_STAGES = ("Executing", "Complete")


def _command_filters(filters, world, status_of, command_of):
    """ListCommands/ListCommandInvocations filters as checks on an item."""
    checks = []
    for entry in filters or []:
        key, value = entry["key"], entry["value"]
        if key in ("InvokedAfter", "InvokedBefore"):
            moment = _parse_instant(value)
            if key == "InvokedAfter":
                checks.append(lambda item, moment=moment: world.clock.at(command_of(item).requested_at) >= moment)
            else:
                checks.append(lambda item, moment=moment: world.clock.at(command_of(item).requested_at) <= moment)
        elif key == "Status":
            if value not in _COMMAND_STATUSES:
                raise AwsError("InvalidFilterValue", f"The filter value {value} is not valid for key Status. Valid values: {', '.join(_COMMAND_STATUSES)}.")
            checks.append(lambda item, value=value: status_of(item) == value)
        elif key == "ExecutionStage":
            if value not in _EXECUTION_STAGES:
                raise AwsError("InvalidFilterValue", f"The filter value {value} is not valid for key ExecutionStage. Valid values: Executing, Complete.")
            finished = {"Success", "Cancelled", "Failed", "TimedOut"}
            checks.append(lambda item, value=value: (status_of(item) in finished) == (value == "Complete"))
        elif key == "DocumentName":
            checks.append(lambda item, value=value: command_of(item).document.name == value)
        else:
            raise AwsError("InvalidFilterKey", f"The filter key {key} is not valid.")
    return checks


def _parse_instant(value):
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise AwsError("InvalidFilterValue", f"The filter value {value} is not a valid timestamp; use ISO 8601, such as 2024-01-31T00:00:00Z.") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment


def _page(items, wanted, newest_first, max_results, token, operation):
    """One page of ``items`` (an append-only list), scanning from the token's position.

    Positions count from the list's start, so items appended between pages never shift a page.
    """
    position = _decode_token(token, operation, default=len(items) - 1 if newest_first else 0)
    step, page = (-1 if newest_first else 1), []
    while 0 <= position < len(items) and len(page) < max_results:
        item = items[position]
        position += step
        if wanted(item):
            page.append(item)
    more = 0 <= position < len(items)
    return page, (_encode_token(operation, position) if more else None)


def _encode_token(operation, position):
    raw = json.dumps({"op": operation, "at": position, "check": _token_check(operation, position)})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_token(token, operation, default=0):
    if token is None:
        return default
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        if data["op"] == operation and data["check"] == _token_check(operation, data["at"]):
            return int(data["at"])
    except (ValueError, KeyError, TypeError):
        pass
    raise AwsError("InvalidNextToken", "The specified token isn't valid.")


def _token_check(operation, position):
    return hashlib.sha256(f"{operation}:{position}".encode()).hexdigest()[:12]


def clip(text, limit):
    return text if len(text) <= limit else text[:limit]


def iso_string(clock, elapsed):
    """A simulated moment as GetCommandInvocation's string timestamps show it (milliseconds, UTC)."""
    moment = clock.at(elapsed)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
