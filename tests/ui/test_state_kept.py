"""AppTest: every tab's controls keep their values while other tabs are open, and a kept value that no longer fits
falls back without an error."""

from __future__ import annotations

import ast
import importlib
import json
from pathlib import Path

from streamlit.testing.v1 import AppTest

from explorer.config import ResNetConfig
from explorer.training import RunRecord, TrainSettings
from explorer.ui import common, session
from tests.conftest import ROOT
from tests.helpers import open_tab, run_app

WIDGET_KINDS = ("selectbox", "multiselect", "radio", "checkbox", "toggle", "number_input", "slider", "select_slider",
                "text_input", "segmented_control")
VALUE_WIDGETS = {"selectbox", "multiselect", "radio", "checkbox", "toggle", "number_input", "slider", "select_slider",
                 "text_input", "text_area", "segmented_control", "pills", "color_picker", "date_input", "time_input"}


def widget(at: AppTest, key: str):
    """The widget drawn with this key (whatever its kind), or None when the page does not draw it."""
    for kind in WIDGET_KINDS:
        for w in getattr(at, kind):
            if w.key == key:
                return w
    return None


def set_widget(at: AppTest, key: str, value) -> None:
    w = widget(at, key)
    assert w is not None, f"{key} is not drawn"
    w.set_value(value).run()
    assert not at.exception, at.exception
    assert widget(at, key).value == value, key


def records() -> list[RunRecord]:
    batches = [{"step": s, "epoch": s / 100, "images": 64 * s, "seconds": s * 0.2, "loss": 2.3 - 0.01 * s,
                "accuracy": 0.1 + 0.003 * s} for s in range(1, 41)]
    epochs = [{"epoch": 1, "fraction": 0.4, "step": 40, "seconds": 8.0, "loss": 1.9, "accuracy": 0.22,
               "val_loss": 1.95, "val_accuracy": 0.21}]
    settings = TrainSettings(seconds=8).resolved()
    return [RunRecord(name=name, config=ResNetConfig(depth=20), settings=settings, status="done", batches=batches,
                      epochs=epochs, test_accuracy=0.2, test_loss=2.0, train_seconds=8.0) for name in ("run a", "run b")]


def test_every_tab_keeps_its_controls_values_across_tab_switches():
    at = run_app()
    at.session_state[session.RUNS] = records()  # two finished runs, so the Compare tab draws its controls
    at.run()
    rf_layer = None
    # a value different from its default on every control of every tab
    wanted: dict[str, dict] = {
        "Architecture": {"view_level": "layer", "view_expand": "stage2", "view_rankdir": "LR", "view_color": "params",
                         "view_rollup": False, "view_params": True},
        "Layers": {"layers_stages": [2], "layers_roles": ["main"], "layers_name": "conv"},
        "Lessons": {"lesson_twin": False, "lesson_no_bn": True, "lesson_zero_init": True, "lesson_batch": 64,
                    "lesson_rf_row": 3, "lesson_rf_col": 5, "lesson_rf_image": None, "lesson_anatomy_axis": "block",
                    "lesson_steps": 800, "lesson_subset": 5_000},
        "Train": {"train_recipe": "paper", "train_seconds": 30, "train_subset": "5,000", "train_batch": 256,
                  "train_flip": False, "train_crop": False, "train_data_dir": "/nowhere/cifar"},
        "Compare": {"compare_runs": ["run a"], "compare_metric": "loss", "compare_x": "steps"},
    }
    for tab, values in wanted.items():
        open_tab(at, tab)
        if tab == "Lessons":
            layers = widget(at, "lesson_rf_layer").options
            rf_layer = layers[1]
            set_widget(at, "lesson_rf_layer", rf_layer)
            images = widget(at, "lesson_rf_image").options
            values["lesson_rf_image"] = next(i for i in images if i != widget(at, "lesson_rf_image").value)
        for key, value in values.items():
            before = widget(at, key).value
            assert before != value, f"{key}: pick a value other than its default"
            set_widget(at, key, value)
    wanted["Lessons"]["lesson_rf_layer"] = rf_layer
    # the Train tab's conditional control: Epochs is drawn only under an epoch budget
    open_tab(at, "Train")
    set_widget(at, "train_budget_kind", "epochs")
    set_widget(at, "train_epochs", 7)
    set_widget(at, "train_budget_kind", "seconds")
    assert widget(at, "train_seconds").value == 30
    # the Architecture tab's other mode
    open_tab(at, "Architecture")
    set_widget(at, "arch_mode", "compare")
    set_widget(at, "cmp_other", "other")
    set_widget(at, "cmp_preset", "resnet110")

    for tab in common.TABS:  # every tab, each drawing only its own controls
        open_tab(at, tab)
    for tab in reversed(common.TABS):
        open_tab(at, tab)

    open_tab(at, "Architecture")
    assert widget(at, "arch_mode").value == "compare"
    assert widget(at, "cmp_other").value == "other" and widget(at, "cmp_preset").value == "resnet110"
    set_widget(at, "arch_mode", "diagram")
    for tab, values in wanted.items():
        open_tab(at, tab)
        got = {key: widget(at, key).value for key in values}
        assert got == values, tab
    open_tab(at, "Train")
    set_widget(at, "train_budget_kind", "epochs")
    assert widget(at, "train_epochs").value == 7


