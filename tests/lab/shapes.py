"""Checks that a parsed response fits its botocore output shape: required members, types, enums."""

import re

from botocore.validate import ParamValidator

# Where real AWS answers differ from their own models, and where botocore reshapes an answer before
# the caller sees it: these are not lab defects.
KNOWN_DEPARTURES = (
    # The EC2 API reference: Platform "is windows for Windows instances" (lower case); the model's
    # enum spells it "Windows".
    re.compile(r"\.Platform: 'windows' is not one of \['Windows'\]$"),
    # DynamoDB reports NumberOfDecreasesToday 0 for a new table; the model's minimum is 1.
    re.compile(r"NumberOfDecreasesToday, value: 0, valid min value: 1"),
    # botocore decodes IAM policy documents (URL-encoded JSON on the wire) into dicts.
    re.compile(r"PolicyDocument, value: .*type: <class 'dict'>, valid types: <class 'str'>", re.DOTALL),
)


def output_problems(client, operation_name, response):
    shape = client.meta.service_model.operation_model(operation_name).output_shape
    if shape is None:
        return []
    body = {key: value for key, value in response.items() if key != "ResponseMetadata"}
    report = ParamValidator().validate(body, shape)
    # one line per problem, so a known departure never hides another problem of the same answer
    problems = [report._format_error(error) for error in report._errors]
    _enum_problems(body, shape, operation_name, problems)
    return [problem for problem in problems if not any(departure.search(problem) for departure in KNOWN_DEPARTURES)]


def _enum_problems(value, shape, path, problems):
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        for name, member in shape.members.items():
            if name in value:
                _enum_problems(value[name], member, f"{path}.{name}", problems)
    elif kind == "list" and isinstance(value, list):
        for index, item in enumerate(value):
            _enum_problems(item, shape.member, f"{path}[{index}]", problems)
    elif kind == "map" and isinstance(value, dict):
        for key, item in value.items():
            _enum_problems(item, shape.value, f"{path}.{key}", problems)
    elif kind == "string" and shape.enum and value not in shape.enum:
        problems.append(f"{path}: {value!r} is not one of {shape.enum}")
