"""Failure categories from the messages the DRS troubleshooting guide quotes, and their remediations."""

import pytest

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils import failures

# What operators see, as the AWS DRS troubleshooting guide and SSM quote it.
INSTALLER_MESSAGES = [
    ("Error: The installation failed due to the account not being initialized.", failures.ACCOUNT_NOT_INITIALIZED),
    ("Failed to validate AWS credentials", failures.CREDENTIALS),
    ("User is not authorized to perform: drs:CreateSourceServerForDrs. Attach the "
     "AWSElasticDisasterRecoveryAgentInstallationPolicy", failures.CREDENTIALS),
    ("An error occurred (AccessDenied) when calling the AssumeRole operation", failures.CREDENTIALS),
    ("Cannot install agent, as this server was previously installed to replicate into another region or account",
     failures.REGISTERED_ELSEWHERE),
    ("The server has not been restarted since agent uninstallation", failures.REBOOT_REQUIRED),
    ("Your Linux kernel version is not supported", failures.UNSUPPORTED_OS),
    ("Error: gcc was not found", failures.UNSUPPORTED_OS),
    ("/lib64/libc.so.6: version `GLIBC_2.7' not found", failures.UNSUPPORTED_OS),
    ("This app can't run on your PC", failures.UNSUPPORTED_OS),
    ("Volume /dev/sdb is larger than 16 TiB", failures.DISKS),
    ("a source server can replicate at most 63 volumes", failures.DISKS),
    ("BitLocker drive encryption is enabled on volume C:", failures.DISKS),
    ("insmod: ERROR: could not insert module aws-replication-driver.ko: Permission denied", failures.SECURITY_MODULES),
    ("dlopen: /tmp/_MEI/libpython3.10.so.1.0: failed to map segment from shared object", failures.SECURITY_MODULES),
    ("<urlopen error [Errno 110] Connection timed out>", failures.NETWORK),
    ("<urlopen error [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed>", failures.NETWORK),
]


@pytest.mark.parametrize("message, category", INSTALLER_MESSAGES)
def test_installer_messages_are_classified(message, category):
    assert failures.classify("Failed", stdout="Downloading the installer\n", stderr=message) == category


@pytest.mark.parametrize("details, category", [
    ("Undeliverable", failures.SSM_DELIVERY),
    ("Delivery Timed Out", failures.SSM_DELIVERY),
    ("Terminated", failures.SSM_DELIVERY),
    ("Execution Timed Out", failures.TIMEOUT),
])
def test_ssm_status_details_decide_before_the_output(details, category):
    # a timed-out install may have printed a network error on its way: SSM's verdict wins
    assert failures.classify(details, stderr="<urlopen error [Errno 110]>") == category


def test_uninitialized_account_is_not_taken_for_a_credentials_problem():
    message = "AccessDeniedException: the installation failed due to the account not being initialized"
    assert failures.classify("Failed", stderr=message) == failures.ACCOUNT_NOT_INITIALIZED


def test_errors_printed_on_standard_output_are_classified():
    assert failures.classify("Failed", stdout="The server has not been restarted since agent uninstallation") == \
        failures.REBOOT_REQUIRED


def test_unrecognised_output_is_unknown():
    assert failures.classify("Failed", stderr="segmentation fault") == failures.UNKNOWN


def test_every_category_has_a_one_line_remediation():
    categories = [failures.ACCOUNT_NOT_INITIALIZED, failures.CREDENTIALS, failures.REGISTERED_ELSEWHERE,
                  failures.REBOOT_REQUIRED, failures.UNSUPPORTED_OS, failures.DISKS, failures.SECURITY_MODULES,
                  failures.NETWORK, failures.SSM_DELIVERY, failures.TIMEOUT, failures.UNKNOWN]
    for category in categories:
        text = failures.remediation(category, "eu-west-1", "333333333333")
        assert text and "\n" not in text and "{" not in text


def test_network_remediation_names_the_regional_endpoint_and_ports():
    text = failures.remediation(failures.NETWORK, "eu-west-1")
    assert "drs.eu-west-1.amazonaws.com" in text and "443" in text and "1500" in text


def test_account_remediation_names_the_account_and_region():
    text = failures.remediation(failures.ACCOUNT_NOT_INITIALIZED, "us-west-2", "666666666666")
    assert "666666666666" in text and "us-west-2" in text
