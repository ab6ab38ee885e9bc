"""URL state: query parameters ↔ config, snapping or dropping what does not fit, never raising."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from explorer.config import ConfigError, ResNetConfig, valid_depths
from explorer.presets import DEFAULT_PRESET, PRESETS
from explorer.ui.urlstate import MAX_APP_DEPTH, diff_fields, merge, parse_query, snap_depth, to_query


def test_empty_query_is_the_default_preset():
    config, preset, warnings = parse_query({})
    assert (config, preset, warnings) == (PRESETS[DEFAULT_PRESET].config, DEFAULT_PRESET, [])


def test_issue_example():
    config, preset, warnings = parse_query({"preset": "resnet56", "depth": "110", "shortcut": "B"})
    assert preset == "resnet56" and not warnings
    assert config == PRESETS["resnet56"].config.replace(depth=110, shortcut="B")
    assert to_query(config, preset) == {"preset": "resnet56", "depth": "110", "shortcut": "B"}


@pytest.mark.parametrize("name", list(PRESETS))
def test_every_preset_round_trips(name):
    query = to_query(PRESETS[name].config, name)
    assert query == {"preset": name}
    assert parse_query(query) == (PRESETS[name].config, name, [])


@pytest.mark.parametrize("changes", [
    {"input_shape": (64, 64, 1)}, {"blocks": (3, 4, 6, 3), "depth": None, "stages": 4}, {"widths": (8, 16, 32)},
    {"l2": 1e-4, "dropout": 0.25, "bn_epsilon": 1.001e-5}, {"first_preact": False, "batch_norm": False, "zero_init": True},
    {"version": 2, "block": "bottleneck", "depth": 164}, {"stem": "imagenet", "head": "flatten", "classes": 100},
])
def test_changed_fields_round_trip(changes):
    config = PRESETS["resnet20"].config.replace(**changes)
    query = to_query(config, "resnet20")
    assert parse_query(query) == (config, "resnet20", [])


def test_query_uses_cli_formats():
    config = PRESETS["resnet20"].config.replace(blocks=(3, 4, 6, 3), depth=None, stages=4, input_shape=(224, 224, 3))
    q = to_query(config, "resnet20")
    assert q["blocks"] == "3,4,6,3" and q["input"] == "224x224x3" and "depth" not in q


def test_widths_cleared_against_a_preset_with_widths_is_written_as_none():
    base = PRESETS["resnet20"].config.replace(widths=(8, 16, 32))
    assert parse_query({"widths": "none"})[0].widths is None
    assert to_query(base.replace(widths=None), "resnet20") == {"preset": "resnet20"}


def test_aliases_hyphens_and_lists_are_read():
    config, _, warnings = parse_query({"width-rule": "keras", "input_shape": "16x16", "depth": ["20", "26"]})
    assert not warnings
    assert config.width_rule == "keras" and config.input_shape == (16, 16, 3) and config.depth == 26


@pytest.mark.parametrize("query, fragment, depth", [
    ({"preset": "resnet56", "depth": "111"}, "using depth 110", 110),
    ({"preset": "preact-resnet164", "depth": "100"}, "9n+2", 101),
    ({"depth": "1"}, "using depth 8", 8),
    ({"stages": "4"}, "8n+2", 18),
    ({"depth": "99999"}, "deeper than the app allows", MAX_APP_DEPTH),
    ({"blocks": "900,900,900"}, "deeper than the app allows", MAX_APP_DEPTH),
])
def test_depth_is_snapped_with_a_warning(query, fragment, depth):
    config, _, warnings = parse_query(query)
    assert config.resolved_depth == depth
    assert any(fragment in w for w in warnings), warnings


@pytest.mark.parametrize("query, fragment", [
    ({"preset": "nope"}, "no preset called 'nope'"),
    ({"depth": "abc"}, "not a whole number"),
    ({"input": "axb"}, "not HxWxC"),
    ({"filters": "0"}, "out of range"),
    ({"version": "3"}, "unknown option"),
    ({"shortcut": "<b>x</b>"}, "characters that no shortcut uses"),
    ({"shortcut": "www"}, "unknown option 'www'"),
    ({"first_preact": "maybe"}, "not true/false"),
    ({"l2": "inf"}, "characters that no l2 uses"),
    ({"l2": "1e999"}, "not a finite number"),
    ({"widths": "1,2"}, "does not give one width"),
    ({"blocks": "3,x"}, "comma-separated"),
    ({"blocks": "0,1,1"}, "blocks"),
    ({"colour": "red"}, "unknown parameter 'colour'"),
    ({"depth": "9" * 500}, "longer than"),
])
def test_bad_values_are_dropped_with_a_warning(query, fragment):
    config, preset, warnings = parse_query(query)
    assert any(fragment in w for w in warnings), warnings
    assert isinstance(config, ResNetConfig)


@pytest.mark.parametrize("query", [
    {"shortcut": "[win](https://evil.example)"}, {"preset": "![x](https://evil.example/a.png)"},
    {"[a](https://evil.example)": "1"}, {"head": "www.evil.example"}, {"l2": "www.evil.example"},
    {"stem": "`code` **bold** :red[x]"},
])
def test_warnings_never_echo_markdown_or_links(query):
    """Warnings are shown as Markdown: a crafted link must not be able to put a link, image or markup on the page."""
    _, _, warnings = parse_query(query)
    assert warnings
    for w in warnings:
        assert not any(c in w for c in "[]()`*/<>!"), w
        assert "www." not in w, w


def test_page_keys_are_ignored():
    assert parse_query({"tab": "Debug", "embed": "true"}).warnings == []


@given(st.dictionaries(
    st.sampled_from(["preset", "depth", "blocks", "stages", "block", "version", "shortcut", "input", "widths",
                     "filters", "dropout", "l2", "head", "stem", "classes", "first_preact", "junk"]),
    st.one_of(st.text(max_size=12), st.integers(-5, 3000).map(str), st.sampled_from(list(PRESETS) + ["basic", "bottleneck", "B"])),
    max_size=6,
))
@settings(max_examples=300, deadline=None)
def test_any_query_gives_a_valid_config_and_a_stable_link(query):
    config, preset, _ = parse_query(query)
    assert config.resolved_depth <= MAX_APP_DEPTH
    again = parse_query(to_query(config, preset))
    assert again == (config, preset, [])


def test_merge_strict_raises_and_snapping_explains():
    base = PRESETS["preact-resnet164"].config
    with pytest.raises(ConfigError):
        merge(base, {"depth": 100}, snap=False)
    config, warnings = merge(base, {"stages": 4})
    assert config.stages == 4 and config.resolved_depth in valid_depths("bottleneck", 4)
    assert warnings


def test_merge_blocks_set_stages_and_clear_depth():
    config, warnings = merge(PRESETS["resnet20"].config, {"blocks": [2, 2, 2, 2]})
    assert config.blocks == (2, 2, 2, 2) and config.stages == 4 and config.depth is None and not warnings


def test_snap_depth_prefers_the_nearest_then_the_smaller():
    assert snap_depth("basic", 3, 23) == 20
    assert snap_depth("basic", 3, 24) == 26
    assert snap_depth("bottleneck", 3, 5) == 11


def test_diff_fields():
    base = PRESETS["resnet56"].config
    assert diff_fields(base, base) == []
    assert diff_fields(base.replace(depth=110, shortcut="B"), base) == ["depth", "shortcut"]


def test_a_depth_the_blocks_per_stage_do_not_show_is_in_the_link():
    """resnet20 with bottleneck blocks at depth 29 has resnet20's 3 blocks per stage: the link must still say 29."""
    config = PRESETS["resnet20"].config.replace(block="bottleneck", depth=29)
    assert config.stage_blocks == PRESETS["resnet20"].config.stage_blocks
    query = to_query(config, "resnet20")
    assert query == {"preset": "resnet20", "block": "bottleneck", "depth": "29"}
    assert parse_query(query) == (config, "resnet20", [])
    assert diff_fields(config, PRESETS["resnet20"].config) == ["block", "depth"]


