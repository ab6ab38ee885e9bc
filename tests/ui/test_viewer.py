"""The diagram viewer's Python side: what the page sends it, what a click does, the details panel, the compare view."""

from __future__ import annotations

import pytest

from explorer import diagram
from explorer.annotate import build
from explorer.config import ConfigError
from explorer.presets import PRESETS
from explorer.tables import layer_records
from explorer.ui import details, netcompare, viewer
from tests.helpers import open_tab, run_app, url, viewer_data


def texts(at) -> str:
    parts = [m.value for m in at.markdown] + [e.value for e in at.error] + [c.value for c in at.caption]
    return "\n".join(str(p) for p in parts)


# ------------------------------------------------------------------------------------ what the page sends
def test_architecture_tab_sends_the_block_view_dot_and_keeps_the_view_key_on_recolour():
    at = run_app()
    data = viewer_data(at)
    assert data["asset_base"] == "/app/static/diagram/"
    (pane,) = data["panes"]
    assert pane["dot"] == diagram.to_dot(build(PRESETS["resnet20"].config))
    assert data["selected"] is None and data["present"] is False
    at.selectbox(key="view_color").select("params").run()
    recoloured = viewer_data(at)["panes"][0]
    assert recoloured["dot"] != pane["dot"]  # the fill colours changed …
    assert recoloured["view_key"] == pane["view_key"]  # … the boxes did not: zoom and position stay
    at.selectbox(key="view_level").select("layer").run()
    assert viewer_data(at)["panes"][0]["view_key"] != pane["view_key"]


def test_presentation_mode_reaches_the_viewer():
    at = run_app({"present": "1"})
    assert viewer_data(at)["present"] is True


def test_without_static_serving_the_page_falls_back_to_the_static_chart_saying_why():
    from streamlit import config

    config.set_option("server.enableStaticServing", False)
    at = run_app()
    assert at.get("graphviz_chart") and not at.get("bidi_component")
    assert "static file serving" in texts(at)


# ------------------------------------------------------------------------------------ selection and ?node=
def test_node_in_the_link_selects_it_and_the_panel_shows_both_inputs_and_the_fix():
    at = run_app({"preset": "resnet20", "shortcut": "identity", "node": "stage2_block1_add"})
    assert viewer_data(at)["selected"] == "stage2_block1_add"
    shown = texts(at)
    assert "**`stage2_block1_add`**" in shown
    assert "**in** 16×16×32" in shown and "**in** 32×32×16" in shown  # main path and shortcut
    assert "main path 16×16×32 · shortcut 32×32×16" in shown  # the diagnostic's shapes
    fixes = [b.label for b in at.button if b.label.startswith("Apply:")]
    assert fixes and "shortcut" in fixes[0]
    assert url(at).get("node") == "stage2_block1_add"


def test_a_bad_node_in_the_link_is_ignored_with_a_notice():
    at = run_app({"node": "<script>"})
    assert viewer_data(at)["selected"] is None
    assert "node is not a layer" in "\n".join(w.value for w in at.warning)


def test_debug_show_in_diagram_selects_the_node_on_the_architecture_tab():
    at = run_app({"preset": "resnet20", "shortcut": "identity"}, tab="Debug")
    next(b for b in at.button if b.label == "Show in diagram").click().run()
    assert at.session_state["tab"] == "Architecture"
    data = viewer_data(at)
    assert data["selected"] == "stage2_block1_add"
    assert "stage2_block1_conv1" in data["panes"][0]["dot"]  # its block is open at layer level


def test_clicks_from_the_browser_reach_the_callback_only_as_node_names(monkeypatch):
    got = []
    for value in ("stage2_block1_add", "stage2", None, "", "<img src=x>", "a" * 81, 42):
        monkeypatch.setattr(viewer.st, "session_state", {"k": {"selected": value}})
        viewer._forward("k", "selected", got.append)
    assert got == ["stage2_block1_add", "stage2"]


def test_opening_a_block_or_a_folded_run_expands_it_and_selects_it(monkeypatch):
    from explorer.ui import architecture

    state: dict = {}
    monkeypatch.setattr(architecture.st, "session_state", state)
    architecture.open_box("stage3_block2")
    assert state[architecture.EXPAND] == "stage3_block2" and state[architecture.NODE] == "stage3_block2"
    architecture.open_box("stage1_block2_to_block18")
    assert state[architecture.EXPAND] == "stage1_block2"


