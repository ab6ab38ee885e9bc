"""Annotated graph → the per-layer records and their pandas table (never re-deriving anything), and number formatting."""

from __future__ import annotations

from typing import TYPE_CHECKING

from explorer.annotate import AnnotatedGraph, fmt_shape

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

LAYER_COLUMNS = [
    "name", "type", "stage", "block", "role", "output_shape", "params", "trainable_params",
    "macs", "receptive_field", "jump", "memory_bytes", "frozen",
]


def layer_records(ag: AnnotatedGraph) -> list[dict]:
    """One JSON-ready dict per layer (the CLI's `layers` and the table's rows)."""
    return [
        {
            "name": node.name,
            "type": node.keras_class,
            "stage": node.stage,
            "block": node.block,
            "role": node.role,
            "output_shape": list(info.shape),
            "params": info.params,
            "trainable_params": info.trainable,
            "macs": info.macs,
            "receptive_field": info.rf,
            "jump": info.jump,
            "memory_bytes": info.bytes,
            "frozen": bool(node.attrs.get("frozen", False)),
        }
        for node, info in ag
    ]


def layer_table(ag: AnnotatedGraph) -> pd.DataFrame:
    """The per-layer table: shape as 'H×W×C', params, MACs, receptive field, activation memory."""
    import pandas as pd  # imported on first use: the app's first paint does not need it

    df = pd.DataFrame.from_records(layer_records(ag), columns=LAYER_COLUMNS)
    df["output_shape"] = [fmt_shape(tuple(s)) for s in df["output_shape"]]
    return df


def human(n: float, unit: str = "") -> str:
    """12_345_678 → '12.3M' (with an optional unit)."""
    for scale, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= scale:
            return f"{n / scale:.3g}{suffix}{unit}"
    return f"{n:g}{unit}"


def human_bytes(n: float) -> str:
    """Bytes in KiB/MiB/GiB."""
    for scale, suffix in ((2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if n >= scale:
            return f"{n / scale:.3g} {suffix}"
    return f"{n:g} B"
