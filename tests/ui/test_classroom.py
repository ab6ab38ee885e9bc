"""Classroom mode: links that hide controls and lock the preset, and presentation mode."""

from __future__ import annotations

from explorer.ui import classroom
from tests.helpers import metrics, run_app, url


def test_parse_and_round_trip():
    mode, warnings = classroom.parse({"hide": "shortcut, Depth,advanced", "lock": "1", "present": "yes"})
    assert mode.hidden == {"shortcut", "depth", "advanced"} and mode.locked and mode.present
    assert warnings == []
    assert mode.to_params() == {"hide": "depth,shortcut,advanced", "lock": "1", "present": "1"}
    assert classroom.parse(mode.to_params())[0] == mode
    everything, _ = classroom.parse({"hide": "all"})
    assert everything.hidden == set(classroom.CONTROLS) and everything.to_params() == {"hide": "all"}
    none, warnings = classroom.parse({"hide": "wings,<script>", "lock": "maybe"})
    assert none == classroom.Classroom() and not none.active
    assert warnings == ["hide: there is no control called 'wings'", "hide: ignored a control this page does not have"]


def test_link_hides_controls_and_locks_the_preset():
    at = run_app({"preset": "resnet56", "shortcut": "B", "hide": "shortcut,depth,advanced", "lock": "1"})
    assert not at.exception
    labels = [w.label for w in at.sidebar.radio] + [w.label for w in at.sidebar.select_slider]
    assert "Shortcut" not in labels and not any(label.startswith("Depth") for label in labels)
    assert "Version" in labels
    preset = next(w for w in at.sidebar.selectbox if w.label == "Preset")
    assert preset.disabled
    assert metrics(at)["Depth"] == "56"
    assert any("Classroom link" in c.value for c in at.sidebar.caption)
    # a visible control still works, and the hidden choices survive the change
    next(w for w in at.sidebar.radio if w.label == "Version").set_value(2).run()
    assert not at.exception
    query = url(at)
    assert query["version"] == "2" and query["shortcut"] == "B"
    assert query["hide"] == "depth,shortcut,advanced" and query["lock"] == "1"
    assert metrics(at)["Depth"] == "56"


def test_presentation_mode_from_link_and_toggle():
    at = run_app({"present": "1"})
    assert not at.exception
    assert any("font-size: 21px" in m.value for m in at.markdown)
    assert url(at).get("present") == "1"
    toggle = next(t for t in at.sidebar.toggle if t.label == "Presentation mode")
    assert toggle.value
    toggle.set_value(False).run()
    assert not any("font-size: 21px" in m.value for m in at.markdown)
    assert "present" not in url(at)
