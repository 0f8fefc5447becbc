"""The wire: which service and operation a request is, its parameters, and its response bytes.

Parsing and serialising are driven by the botocore models (through moto's model-driven parsers
and serializers), so every service the lab answers itself speaks exactly the protocol its real
clients expect.
"""

import json
import re
import warnings
from datetime import datetime
from functools import lru_cache
from urllib.parse import unquote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.serialize import create_serializer
from moto.core.parse import PROTOCOL_PARSERS
from moto.core.request import determine_request_protocol
from moto.core.responses import BaseResponse
from moto.core.serialize import get_serializer_class
from moto.core.utils import get_service_model

from lab.errors import AwsError, invalid_parameters, unknown_parameter
from lab.validation import constraint_violations, unknown_json_members, validation_message

SERVED_SERVICES = ("cloudformation", "cloudwatch", "drs", "dynamodb", "ec2", "events", "iam", "organizations", "sqs", "ssm", "sts")

_CREDENTIAL_SCOPE = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request")
_SIGNED_HEADERS = re.compile(r"SignedHeaders=([^,\s]+)")
_SIGNATURE = re.compile(r"Signature=([0-9a-f]+)")
_QUERY_ENVELOPE = {"Action", "Version"}
# The request environment key that hands moto the parameters the lab parsed: (operation name, parameters)
PARSED_PARAMETERS = "lab.parsed_parameters"


def service_model(service_name):
    """The botocore model of a service, as moto's serializers expect it (cached by moto)."""
    return get_service_model(service_name)


@lru_cache(maxsize=1)
def _services_by_signing_name():
    return {service_model(name).signing_name: name for name in SERVED_SERVICES}


class Caller:
    """Who signed the request: the access key and its session token, and where it was sent."""

    def __init__(self, access_key, region, signing_name, session_token):
        self.access_key = access_key
        self.region = region
        self.signing_name = signing_name
        self.session_token = session_token


def caller_of(request):
    match = _CREDENTIAL_SCOPE.search(request.headers.get("Authorization", ""))
    if not match:
        raise AwsError("MissingAuthenticationToken", "Request is missing Authentication Token", 403)
    access_key, _date, region, signing_name = match.groups()
    return Caller(access_key, region, signing_name, request.headers.get("X-Amz-Security-Token"))


def service_of(caller):
    service = _services_by_signing_name().get(caller.signing_name)
    if service is None:
        raise AwsError("UnknownService", f"The lab does not serve the '{caller.signing_name}' service. It serves: {', '.join(SERVED_SERVICES)}", 400)
    return service


def verify_signature(request, body, caller, secret_access_key, mismatch):
    """Recompute the request's SigV4 signature with the secret the lab issued, as AWS does;
    raise ``mismatch`` (the service's own error) when it differs."""
    authorization = request.headers.get("Authorization", "")
    signed = _SIGNED_HEADERS.search(authorization)
    sent = _SIGNATURE.search(authorization)
    timestamp = request.headers.get("X-Amz-Date")
    if not (signed and sent and timestamp):
        raise mismatch
    headers = {name: request.headers.get(name, "") for name in signed.group(1).split(";")}
    raw_uri = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.full_path
    replayed = AWSRequest(method=request.method, url=f"http://{request.host}{raw_uri}", headers=headers, data=body)
    replayed.context["timestamp"] = timestamp
    signer = SigV4Auth(Credentials(caller.access_key, secret_access_key, caller.session_token), caller.signing_name, caller.region)
    expected = signer.signature(signer.string_to_sign(replayed, signer.canonical_request(replayed)), replayed)
    if expected != sent.group(1):
        raise mismatch


class Operation:
    """One parsed request: its service, operation model, wire protocol and parameters."""

    def __init__(self, service, operation_model, protocol, params):
        self.service = service
        self.model = operation_model
        self.protocol = protocol
        self.params = params

    @property
    def name(self):
        return self.model.name


def parse_operation(service, request, body):
    model = service_model(service)
    protocol = determine_request_protocol(model, request.content_type)
    operation_model, url_params = _resolve_operation(model, protocol, request)
    parser = PROTOCOL_PARSERS[protocol](operation_model)
    try:
        params = parser.parse({
            "method": request.method,
            "values": request.values,
            "headers": request.headers,
            "body": body,
            "url_path": request.path,
            "url_params": url_params,
        })
    except Exception as exc:  # a body the protocol cannot read is the client's error, not the lab's
        raise AwsError("SerializationException", f"Could not parse the request: {exc}", 400) from exc
    return Operation(service, operation_model, protocol, _plain(params))


