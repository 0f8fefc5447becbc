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
import re
import threading

try:
    import boto3
    import botocore.config
    import botocore.model
    import botocore.parsers
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
    standard library's parsers first: botocore's own goes through dateutil's general parser, which takes a
    third of the time of parsing a large DescribeInstances answer (three timestamps per instance), and reads
    an epoch number (every timestamp of SSM's answers) in a new local time zone object each time. Anything
    else (other formats, ``Z`` before Python 3.11) goes to botocore's."""
    if isinstance(value, str):
        try:
            return datetime.datetime.fromisoformat(value)
        except ValueError:
            pass
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        # the same instant botocore gives (it is aware, in the local zone): aware instants compare by instant
        return datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
    return parse_timestamp(value)


class ResponseParsers:
    """A botocore response parser factory (a session's ``response_parser_factory`` component): botocore's
    parsers, reading timestamps with ``read_timestamp``, and reading of some answers only the members the
    collection uses.

    ``trimmed`` maps (service name, operation name) to {structure shape name: the members to read}. botocore
    walks every member of an answer in Python; the members left out are skipped whole. A DescribeInstances
    answer holds some sixty members per instance, of which discovery reads six: trimmed, it parses in half the
    time. The XML elements of the structures and lists left out are also cut from an XML answer before it is
    parsed (``UnreadElements``), so that no tree is built for them: at 260 instances, a third less time again.
    Only the clients of the session get trimmed answers, so a session given ``trimmed`` serves only the code
    that reads no other member.
    """

    def __init__(self, loader, trimmed=None):
        self._factory = botocore.parsers.ResponseParserFactory()
        self._factory.set_parser_defaults(timestamp_parser=read_timestamp)
        self._outputs = {}  # protocol -> {output shape name: (trimmed output shape, its UnreadElements or None)}
        for (service, operation), kept in (trimmed or {}).items():
            description = loader.load_service_model(service, "service-2")
            shapes = dict(description["shapes"])
            left_out = []
            for shape_name, members in kept.items():
                shape = shapes[shape_name]
                shapes[shape_name] = dict(shape, members={name: ref for name, ref in shape["members"].items()
                                                          if name in members})
                left_out.extend((name, ref) for name, ref in shape["members"].items() if name not in members)
            model = botocore.model.ServiceModel(dict(description, shapes=shapes), service_name=service)
            output = model.operation_model(operation).output_shape
            protocol = model.metadata["protocol"]
            unread = None
            if protocol in XML_PROTOCOLS:
                # structures and lists only: cutting a lone value costs more than parsing it
                unread = UnreadElements({ref.get("locationName", name) for name, ref in left_out
                                         if description["shapes"][ref["shape"]]["type"] in ("structure", "list")}
                                        - element_names(output))
            self._outputs.setdefault(protocol, {})[output.name] = (output, unread)

    def set_parser_defaults(self, **kwargs):
        self._factory.set_parser_defaults(**kwargs)

    def create_parser(self, protocol_name):
        parser = self._factory.create_parser(protocol_name)
        outputs = self._outputs.get(protocol_name)
        return _TrimmingParser(parser, outputs) if outputs else parser


XML_PROTOCOLS = ("ec2", "query", "rest-xml")
# XML names that lists and maps use whatever their shapes say
XML_STRUCTURAL_NAMES = {"item", "member", "entry", "key", "value"}


def element_names(shape, seen=None):
    """Every XML element name an answer of ``shape`` may hold that its parser reads."""
    seen = set() if seen is None else seen
    names = set(XML_STRUCTURAL_NAMES)
    if shape.name in seen:
        return names
    seen.add(shape.name)
    if shape.type_name == "structure":
        for name, member in shape.members.items():
            names.add(member.serialization.get("name", name))
            names |= element_names(member, seen)
    elif shape.type_name == "list":
        names.add(shape.member.serialization.get("name", "item"))
        names |= element_names(shape.member, seen)
    elif shape.type_name == "map":
        names |= element_names(shape.key, seen) | element_names(shape.value, seen)
    return names


class UnreadElements:
    """Cuts the elements named ``names`` out of an XML answer, whole, when no parser reads them.

    An element is cut only as ``<name>...</name>`` or ``<name/>`` (no attribute, no prefix) and only when no
    element of the same name is inside it (the inner one is then cut if it is whole); any other stays, and is
    skipped by the trimmed shape as before."""

    def __init__(self, names):
        self.names = frozenset(names)
        self._opening = re.compile(
            b"<(" + b"|".join(re.escape(name.encode()) for name in sorted(self.names)) + b")(/?)>") if names else None
        self._nested = {name.encode(): re.compile(b"<" + re.escape(name.encode()) + b"[ />]") for name in self.names}

    def cut(self, body):
        if self._opening is None or not isinstance(body, bytes):
            return body
        kept, at = [], 0
        for opening in self._opening.finditer(body):
            start = opening.start()
            if start < at:
                continue  # inside an element already cut
            if not opening.group(2):
                name = opening.group(1)
                closing = b"</" + name + b">"
                end = body.find(closing, opening.end())
                if end < 0 or self._nested[name].search(body, opening.end(), end):
                    continue
                kept.append(body[at:start])
                at = end + len(closing)
            else:
                kept.append(body[at:start])
                at = opening.end()
        kept.append(body[at:])
        return b"".join(kept)


class _TrimmingParser:
    """A botocore parser that reads the answers it has a trimmed output shape for with that shape, cutting the
    elements of an XML answer that the shape leaves out first."""

    def __init__(self, parser, outputs):
        self._parser = parser
        self._outputs = outputs

    def parse(self, response, shape):
        if shape is not None and shape.name in self._outputs:
            shape, unread = self._outputs[shape.name]
            if unread is not None and response.get("status_code", 200) < 300:
                response = dict(response, body=unread.cut(response["body"]))
        return self._parser.parse(response, shape)


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
            botocore_session.register_component("response_parser_factory",
                                                ResponseParsers(botocore_session.get_component("data_loader")))
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
