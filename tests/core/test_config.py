"""ResNetConfig: validation messages, depth rules, JSON round-trip."""

from __future__ import annotations

import pytest

from explorer.config import (
    MAX_JSON_NESTING,
    ConfigError,
    ResNetConfig,
    blocks_for_depth,
    load_json,
    nearest_depths,
    parse_input_shape,
    valid_depths,
)
from explorer.presets import PRESETS, get_preset


def test_defaults_are_resnet20():
    cfg = ResNetConfig()
    assert cfg.stage_blocks == (3, 3, 3)
    assert cfg.resolved_depth == 20
    assert cfg.stage_widths() == [(16, 16), (32, 32), (64, 64)]


@pytest.mark.parametrize(("block", "depth", "stages", "expected"), [
    ("basic", 20, 3, (3, 3, 3)),
    ("basic", 1202, 3, (200, 200, 200)),
    ("bottleneck", 164, 3, (18, 18, 18)),
    ("bottleneck", 1001, 3, (111, 111, 111)),
    ("bottleneck", 50, 4, (3, 4, 6, 3)),
    ("bottleneck", 152, 4, (3, 8, 36, 3)),
    ("basic", 18, 4, (2, 2, 2, 2)),
    ("basic", 26, 4, (3, 3, 3, 3)),
    ("basic", 21, 3, None),
    ("bottleneck", 21, 3, None),
    ("basic", 2, 3, None),
])
def test_blocks_for_depth(block, depth, stages, expected):
    assert blocks_for_depth(block, depth, stages) == expected


def test_depth_off_the_rule_names_the_nearest_valid_depths():
    with pytest.raises(ConfigError) as err:
        ResNetConfig(block="bottleneck", depth=50)
    assert err.value.field == "depth"
    assert "9n+2" in err.value.message
    assert "47 or 56" in err.value.hint
    assert nearest_depths("basic", 3, 21) == (20, 26)
    assert nearest_depths("basic", 3, 3) == (None, 8)


def test_valid_depths_follow_the_rule():
    assert valid_depths("basic", 3, limit=40) == [8, 14, 20, 26, 32, 38]
    assert valid_depths("bottleneck", 3, limit=60) == [11, 20, 29, 38, 47, 56]
    assert 50 in valid_depths("bottleneck", 4, limit=200)


@pytest.mark.parametrize(("changes", "field", "hint_word"), [
    ({"version": 3}, "version", "1, 2"),
    ({"block": "wide"}, "block", "basic"),
    ({"shortcut": "D"}, "shortcut", "identity"),
    ({"filters": 0}, "filters", "from 1"),
    ({"filters": -4}, "filters", "from 1"),
    ({"filters": 2.5}, "filters", "integer"),
    ({"classes": 1}, "classes", "from 2"),
    ({"input_shape": (0, 32, 3)}, "input", "from 1"),
    ({"input_shape": (32, 32)}, "input", "32x32x3"),
    ({"dropout": 1.0}, "dropout", "below 1"),
    ({"dropout": float("nan")}, "dropout", "number"),
    ({"blocks": (3, 3), "depth": None}, "blocks", "3 comma-separated"),
    ({"blocks": (3, 0, 3), "depth": None}, "blocks", "from 1"),
    ({"blocks": (3, 3, 3), "depth": 56}, "depth", "leave depth empty"),
    ({"depth": None}, "depth", "blocks"),
    ({"widths": (16, 32)}, "widths", "3 comma-separated"),
    ({"first_preact": "yes"}, "first_preact", "true or false"),
    ({"head": "mlp"}, "head", "gap"),
])
def test_bad_values_are_refused_with_field_and_hint(changes, field, hint_word):
    with pytest.raises(ConfigError) as err:
        ResNetConfig(**changes)
    assert err.value.field == field
    assert hint_word in err.value.hint


def test_explicit_blocks_override_depth():
    cfg = ResNetConfig(blocks=(1, 2, 3), depth=None)
    assert cfg.resolved_depth == 2 * 6 + 2
    assert ResNetConfig(blocks=[1, 2, 3], depth=14).blocks == (1, 2, 3)  # lists become tuples


@pytest.mark.parametrize("name", list(PRESETS))
def test_json_round_trip(name):
    cfg = PRESETS[name].config
    again = ResNetConfig.from_json(cfg.to_json())
    assert again == cfg
    assert again.to_json() == cfg.to_json()


def test_from_dict_refuses_unknown_fields_and_bad_json():
    with pytest.raises(ConfigError) as err:
        ResNetConfig.from_dict({"depht": 20})
    assert "depht" in err.value.message and "depth" in err.value.hint
    with pytest.raises(ConfigError):
        ResNetConfig.from_json("{not json")
    with pytest.raises(ConfigError):
        ResNetConfig.from_json("[1, 2]")


HOSTILE_JSON = {
    "nested 30,000 deep": ("[" * 30_000 + "]" * 30_000, "nests 30,000 levels deep"),
    "objects nested 20,000 deep": ('{"a":' * 20_000 + "1" + "}" * 20_000, "nests 20,000 levels deep"),
    "a 5,000-digit number": ('{"depth": ' + "9" * 5_000 + "}", "cannot be read as JSON (ValueError: Exceeds the limit"),
    "not UTF-8": (b"\xff\xfe{}", "is not UTF-8 text"),
    "bad syntax": ("{", "is not valid JSON"),
}


@pytest.mark.parametrize("what", list(HOSTILE_JSON))
def test_any_json_failure_is_one_config_error(what):
    text, message = HOSTILE_JSON[what]
    for parse in (load_json, ResNetConfig.from_json):
        with pytest.raises(ConfigError, match=message.replace("(", r"\(")) as info:
            parse(text)
        assert info.value.field == "config" and info.value.hint
        assert len(str(info.value)) < 300  # the number or the nesting is not echoed


def test_load_json_reads_what_a_config_needs():
    nested = "[" * MAX_JSON_NESTING + "]" * MAX_JSON_NESTING
    assert load_json(nested) is not None
    assert load_json('{"a": "[[[[\\"{{{{", "b": [1]}'.replace("[[[[", "[" * 100)) == {"a": "[" * 100 + '"{{{{', "b": [1]}
    with pytest.raises(ConfigError, match="more than the 10 a config file may have"):
        load_json(b" " * 11, max_bytes=10)
    cfg = PRESETS["resnet110"].config
    assert ResNetConfig.from_json(cfg.to_json().encode()) == cfg


def test_huge_numbers_in_a_config_are_config_errors_not_echoed():
    for field in ("depth", "dropout", "l2", "classes", "bn_epsilon"):
        for value in (10**4000, -(10**4000)):
            with pytest.raises(ConfigError, match="out of range") as info:
                ResNetConfig.from_dict({field: value})
            assert len(str(info.value)) < 200


def test_keras_width_rule():
    cfg = get_preset("keras-resnet56v2").config
    assert cfg.stage_widths() == [(16, 64), (64, 128), (128, 256)]
    assert get_preset("tutorial").config.stage_widths() == [(32, 128), (128, 256), (256, 512)]
    assert get_preset("preact-resnet164").config.stage_widths() == [(16, 64), (32, 128), (64, 256)]


def test_parse_input_shape():
    assert parse_input_shape("32x32x3") == (32, 32, 3)
    assert parse_input_shape("224×224×3") == (224, 224, 3)
    for bad in ("32x32", "axbxc", ""):
        with pytest.raises(ConfigError):
            parse_input_shape(bad)


def test_unknown_preset():
    with pytest.raises(ConfigError) as err:
        get_preset("resnet21")
    assert "resnet20" in err.value.hint
