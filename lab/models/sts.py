"""Identities: access keys, their accounts, and role assumption governed by IAM trust policies.

Roles live in moto's IAM (so CloudFormation or IAM calls can create them at run time); the lab
issues and checks every credential itself, so each later call lands in the role's account.
"""

import fnmatch
import json
import secrets
import string
import threading
from datetime import datetime, timedelta, timezone
from urllib.parse import unquote

from moto.iam.models import iam_backends

from lab.errors import AwsError

_KEY_ALPHABET = string.ascii_uppercase + string.digits
CHAINED_SESSION_LIMIT = 3600


class Credential:
    def __init__(self, access_key_id, secret_access_key, account_id, arn, user_id,
                 session_token=None, expires_at=None, role_arn=None):
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.account_id = account_id
        self.arn = arn
        self.user_id = user_id
        self.session_token = session_token
        self.expires_at = expires_at
        self.role_arn = role_arn


class IdentityStore:
    def __init__(self, partition="aws"):
        self._lock = threading.Lock()
        self._by_access_key = {}
        self.partition = partition

    def add_user(self, account_id, user_name, access_key_id, secret_access_key):
        backend = iam_backends[account_id][self.partition]
        user = backend.create_user(region_name="us-east-1", user_name=user_name, path="/", tags=[])
        credential = Credential(access_key_id, secret_access_key, account_id, user.arn, user.id)
        with self._lock:
            self._by_access_key[access_key_id] = credential
        return credential

    def issued_sessions(self):
        """Every temporary credential issued so far, secrets included: for tests that prove a client
        never printed them."""
        with self._lock:
            return [
                {"access_key_id": c.access_key_id, "secret_access_key": c.secret_access_key,
                 "session_token": c.session_token, "arn": c.arn}
                for c in self._by_access_key.values() if c.session_token is not None
            ]

    def authenticate(self, caller, unrecognized):
        """The credential behind a signed request, or the service's own 'invalid token' error."""
        credential = self._by_access_key.get(caller.access_key)
        if credential is None:
            raise unrecognized
        if credential.session_token is not None:
            if caller.session_token != credential.session_token:
                raise unrecognized
            if datetime.now(timezone.utc) >= credential.expires_at:
                raise AwsError("ExpiredTokenException", "The security token included in the request is expired", 403)
        return credential

    def assume_role(self, caller, role_arn, session_name, external_id, duration_seconds):
        account_id = _account_of_arn(role_arn)
        denied = AwsError(
            "AccessDenied",
            f"User: {caller.arn} is not authorized to perform: sts:AssumeRole on resource: {role_arn}",
            403,
        )
        if account_id is None:
            raise AwsError("ValidationError", f"{role_arn} is invalid", 400)
        try:
            role = iam_backends[account_id][self.partition].get_role_by_arn(role_arn)
        except Exception:  # moto raises its own NotFound; to the caller, an unknown role is a denial
            raise denied from None
        policy = _policy_document(role.assume_role_policy_document)
        context = {"sts:ExternalId": external_id, "aws:PrincipalAccount": caller.account_id, "aws:PrincipalArn": caller.arn}
        if not trust_allows(policy, caller, context):
            raise denied
        limit = CHAINED_SESSION_LIMIT if caller.role_arn else int(role.max_session_duration or 3600)
        duration = duration_seconds or 3600
        if duration > limit:
            raise AwsError(
                "ValidationError",
                "The requested DurationSeconds exceeds the MaxSessionDuration set for this role."
                if not caller.role_arn else
                "The requested DurationSeconds exceeds the 1 hour session limit for roles assumed by role chaining.",
                400,
            )
        role_name = role_arn.rsplit("/", 1)[-1]
        issued = Credential(
            access_key_id="ASIA" + "".join(secrets.choice(_KEY_ALPHABET) for _ in range(16)),
            secret_access_key=secrets.token_urlsafe(30),
            account_id=account_id,
            arn=f"arn:{self.partition}:sts::{account_id}:assumed-role/{role_name}/{session_name}",
            user_id=f"{role.id}:{session_name}",
            session_token=secrets.token_urlsafe(96),
            expires_at=datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=duration),
            role_arn=role.arn,
        )
        with self._lock:
            self._by_access_key[issued.access_key_id] = issued
        return issued


def trust_allows(policy, caller, context):
    """Evaluate a role trust policy for sts:AssumeRole: an explicit Deny wins, then any Allow."""
    allowed = False
    for statement in _as_list(policy.get("Statement")):
        if not _matches_action(statement.get("Action"), "sts:AssumeRole"):
            continue
        if not _matches_principal(statement.get("Principal"), caller):
            continue
        if not _conditions_hold(statement.get("Condition", {}), context):
            continue
        if statement.get("Effect") == "Deny":
            return False
        if statement.get("Effect") == "Allow":
            allowed = True
    return allowed


def _matches_action(actions, wanted):
    return any(fnmatch.fnmatchcase(wanted.lower(), pattern.lower()) for pattern in _as_list(actions))


def _matches_principal(principal, caller):
    if principal == "*":
        return True
    if not isinstance(principal, dict):
        return False
    for value in _as_list(principal.get("AWS")):
        if value == "*" or value == caller.account_id or value == f"arn:aws:iam::{caller.account_id}:root":
            return True
        if value in (caller.arn, caller.role_arn):
            return True
    return False


def _conditions_hold(conditions, context):
    for operator, checks in conditions.items():
        base, if_exists = operator.removesuffix("IfExists"), operator.endswith("IfExists")
        for key, expected in checks.items():
            actual = context.get(key)
            if actual is None:
                if if_exists:
                    continue
                return False
            patterns = _as_list(expected)
            if base == "StringEquals" and actual not in patterns:
                return False
            if base == "StringLike" and not any(fnmatch.fnmatchcase(actual, p) for p in patterns):
                return False
            if base not in ("StringEquals", "StringLike"):
                return False
    return True


def _as_list(value):
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _policy_document(document):
    if isinstance(document, dict):
        return document
    text = document if document.lstrip().startswith("{") else unquote(document)
    return json.loads(text)


def _account_of_arn(arn):
    parts = arn.split(":")
    if len(parts) >= 6 and parts[0] == "arn" and parts[2] == "iam" and parts[4].isdigit() and len(parts[4]) == 12:
        return parts[4]
    return None


def trust_policy(trusted_principals, external_id=None):
    principals = [p if p.startswith("arn:") else f"arn:aws:iam::{p}:root" for p in trusted_principals]
    statement = {"Effect": "Allow", "Principal": {"AWS": principals}, "Action": "sts:AssumeRole"}
    if external_id:
        statement["Condition"] = {"StringEquals": {"sts:ExternalId": external_id}}
    return {"Version": "2012-10-17", "Statement": [statement]}
