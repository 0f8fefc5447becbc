# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""AWS sessions of a rollout, on the controller: the operator's own, and one per assumed role.

Roles are assumed all at once (a thread each), so that the start of a rollout does not grow with the number of
accounts. An assumed role's credentials refresh themselves before they expire (botocore's refreshable
credentials, with the same AssumeRole request), so a rollout may last longer than a role session. Credentials
never leave this module: callers get clients.

A rollout over 120 account-regions holds a hundred sessions and hundreds of clients, and what botocore gives
each of them by default would weigh more than the rollout's own data; so every session shares:
- one event emitter with botocore's handlers registered once (about 0.1 MB a session otherwise), and only those
  of the services the controller calls (SERVICES), which every client copies;
- one data loader, so that each service model is loaded once whatever the number of accounts, and of EC2 only
  the operations the controller calls (ONLY_OPERATIONS): EC2's whole model holds some 800 operations and
  weighs about 15 MB, and a client gets a method for each one of them; of botocore's endpoint data, only the
  endpoints of the services the controller calls (SERVICES);
- the methods of the clients of one service: botocore makes a client class for every client, with a method and
  its docstring for each of the service's operations;
- one parser factory: timestamps the fast way, and of DescribeInstances only what discovery reads.
Clients are made once per account, service and region (except those used once), and are safe to share between
threads.
"""

import concurrent.futures
import threading

try:
    import botocore.config
    import botocore.credentials
    import botocore.hooks
    import botocore.session
    from botocore.exceptions import BotoCoreError, ClientError
    from botocore.handlers import BUILTIN_HANDLERS, REGISTER_FIRST, REGISTER_LAST
    from botocore.loaders import Loader
except ImportError:
    Loader = object  # the plugins that use sessions report a missing boto3

from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.aws import RETRY
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.aws import ResponseParsers
from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.discovery import ANSWERS_READ

USER_AGENT = "drs_orchestration.agent_deployer"
MAX_THREADS = 16
# AssumeRole's own default; botocore refreshes the credentials some minutes before they expire.
SESSION_SECONDS = 3600
# The services the controller calls, by botocore's name, each with the key of its endpoints in botocore's endpoint
# data (CloudWatch's is its endpoint prefix, monitoring): the endpoints of no other service are kept.
SERVICES = {"cloudwatch": "monitoring", "drs": "drs", "dynamodb": "dynamodb", "ec2": "ec2", "iam": "iam",
            "organizations": "organizations", "ssm": "ssm", "sts": "sts"}
# The services of which the controller calls only these operations (discovery, and reconcile's look at the
# instances of source servers, read EC2 with DescribeInstances): their clients know no other.
ONLY_OPERATIONS = {"ec2": ("DescribeInstances",)}


def register_handlers(events):
    """Register in ``events`` botocore's own handlers, as a botocore session does, except those of other services
    than SERVICES, which would never be called: every client copies each handler of its session (about 70 KB a
    client), and 100 of botocore's 127 handlers are for other services."""
    ways = {REGISTER_FIRST: events.register_first, REGISTER_LAST: events.register_last}
    for event_name, handler, *way in BUILTIN_HANDLERS:
        parts = event_name.split(".")
        # before-call.s3.PutObject, docs.*.s3.CopyObject.complete-section
        service = (parts[2] if parts[0] == "docs" and len(parts) > 2 else parts[1]) if len(parts) > 1 else "*"
        if service == "*" or service in SERVICES:
            ways.get(way[0] if way else None, events.register)(event_name, handler)


def operations_only(model, operations):
    """A service model (service-2) with only ``operations`` and the shapes they use."""
    shapes = model["shapes"]
    kept = {name: model["operations"][name] for name in operations}
    used = set()
    pending = [ref["shape"] for operation in kept.values()
               for ref in [operation.get("input"), operation.get("output"), *operation.get("errors", [])] if ref]
    while pending:
        name = pending.pop()
        if name in used:
            continue
        used.add(name)
        shape = shapes[name]
        pending.extend(ref["shape"] for ref in shape.get("members", {}).values())
        pending.extend(shape[part]["shape"] for part in ("member", "key", "value") if part in shape)
    return dict(model, operations=kept, shapes={name: shapes[name] for name in used})


class _TrimmedLoader(Loader):
    """botocore's data loader, keeping of botocore's data only what the controller's clients use: of the services of
    ONLY_OPERATIONS, only those operations, and of the endpoints (about 7 MB for some 300 services), only those of
    SERVICES.

    What is trimmed is read whole by a loader of its own that goes with it: a loader's cache keeps what it loaded."""

    def __init__(self, search_paths):
        super().__init__(extra_search_paths=search_paths, include_default_search_paths=False)
        self._lock = threading.Lock()
        self._trimmed = {}

    def _whole(self):
        return Loader(extra_search_paths=self.search_paths, include_default_search_paths=False)

    def load_service_model(self, service_name, type_name, api_version=None):
        operations = ONLY_OPERATIONS.get(service_name) if type_name == "service-2" else None
        if operations is None:
            return super().load_service_model(service_name, type_name, api_version)
        with self._lock:
            key = (service_name, type_name, api_version)
            if key not in self._trimmed:
                self._trimmed[key] = operations_only(
                    self._whole().load_service_model(service_name, type_name, api_version), operations)
            return self._trimmed[key]

    def load_data_with_path(self, name):
        if name != "endpoints":
            return super().load_data_with_path(name)
        with self._lock:
            if name not in self._trimmed:
                endpoints, path = self._whole().load_data_with_path(name)
                keys = set(SERVICES.values())
                partitions = [dict(partition, services={key: value for key, value in partition["services"].items()
                                                        if key in keys})
                              for partition in endpoints["partitions"]]
                self._trimmed[name] = (dict(endpoints, partitions=partitions), path)
            return self._trimmed[name]


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
        self._events = botocore.hooks.HierarchicalEmitter()
        register_handlers(botocore.hooks.EventAliaser(self._events))
        self._operator = self._session(profile)
        self._roles = {}
        self._clients = {}
        self._client_methods = {}  # 'creating-client-class.<service>' -> the first client class's attributes
        self.unreachable = {}

    def _session(self, profile=None, credentials=None):
        """A botocore session sharing the event emitter, the data loader and the parsers, with ``credentials``
        first. The first one (the operator's) makes the shared loader."""
        session = botocore.session.Session(profile=profile, event_hooks=self._events, include_builtin_handlers=False)
        if self.loader is None:
            # the search paths of botocore's own loader: its data and the AWS_DATA_PATH of the configuration
            self.loader = _TrimmedLoader(session.get_component("data_loader").search_paths)
            self.parsers = ResponseParsers(self.loader, ANSWERS_READ)
            session.register("creating-client-class", self._share_client_methods)
        session.register_component("data_loader", self.loader)
        session.register_component("response_parser_factory", self.parsers)
        if credentials is not None:
            session.get_component("credential_provider").insert_before("env", _AssumedRole(credentials))
        return session

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
        if service not in SERVICES:
            raise ValueError(f"the controller's sessions make no {service} client: add it to sessions.SERVICES")
        key = (account_id if account_id in self._roles else None, service, region or self.region, id(retry))
        session = self._roles.get(account_id, self._operator)
        if not keep:
            return RetryingBotoClientWrapper(session.create_client(service, region_name=key[2], config=self.config), retry)
        with self._lock:
            client = self._clients.get(key)
            if client is None:
                client = RetryingBotoClientWrapper(
                    session.create_client(service, region_name=key[2], config=self.config), retry)
                self._clients[key] = client
        return client