def test_a_kept_value_the_new_network_lacks_falls_back_cleanly():
    at = run_app({"preset": "resnet56"})
    set_widget(at, "view_expand", "stage3_block9")
    open_tab(at, "Lessons")
    last = widget(at, "lesson_rf_layer").options[-3]
    set_widget(at, "lesson_rf_layer", last)
    open_tab(at, "Debug")
    at.selectbox(key="w_preset").select("resnet20").run()  # 3 blocks per stage: stage3_block9 is gone
    assert not at.exception
    open_tab(at, "Architecture")
    assert widget(at, "view_expand").value == "—" and not at.error
    open_tab(at, "Lessons")  # another network: the layer choice goes back to its default, the middle layer
    layers = widget(at, "lesson_rf_layer").options
    assert widget(at, "lesson_rf_layer").value == layers[len(layers) // 2]
    row = widget(at, "lesson_rf_row")
    assert 0 <= row.value <= row.max


def _key_expressions() -> list[tuple[str, str, object]]:
    """(module, key expression, its value or None when it is not a module-level name) of every value widget drawn
    with a key in explorer/ui (the sidebar draws all of its controls on every run and is left out)."""
    found = []
    for path in sorted((ROOT / "explorer" / "ui").rglob("*.py")):
        if path.name == "sidebar.py":
            continue
        rel = path.relative_to(ROOT).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        module = importlib.import_module(name)
        for node in ast.walk(ast.parse(Path(path).read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in VALUE_WIDGETS):
                continue
            for kw in node.keywords:
                if kw.arg == "key":
                    text = ast.unparse(kw.value)
                    try:
                        value = eval(text, vars(module))  # noqa: S307 - the project's own module constants
                    except NameError:
                        value = None
                    found.append((name, text, value))
    return found


def test_every_value_widget_of_the_tabs_is_kept():
    found = _key_expressions()
    assert len(found) >= 30
    resolved = {value for _, _, value in found if value is not None}
    assert resolved - set(session.KEPT_WIDGETS) == set()
    # a key computed on the page must be one of the kept ones too: the Train tab's adapt toggle is the only one
    dynamic = {(module, text) for module, text, value in found if value is None}
    assert dynamic == {("explorer.ui.train", "adapt_key")}
    from explorer.ui import train

    assert {train.ADAPT, train.FOLDER_ADAPT} <= set(session.KEPT_WIDGETS)


def test_compare_keeps_the_runs_left_out_and_selects_new_ones():
    at = run_app()
    at.session_state[session.RUNS] = records()
    open_tab(at, "Compare")
    assert widget(at, "compare_runs").value == ["run a", "run b"]
    set_widget(at, "compare_runs", ["run b"])
    open_tab(at, "Train")
    newer = records()[0]
    newer.name = "run c"
    at.session_state[session.RUNS] = [*records(), newer]
    open_tab(at, "Compare")
    assert widget(at, "compare_runs").value == ["run b", "run c"]
    chart = at.get("plotly_chart")[0]
    names = [t["name"] for t in json.loads(chart.proto.spec)["data"]]
    assert names == ["run b", "run b · validation", "run b · test", "run c", "run c · validation", "run c · test"]


def test_the_muon_checkbox_keeps_its_value_across_tabs():
    at = run_app()
    open_tab(at, "Train")
    assert widget(at, "train_muon").value is True  # the short recipe's choice
    set_widget(at, "train_muon", False)
    for tab in common.TABS:
        open_tab(at, tab)
    open_tab(at, "Train")
    assert widget(at, "train_muon").value is False
    assert at.session_state["train_muon"] is False
    set_widget(at, "train_recipe", "paper")  # a recipe without Muon steps: no checkbox
    assert not [w for w in at.checkbox if w.key == "train_muon"]
