"""The FIELDS table (every field round-trips CLI ⇄ URL ⇄ JSON) and the one override rule, `ResNetConfig.with_changes`."""

from __future__ import annotations

import dataclasses
import json

import pytest

from explorer import api, config, diagram
from explorer.cli import main, make_parser
from explorer.config import FIELD, FIELDS, ConfigError, Field, ResNetConfig
from explorer.presets import PRESETS
from explorer.ui.urlstate import merge, parse_query, to_query

BASE = PRESETS["resnet20"].config
FIXED_SAMPLES = {"depth": 32, "blocks": (1, 2, 3), "widths": (8, 16, 32), "input_shape": (64, 48, 1), "stages": 4}
COMPANIONS = {"stages": {"depth": 26}}
"""Changes that go with a sample to make a valid config (depth 20 does not fit 4 stages of basic blocks)."""


def sample(field: Field, base: ResNetConfig = BASE):
    """A value of `field` other than `base`'s that makes a valid config on its own."""
    if field.name in FIXED_SAMPLES:
        return FIXED_SAMPLES[field.name]
    value = getattr(base, field.name)
    if field.kind == "choice":
        return next(c for c in field.choices if c != value)
    if field.kind == "bool":
        return not value
    if field.kind == "int":
        high = getattr(base, field.high_field) if field.high_field else field.high
        return value + 1 if value + 1 <= high else value - 1
    assert field.kind == "float", field
    return (field.low + field.high) / 4


def _flags(changes: dict) -> list[str]:
    """The CLI flags of some changes, e.g. ['--input', '64x48x1']."""
    return [arg for name, value in changes.items() for arg in (f"--{FIELD[name].cli}", FIELD[name].format(value))]


def test_fields_are_the_config_fields_in_order():
    assert [f.name for f in FIELDS] == [f.name for f in dataclasses.fields(ResNetConfig)]
    assert FIELD["input_shape"].url == FIELD["input_shape"].cli == "input"
    assert len({f.url for f in FIELDS}) == len(FIELDS)


@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f.name)
def test_every_field_round_trips_cli_url_json(field, capsys):
    value = sample(field)
    changes = {field.name: value, **COMPANIONS.get(field.name, {})}
    cfg = BASE.with_changes(**changes)
    assert getattr(cfg, field.name) == value
    assert ResNetConfig.from_json(cfg.to_json()) == cfg  # JSON
    query = to_query(cfg, "resnet20")  # URL
    assert field.url in query and field.parse(query[field.url]) == value
    assert parse_query(query) == (cfg, "resnet20", [])
    if field.cli is None:
        assert f"--{field.name.replace('_', '-')}" not in make_parser().format_help()
        return
    code = main(["summary", "--preset", "resnet20", *_flags(changes), "--json"])  # CLI
    assert code in (0, 3)  # 3: it builds, with diagnostics (e.g. an identity shortcut)
    assert json.loads(capsys.readouterr().out)["config"] == cfg.to_dict()


@pytest.mark.parametrize("field", FIELDS, ids=lambda f: f.name)
def test_format_and_parse_are_inverse(field):
    value = sample(field)
    assert field.parse(field.format(value)) == value


def test_shortcut_words_live_in_one_table():
    assert list(config.SHORTCUT_HELP) == list(config.SHORTCUTS)
    assert diagram.SHORTCUT_NAMES is config.SHORTCUT_NAMES
    assert set(diagram.SHORTCUT_STYLE) | {"none"} == set(config.SHORTCUT_NAMES)
    assert FIELD["shortcut"].labels["A"] == "A · zero-pad (no params)"


# ------------------------------------------------------------------------------------------- with_changes
EXPLICIT = ResNetConfig(depth=None, blocks=(1, 1, 1, 1, 1, 1), stages=6, widths=(8, 8, 16, 16, 32, 32))


def test_no_changes_is_the_same_config():
    assert BASE.with_changes() is BASE


def test_blocks_clear_the_depth_and_set_the_stages():
    cfg = BASE.with_changes(blocks=(1, 2, 3, 4))
    assert (cfg.blocks, cfg.depth, cfg.stages, cfg.resolved_depth) == ((1, 2, 3, 4), None, 4, 22)


def test_stages_given_with_blocks_win():
    with pytest.raises(ConfigError) as err:
        BASE.with_changes(blocks=(1, 1), stages=3)
    assert err.value.field == "blocks"


def test_a_depth_given_with_blocks_must_match_them():
    assert BASE.with_changes(blocks=(3, 3, 3), depth=20).depth == 20
    with pytest.raises(ConfigError) as err:
        BASE.with_changes(blocks=(3, 3, 3), depth=32)
    assert err.value.field == "depth"


def test_a_depth_clears_explicit_blocks():
    cfg = EXPLICIT.with_changes(depth=38)
    assert (cfg.blocks, cfg.stage_blocks) == (None, (3,) * 6)


def test_stages_drop_blocks_and_widths_that_no_longer_fit_and_keep_the_depth():
    cfg = EXPLICIT.with_changes(stages=2)
    assert (cfg.blocks, cfg.widths, cfg.depth, cfg.stage_blocks) == (None, None, 14, (3, 3))
    assert EXPLICIT.with_changes(stages=6) == EXPLICIT  # they still fit
    assert EXPLICIT.with_changes(stages=2, widths=(4, 8)).widths == (4, 8)  # given widths win


def test_another_block_kind_keeps_explicit_blocks():
    cfg = EXPLICIT.with_changes(block="bottleneck")
    assert cfg.blocks == EXPLICIT.blocks and cfg.resolved_depth == 3 * 6 + 2


def test_clearing_depth_or_blocks_keeps_the_depth():
    assert BASE.with_changes(depth=None) == BASE
    cfg = EXPLICIT.with_changes(blocks=None)
    assert (cfg.blocks, cfg.depth) == (None, EXPLICIT.resolved_depth)


def test_unknown_fields_are_config_errors():
    with pytest.raises(ConfigError, match="depht"):
        BASE.with_changes(depht=20)


@pytest.mark.parametrize("changes", [
    {"blocks": (1, 2, 3, 4)}, {"depth": 56}, {"stages": 4, "depth": 26}, {"blocks": (2, 2), "stages": 2},
    {"block": "bottleneck", "depth": 29, "input_shape": (64, 48, 1)}, {"widths": (8, 16, 32), "shortcut": "B"},
])
def test_cli_api_and_links_apply_changes_alike(changes, capsys):
    expected = BASE.with_changes(**changes)
    assert main(["summary", "--preset", "resnet20", *_flags(changes), "--json"]) == 0
    assert ResNetConfig.from_dict(json.loads(capsys.readouterr().out)["config"]) == expected
    assert api.config_of("resnet20", **changes) == expected
    assert merge(BASE, changes, snap=False) == (expected, [])
