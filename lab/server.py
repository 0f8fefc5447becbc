"""The lab's HTTP front: authenticates, injects faults, refuses the actions a scenario denies a
role, validates against the botocore model, answers the operations in the routes table, and hands
everything else to moto in the caller's account. Each call is worked on under the world lock, one at a
time; a call that waits (an SQS long poll) waits outside it."""

import io
import json
import sys
import threading
import time
import traceback
import uuid

from botocore.model import NoShapeFoundError
from moto.backends import get_backend  # noqa: F401  (loads moto's backend index before the first request)
from moto.moto_api._internal.models import moto_api_backend
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request

from lab import control
from lab.errors import (
    AwsError,
    service_unavailable,
    signature_mismatch,
    throttling_error,
    unrecognized_credentials,
)
from lab.protocol import (
    RequestReading,
    caller_of,
    error_response,
    parsed_for_moto,
    protocol_family,
    serialize,
    service_model,
    service_of,
    verify_signature,
)
from lab.routes import ROUTES, WATCHED
from lab.waiting import Pending
from lab.world import World


class Call:
    """What a route handler gets: the caller's identity and account, the region, the parameters."""

    def __init__(self, credential, region, operation):
        self.credential = credential
        self.account_id = credential.account_id
        self.region = region
        self.operation = operation
        self.params = operation.params


class LabApplication:
    def __init__(self, scenario):
        self.scenario = scenario
        self._moto = DomainDispatcherApplication(create_backend_app)
        self.world = World(scenario)

    def reset(self):
        with self.world.lock:
            moto_api_backend.reset()
            self.world = World(self.scenario)

    def __call__(self, environ, start_response):
        request = Request(environ)
        if request.path.startswith("/_lab/"):
            status, payload = control.handle(self, request)
            return _respond(start_response, status, {"Content-Type": "application/json"}, json.dumps(payload, default=str).encode())
        body = request.get_data(cache=True)
        service = None
        try:
            caller = caller_of(request)
            service = service_of(caller)
            status, headers, payload = self._answer(self.world, request, body, caller, service, environ)
        except AwsError as error:
            status, headers, payload = error_response(error, service, protocol_family(service))
        return _respond(start_response, status, headers, payload)

    def _answer(self, world, request, body, caller, service, environ):
        if world.faults.is_unavailable(service):
            world.stats.record_fault("unavailable", service, "*")
            raise service_unavailable(service)
        # reading a request needs nothing of the world: it is done before the world lock, so that a large one (a
        # DynamoDB transaction of a history's items) does not hold up the others while it is read and checked
        reading = RequestReading(service, request, body)
        with world.lock:
            started_at, started = time.time(), time.perf_counter()
            world.run_due_events()
            protocol = protocol_family(service)
            credential = world.identities.authenticate(caller, unrecognized_credentials(protocol, service))
            verify_signature(request, body, caller, credential.secret_access_key, signature_mismatch(protocol, service))
            operation = reading.operation()
            world.stats.record_call(credential.account_id, credential.role_arn or credential.arn, service, operation.name)
            latency = world.faults.latency_seconds(service, operation.name)
            if world.faults.should_throttle(service, operation.name):
                world.stats.record_fault("throttled", service, operation.name)
                result = throttling_error(service)
            else:
                result = self._checked_dispatch(world, credential, caller, operation, reading.refusal, environ, body)
            result = _counted(world, operation, result)
            busy = time.perf_counter() - started
        if isinstance(result, Pending):
            result, busy_while_waiting = self._wait_for_answer(world, operation, result)
            busy += busy_while_waiting
        world.stats.record_service_time(service, operation.name, started_at, busy)
        if latency:  # served outside the world lock, so one slow call does not stall the others
            time.sleep(latency)
        return result

    def _wait_for_answer(self, world, operation, pending):
        """Wait outside the world lock until a pending call answers, trying again under the lock whenever a change
        is announced or the retry interval passes, and running the lab's due events first, so that a scenario's
        scheduled changes happen during a long poll as they would between calls. Returns the answer and the seconds
        spent under the lock."""
        result, busy = pending, 0.0
        while isinstance(result, Pending):
            result.wait()
            with world.lock:
                resumed = time.perf_counter()
                if self.world is world:
                    world.run_due_events()
                    next_step = result.retry
                else:  # a reset replaced the world, and the queue the call waited on with it
                    next_step = result.expired
                result = _counted(world, operation, _answered(operation, next_step))
                busy += time.perf_counter() - resumed
        return result, busy

    def _checked_dispatch(self, world, credential, caller, operation, refusal, environ, body):
        """``refusal``: the error the operation's parameters got from their checks, or None."""
        if world.denies(credential, operation.service, operation.name):
            return _access_denied(operation.service, operation.name, credential.arn)
        if refusal is not None:
            return refusal
        return self._dispatch(world, credential, caller, operation, environ, body)

    def _dispatch(self, world, credential, caller, operation, environ, body):
        handler = ROUTES.get((operation.service, operation.name))
        if handler is None:
            watcher = WATCHED.get((operation.service, operation.name))
            published = watcher(world, Call(credential, caller.region, operation)) if watcher else None
            answer = self._forward_to_moto(environ, body, credential.account_id, operation)
            if published and answer[0] == 200:
                published()
            return answer
        return _answered(operation, lambda: handler(world, Call(credential, caller.region, operation)))

    def _forward_to_moto(self, environ, body, account_id, operation):
        forwarded = dict(environ)
        parsed_for_moto(forwarded, operation)
        forwarded["wsgi.input"] = io.BytesIO(body)
        forwarded["CONTENT_LENGTH"] = str(len(body))
        forwarded["HTTP_X_MOTO_ACCOUNT_ID"] = account_id
        captured = {}

        def capture(status, headers, exc_info=None):
            captured["status"] = int(status.split(" ", 1)[0])
            captured["headers"] = headers
            return lambda data: None

        chunks = self._moto(forwarded, capture)
        payload = b"".join(chunks)
        if hasattr(chunks, "close"):
            chunks.close()
        headers = {k: v for k, v in captured["headers"] if k.lower() not in ("content-length", "server", "date")}
        return captured["status"], headers, payload


