"""Plotly figures for the teaching views: gradient flow, receptive-field ribbon, receptive field on an image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

SAMPLES = Path(__file__).resolve().parent.parent / "assets" / "samples"
COLOURS = {"residual": "#1f6feb", "plain twin": "#d1242f", "plain": "#d1242f"}
FONT = {"family": "Source Sans Pro, Helvetica, sans-serif", "size": 15}


def gradient_flow_figure(result: dict) -> go.Figure:
    """Two panels along depth (log y): per-conv gradient norm, per-block output standard deviation.

    Args:
        result: `explorer.gradflow.report(...)`.
    """
    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.09, subplot_titles=(
        "gradient norm of each conv's weights", "standard deviation of each block's output"))
    for net in result["networks"]:
        colour = COLOURS.get(net["label"], "#57606a")
        dash = "dash" if "plain" in net["label"] else "solid"
        fig.add_trace(go.Scatter(
            x=[r["depth_index"] for r in net["layers"]], y=[max(r["grad_norm"], 1e-12) for r in net["layers"]],
            mode="lines+markers", name=net["label"], legendgroup=net["label"], line={"color": colour, "dash": dash},
            marker={"size": 5}, text=[r["name"] for r in net["layers"]],
            hovertemplate="%{text}<br>depth %{x}<br>‖∇W‖ = %{y:.3g}<extra>" + net["label"] + "</extra>",
        ), row=1, col=1)
        fig.add_trace(go.Scatter(
            x=[r["depth_index"] for r in net["blocks"]], y=[max(r["activation_std"], 1e-12) for r in net["blocks"]],
            mode="lines+markers", name=net["label"], legendgroup=net["label"], showlegend=False,
            line={"color": colour, "dash": dash}, marker={"size": 5}, text=[r["name"] for r in net["blocks"]],
            hovertemplate="%{text}<br>depth %{x}<br>std = %{y:.3g}<extra>" + net["label"] + "</extra>",
        ), row=1, col=2)
    for col in (1, 2):
        fig.update_xaxes(title_text="depth (weighted layer)", row=1, col=col)
        fig.update_yaxes(type="log", row=1, col=col, exponentformat="power")
    fig.update_layout(template="plotly_white", font=FONT, height=420, margin={"l": 50, "r": 20, "t": 50, "b": 50},
                      legend={"orientation": "h", "y": -0.2})
    return fig


def ribbon_figure(rows: list[dict]) -> go.Figure:
    """Receptive field and effective stride (left axis, log) with H×W and channels (right axis, log) along depth."""
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    x = [r["depth_index"] for r in rows]
    names = [r["name"] for r in rows]
    series = [
        ("receptive field (px)", "receptive_field", "#1f6feb", False, "solid"),
        ("effective stride (px)", "stride", "#8250df", False, "dot"),
        ("height = width", "height", "#1a7f37", True, "solid"),
        ("channels", "channels", "#bf8700", True, "dash"),
    ]
    for label, key, colour, right, dash in series:
        fig.add_trace(go.Scatter(
            x=x, y=[r[key] for r in rows], name=label, text=names, mode="lines",
            line={"color": colour, "dash": dash, "width": 3, "shape": "hv" if key != "receptive_field" else "linear"},
            hovertemplate="%{text}<br>depth %{x}<br>" + label + " = %{y}<extra></extra>",
        ), secondary_y=right)
    fig.update_yaxes(title_text="pixels of the input", type="log", secondary_y=False)
    powers = [2**k for k in range(13)]
    fig.update_yaxes(title_text="feature map", type="log", secondary_y=True, showgrid=False, tickvals=powers,
                     ticktext=[str(p) for p in powers])
    fig.update_xaxes(title_text="depth (weighted layer)")
    fig.update_layout(template="plotly_white", font=FONT, height=400, margin={"l": 60, "r": 60, "t": 30, "b": 50},
                      legend={"orientation": "h", "y": -0.22}, hovermode="x unified")
    return fig


def sample_names() -> list[str]:
    """Names of the sample CIFAR-10 test images shipped in assets/samples."""
    return sorted(p.stem for p in SAMPLES.glob("*.png"))


def load_sample(name: str) -> np.ndarray:
    """A sample image as (H, W, 3) uint8."""
    from PIL import Image

    if name not in sample_names():
        raise ValueError(f"no sample image called {name!r}")
    with Image.open(SAMPLES / f"{name}.png") as img:
        return np.asarray(img.convert("RGB"))


def receptive_field_figure(image: np.ndarray, box: tuple[int, int, int, int], *, centre: tuple[float, float],
                           title: str) -> go.Figure:
    """The image with the receptive field of one output pixel drawn as a square.

    Args:
        image: (H, W, 3) uint8.
        box: (top, left, bottom, right), inclusive input pixels.
        centre: (row, col) of the output pixel's centre in input pixels.
        title: Caption above the image.
    """
    top, left, bottom, right = box
    fig = go.Figure(go.Image(z=image, hoverinfo="skip"))
    fig.add_shape(type="rect", x0=left - 0.5, y0=top - 0.5, x1=right + 0.5, y1=bottom + 0.5,
                  line={"color": "#ffd33d", "width": 4}, fillcolor="rgba(255, 211, 61, 0.18)")
    fig.add_trace(go.Scatter(x=[centre[1]], y=[centre[0]], mode="markers", hoverinfo="skip", showlegend=False,
                             marker={"symbol": "x", "size": 14, "color": "#d1242f", "line": {"width": 2}}))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    fig.update_layout(title={"text": title, "font": {"size": 15}}, height=420, width=420, template="plotly_white",
                      margin={"l": 10, "r": 10, "t": 50, "b": 10})
    return fig


DEGRADATION_COLOURS = {20: "#1f6feb", 56: "#d1242f"}  # by depth; plain dashed, residual solid


def degradation_figure(series: list[tuple[str, int, bool, list[dict]]], *, smoothing: float = 0.6,
                       height: int = 460) -> go.Figure:
    """He et al. 2015 Figure 1 for one run: training error (left) and training loss (right) against steps, one curve
    per network; colour = depth, dashed = plain, solid = residual; big type and thick lines for a projector.

    Args:
        series: (name, depth, plain, batch records) per network; a record has "step", "accuracy" and "loss".
        smoothing: Weight of the exponential moving average drawn (`explorer.charts.smooth`; 0 = raw).
        height: Pixels.
    """
    from explorer.charts import smooth

    fig = make_subplots(rows=1, cols=2, horizontal_spacing=0.1,
                        subplot_titles=("training error (%)", "training loss"))
    palette = iter(("#1a7f37", "#8250df", "#bf8700", "#57606a"))
    colours: dict[int, str] = {}
    for name, depth, plain, batches in series:
        records = [b for b in batches if b.get("step") is not None and b.get("accuracy") is not None]
        colour = colours.setdefault(depth, DEGRADATION_COLOURS.get(depth) or next(palette, "#57606a"))
        line = {"color": colour, "dash": "dash" if plain else "solid", "width": 4}
        steps = [b["step"] for b in records]
        error = smooth([100.0 * (1.0 - b["accuracy"]) for b in records], weight=smoothing)
        loss = smooth([b.get("loss") for b in records], weight=smoothing)
        fig.add_trace(go.Scatter(x=steps, y=error, mode="lines", name=name, legendgroup=name, line=line,
                                 hovertemplate="step %{x}<br>training error %{y:.1f} %<extra>" + name + "</extra>"),
                      row=1, col=1)
        fig.add_trace(go.Scatter(x=steps, y=loss, mode="lines", name=name, legendgroup=name, showlegend=False,
                                 line=line, hovertemplate="step %{x}<br>loss %{y:.3f}<extra>" + name + "</extra>"),
                      row=1, col=2)
    for col in (1, 2):
        fig.update_xaxes(title_text="iterations (training steps)", row=1, col=col)
    fig.update_layout(template="plotly_white", font={**FONT, "size": 18}, height=height,
                      margin={"l": 60, "r": 20, "t": 50, "b": 60},
                      legend={"orientation": "h", "y": -0.25, "font": {"size": 18}})
    fig.update_annotations(font_size=19)
    return fig
