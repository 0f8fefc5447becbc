"""Errors the lab returns on the wire, shaped as each service's own errors."""

from moto.core.exceptions import ServiceException


class AwsError(ServiceException):
    """An AWS error response: ``code`` is the service's error code, ``status`` the HTTP status."""

    def __init__(self, code, message, status=400, **fields):
        super().__init__(code, message)
        self.status = status
        for name, value in fields.items():
            setattr(self, name, value)


THROTTLING_ERRORS = {
    "ec2": ("RequestLimitExceeded", "Request limit exceeded.", 503),
    "ssm": ("ThrottlingException", "Rate exceeded", 400),
    "drs": ("ThrottlingException", "Rate exceeded", 429),
    "dynamodb": ("ThrottlingException", "Rate of requests exceeds the allowed throughput.", 400),
    "organizations": ("TooManyRequestsException", "AWS Organizations can't complete your request because it is too busy.", 400),
}
DEFAULT_THROTTLING_ERROR = ("Throttling", "Rate exceeded", 400)


def drs_quota_exceeded(message, resource_type):
    """DRS refusing what would exceed one of its service quotas (source servers, jobs)."""
    return AwsError("ServiceQuotaExceededException", message, 402, resourceType=resource_type, serviceCode="drs")


def throttling_error(service):
    code, message, status = THROTTLING_ERRORS.get(service, DEFAULT_THROTTLING_ERROR)
    return AwsError(code, message, status)


def service_unavailable(service):
    return AwsError("ServiceUnavailable", f"The {service} service is unavailable. Please try again later.", 503)


def unrecognized_credentials(protocol, service):
    if service == "ec2":
        return AwsError("AuthFailure", "AWS was not able to validate the provided access credentials", 401)
    if protocol == "query":
        return AwsError("InvalidClientTokenId", "The security token included in the request is invalid.", 403)
    return AwsError("UnrecognizedClientException", "The security token included in the request is invalid.", 403)


def signature_mismatch(protocol, service):
    message = ("The request signature we calculated does not match the signature you provided. "
               "Check your AWS Secret Access Key and signing method.")
    if service == "ec2":
        return AwsError("AuthFailure", "AWS was not able to validate the provided access credentials", 401)
    if protocol == "query":
        return AwsError("SignatureDoesNotMatch", message, 403)
    return AwsError("InvalidSignatureException", message, 403)


def invalid_parameters(protocol, service, message):
    """A request that does not fit the operation's model, in the form each protocol's services use."""
    if service == "ec2":
        return AwsError("InvalidParameterValue", message, 400)
    if protocol == "query":
        return AwsError("ValidationError", message, 400)
    if service == "drs":
        return AwsError("ValidationException", message, 400, reason="fieldValidationFailed")
    return AwsError("ValidationException", message, 400)


def unknown_parameter(protocol, service, name):
    if service == "ec2":
        return AwsError("UnknownParameter", f"The parameter {name} is not recognized", 400)
    if protocol == "query":
        return AwsError("ValidationError", f"Unrecognized parameter: {name}", 400)
    if service == "drs":
        return AwsError("ValidationException", f"Unrecognized field \"{name}\"", 400, reason="cannotParse")
    return AwsError("SerializationException", f"Unrecognized field \"{name}\"", 400)


def sqs_queue_does_not_exist():
    """SQS's answer for a queue URL or name that names no queue of the caller's account and region (JSON clients
    read the code from the x-amzn-query-error header the serializer adds)."""
    return AwsError("AWS.SimpleQueueService.NonExistentQueue", "The specified queue does not exist.", 400)


def sqs_invalid_parameter_value(name, value, reason):
    """SQS refusing a value out of its range, in SQS's words: ``reason`` as "Must be between 1 and 10"."""
    return AwsError("InvalidParameterValue", f"Value {value} for parameter {name} is invalid. Reason: {reason}, if provided.", 400)