class RequestReading:
    """What a request says, read once: its operation, or the error reading it gave, and the error the checks of
    its parameters gave (``refusal``, None when they passed). Errors are kept, to be answered where a service
    answers them: after the caller is authenticated, and after its permission to call the operation."""

    def __init__(self, service, request, body):
        self._operation, self._error, self.refusal = None, None, None
        try:
            self._operation = parse_operation(service, request, body)
            check_operation(self._operation, request, body)
        except AwsError as error:
            if self._operation is None:
                self._error = error
            else:
                self.refusal = error

    def operation(self):
        """The operation; raises the error reading the request gave."""
        if self._error is not None:
            raise self._error
        return self._operation


def check_operation(operation, request, body):
    """Refuse parameters the model does not define or whose values break its constraints."""
    _reject_unknown_parameters(operation, request, body)
    _reject_constraint_violations(operation)


def _plain(value):
    if isinstance(value, dict) or hasattr(value, "items"):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return value


def _resolve_operation(model, protocol, request):
    if protocol in ("query", "ec2"):
        action = request.values.get("Action")
        return _named_operation(model, action), {}
    if protocol == "json":
        target = request.headers.get("X-Amz-Target", "")
        prefix, _, action = target.rpartition(".")
        if prefix != model.metadata.get("targetPrefix"):
            raise AwsError("UnknownOperationException", f"Unknown target '{target}'", 400)
        return _named_operation(model, action), {}
    raw_path = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.path
    path = raw_path.split("?", 1)[0]
    for method, pattern, operation_name in _rest_routes(model.service_name):
        match = pattern.fullmatch(path)
        if match and method == request.method:
            return model.operation_model(operation_name), {k: unquote(v) for k, v in match.groupdict().items()}
    raise AwsError("UnknownOperationException", f"No {model.service_name} operation answers {request.method} {path}", 404)


def _named_operation(model, action):
    if not action or action not in model.operation_names:
        raise AwsError("InvalidAction", f"The action {action} is not valid for this web service.", 400)
    return model.operation_model(action)


@lru_cache(maxsize=None)
def _rest_routes(service_name):
    model = service_model(service_name)
    routes = []
    for name in model.operation_names:
        http = model.operation_model(name).http
        uri = http["requestUri"].split("?", 1)[0]
        regex = re.sub(r"\{([^}+]+)\+\}", r"(?P<\1>.+)", uri)
        regex = re.sub(r"\{([^}]+)\}", r"(?P<\1>[^/]+)", regex)
        routes.append((http["method"], re.compile(regex), name))
    # literal paths before templated ones, so /tags/x never shadows a fixed route
    routes.sort(key=lambda route: route[1].pattern.count("(?P<"))
    return tuple(routes)


def _reject_unknown_parameters(operation, request, body):
    if operation.protocol in ("json", "rest-json"):
        try:
            document = json.loads(body) if body else {}
        except ValueError as exc:
            raise AwsError("SerializationException", "The request body is not valid JSON", 400) from exc
        unknown = unknown_json_members(document, operation.model.input_shape)
    else:
        canonical = create_serializer(operation.protocol, include_validation=False).serialize_to_request(
            operation.params, operation.model)["body"]
        sent = set(request.values.keys()) - _QUERY_ENVELOPE
        unknown = sorted(sent - set(canonical))
    if unknown:
        raise unknown_parameter(operation.protocol, operation.service, unknown[0])


def _reject_constraint_violations(operation):
    shape = operation.model.input_shape
    if shape is None:
        return
    violations = constraint_violations(operation.params, shape)
    if violations:
        raise invalid_parameters(operation.protocol, operation.service, validation_message(violations))


def serialize(operation, result):
    """Bytes for a result dict or an AwsError, in the operation's own protocol."""
    if not isinstance(result, AwsError) and _plain_json(operation.service, operation.model.name):
        try:
            body = json.dumps(result, default=_epoch_seconds).encode("utf-8")
        except TypeError:
            pass  # a value plain JSON does not take: the model-driven serializer knows its shape
        else:
            return 200, {"Content-Type": JSON_CONTENT_TYPES[operation.protocol]}, body
    protocol = operation.protocol
    serializer = get_serializer_class(operation.service, protocol)(operation.model)
    with warnings.catch_warnings():
        # many real AWS errors (AccessDenied from STS, throttling) are not in the service models
        warnings.simplefilter("ignore", UserWarning)
        response = serializer.serialize(result)
    status = response["status_code"]
    if isinstance(result, AwsError):
        status = result.status
    headers = dict(response["headers"])
    body = response["body"]
    if isinstance(body, str):
        body = body.encode("utf-8")
    return status, headers, body


