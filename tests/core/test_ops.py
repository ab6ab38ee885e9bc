"""The op table: every op it names has an annotate rule, and every node the expansion makes fits its entry."""

from __future__ import annotations

import subprocess
import sys

import pytest

from explorer import ops
from explorer.annotate import _State, build
from explorer.codegen import layer_call
from explorer.presets import PRESETS
from tests.conftest import ROOT
from tests.helpers import GENERATED


@pytest.mark.parametrize("op", sorted(ops.OPS))
def test_every_op_has_a_shape_rule(op):
    assert callable(getattr(_State, f"_{op}", None)), f"annotate has no rule for op {op!r}"


def test_every_node_fits_its_op_entry():
    seen = set()
    for cfg in [p.config for p in PRESETS.values()] + GENERATED:
        for node in build(cfg).graph:
            spec = ops.OPS[node.op]
            assert set(node.attrs) - {"frozen"} <= spec.attrs, node.name
            if spec.arguments is not None:
                args, kwargs = spec.arguments(node.attrs)
                assert isinstance(args, tuple) and "name" not in kwargs
            seen.add(node.op)
    assert seen == set(ops.OPS)  # the table names no op the expansion never makes


def test_code_export_prints_the_table_entry():
    ag = build(PRESETS["keras-resnet20v1"].config)
    assert layer_call(ag.graph["stem_conv"], '"stem_conv"') == (
        'layers.Conv2D(16, 3, strides=1, padding="same", use_bias=True, kernel_initializer="he_normal", '
        'kernel_regularizer=regularizers.L2(0.0001), name="stem_conv")'
    )
    shortcut = build(PRESETS["resnet20"].config).graph["stage2_block1_shortcut"]
    assert layer_call(shortcut, '"s"') == 'ZeroPadShortcut(2, 32, name="s")'


def test_op_table_imports_no_framework() -> None:
    code = "import sys, explorer.ops; print([m for m in ('tensorflow', 'keras', 'streamlit') if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
