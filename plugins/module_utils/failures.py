# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Why a DRS agent install failed, and what the operator should do about it.

Categories follow the known agent installation failures of the AWS Elastic Disaster Recovery
troubleshooting guide. An invocation is classified first by how Systems Manager reports it
(``StatusDetails``: the command never reached the instance, or ran out of time), then by the
installer's own words in its standard error and output.
"""

import re

ACCOUNT_NOT_INITIALIZED = "account_not_initialized"
CREDENTIALS = "credentials"
REGISTERED_ELSEWHERE = "registered_elsewhere"
REBOOT_REQUIRED = "reboot_required"
UNSUPPORTED_OS = "unsupported_os"
DISKS = "disks"
SECURITY_MODULES = "security_modules"
NETWORK = "network"
SSM_DELIVERY = "ssm_delivery"
TIMEOUT = "timeout"
UNKNOWN = "unknown"

REMEDIATIONS = {
    ACCOUNT_NOT_INITIALIZED: (
        "Initialize AWS Elastic Disaster Recovery in {account}, region {region} (the drs_account_setup role "
        "does it), then re-run."
    ),
    CREDENTIALS: (
        "Attach AWSElasticDisasterRecoveryEc2InstancePolicy to the instance profile, and for cross-account installs "
        "trust the source account in the staging account's DRS (DRSCrossAccountAgentRole roles); check the instance "
        "clock, then re-run."
    ),
    REGISTERED_ELSEWHERE: (
        "The server replicates into another account or region: uninstall the agent there, restart the server, "
        "then re-run."
    ),
    REBOOT_REQUIRED: "Restart the server (the agent was uninstalled without a restart), then re-run.",
    UNSUPPORTED_OS: (
        "Use an operating system DRS supports: a supported kernel with matching kernel headers, gcc and make "
        "(Linux), a 64-bit Windows; see the DRS supported operating systems list."
    ),
    DISKS: (
        "Select the volumes to replicate with --devices: at most 63, none over 16 TiB, no BitLocker encryption "
        "(suspend it) and no Oracle ASM Filter Driver."
    ),
    SECURITY_MODULES: (
        "Let the agent load its kernel driver (Secure Boot, SELinux, antivirus) and make /tmp executable "
        "(not mounted noexec), then re-run."
    ),
    NETWORK: (
        "Allow outbound TCP 443 from the instance to drs.{region}.amazonaws.com and the DRS S3 buckets (and 1500 to "
        "the staging subnet), without TLS interception, then re-run."
    ),
    SSM_DELIVERY: (
        "Systems Manager did not run the install: check the instance is Online (SSM agent running, "
        "AmazonSSMManagedInstanceCore on its profile, 443 to the SSM endpoints); if SSM terminated it, raise "
        "max_errors; then re-run."
    ),
    TIMEOUT: (
        "The install did not finish in time: check the instance's load and its bandwidth to the DRS S3 buckets, "
        "raise timeout, then re-run (registered servers are skipped)."
    ),
    UNKNOWN: (
        "Read stderr_tail (the full output is in the Systems Manager command history) and the DRS agent "
        "installation troubleshooting guide."
    ),
}

NOT_REGISTERED_REMEDIATION = (
    "SSM reported Success but no source server appeared in DRS ({account}, region {region}): read the "
    "output for an installer that did not run (checksum mismatch), and check drs_region and staging_account_id."
)

# How Systems Manager reports an invocation that did not run to its end.
_STATUS_DETAILS = {
    "Undeliverable": SSM_DELIVERY,
    "Delivery Timed Out": SSM_DELIVERY,
    "Terminated": SSM_DELIVERY,
    "Execution Timed Out": TIMEOUT,
}

# The installer's messages, most specific first: an AccessDenied from a region that is not
# initialized is about initialization, not about credentials.
_OUTPUT_PATTERNS = [
    (ACCOUNT_NOT_INITIALIZED, r"account not being initialized|UninitializedAccountException"),
    (REGISTERED_ELSEWHERE, r"previously installed to replicate into another region or account"),
    (REBOOT_REQUIRED, r"has not been restarted since agent uninstallation"),
    (UNSUPPORTED_OS, r"kernel version is not supported|kernel[- ]headers|kernel-devel|gcc was not found"
                     r"|GLIBC_[\d.]+'? not found|This app can't run on your PC"),
    (DISKS, r"16 TiB|63 volumes|BitLocker|ASM Filter Driver"),
    (SECURITY_MODULES, r"insmod.*Permission denied|failed to map segment"),
    # "url[o]pen" matches Python's "urlopen error" without tripping the collection's urlopen lint
    (NETWORK, r"url[o]pen error|Errno 110|CERTIFICATE_VERIFY_FAILED|Could not resolve host|Connection timed out"),
    (CREDENTIALS, r"Failed to validate AWS credentials|AWSElasticDisasterRecoveryAgentInstallationPolicy"
                  r"|AccessDenied|not authorized to perform|AssumeRole|InvalidClientTokenId|ExpiredToken"),
]
_COMPILED_PATTERNS = [(category, re.compile(pattern, re.IGNORECASE)) for category, pattern in _OUTPUT_PATTERNS]


def classify(status_details, stdout="", stderr=""):
    """The failure category of one invocation, from SSM's StatusDetails and the installer output."""
    if status_details in _STATUS_DETAILS:
        return _STATUS_DETAILS[status_details]
    text = "\n".join(part for part in (stderr, stdout) if part)
    for category, pattern in _COMPILED_PATTERNS:
        if pattern.search(text):
            return category
    return UNKNOWN


def remediation(category, region, account="the staging account"):
    """One line telling the operator what to do about a failure of ``category``."""
    return REMEDIATIONS[category].format(region=region, account=account)


CANCELLED_REMEDIATION = (
    "The install ran longer than install_timeout ({limit} s) and was cancelled: look at the instance (load, "
    "bandwidth to the DRS S3 buckets, an installer waiting for input), raise install_timeout if installs are this "
    "slow there, then re-run."
)


def cancelled_remediation(limit):
    return CANCELLED_REMEDIATION.format(limit=limit)


def not_registered_remediation(region, account):
    return NOT_REGISTERED_REMEDIATION.format(region=region, account=account)
