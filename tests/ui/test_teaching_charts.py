"""Teaching figures carry the measured numbers (not just that a chart exists)."""

from __future__ import annotations

from explorer.annotate import build
from explorer.presets import PRESETS
from explorer.teaching import receptive_box, ribbon
from explorer.teaching_charts import (
    gradient_flow_figure,
    load_sample,
    receptive_field_figure,
    ribbon_figure,
    sample_names,
)

FAKE = {"source": "test", "networks": [
    {"label": "residual", "loss": 1.0,
     "layers": [{"name": "a", "depth_index": 1, "grad_norm": 2.0, "activation_std": 1.0},
                {"name": "b", "depth_index": 2, "grad_norm": 0.0, "activation_std": 1.0}],
     "blocks": [{"name": "b", "depth_index": 2, "activation_std": 0.5}]},
    {"label": "plain twin", "loss": 1.0,
     "layers": [{"name": "a", "depth_index": 1, "grad_norm": 9.0, "activation_std": 1.0}],
     "blocks": [{"name": "b", "depth_index": 2, "activation_std": 0.25}]},
]}


def test_gradient_flow_figure_plots_each_network_twice():
    fig = gradient_flow_figure(FAKE)
    assert len(fig.data) == 4
    assert list(fig.data[0].y) == [2.0, 1e-12]  # a zero gradient is drawn at the floor of the log axis
    assert fig.data[2].name == "plain twin" and fig.data[2].line.dash == "dash"
    assert list(fig.data[3].y) == [0.25]
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis2.type == "log"


def test_ribbon_figure_series():
    rows = ribbon(build(PRESETS["resnet20"].config))
    fig = ribbon_figure(rows)
    by_name = {t.name: t for t in fig.data}
    assert list(by_name["receptive field (px)"].y) == [r["receptive_field"] for r in rows]
    assert list(by_name["height = width"].y)[-1] == 8
    assert list(by_name["channels"].y)[0] == 16


def test_receptive_field_on_a_sample_image():
    names = sample_names()
    assert len(names) == 10 and "cat" in names
    img = load_sample("cat")
    assert img.shape == (32, 32, 3)
    ag = build(PRESETS["resnet20"].config)
    box = receptive_box(ag, "stage2_block1_conv1", row=4, col=4)
    fig = receptive_field_figure(img, box, centre=(9, 9), title="t")
    rect = fig.layout.shapes[0]
    assert (rect.x0, rect.y0, rect.x1, rect.y1) == (box[1] - 0.5, box[0] - 0.5, box[3] + 0.5, box[2] + 0.5)
