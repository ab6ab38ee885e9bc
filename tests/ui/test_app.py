"""AppTest: the page rebuilds on every change, every tab renders, fixes and 'break it' work, the URL round-trips, exports load."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from explorer.annotate import build
from explorer.presets import PRESETS
from tests.conftest import ROOT
from tests.helpers import APP, dot_of, metrics, open_tab, run_app, url

TABS = ("Architecture", "Layers", "Debug", "Lessons", "Train", "Compare", "Export")


def texts(at: AppTest) -> str:
    parts = [m.value for m in at.markdown] + [e.value for e in at.error] + [w.value for w in at.warning]
    parts += [s.value for s in at.success] + [i.value for i in at.info] + [c.value for c in at.caption]
    return "\n".join(str(p) for p in parts)


# --------------------------------------------------------------------------- default page and rebuilds
def test_default_page_shows_resnet20_totals_and_diagram():
    at = run_app()
    values = metrics(at)
    assert values["Depth"] == "20"
    assert values["Parameters"] == "271k"
    dot = dot_of(at)
    assert dot.startswith("digraph") and "stage2_block1" in dot
    assert not at.error
    assert url(at) == {"preset": "resnet20"}


def test_changing_preset_depth_and_shortcut_rebuilds_everything():
    at = run_app()
    before = dot_of(at)
    at.selectbox(key="w_preset").select("preact-resnet164").run()
    assert metrics(at)["Depth"] == "164"
    assert dot_of(at) != before
    assert url(at) == {"preset": "preact-resnet164"}

    at.select_slider(key="w_depth").set_value(29).run()
    assert not at.exception
    assert metrics(at)["Depth"] == "29"
    assert url(at) == {"preset": "preact-resnet164", "depth": "29"}

    params_b = metrics(at)["Parameters"]
    at.radio(key="w_shortcut").set_value("C").run()
    assert metrics(at)["Parameters"] != params_b
    assert "C" == url(at)["shortcut"]

    open_tab(at, "Layers")
    want = build(PRESETS["preact-resnet164"].config.replace(depth=29, shortcut="C"))
    assert len(at.dataframe[0].value) == len(want.graph)


def test_preset_change_resets_fields_and_reset_button():
    at = run_app({"preset": "resnet56", "shortcut": "B", "filters": "32"})
    assert at.radio(key="w_shortcut").value == "B"
    assert at.number_input(key="w_filters").value == 32
    reset = [b for b in at.button if b.label == "Reset to preset"]
    assert reset, "no reset button when the config differs from the preset"
    reset[0].click().run()
    assert at.radio(key="w_shortcut").value == "A"
    assert at.number_input(key="w_filters").value == 16
    assert url(at) == {"preset": "resnet56"}
    at.selectbox(key="w_preset").select("keras-resnet56v2").run()
    assert at.radio(key="w_version").value == 2
    assert at.selectbox(key="w_head").value == "flatten"


def test_block_and_stage_changes_keep_depth_valid():
    at = run_app()
    at.number_input(key="w_stages").set_value(4).run()
    assert not at.exception
    assert metrics(at)["Depth"] == "18"  # 20 does not fit 8n+2: snapped, with a note
    assert "moved to 18" in "\n".join(i.value for i in at.sidebar.info)


def test_explicit_blocks_per_stage():
    at = run_app({"preset": "resnet20"})
    at.checkbox(key="w_explicit").check().run()
    at.number_input(key="w_blocks_0").set_value(5).run()
    assert not at.exception
    assert metrics(at)["Depth"] == str(2 * (5 + 3 + 3) + 2)
    assert url(at)["blocks"] == "5,3,3"


# --------------------------------------------------------------------------- every tab, several presets
@pytest.mark.parametrize("preset", ["resnet20", "keras-resnet56v2", "tutorial", "resnet50v2", "preact-resnet1001"])
def test_every_tab_renders(preset):
    at = run_app({"preset": preset})
    for tab in TABS[1:]:
        open_tab(at, tab)
        assert not at.error, (tab, [e.value for e in at.error])
    open_tab(at, "Architecture")
    assert metrics(at)["Depth"] == str(PRESETS[preset].config.resolved_depth)


def test_layers_tab_filters_by_stage_and_role():
    at = run_app(tab="Layers")
    full = at.dataframe[0].value
    assert len(full) == len(build(PRESETS["resnet20"].config).graph)
    at.multiselect(key="layers_stages").select(2).run()
    at.multiselect(key="layers_roles").select("shortcut").run()
    shown = at.dataframe[0].value
    assert list(shown["name"]) == ["stage2_block1_shortcut"]
    assert list(shown["output_shape"]) == ["16×16×32"]


def test_layer_view_too_big_falls_back_with_a_message():
    at = run_app({"preset": "resnet20", "depth": "2000"})
    at.selectbox(key="view_level").select("layer").run()
    assert not at.exception
    assert "more than" in "\n".join(i.value for i in at.info)  # a network above LAYER_NODE_LIMIT
    assert "Open stage 2" in [b.label for b in at.button]
    at.selectbox(key="view_expand").select("stage2_block1").run()
    assert "stage2_block1_conv1" in dot_of(at)


# --------------------------------------------------------------------------- debugger
def test_break_it_identity_then_fix_removes_diagnostics():
    at = run_app(tab="Debug")
    assert "Every shape fits" in texts(at)
    at.button(key="break_identity").click().run()
    assert url(at) == {"preset": "resnet20", "shortcut": "identity", "tab": "Debug"}
    page = texts(at)
    assert "stage2_block1_add" in page and "16×16×32" in page and "32×32×16" in page
    assert "ERROR" in page
    at.button(key="fix_0_0").click().run()  # Apply: shortcut = B
    assert at.radio(key="w_shortcut").value == "B"
    assert "Every shape fits" in texts(at)
    open_tab(at, "Architecture")
    assert not at.error


def test_broken_config_shows_banner_and_red_nodes():
    at = run_app({"preset": "resnet20", "shortcut": "identity"})
    assert any("does not fit together" in e.value for e in at.error)
    assert "#d62728" in dot_of(at)  # the error colour
    at.button(key="banner_debug").click().run()
    assert at.session_state["tab"] == "Debug"


def test_break_it_depth_is_refused_with_nearest_depth_fixes():
    at = run_app(tab="Debug")
    at.button(key="break_depth").click().run()
    page = texts(at)
    assert "9n+2" in page and "REFUSED" in page
    labels = [b.label for b in at.button]
    assert "Use depth = 92" in labels and "Use depth = 101" in labels
    at.button(key="refused_fix_0").click().run()
    assert metrics_after(at, "Architecture")["Depth"] == "92"


def metrics_after(at: AppTest, tab: str) -> dict[str, str]:
    open_tab(at, tab)
    return metrics(at)


@pytest.mark.parametrize("key, severity, fix", [("strides", "WARNING", "input = 64×64×3"), ("flatten", "ERROR", "head = gap"),
                                               ("shrink", "ERROR", "shortcut = B")])
def test_break_it_examples_show_diagnostics_and_fixes(key, severity, fix):
    at = run_app(tab="Debug")
    at.button(key=f"break_{key}").click().run()
    assert severity in texts(at)
    fixes = [b for b in at.button if b.label == f"Apply: {fix}"]
    assert fixes, [b.label for b in at.button]
    fixes[0].click().run()
    assert not at.exception
    assert "Every shape fits" in texts(at)


# --------------------------------------------------------------------------- URL state
def test_url_parameters_are_applied():
    at = run_app({"preset": "resnet56", "depth": "110", "shortcut": "B", "input": "64x64x3", "tab": "Layers"})
    assert at.session_state["tab"] == "Layers"
    assert at.select_slider(key="w_depth").value == 110
    assert at.radio(key="w_shortcut").value == "B"
    assert at.number_input(key="w_input_h").value == 64
    assert not at.warning
    assert url(at) == {"preset": "resnet56", "depth": "110", "shortcut": "B", "input": "64x64x3", "tab": "Layers"}
    open_tab(at, "Architecture")
    assert metrics(at)["Depth"] == "110"


def test_url_depth_is_snapped_with_a_warning():
    at = run_app({"preset": "resnet56", "depth": "111"})
    assert metrics(at)["Depth"] == "110"
    assert any("111" in w.value and "110" in w.value for w in at.warning)
    assert url(at)["depth"] == "110"


@pytest.mark.parametrize("query", [
    {"preset": "nope"}, {"depth": "abc"}, {"input": "axb"}, {"blocks": "0,0,0"}, {"filters": "-3"}, {"version": "7"},
    {"shortcut": "<script>"}, {"foo": "bar"}, {"depth": "99999999"}, {"tab": "Nope"}, {"l2": "nan"}, {"widths": "1,2"},
    {"preset": "resnet50v2", "stages": "3", "blocks": "1,1"}, {"depth": "x" * 5000},
])
def test_bad_url_values_warn_and_never_crash(query):
    at = run_app(query)
    assert at.warning, "expected a visible warning"
    assert at.metric, "the page still shows a network"
    assert not at.error


# --------------------------------------------------------------------------- exports
def test_export_tab_shows_source_matching_the_graph():
    at = run_app({"preset": "resnet20"}, tab="Export")
    code = at.code[0].value
    assert "def build_model()" in code and "stage2_block1" in code
    assert "271,098" in code


def test_export_tab_refuses_source_for_a_broken_network():
    at = run_app({"preset": "resnet20", "shortcut": "identity"}, tab="Export")
    assert not at.code
    assert any("does not fit together" in e.value for e in at.error)


def test_keras_file_builds_and_loads_with_safe_mode(tmp_path):
    at = run_app({"preset": "resnet20", "depth": "8"}, tab="Export")
    at.button(key="build_keras").click().run()
    assert not at.exception
    # (the built file is read into the session's state and deleted from the server's private folder at once)
    rec = at.session_state["_keras_file"]
    assert rec["path"] is None and rec["data"].startswith(b"PK")
    path = Path(tmp_path) / "built.keras"
    path.write_bytes(rec["data"])
    assert any(b.label.startswith("Download resnet20-custom.keras") for b in at.get("download_button"))
    import keras

    import explorer.keras_build as kb

    kb.zero_pad_shortcut_class()
    model = keras.saving.load_model(path, safe_mode=True)
    ag = build(PRESETS["resnet20"].config.replace(depth=8))
    assert model.count_params() == ag.total_params
    assert [layer.name for layer in model.layers][-1] == "predictions"


def test_import_config_accepts_config_and_summary_json_and_refuses_junk():
    from explorer.config import ConfigError
    from explorer.ui.export import MAX_IMPORT_BYTES, import_config

    cfg = PRESETS["resnet56"].config.replace(shortcut="B")
    assert import_config(cfg.to_json().encode()) == (cfg, None)
    assert import_config(PRESETS["tutorial"].config.to_json().encode())[1] == "tutorial"
    summary = {"config": cfg.to_dict(), "layers": [], "depth": 56}
    assert import_config(json.dumps(summary).encode())[0] == cfg
    for bad in (b"{", b"\xff\xfe", b"[]", b'{"depth": 21}', b'{"colour": "red"}', b" " * (MAX_IMPORT_BYTES + 1)):
        with pytest.raises(ConfigError):
            import_config(bad)


# --------------------------------------------------------------------------- fast and light
def test_first_paint_does_not_import_tensorflow():
    code = textwrap.dedent(f"""
        import sys
        from streamlit.testing.v1 import AppTest
        at = AppTest.from_file({APP!r}, default_timeout=60).run()
        assert not at.exception, at.exception
        def heavy():
            return sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras"))
        assert not heavy(), ("first paint", heavy()[:5])
        assert "pandas" not in sys.modules  # the layer table's pandas waits for the Layers tab too
        assert "explorer.ui.train" not in sys.modules  # loaded when its tab opens, not before
        for tab in {TABS[1:]!r}:  # no tab imports TensorFlow until a button asks for a model
            at.session_state["tab"] = tab
            at.run()
            assert not at.exception, at.exception
            assert not heavy(), (tab, heavy()[:5])
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]


