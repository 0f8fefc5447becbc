# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Retries and pagination shared by every module of the collection.

Every AWS call goes through a client made with ``module.client(service, retry_decorator=RETRY)``
and is called with ``aws_retry=True``, so throttling anywhere is retried with jittered backoff.
List calls are paged with ``pages()``: a throttled page is retried on its own, never by
starting the listing again from the first page.
"""

from ansible_collections.amazon.aws.plugins.module_utils.retries import AWSRetry

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
