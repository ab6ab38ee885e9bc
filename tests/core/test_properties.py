"""Property-based: any config either raises ConfigError (with field and hint) or yields an annotated graph."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from explorer.annotate import build
from explorer.config import ConfigError, ResNetConfig
from tests.helpers import plausible

junk = st.one_of(st.none(), st.booleans(), st.integers(-10, 10**7), st.floats(allow_nan=True),
                 st.text(max_size=8), st.lists(st.integers(-3, 40), max_size=5))

plausible_configs = st.fixed_dictionaries({}, optional=plausible)
junk_configs = st.one_of(
    st.dictionaries(st.sampled_from(sorted(plausible)), junk, max_size=6),
    st.dictionaries(st.text(max_size=6), junk, max_size=3),
    junk,
)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(plausible_configs)
def test_config_space_yields_graph_or_config_error(data):
    check(data)


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(junk_configs)
def test_junk_values_are_config_errors_or_graphs(data):
    check(data)


def check(data) -> None:
    """Either a ConfigError with field, message and hint — or a sound annotated graph."""
    try:
        cfg = ResNetConfig.from_dict(data)
    except ConfigError as exc:
        assert exc.field and exc.message and exc.hint
        return
    ag = build(cfg)
    assert ag.graph.nodes[-1].name == "predictions"
    assert ag.info["predictions"].shape == (cfg.classes,)
    assert ag.total_params >= ag.trainable_params >= 0
    assert ag.depth == cfg.resolved_depth
    for d in ag.diagnostics:
        assert d.node in ag.graph and d.message and d.hint and d.severity in ("error", "warning")
    assert ResNetConfig.from_json(cfg.to_json()) == cfg
    json.dumps(cfg.to_dict())