def test_rerun_after_slider_move_is_fast_on_resnet110():
    at = run_app({"preset": "resnet110"})
    at.select_slider(key="w_depth").set_value(116).run()
    at.select_slider(key="w_depth").set_value(110).run()  # cached now
    assert at.session_state["_run_ms"] < 1000  # generous: the benchmark prints the real figure


def test_sidebar_values_that_do_not_fit_become_a_message():
    at = run_app()
    at.text_input(key="w_widths").input("8,16").run()  # two widths for three stages
    assert not at.exception
    assert any("widths" in e.value for e in at.sidebar.error)
    assert any("Not applied" in e.value for e in at.main.error)
    assert metrics(at)["Depth"] == "20"  # the last network that fitted is still shown
    at.text_input(key="w_widths").input("16,32,128").run()
    assert not at.error
    assert url(at)["widths"] == "16,32,128"


def test_show_in_diagram_expands_the_broken_block():
    at = run_app({"preset": "resnet20", "shortcut": "identity"}, tab="Debug")
    at.button(key="show_0").click().run()
    assert at.session_state["tab"] == "Architecture"
    assert "stage2_block1_conv1" in dot_of(at)  # the block drawn at layer level


def test_import_config_through_the_uploader():
    at = run_app(tab="Export")
    cfg = PRESETS["resnet56"].config.replace(shortcut="B", depth=110)
    at.file_uploader(key="import_file").set_value(("mine.json", cfg.to_json().encode(), "application/json")).run()
    assert not at.exception
    assert any("Loaded **mine.json**" in s.value for s in at.success)
    assert url(at) == {"preset": "resnet110", "shortcut": "B", "tab": "Export"}  # the closest preset: shortest link
    open_tab(at, "Architecture")
    assert metrics(at)["Depth"] == "110"

    at = run_app(tab="Export")
    at.file_uploader(key="import_file").set_value(("bad.json", b'{"depth": 21}', "application/json")).run()
    assert not at.exception
    assert any("21" in e.value and "6n+2" in e.value for e in at.error)
    assert url(at) == {"preset": "resnet20", "tab": "Export"}