JSON_CONTENT_TYPES = {"json": "application/x-amz-json-1.1", "rest-json": "application/json"}


@lru_cache(maxsize=None)
def _plain_json(service, operation_name):
    """Whether the operation's answer is its result as plain JSON: a JSON protocol, status 200, and an output
    shape without headers, renamed members, blobs or timestamps other than epoch seconds. Such answers skip
    the model-driven serializer, which takes some 15 times as long as json.dumps on a page of servers or
    commands (the lab answers one call at a time, so its time is every caller's wait)."""
    model = service_model(service)
    operation = model.operation_model(operation_name)
    if model.protocol not in JSON_CONTENT_TYPES or operation.http.get("responseCode", 200) != 200:
        return False
    return operation.output_shape is None or _plain_shape(operation.output_shape, set())


def _plain_shape(shape, seen):
    if shape.name in seen:
        return True
    seen.add(shape.name)
    if shape.type_name == "blob" or shape.serialization.get("timestampFormat") not in (None, "unixTimestamp"):
        return False
    if shape.type_name == "structure":
        return all(not member.serialization.get("location") and not member.serialization.get("name")
                   and _plain_shape(member, seen) for member in shape.members.values())
    if shape.type_name == "list":
        return _plain_shape(shape.member, seen)
    if shape.type_name == "map":
        return _plain_shape(shape.key, seen) and _plain_shape(shape.value, seen)
    return True


def _epoch_seconds(value):
    """A datetime as the JSON protocols write a timestamp: epoch seconds, to the millisecond."""
    if isinstance(value, datetime):
        return round(value.timestamp(), 3)
    raise TypeError(f"{type(value).__name__} is not plain JSON")


def error_response(error, service=None, protocol=None):
    """An error raised before the operation is known: answered in the service's protocol family."""
    if protocol in ("query", "ec2"):
        body = (
            f'<ErrorResponse><Error><Type>Sender</Type><Code>{error.code}</Code><Message>{_xml_escape(error.message)}</Message></Error>'
            "<RequestId>lab</RequestId></ErrorResponse>"
        )
        if protocol == "ec2":
            body = f"<Response><Errors><Error><Code>{error.code}</Code><Message>{_xml_escape(error.message)}</Message></Error></Errors><RequestID>lab</RequestID></Response>"
        return error.status, {"Content-Type": "text/xml"}, body.encode("utf-8")
    payload = {"__type": error.code, "message": error.message}
    headers = {"Content-Type": "application/x-amz-json-1.1", "x-amzn-ErrorType": error.code}
    return error.status, headers, json.dumps(payload).encode("utf-8")


def protocol_family(service):
    return service_model(service).protocol if service else None


def _xml_escape(text):
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def parsed_for_moto(environ, operation):
    """Hand moto the parameters of a JSON request the lab has parsed, so that moto does not parse the body again
    (for a DynamoDB transaction of a large history, a third of the lab's time). Only for JSON: moto's parser then
    gives the same plain dicts and lists the lab's does, and the lab reads nothing of them afterwards that moto
    could change."""
    if operation.protocol == "json":
        environ[PARSED_PARAMETERS] = (operation.name, operation.params)


def _parse_parameters_once(parse_parameters):
    def parse_parameters_or_take_them(self, request):
        parsed = request.environ.get(PARSED_PARAMETERS)
        if parsed is not None and self.PROTOCOL_PARSER_MAP_TYPE is dict and parsed[0] == self._get_action():
            self.params = parsed[1]
            return
        parse_parameters(self, request)

    return parse_parameters_or_take_them


BaseResponse.parse_parameters = _parse_parameters_once(BaseResponse.parse_parameters)


def _request_id_set_only_where_named(enrich_response):
    """moto sets the request id of an XML answer with a regular expression tried at every character of the
    body: for a DescribeInstances of 260 instances (900 KB), a quarter of the lab's time. An answer with no
    ``<RequestId>`` (EC2's is ``<requestId>``) has nothing to set: only its headers are enriched."""

    def enrich_response_where_named(headers, body):
        if isinstance(body, str) and "<RequestId>" not in body:
            return enrich_response(headers, "")[0], body
        return enrich_response(headers, body)

    return staticmethod(enrich_response_where_named)


BaseResponse._enrich_response = _request_id_set_only_where_named(BaseResponse._enrich_response)
