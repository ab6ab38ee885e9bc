"""Annotated graph → the per-layer records and their pandas table (never re-deriving anything)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from explorer import fmt
from explorer.annotate import AnnotatedGraph

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
    df["output_shape"] = [fmt.shape(tuple(s)) for s in df["output_shape"]]
    return df


