# -*- coding: utf-8 -*-

# Copyright: Contributors to the drs_orchestration.agent_deployer collection
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)

"""Tag filters, wave and priority tags: checked before any AWS call, parsed the same way everywhere.

Checks raise ``TagInputError`` with a message that names the option at fault and says what to
write instead; modules turn it into ``fail_json``.
"""

import fnmatch
import re

DEFAULT_TAG_FILTERS = {"dr:enabled": "true", "dr:recovery-strategy": "drs"}
DEFAULT_WAVE_TAG_KEY = "dr:wave"
DEFAULT_PRIORITY_TAG_KEY = "dr:priority"

# EC2 tag limits: keys 1 to 128 characters, values up to 256.
MAX_TAG_KEY_LENGTH = 128
MAX_TAG_VALUE_LENGTH = 256

WAVE_NUMBER = re.compile(r"^[+-]?\d+$")


class TagInputError(ValueError):
    """A tag filter, tag key or wave number given by the user that cannot be used."""


def check_tag_key(option, key):
    if not isinstance(key, str):
        raise TagInputError(f"{option}: the tag key {key!r} is a {type(key).__name__}; write it as a string")
    if not key.strip():
        raise TagInputError(f"{option}: a tag key is empty; give the tag's name, such as dr:wave")
    if len(key) > MAX_TAG_KEY_LENGTH:
        raise TagInputError(
            f"{option}: the tag key {key[:40]!r}... is {len(key)} characters long; EC2 tag keys have at most "
            f"{MAX_TAG_KEY_LENGTH}"
        )
    return key


def _check_tag_value(option, value):
    if not isinstance(value, str):
        raise TagInputError(
            f"{option}: the value {value!r} is a {type(value).__name__}; tag values are strings, so quote it "
            f"(for example \"{str(value).lower() if isinstance(value, bool) else value}\")"
        )
    if not value:
        raise TagInputError(f"{option}: the value is empty; give the tag value to match (wildcards * and ? work)")
    if len(value) > MAX_TAG_VALUE_LENGTH:
        raise TagInputError(
            f"{option}: the value {value[:40]!r}... is {len(value)} characters long; EC2 tag values have at most "
            f"{MAX_TAG_VALUE_LENGTH}"
        )
    return value


def check_tag_filters(tag_filters, name="tag_filters"):
    """``{key: value or [values]}`` as ``{key: [values]}``, or TagInputError naming the bad entry."""
    if not isinstance(tag_filters, dict) or not tag_filters:
        raise TagInputError(
            f"{name}: give at least one tag to match, as a mapping of tag key to a value or a list of "
            "values, such as {\"dr:enabled\": \"true\"}"
        )
    checked = {}
    for key, values in tag_filters.items():
        check_tag_key(name, key)
        option = f"{name}[{key!r}]"
        if isinstance(values, (list, tuple)):
            if not values:
                raise TagInputError(f"{option}: the list of values is empty; give at least one value to match")
            checked[key] = [_check_tag_value(option, value) for value in values]
        else:
            checked[key] = [_check_tag_value(option, values)]
    return checked


def tags_match(tags, checked_filters):
    """Whether tags ({key: value}) pass checked tag filters as EC2's ``tag:<key>`` filters pass them: every key
    present with one of its values, where ``*`` and ``?`` in a value are wildcards, case-sensitively."""
    return all(key in tags and any(fnmatch.fnmatchcase(tags[key], value) for value in values)
               for key, values in checked_filters.items())


def parse_wave_filter(waves, name="waves"):
    """The ``waves`` option as a sorted list of distinct wave numbers (None: every wave)."""
    if waves is None:
        return None
    numbers = set()
    for wave in waves:
        text = wave.strip() if isinstance(wave, str) else wave
        if isinstance(text, bool) or not (isinstance(text, int) or (isinstance(text, str) and WAVE_NUMBER.match(text))):
            raise TagInputError(f"{name}: {wave!r} is not a wave number; give whole numbers such as 1, 2 or 10")
        number = int(text)
        if number < 0:
            raise TagInputError(f"{name}: {wave!r} is negative; wave numbers are 0 or more")
        numbers.add(number)
    return sorted(numbers)


def parse_wave(tags, wave_tag_key):
    """(wave number, None) for an instance's tags, or (None, the reason it has no usable wave)."""
    if wave_tag_key not in tags:
        return None, f"the wave tag {wave_tag_key} is missing"
    value = tags[wave_tag_key]
    if not WAVE_NUMBER.match(value.strip()):
        return None, f"the wave tag {wave_tag_key}={value!r} is not an integer"
    number = int(value.strip())
    if number < 0:
        return None, f"the wave tag {wave_tag_key}={value!r} is negative"
    return number, None


def tags_to_dict(tag_list):
    """EC2's ``[{"Key": k, "Value": v}]`` as ``{k: v}``."""
    return {tag["Key"]: tag.get("Value", "") for tag in tag_list or []}
