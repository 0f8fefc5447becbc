"""Checks a request's parameters against its botocore input shape, as the service itself does.

botocore's client-side validator skips upper bounds, enums and patterns; AWS services enforce
them, so the lab does too and answers in the services' own words
("1 validation error detected: Value ... at 'maxResults' failed to satisfy constraint: ...").
"""

import re
from datetime import datetime
from functools import lru_cache


def constraint_violations(params, shape):
    violations = []
    _check(params, shape, "", violations)
    return violations


def validation_message(violations):
    count = len(violations)
    noun = "error" if count == 1 else "errors"
    return f"{count} validation {noun} detected: " + "; ".join(violations)


def _lower_first(name):
    return name[:1].lower() + name[1:]


def _join(path, member):
    return f"{path}.{_lower_first(member)}" if path else _lower_first(member)


def _check(value, shape, path, violations):
    kind = shape.type_name
    checker = _CHECKERS.get(kind)
    if checker is not None:
        checker(value, shape, path, violations)


def _check_structure(value, shape, path, violations):
    if not isinstance(value, dict):
        violations.append(f"Value at '{path}' failed to satisfy constraint: Member must be a structure")
        return
    for required in shape.required_members:
        if value.get(required) is None:
            violations.append(f"Value null at '{_join(path, required)}' failed to satisfy constraint: Member must not be null")
    for name, member_value in value.items():
        member_shape = shape.members.get(name)
        if member_shape is not None and member_value is not None:
            _check(member_value, member_shape, _join(path, name), violations)


def _check_list(value, shape, path, violations):
    if not isinstance(value, list):
        violations.append(f"Value at '{path}' failed to satisfy constraint: Member must be a list")
        return
    _check_length(len(value), value, shape, path, violations)
    for index, item in enumerate(value):
        _check(item, shape.member, f"{path}.{index + 1}" if path else str(index + 1), violations)


def _check_map(value, shape, path, violations):
    if not isinstance(value, dict):
        violations.append(f"Value at '{path}' failed to satisfy constraint: Member must be a map")
        return
    _check_length(len(value), value, shape, path, violations)
    for key, item in value.items():
        _check(key, shape.key, f"{path}.key", violations)
        _check(item, shape.value, f"{path}.{key}", violations)


def _check_string(value, shape, path, violations):
    if not isinstance(value, str):
        violations.append(f"Value '{value}' at '{path}' failed to satisfy constraint: Member must be a string")
        return
    _check_length(len(value), value, shape, path, violations)
    enum = shape.metadata.get("enum")
    if enum and value not in enum:
        allowed = ", ".join(enum)
        violations.append(f"Value '{value}' at '{path}' failed to satisfy constraint: Member must satisfy enum value set: [{allowed}]")
    pattern = _compiled(shape.metadata.get("pattern"))
    if pattern is not None and not pattern.fullmatch(value):
        violations.append(
            f"Value '{value}' at '{path}' failed to satisfy constraint: Member must satisfy regular expression pattern: {shape.metadata['pattern']}"
        )


def _check_number(value, shape, path, violations):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        violations.append(f"Value '{value}' at '{path}' failed to satisfy constraint: Member must be a number")
        return
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and value < low:
        violations.append(f"Value '{value}' at '{path}' failed to satisfy constraint: Member must have value greater than or equal to {low}")
    if high is not None and value > high:
        violations.append(f"Value '{value}' at '{path}' failed to satisfy constraint: Member must have value less than or equal to {high}")


def _check_boolean(value, shape, path, violations):
    if not isinstance(value, bool):
        violations.append(f"Value '{value}' at '{path}' failed to satisfy constraint: Member must be a boolean")


def _check_timestamp(value, shape, path, violations):
    if not isinstance(value, (datetime, str, int, float)):
        violations.append(f"Value '{value}' at '{path}' failed to satisfy constraint: Member must be a timestamp")


def _check_length(length, value, shape, path, violations):
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    shown = value if isinstance(value, str) else f"{type(value).__name__} of {length}"
    if low is not None and length < low:
        violations.append(f"Value '{shown}' at '{path}' failed to satisfy constraint: Member must have length greater than or equal to {low}")
    if high is not None and length > high:
        violations.append(f"Value '{shown}' at '{path}' failed to satisfy constraint: Member must have length less than or equal to {high}")


@lru_cache(maxsize=None)
def _compiled(pattern):
    """Model patterns are Java regular expressions; the few Python cannot compile are not enforced."""
    if not pattern:
        return None
    try:
        return re.compile(pattern, re.DOTALL)
    except re.error:
        return None


_CHECKERS = {
    "structure": _check_structure,
    "list": _check_list,
    "map": _check_map,
    "string": _check_string,
    "integer": _check_number,
    "long": _check_number,
    "double": _check_number,
    "float": _check_number,
    "boolean": _check_boolean,
    "timestamp": _check_timestamp,
}


def unknown_json_members(document, shape, path=""):
    """Names in a JSON request body that the input shape does not define."""
    if shape is None or document is None:
        return []
    kind = shape.type_name
    if kind == "structure" and isinstance(document, dict):
        by_wire_name = {member.serialization.get("name", name): member for name, member in shape.members.items()
                        if member.serialization.get("location") in (None, "")}
        unknown = []
        for key, value in document.items():
            member = by_wire_name.get(key)
            if member is None:
                unknown.append(f"{path}.{key}" if path else key)
            else:
                unknown.extend(unknown_json_members(value, member, f"{path}.{key}" if path else key))
        return unknown
    if kind == "list" and isinstance(document, list):
        return [name for index, item in enumerate(document) for name in unknown_json_members(item, shape.member, f"{path}[{index}]")]
    if kind == "map" and isinstance(document, dict):
        return [name for key, item in document.items() for name in unknown_json_members(item, shape.value, f"{path}.{key}")]
    return []