@pytest.mark.parametrize("name, payload, message", [
    ("deep.json", b"[" * 30_000 + b"]" * 30_000, "nests 30,000 levels deep"),
    ("digits.json", b'{"depth": ' + b"9" * 5_000 + b"}", "cannot be read as JSON"),
])
def test_a_hostile_config_import_is_one_message_without_a_traceback(name, payload, message):
    at = run_app(tab="Export")
    at.file_uploader(key="import_file").set_value((name, payload, "application/json")).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and message in errors[0] and "Traceback" not in errors[0]
    assert url(at) == {"preset": "resnet20", "tab": "Export"}


def test_an_unexpected_import_failure_is_logged_not_shown(monkeypatch, caplog):
    from explorer.ui import export

    def broken(data, name="config.json"):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(export, "import_config", broken)
    at = run_app(tab="Export")
    at.file_uploader(key="import_file").set_value(("mine.json", b"{}", "application/json")).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "could not be imported" in errors[0] and "secret" not in errors[0]
    assert any("secret internals" in (r.exc_text or "") or (r.exc_info and "secret" in str(r.exc_info[1]))
               for r in caplog.records)


def test_the_guard_logs_the_traceback_and_shows_one_message(caplog):
    def page():
        from explorer.ui import common

        with common.guard("diagram"):
            raise RuntimeError("boom")

    at = AppTest.from_function(page, default_timeout=60).run()
    assert not at.exception
    assert len(at.error) == 1 and "The diagram could not be drawn" in at.error[0].value
    assert "Traceback" not in at.error[0].value
    logged = [r for r in caplog.records if r.name == "explorer.ui" and r.exc_info]
    assert logged and "boom" in str(logged[0].exc_info[1])


def test_served_pages_show_no_tracebacks():
    import tomllib

    settings = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert settings["client"]["showErrorDetails"] == "none"  # tracebacks go to the server log only


def test_a_boot_cut_short_is_redone_from_the_url_on_the_next_run(monkeypatch):
    """A dropped websocket stops the first run wherever it is; the next run must still load the link's
    network (it used to mark the session booted first and come back on the default resnet20)."""
    from streamlit.runtime.scriptrunner_utils.exceptions import StopException

    from explorer.ui import sidebar

    real, calls = sidebar.load_widgets, []

    def stopped_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise StopException()  # what a stop request raises at a session-state access
        return real(*args, **kwargs)

    monkeypatch.setattr(sidebar, "load_widgets", stopped_once)
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["preset"] = "resnet56"
    at.query_params["depth"] = "110"
    at.run()
    assert len(calls) == 1 and not at.exception
    at.run()  # the browser's rerun after it reconnects
    assert len(calls) == 2 and not at.exception
    assert at.select_slider(key="w_depth").value == 110
    assert url(at)["preset"] == "resnet56"
    at.select_slider(key="w_depth").set_value(56).run()  # booted now: later changes are kept
    assert len(calls) == 2 and metrics(at)["Depth"] == "56"
