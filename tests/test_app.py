"""AppTest: the page renders the totals and the per-layer table of the chosen network."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from explorer.annotate import build
from explorer.presets import PRESETS
from tests.conftest import ROOT

APP = str(ROOT / "explorer" / "app.py")


def metric_values(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_default_page_shows_resnet20_totals():
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    values = metric_values(at)
    assert values["Depth"] == "20"
    assert values["Parameters"] == "271k"
    df = at.dataframe[0].value
    assert len(df) == len(build(PRESETS["resnet20"].config).graph)


def test_changing_preset_and_depth_rebuilds():
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.selectbox[0].select("preact-resnet164").run()
    assert metric_values(at)["Depth"] == "164"
    at.select_slider[0].set_value(29).run()
    assert not at.exception
    assert metric_values(at)["Depth"] == "29"
    assert len(at.dataframe[0].value) == len(build(PRESETS["preact-resnet164"].config.replace(depth=29)).graph)
