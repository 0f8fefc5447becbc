# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Retries and pagination shared by every module of the collection.

Every AWS call goes through a client made with ``module.client(service, retry_decorator=RETRY)``
and is called with ``aws_retry=True``, so throttling anywhere is retried with jittered backoff.
List calls are paged with ``pages()``: a throttled page is retried on its own, never by
starting the listing again from the first page.
"""

import datetime
import threading

try:
    import boto3
    import botocore.config
    import botocore.session
    from botocore.utils import parse_timestamp
except ImportError:
    pass  # AnsibleAWSModule reports a missing boto3

from ansible_collections.amazon.aws.plugins.module_utils.botocore import get_aws_connection_info
from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry
from ansible_collections.amazon.aws.plugins.module_utils.retries import RetryingBotoClientWrapper

# The throttling errors of the services this collection calls; AWSRetry already knows some of them.
THROTTLING_ERROR_CODES = ["ThrottlingException", "Throttling", "TooManyRequestsException", "RequestLimitExceeded"]


def retry_decorator(retries=10, delay=1, max_delay=30):
    return AWSRetry.jittered_backoff(
        retries=retries, delay=delay, max_delay=max_delay, catch_extra_error_codes=THROTTLING_ERROR_CODES
    )


RETRY = retry_decorator()


def pages(call, request_token="NextToken", response_token=None, **params):
    """Yield every page of a list call; each page is one retried call.

    ``call`` is a bound client method of a client made with ``RETRY``. Most services name the
    token alike in request and response (``NextToken``, DRS ``nextToken``); others differ
    (EC2 ``NextToken`` both ways, IAM ``Marker``/``Marker``), hence the two names.
    """
    response_token = response_token or request_token
    while True:
        page = call(aws_retry=True, **params)
        yield page
        token = page.get(response_token)
        if not token:
            return
        params = dict(params, **{request_token: token})


def read_timestamp(value):
    """A response timestamp as botocore reads it (a datetime, aware when the text names a zone), with the
    standard library's ISO 8601 parser first: botocore's own goes through dateutil's general parser, which
    takes a third of the time of parsing a large DescribeInstances answer (three timestamps per instance).
    Anything that parser does not take (epoch numbers, other formats, ``Z`` before Python 3.11) goes to
    botocore's."""
    if isinstance(value, str):
        try:
            return datetime.datetime.fromisoformat(value)
        except ValueError:
            pass
    return parse_timestamp(value)


class ClientFactory:
    """Clients for several accounts and regions in one module run, for threads that each follow one.

    ``module.client()`` opens a boto3 Session per client, and each Session loads its own service
    models (about 5 MB per SSM client); a module that follows a dozen account-regions would hold a
    dozen copies. Here every client comes from one Session, made under a lock because Sessions are not
    thread-safe, while the clients it returns are, so each thread uses its own clients freely.
    Connection settings (endpoint, profile, certificate checks, botocore config) are the module's;
    ``region`` and ``credentials`` override the module's region and keys per client. Timestamps in
    responses are read with ``read_timestamp``.
    """

    def __init__(self, module):
        self.module = module
        self.region, self.endpoint, params = get_aws_connection_info(module)
        params = dict(params)
        profile = params.pop("profile_name", None)
        config = botocore.config.Config(user_agent_extra="drs_orchestration.agent_deployer")
        extra_config = params.pop("aws_config", None)
        self.config = config.merge(extra_config) if extra_config is not None else config
        self.params = params
        self.lock = threading.Lock()
        with self.lock:
            botocore_session = botocore.session.get_session()
            botocore_session.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=read_timestamp)
            self.session = boto3.session.Session(botocore_session=botocore_session, profile_name=profile)

    def client(self, service, region=None, credentials=None):
        """A retrying client (``aws_retry=True`` per call, as ``module.client(..., retry_decorator=RETRY)``).

        ``credentials``: a dict with ``access_key``, ``secret_key`` and optionally ``session_token``.
        """
        params = dict(self.params)
        if credentials and credentials.get("access_key"):
            params.update(aws_access_key_id=credentials["access_key"], aws_secret_access_key=credentials["secret_key"],
                          aws_session_token=credentials.get("session_token") or None)
        with self.lock:
            client = self.session.client(service, region_name=region or self.region, endpoint_url=self.endpoint,
                                         config=self.config, **params)
        return RetryingBotoClientWrapper(client, RETRY)