def _answered(operation, answer):
    """What a route's ``answer()`` gives, as bytes; an AwsError for what it refuses; a Pending while it has nothing
    to answer yet."""
    try:
        result = answer()
        return result if isinstance(result, Pending) else serialize(operation, result)
    except AwsError as error:
        return error
    except Exception:  # a lab defect must show as a 500 with its trace, never as a hang
        traceback.print_exc(file=sys.stderr)
        return AwsError("InternalFailure", "The lab failed to process this request; see its log.", 500)


def _counted(world, operation, result):
    """A call's answer as bytes, an error counted in the statistics; a Pending as it is."""
    if isinstance(result, AwsError):
        world.stats.record_error(operation.service, operation.name, result.code)
        return serialize(operation, result)
    return result


def _access_denied(service, operation_name, principal_arn):
    """The error a service answers for an action no identity-based policy allows the caller. The
    lab's service names are also the services' IAM action prefixes."""
    action = f"{service}:{operation_name}"
    message = f"User: {principal_arn} is not authorized to perform: {action} because no identity-based policy allows the {action} action"
    if service == "ec2":
        return AwsError("UnauthorizedOperation", f"You are not authorized to perform this operation. {message}", 403)
    model = service_model(service)
    if model.protocol == "query" or "awsQueryCompatible" in model.metadata:  # CloudWatch kept its query error codes
        return AwsError("AccessDenied", message, 403)
    # JSON services answer 400 (SSM, DynamoDB), unless their model gives the error its own status (DRS: 403)
    try:
        status = model.shape_for("AccessDeniedException").metadata.get("error", {}).get("httpStatusCode", 400)
    except NoShapeFoundError:
        status = 400
    return AwsError("AccessDeniedException", message, status)


def _respond(start_response, status, headers, payload):
    headers = dict(headers)
    if not any(name.lower() == "x-amzn-requestid" for name in headers):
        headers["x-amzn-RequestId"] = str(uuid.uuid4())
    headers["Content-Length"] = str(len(payload))
    start_response(f"{status} {_REASONS.get(status, 'Status')}", list(headers.items()))
    return [payload]


_REASONS = {
    200: "OK", 201: "Created", 204: "No Content", 400: "Bad Request", 401: "Unauthorized", 402: "Payment Required",
    403: "Forbidden", 404: "Not Found", 409: "Conflict", 429: "Too Many Requests", 500: "Internal Server Error",
    503: "Service Unavailable",
}


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass


class LabServer:
    """The lab on a port, in a background thread (for tests) or in the foreground (for ``serve``)."""

    def __init__(self, scenario, host="127.0.0.1", port=0):
        self.app = LabApplication(scenario)
        self._server = make_server(host, port, self.app, threaded=True, request_handler=_QuietHandler)
        self.host = host
        self.port = self._server.server_address[1]
        self._thread = None

    @property
    def url(self):
        return f"http://{self.host}:{self.port}"

    def serve_forever(self):
        self._server.serve_forever()

    def start(self):
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._server.shutdown()
        self._server.server_close()
