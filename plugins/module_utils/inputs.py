# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""The input rules of the collection, each written once.

Modules check their options with these rules, and the deploy role checks its variables with the same
ones before any AWS call. Each rule takes the name to show (an option, a role variable, or an entry of
one such as ``drs_agent_deploy_accounts[2].regions[0]``) and the value, and returns the message of the
one rule that failed, or None.
"""

import re

ACCOUNT_ID = re.compile(r"^\d{12}$")
# us-east-1, eu-central-2, us-gov-west-1, us-iso-east-1, cn-north-1, ap-southeast-5
REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::(\d{12}):role/[\w+=,.@/-]{1,512}$")
# sts:AssumeRole ExternalId and RoleSessionName, as the STS API model constrains them
EXTERNAL_ID = re.compile(r"^[\w+=,.@:/-]{2,1224}$")
ROLE_SESSION_NAME = re.compile(r"^[\w+=,.@-]{2,64}$")
INSTANCE_ID = re.compile(r"^i-([0-9a-f]{8}|[0-9a-f]{17})$")
SOURCE_SERVER_ID = re.compile(r"^s-[0-9a-zA-Z]{17}$")
DOCUMENT_NAME = re.compile(r"^[a-zA-Z0-9_\-.:/]{3,128}$")
DOCUMENT_VERSION = re.compile(r"^(\$LATEST|\$DEFAULT|[1-9][0-9]*)$")
MAX_CONCURRENCY = re.compile(r"^([1-9][0-9]*|[1-9][0-9]%|[1-9]%|100%)$")
MAX_ERRORS = re.compile(r"^([1-9][0-9]*|0|[1-9][0-9]%|[0-9]%|100%)$")
TABLE_NAME = re.compile(r"^[a-zA-Z0-9_.-]{3,255}$")
DEPLOYMENT_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")


def account_id_error(name, value):
    if not isinstance(value, str):
        return f"{name} {value!r} must be a string of 12 digits (quote it in YAML, or leading zeros are lost)"
    if not ACCOUNT_ID.match(value):
        return f"{name} {value!r} is not an AWS account id (12 digits)"
    return None


def region_error(name, value):
    if not isinstance(value, str) or not REGION.match(value):
        return f"{name} {value!r} is not an AWS region name such as us-east-1"
    return None


def role_arn_error(name, value, account_id=None):
    """An IAM role ARN, in ``account_id`` when given."""
    match = ROLE_ARN.match(value) if isinstance(value, str) else None
    if match is None:
        return f"{name} {value!r} is not an IAM role ARN such as arn:aws:iam::<account id>:role/<role name>"
    if account_id is not None and match.group(1) != account_id:
        return f"{name} {value} is a role in account {match.group(1)}, not in account {account_id}"
    return None


def external_id_error(name, value):
    if not isinstance(value, str) or not EXTERNAL_ID.match(value):
        return (f"{name} must be 2 to 1224 letters, digits or characters of _+=,.@:/- "
                "(as sts:AssumeRole accepts)")
    return None


def session_name_error(name, value):
    if not isinstance(value, str) or not ROLE_SESSION_NAME.match(value):
        return f"{name} {value!r} must be 2 to 64 letters, digits or characters of _+=,.@- (an STS role session name)"
    return None


def instance_id_error(name, value):
    if not isinstance(value, str) or not INSTANCE_ID.match(value):
        return f"{name} {value!r} is not an EC2 instance id (i- followed by 8 or 17 hexadecimal digits)"
    return None


def source_server_id_error(name, value):
    if not isinstance(value, str) or not SOURCE_SERVER_ID.match(value):
        return f"{name} {value!r} is not a DRS source server id (s- followed by 17 letters or digits)"
    return None


def document_name_error(name, value):
    if not isinstance(value, str) or not DOCUMENT_NAME.match(value):
        return f"{name} {value!r} is not an SSM document name (3 to 128 letters, digits or characters of _-.:/)"
    return None


def document_version_error(name, value):
    if not isinstance(value, str) or not DOCUMENT_VERSION.match(value):
        return f"{name} {value!r} must be $LATEST, $DEFAULT or a version number"
    return None


def max_concurrency_error(name, value):
    if not isinstance(value, str) or not MAX_CONCURRENCY.match(value):
        return f"{name} {value!r} must be a number from 1 or a percentage like 10% (SSM MaxConcurrency)"
    return None


def max_errors_error(name, value):
    if not isinstance(value, str) or not MAX_ERRORS.match(value):
        return f"{name} {value!r} must be a number from 0 or a percentage like 10% (SSM MaxErrors)"
    return None


def table_name_error(name, value):
    if not isinstance(value, str) or not TABLE_NAME.match(value):
        return f"{name} {value!r} must be 3 to 255 letters, digits, _ . or - (a DynamoDB table name)"
    return None


def deployment_id_error(name, value):
    if not isinstance(value, str) or not DEPLOYMENT_ID.match(value):
        return f"{name} {value!r} must be 1 to 128 letters, digits, _ . : or -"
    return None


def metrics_namespace_error(name, value):
    if not isinstance(value, str) or not 1 <= len(value) <= 255 or value.startswith("AWS/"):
        return f"{name} {value!r} must be 1 to 255 characters and not start with AWS/ (a CloudWatch namespace)"
    return None


def seconds_error(name, value, minimum=1, maximum=None):
    """A whole number of seconds in a range."""
    if isinstance(value, bool) or not isinstance(value, int):
        return f"{name} {value!r} must be a whole number of seconds"
    if value < minimum or (maximum is not None and value > maximum):
        upper = f" to {maximum}" if maximum is not None else " or more"
        return f"{name} {value} must be from {minimum}{upper} seconds"
    return None


def rate_error(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        return f"{name} {value!r} must be a share from 0 to 1 (0.1 is 10%)"
    return None


def first(*errors):
    """The first message of several rules, or None: one rule per entry is reported, the one that failed first."""
    return next((error for error in errors if error), None)
