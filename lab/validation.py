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
    _check(params, shape, None, violations)
    return violations


def validation_message(violations):
    count = len(violations)
    noun = "error" if count == 1 else "errors"
    return f"{count} validation {noun} detected: " + "; ".join(violations)


def _lower_first(name):
    return name[:1].lower() + name[1:]


def _at(path):
    """The dotted path a service names in its messages ("transactItems.1.put.item"), from the (parent, part,
    whether the part is a member's name) triples the checks pass down: built only for a violation, since a large
    request (a DynamoDB transaction of hundreds of items) has hundreds of thousands of values to check."""
    parts = []
    while path is not None:
        path, part, member = path
        parts.append(_lower_first(part) if member else str(part))
    return ".".join(reversed(parts))


def _check(value, shape, path, violations):
    kind = shape.type_name
    checker = _CHECKERS.get(kind)
    if checker is not None:
        checker(value, shape, path, violations)


def _check_structure(value, shape, path, violations):
    if not isinstance(value, dict):
        violations.append(f"Value at '{_at(path)}' failed to satisfy constraint: Member must be a structure")
        return
    for required in shape.required_members:
        if value.get(required) is None:
            violations.append(f"Value null at '{_at((path, required, True))}' failed to satisfy constraint: Member must not be null")
    for name, member_value in value.items():
        member_shape = shape.members.get(name)
        if member_shape is not None and member_value is not None:
            _check(member_value, member_shape, (path, name, True), violations)


def _check_list(value, shape, path, violations):
    if not isinstance(value, list):
        violations.append(f"Value at '{_at(path)}' failed to satisfy constraint: Member must be a list")
        return
    _check_length(len(value), value, shape, path, violations)
    for index, item in enumerate(value):
        _check(item, shape.member, (path, index + 1, False), violations)


def _check_map(value, shape, path, violations):
    if not isinstance(value, dict):
        violations.append(f"Value at '{_at(path)}' failed to satisfy constraint: Member must be a map")
        return
    _check_length(len(value), value, shape, path, violations)
    for key, item in value.items():
        _check(key, shape.key, (path, "key", False), violations)
        _check(item, shape.value, (path, key, False), violations)


def _check_string(value, shape, path, violations):
    if not isinstance(value, str):
        violations.append(f"Value '{value}' at '{_at(path)}' failed to satisfy constraint: Member must be a string")
        return
    _check_length(len(value), value, shape, path, violations)
    enum = shape.metadata.get("enum")
    if enum and value not in enum:
        allowed = ", ".join(enum)
        violations.append(f"Value '{value}' at '{_at(path)}' failed to satisfy constraint: Member must satisfy enum value set: [{allowed}]")
    pattern = _compiled(shape.metadata.get("pattern"))
    if pattern is not None and not pattern.fullmatch(value):
        violations.append(
            f"Value '{value}' at '{_at(path)}' failed to satisfy constraint: Member must satisfy regular expression pattern: {shape.metadata['pattern']}"
        )


def _check_number(value, shape, path, violations):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        violations.append(f"Value '{value}' at '{_at(path)}' failed to satisfy constraint: Member must be a number")
        return
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if low is not None and value < low:
        violations.append(f"Value '{value}' at '{_at(path)}' failed to satisfy constraint: Member must have value greater than or equal to {low}")
    if high is not None and value > high:
        violations.append(f"Value '{value}' at '{_at(path)}' failed to satisfy constraint: Member must have value less than or equal to {high}")


def _check_boolean(value, shape, path, violations):
    if not isinstance(value, bool):
        violations.append(f"Value '{value}' at '{_at(path)}' failed to satisfy constraint: Member must be a boolean")


def _check_timestamp(value, shape, path, violations):
    if not isinstance(value, (datetime, str, int, float)):
        violations.append(f"Value '{value}' at '{_at(path)}' failed to satisfy constraint: Member must be a timestamp")


def _check_length(length, value, shape, path, violations):
    low, high = shape.metadata.get("min"), shape.metadata.get("max")
    if (low is None or length >= low) and (high is None or length <= high):
        return
    shown = value if isinstance(value, str) else f"{type(value).__name__} of {length}"
    if low is not None and length < low:
        violations.append(f"Value '{shown}' at '{_at(path)}' failed to satisfy constraint: Member must have length greater than or equal to {low}")
    if high is not None and length > high:
        violations.append(f"Value '{shown}' at '{_at(path)}' failed to satisfy constraint: Member must have length less than or equal to {high}")


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


def unknown_json_members(document, shape):
    """Names in a JSON request body that the input shape does not define ("a.b[0].c")."""
    unknown = []
    _collect_unknown(document, shape, None, unknown)
    return ["".join(_json_path(path)) for path in unknown]


def _collect_unknown(document, shape, path, unknown):
    """Add the paths ((parent, part) pairs; a part is a name, or a list's index) of the names below ``path`` that
    ``shape`` does not define."""
    if shape is None or document is None:
        return
    kind = shape.type_name
    if kind == "structure" and isinstance(document, dict):
        by_wire_name = _body_members(shape)
        for key, value in document.items():
            member = by_wire_name.get(key)
            if member is None:
                unknown.append((path, key))
            else:
                _collect_unknown(value, member, (path, key), unknown)
    elif kind == "list" and isinstance(document, list):
        for index, item in enumerate(document):
            _collect_unknown(item, shape.member, (path, index), unknown)
    elif kind == "map" and isinstance(document, dict):
        for key, item in document.items():
            _collect_unknown(item, shape.value, (path, key), unknown)


def _json_path(path):
    parts = []
    while path is not None:
        path, part = path
        parts.append(f"[{part}]" if isinstance(part, int) else f".{part}")
    parts.reverse()
    if parts:
        parts[0] = parts[0].lstrip(".")
    return parts


@lru_cache(maxsize=None)
def _body_members(shape):
    """A structure's members that travel in the body, by the name they have there."""
    return {member.serialization.get("name", name): member for name, member in shape.members.items()
            if member.serialization.get("location") in (None, "")}
