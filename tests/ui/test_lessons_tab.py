"""AppTest of the Lessons tab on its own page: measure gradient flow, move the receptive-field probe."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest


def lessons_page(preset: str) -> None:
    import streamlit as st

    from explorer.annotate import build
    from explorer.presets import PRESETS
    from explorer.ui.lessons import render_lessons_tab

    cfg = PRESETS[preset].config.replace(depth=8) if preset == "resnet20" else PRESETS[preset].config
    st.session_state.setdefault("cfg", cfg.to_json())
    render_lessons_tab(cfg, build(cfg))


def test_lessons_measure_and_probe():
    at = AppTest.from_function(lessons_page, args=("resnet20",), default_timeout=120).run()
    assert not at.exception
    assert any("Measure gradient flow" in b.label for b in at.button)
    at.button[0].click().run()
    assert not at.exception
    charts = [c for c in at.get("plotly_chart")]
    assert len(charts) >= 2  # gradient flow + ribbon (+ receptive field)
    assert any("plain twin" in m.value for m in at.markdown)
    layer_select = at.selectbox[0]
    layer_select.select("stem_conv").run()
    assert not at.exception
    assert any("stem_conv** sees a 3×3 window" in m.value for m in at.markdown)


def test_lessons_refuse_huge_networks_politely():
    at = AppTest.from_function(lessons_page, args=("resnet1202",), default_timeout=120).run()
    assert not at.exception
    assert any("layers" in i.value for i in at.info)
