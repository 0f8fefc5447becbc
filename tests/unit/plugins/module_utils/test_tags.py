import pytest

from ansible_collections.drs_orchestration.agent_deployer.plugins.module_utils.tags import (
    TagInputError,
    check_tag_filters,
    check_tag_key,
    parse_wave,
    parse_wave_filter,
)


def test_a_single_value_and_a_list_of_values_both_become_lists():
    assert check_tag_filters({"dr:enabled": "true", "Application": ["orders", "shop*"]}) == {
        "dr:enabled": ["true"], "Application": ["orders", "shop*"],
    }


@pytest.mark.parametrize(("tag_filters", "message"), [
    ({}, "tag_filters: give at least one tag"),
    ({"": "true"}, "tag_filters: a tag key is empty"),
    ({"k" * 129: "x"}, "is 129 characters long; EC2 tag keys have at most 128"),
    ({"dr:enabled": "v" * 257}, "tag_filters['dr:enabled']: the value 'vvvv"),
    ({"dr:enabled": True}, "tag_filters['dr:enabled']: the value True is a bool; tag values are strings, so quote it (for example \"true\")"),
    ({"dr:wave": 1}, "tag_filters['dr:wave']: the value 1 is a int"),
    ({"dr:enabled": ""}, "tag_filters['dr:enabled']: the value is empty"),
    ({"dr:enabled": []}, "tag_filters['dr:enabled']: the list of values is empty"),
    ({"dr:enabled": ["true", None]}, "tag_filters['dr:enabled']: the value None is a NoneType"),
])
def test_bad_tag_filters_are_refused_naming_the_entry(tag_filters, message):
    with pytest.raises(TagInputError) as raised:
        check_tag_filters(tag_filters)
    assert message in str(raised.value)


def test_the_longest_allowed_key_and_value_pass():
    assert check_tag_filters({"k" * 128: "v" * 256}) == {"k" * 128: ["v" * 256]}


@pytest.mark.parametrize("key", ["", "   ", "k" * 129, 5])
def test_bad_tag_keys_name_the_option(key):
    with pytest.raises(TagInputError, match="^wave_tag_key: "):
        check_tag_key("wave_tag_key", key)


def test_wave_filters_accept_numbers_and_numeric_strings_in_numeric_order():
    assert parse_wave_filter(["10", 2, " 1 ", "2"]) == [1, 2, 10]
    assert parse_wave_filter(None) is None


@pytest.mark.parametrize(("waves", "message"), [
    (["two"], "waves: 'two' is not a wave number"),
    (["1.5"], "waves: '1.5' is not a wave number"),
    ([1.5], "waves: 1.5 is not a wave number"),
    ([True], "waves: True is not a wave number"),
    ([-1], "waves: -1 is negative"),
    (["-3"], "waves: '-3' is negative"),
])
def test_bad_wave_filters_are_refused(waves, message):
    with pytest.raises(TagInputError) as raised:
        parse_wave_filter(waves)
    assert message in str(raised.value)


@pytest.mark.parametrize(("tags", "expected"), [
    ({"dr:wave": "2"}, (2, None)),
    ({"dr:wave": " 10 "}, (10, None)),
    ({"dr:wave": "0"}, (0, None)),
    ({}, (None, "the wave tag dr:wave is missing")),
    ({"dr:wave": "two"}, (None, "the wave tag dr:wave='two' is not an integer")),
    ({"dr:wave": "2.0"}, (None, "the wave tag dr:wave='2.0' is not an integer")),
    ({"dr:wave": ""}, (None, "the wave tag dr:wave='' is not an integer")),
    ({"dr:wave": "-1"}, (None, "the wave tag dr:wave='-1' is negative")),
])
def test_wave_tags_parse_to_a_number_or_a_reason(tags, expected):
    assert parse_wave(tags, "dr:wave") == expected
