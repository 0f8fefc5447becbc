"""Checks that a parsed response fits its botocore output shape: required members, types, enums."""

from botocore.validate import ParamValidator


def output_problems(client, operation_name, response):
    shape = client.meta.service_model.operation_model(operation_name).output_shape
    if shape is None:
        return []
    body = {key: value for key, value in response.items() if key != "ResponseMetadata"}
    report = ParamValidator().validate(body, shape)
    problems = [report.generate_report()] if report.has_errors() else []
    _enum_problems(body, shape, operation_name, problems)
    return problems


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
