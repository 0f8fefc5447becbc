# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""AWS sessions of a rollout, on the controller: the operator's own, and one per assumed role.

Roles are assumed all at once (a thread each), so that the start of a rollout does not grow with the number of
accounts. An assumed role's credentials refresh themselves before they expire (botocore's refreshable
credentials, with the same AssumeRole request), so a rollout may last longer than a role session. Credentials
never leave this module: callers get clients.

Every session shares one botocore data loader, so the service models are loaded once whatever the number of
accounts; clients are made once per account, service and region, and are safe to share between threads. The
clients of one service share their methods: botocore makes a client class for every client, with a method and
its docstring for each of the service's operations (about 0.2 MB for SSM, 1.2 MB for EC2), although a method
only names its operation; a rollout over 120 account-regions makes hundreds of clients. Their
answers are read by one parser factory: timestamps the fast way, and of DescribeInstances only what discovery
reads (the controller's only caller of it).
"""

import concurrent.futures
import threading

try:
    import boto3
    import botocore.config
    import botocore.credentials
    import botocore.session
    from botocore.exceptions import BotoCoreError, ClientError
except ImportError:
    pass  # the action reports a missing boto3

from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.aws import RETRY
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.aws import ResponseParsers
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.discovery import ANSWERS_READ

USER_AGENT = "drs_orchestration.agent_deployer"
MAX_THREADS = 16
# AssumeRole's own default; botocore refreshes the credentials some minutes before they expire.
SESSION_SECONDS = 3600


class _AssumedRole:
    """Puts an assumed role's credentials first in a session's credential chain (a botocore credential
    provider: its resolver asks each provider's load() in turn)."""

    METHOD = "drs-orchestration-assume-role"
    CANONICAL_NAME = "custom-drs-orchestration-assume-role"

    def __init__(self, credentials):
        self._credentials = credentials

    def load(self):
        return self._credentials


class Sessions:
    """The operator's session and the assumed roles' sessions, by account id.

    ``profile`` (None: the environment's) names the operator's AWS profile; ``unreachable`` maps the account
    ids whose role could not be assumed to the reason, once ``assume`` ran.
    """

    def __init__(self, profile=None, region=None):
        self.region = region
        self.loader = None
        self.parsers = None
        self.config = botocore.config.Config(user_agent_extra=USER_AGENT)
        self._lock = threading.Lock()
        self._operator = self._session(profile)
        self._roles = {}
        self._clients = {}
        self._client_methods = {}  # 'creating-client-class.<service>' -> the first client class's attributes
        self.unreachable = {}

    def _session(self, profile=None, credentials=None):
        """A botocore session sharing the data loader and the parsers, with ``credentials`` first."""
        session = botocore.session.Session(profile=profile)
        if self.loader is None:
            self.loader = session.get_component("data_loader")
            self.parsers = ResponseParsers(self.loader, ANSWERS_READ)
        else:
            session.register_component("data_loader", self.loader)
        session.register_component("response_parser_factory", self.parsers)
        session.register("creating-client-class", self._share_client_methods)
        if credentials is not None:
            session.get_component("credential_provider").insert_before("env", _AssumedRole(credentials))
        return boto3.session.Session(botocore_session=session)

    def _share_client_methods(self, class_attributes, event_name, **kwargs):
        """botocore's hook on a new client class: give it the methods of the first class made for its service."""
        class_attributes.update(self._client_methods.setdefault(event_name, dict(class_attributes)))

    def assume(self, roles, session_name, sts_region):
        """Assume every role of ``roles`` (dicts with account_id, role_arn, external_id) at once. Returns
        {account id: why its role could not be assumed} for the failures (also kept in ``unreachable``)."""
        roles = [role for role in roles if role.get("role_arn")]
        if not roles:
            return {}
        sts = self.client(None, "sts", sts_region)

        def assume_one(role):
            request = {"RoleArn": role["role_arn"], "RoleSessionName": session_name, "DurationSeconds": SESSION_SECONDS}
            if role.get("external_id"):
                request["ExternalId"] = role["external_id"]

            def fetch():
                issued = sts.assume_role(aws_retry=True, **request)["Credentials"]
                return {"access_key": issued["AccessKeyId"], "secret_key": issued["SecretAccessKey"],
                        "token": issued["SessionToken"], "expiry_time": issued["Expiration"].isoformat()}

            credentials = botocore.credentials.RefreshableCredentials.create_from_metadata(
                metadata=fetch(), refresh_using=fetch, method=_AssumedRole.METHOD)
            return self._session(credentials=credentials)

        with concurrent.futures.ThreadPoolExecutor(max_workers=min(MAX_THREADS, len(roles)),
                                                   thread_name_prefix="drs-assume") as pool:
            futures = {role["account_id"]: pool.submit(assume_one, role) for role in roles}
        for account_id, future in futures.items():
            try:
                self._roles[account_id] = future.result()
            except (BotoCoreError, ClientError) as error:
                self.unreachable[account_id] = f"the role could not be assumed: {error}"
        return {account_id: self.unreachable[account_id] for account_id in futures if account_id in self.unreachable}

    def client(self, account_id, service, region, retry=RETRY, keep=True):
        """A retrying client (``aws_retry=True`` per call, with ``retry``) in ``account_id``'s assumed role, or with
        the operator's own credentials when the account has no role (None: the operator's).

        ``keep=False`` gives a client of its own that is not kept for the next caller: for a client used once per
        account-region, whose memory is then freed (an EC2 client holds about 1.5 MB of methods for its ~700
        operations, and a rollout over 120 account-regions would otherwise keep 120 of them to its end)."""
        key = (account_id if account_id in self._roles else None, service, region or self.region, id(retry))
        session = self._roles.get(account_id, self._operator)
        if not keep:
            return RetryingBotoClientWrapper(session.client(service, region_name=key[2], config=self.config), retry)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = RetryingBotoClientWrapper(
                    session.client(service, region_name=key[2], config=self.config), retry)
                self._clients[key] = client
        return client