def _valid_configs():
    from tests.helpers import plausible

    def build(data):
        try:
            config = ResNetConfig.from_dict(data)
        except ConfigError:
            return None
        return config if config.resolved_depth <= MAX_APP_DEPTH else None

    return st.fixed_dictionaries({}, optional=plausible).map(build).filter(lambda c: c is not None)


@given(_valid_configs(), st.sampled_from(list(PRESETS)))
@settings(max_examples=400, deadline=None)
def test_any_config_round_trips_through_its_link(config, preset):
    """config → query parameters → config is the identity, whichever preset the link starts from."""
    query = to_query(config, preset)
    parsed = parse_query(query)
    # With blocks given, depth is derived from them: depth=20 beside blocks 1,2,6 is the same network as depth=None.
    same = config.replace(depth=None) if config.blocks is not None else config
    got = parsed.config.replace(depth=None) if parsed.config.blocks is not None else parsed.config
    assert (got, parsed.preset, parsed.warnings) == (same, preset, []), query


@st.composite
def _preset_with_a_new_block(draw):
    """A preset with the other block kind (and maybe stages) and any valid depth: depth and blocks per stage can part."""
    name = draw(st.sampled_from(list(PRESETS)))
    base = PRESETS[name].config
    block = draw(st.sampled_from(["basic", "bottleneck"]))
    stages = draw(st.sampled_from([base.stages, 2, 3, 4]))
    depth = draw(st.sampled_from(valid_depths(block, stages, limit=300)))
    config = base.replace(block=block, stages=stages, depth=depth, blocks=None, widths=None)
    return config, name


@given(_preset_with_a_new_block())
@settings(max_examples=300, deadline=None)
def test_a_changed_block_or_depth_round_trips_through_its_link(case):
    config, name = case
    assert parse_query(to_query(config, name)) == (config, name, [])
