"""The README's two commands and its presets table stay true."""

from __future__ import annotations

import re

from explorer.annotate import build
from explorer.presets import PRESETS
from tests.conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_readme_starts_with_the_two_commands():
    block = README.split("```bash", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    assert len(commands) == 2
    app, tests = commands
    assert "requirements.txt" in app and "streamlit run explorer/app.py" in app
    assert "requirements-dev.txt" in tests and "pytest" in tests
    ci = (ROOT / ".ci" / "run").read_text()
    assert "README.md" in ci and "# 2\\. " in ci


def test_presets_table_matches_the_code():
    for name, preset in PRESETS.items():
        row = re.search(rf"^\| `{re.escape(name)}` \|.*$", README, flags=re.M)
        assert row, name
        cells = [c.strip() for c in row.group(0).strip("|").split("|")]
        ag = build(preset.config)
        assert cells[2] == str(ag.depth), name
        assert cells[3] == f"{ag.total_params:,}", name