# ------------------------------------------------------------------------------------ the details panel
def test_details_of_a_layer_are_its_layer_table_row():
    ag = build(PRESETS["resnet56"].config.replace(freeze=1))
    nodes = diagram.view_nodes(ag, level="layer")
    row = next(r for r in layer_records(ag) if r["name"] == "stage2_block1_conv1")
    facts = details.summary(ag, nodes["stage2_block1_conv1"])
    assert facts["params"] == row["params"] and facts["trainable"] == row["trainable_params"]
    assert facts["macs"] == row["macs"] and facts["memory_bytes"] == row["memory_bytes"]
    assert facts["receptive_field"] == row["receptive_field"] and facts["output_shape"] == tuple(row["output_shape"])
    assert facts["inputs"] == [("stage1_block9_out", (32, 32, 16))]
    frozen = details.summary(ag, nodes["stage1_block1_conv1"])
    assert frozen["frozen"] and frozen["trainable"] == 0


def test_details_of_a_block_and_a_stage_add_up_their_layers():
    ag = build(PRESETS["resnet20"].config)
    records = {r["name"]: r for r in layer_records(ag)}
    block = details.summary(ag, diagram.view_nodes(ag)["stage2_block1"])
    members = [b for b in ag.graph.blocks if (b.stage, b.block) == (2, 1)][0].nodes
    assert block["params"] + details.summary(ag, diagram.view_nodes(ag)["stage2_block1_add"])["params"] == sum(
        records[n]["params"] for n in members)
    stage = details.summary(ag, diagram.view_nodes(ag, level="stage")["stage2"])
    stage_layers = [n.name for n in ag.graph.nodes if n.stage == 2]
    assert stage["params"] == sum(records[n]["params"] for n in stage_layers)
    assert stage["inputs"] == [("stage1_block3_out", (32, 32, 16))] and stage["output_shape"] == (16, 16, 32)


# ------------------------------------------------------------------------------------ compare networks
def test_compare_view_colours_what_the_plain_twin_lacks_and_lists_it():
    at = run_app({"preset": "resnet20"})
    at.session_state["arch_mode"] = "compare"
    at.run()
    assert not at.exception
    data = viewer_data(at, "compare_viewer")
    a, b = data["panes"]
    assert a["marks"]["stage2_block1_add"] == "changed"  # "+ ReLU": the twin keeps the ReLU, not the add
    assert "stage2_block1_add" not in b["dot"]
    assert not b["marks"].get("stage1_block1")  # the main path is the same in both
    assert "only in A" in texts(at)


@pytest.mark.parametrize("choice", list(netcompare.CHOICES))
def test_every_compare_choice_gives_a_network(choice):
    config = PRESETS["resnet56"].config.replace(shortcut="B")
    link = "http://localhost:8501/?preset=resnet110&shortcut=C"
    b, title, warnings = netcompare.second_config(choice, config, "resnet56", other="resnet20", link=link)
    assert title and warnings == []
    expected = {"plain": config.replace(shortcut="none"), "preset": PRESETS["resnet56"].config,
                "other": PRESETS["resnet20"].config, "link": PRESETS["resnet110"].config.replace(shortcut="C")}
    if choice in expected:
        assert b == expected[choice]
    elif choice == "version":
        assert b.version == 2
    else:
        assert b.block == "bottleneck"


@pytest.mark.parametrize("link", ["", "not a link", "?depth=56", "x" * 3000])
def test_a_link_that_is_not_one_is_refused_with_what_to_do(link):
    with pytest.raises(ConfigError) as err:
        netcompare.second_config("link", PRESETS["resnet20"].config, "resnet20", link=link)
    assert "paste" in err.value.hint


def test_compare_marks_follow_the_boxes_layers():
    ag = build(PRESETS["resnet20"].config)
    nodes = diagram.view_nodes(ag)
    marks = netcompare.marks(ag, nodes, {"stage2_block1_add"}, {"stage2_block1_conv1"})
    assert marks == {"stage2_block1_add": "changed", "stage2_block1": "changed"}  # "+ ReLU" keeps its ReLU
    layers = diagram.view_nodes(ag, level="layer")
    assert netcompare.marks(ag, layers, {"stage2_block1_add"}, set()) == {"stage2_block1_add": "only"}


def test_lessons_block_anatomy_uses_the_viewer():
    at = run_app()
    at = open_tab(at, "Lessons")
    assert "subgraph" in viewer_data(at, "anatomy_viewer")["panes"][0]["dot"]


def test_the_layer_view_of_preact_resnet1001_goes_to_the_viewer_but_not_to_the_static_chart(monkeypatch):
    at = run_app({"preset": "preact-resnet1001"})
    at.selectbox(key="view_level").select("layer").run()
    dot = viewer_data(at)["panes"][0]["dot"]
    assert dot.count("[label=") > 3341 and "nslimit=0.2" in dot
    monkeypatch.setenv("EXPLORER_DIAGRAM", "static")
    at.run()
    assert "more than the 600" in "\n".join(i.value for i in at.info)
    assert "EXPLORER_DIAGRAM=static" in texts(at)
