"""Classroom mode: URL flags that hide sidebar controls and lock the preset, and a presentation mode with larger type."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

KEY = "_classroom"
PRESENT = "w_present"  # the sidebar's presentation toggle
PARAMS = ("hide", "lock", "present")
CONTROLS = ("version", "block", "stages", "filters", "depth", "blocks", "shortcut", "stem", "head", "data", "freeze",
            "advanced")
"""Sidebar controls a link can hide (`hide=shortcut,depth` or `hide=all`)."""

_TRUE = {"1", "true", "yes", "on"}
MAX_NAMED_WARNINGS = 3
"""Up to this many unknown names each get a warning; more get one warning that counts them."""

PRESENT_CSS = """
<style>
html { font-size: 21px; }
[data-testid="stMetricValue"] { font-size: clamp(1.25rem, 2.4vw, 1.7rem) !important; }
.block-container { max-width: 100%; padding-left: 2rem; padding-right: 2rem; }
</style>
"""


@dataclass(frozen=True)
class Classroom:
    """What a teacher's link fixes for the class.

    Attributes:
        hidden: Sidebar controls not shown (their values come from the link).
        locked: The preset cannot be changed.
        present: Presentation mode: larger type for a projector.
    """

    hidden: frozenset[str] = field(default_factory=frozenset)
    locked: bool = False
    present: bool = False

    def shows(self, control: str) -> bool:
        """Whether the sidebar draws this control."""
        return control not in self.hidden

    @property
    def active(self) -> bool:
        """Whether the link set anything the student cannot change."""
        return bool(self.hidden) or self.locked

    def to_params(self) -> dict[str, str]:
        """The query parameters that reproduce this mode (empty when it is the default)."""
        out: dict[str, str] = {}
        if self.hidden:
            out["hide"] = "all" if set(self.hidden) == set(CONTROLS) else ",".join(c for c in CONTROLS if c in self.hidden)
        if self.locked:
            out["lock"] = "1"
        if self.present:
            out["present"] = "1"
        return out


def parse(params: Mapping[str, Any]) -> tuple[Classroom, list[str]]:
    """Read `hide`, `lock` and `present` from query parameters; unknown control names are dropped with a warning.

    Each distinct unknown name gets a warning when there are at most `MAX_NAMED_WARNINGS` of
    them; more (a link with thousands of junk names) get one warning that says how many.
    """
    hidden: set[str] = set()
    unknown: dict[str, None] = {}  # distinct, in link order
    raw = str(params.get("hide", "")).strip()
    if raw:
        for name in (part.strip().lower() for part in raw.split(",") if part.strip()):
            if name == "all":
                hidden.update(CONTROLS)
            elif name in CONTROLS:
                hidden.add(name)
            else:
                unknown[name] = None
    locked = str(params.get("lock", "")).strip().lower() in _TRUE
    present = str(params.get("present", "")).strip().lower() in _TRUE
    return Classroom(frozenset(hidden), locked, present), _hide_warnings(list(unknown))


def _hide_warnings(names: list[str]) -> list[str]:
    """Warnings for the control names a link hides that the page does not have: one each for a few, one for many.

    A name is echoed only when it cannot carry Markdown (the warnings are rendered as Markdown).
    """
    if len(names) > MAX_NAMED_WARNINGS:
        return [f"hide: ignored {len(names):,} names that are not controls of this page"]
    out: list[str] = []
    for name in names:
        text = ("hide: ignored a control this page does not have" if not name.isalpha() or len(name) > 20
                else f"hide: there is no control called {name!r}")
        if text not in out:
            out.append(text)
    return out


def current(session_state: Mapping[str, Any]) -> Classroom:
    """The session's classroom mode, with the presentation toggle applied."""
    mode = session_state.get(KEY) or Classroom()
    if PRESENT in session_state and bool(session_state[PRESENT]) != mode.present:
        mode = Classroom(mode.hidden, mode.locked, bool(session_state[PRESENT]))
    return mode
