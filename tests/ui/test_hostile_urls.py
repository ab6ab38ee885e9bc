"""Hostile links: 200+ malformed query strings through the real app (AppTest) — the page renders, warns, never fails."""

from __future__ import annotations

import random

import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers import APP

FIELDS = ["preset", "version", "block", "depth", "blocks", "stages", "filters", "widths", "shortcut", "stem", "head",
          "input", "classes", "dropout", "l2", "width_rule", "stride_at", "downsample", "conv_bias", "batch_norm",
          "freeze", "tab", "hide", "lock", "present", "expansion", "bn_epsilon", "zero_init", "initializer"]
NASTY = [
    "", " ", "-1", "0", "1e309", "nan", "inf", "-inf", "99999999999999999999", "3.5", "true", "None", "null",
    "<script>alert(1)</script>", "[x](javascript:alert(1))", "![i](http://evil/x.png)", "' OR 1=1 --",
    "${jndi:ldap://x}", "../../etc/passwd", "%00", "\x00", "ü" * 50, "x" * 5000, "1,2,3,4,5,6,7,8,9",
    "3,,3", "32x32", "32x32x3x3", "0x0x0", "4096x4096x64", "resnet20;rm -rf /", "{\"depth\": 20}",
    "__import__('os')", "A", "Z", "identity", "bottleneck", "1202", "1001", "5000", "all", "stage9", "Debug", "🙂",
]


def hostile_queries(count: int, seed: int = 6) -> list[dict[str, str]]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        query = {}
        for _ in range(rng.randint(1, 5)):
            key = rng.choice(FIELDS + ["unknown", "depth[]", "<b>", "x" * 60, "DEPTH", "sho rtcut"])
            query[key] = rng.choice(NASTY)
        out.append(query)
    return out


QUERIES = hostile_queries(200)
CHUNKS = [QUERIES[i:i + 25] for i in range(0, len(QUERIES), 25)]


@pytest.mark.parametrize("chunk", range(len(CHUNKS)))
def test_hostile_links_render_with_a_warning(chunk):
    for query in CHUNKS[chunk]:
        at = AppTest.from_file(APP, default_timeout=60)
        for key, value in query.items():
            at.query_params[key] = value
        at.run()
        assert not at.exception, (query, at.exception)
        assert at.markdown and any("ResNet-" in m.value for m in at.markdown), query
        shown = " ".join(w.value for w in at.warning) + " ".join(e.value for e in at.error)
        for bad in ("<script>", "javascript:", "](http", "${jndi"):
            assert bad not in shown, (query, shown)
        assert len(at.metric) >= 1 or at.error, query


def test_a_clearly_bad_link_warns():
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["depth"] = "21"
    at.query_params["shortcut"] = "<script>"
    at.query_params["bogus"] = "1"
    at.run()
    assert not at.exception
    shown = " ".join(w.value for w in at.warning)
    assert "depth" in shown and "shortcut" in shown and "bogus" in shown


def test_thousands_of_junk_names_draw_one_warning():
    """`hide=` with 30,000 junk names, or 999 unknown parameters: one warning each (it was one per name, every run)."""
    from explorer.ui import classroom
    from explorer.ui.urlstate import parse_query

    names = ",".join(f"junk{i}" for i in range(30_000))
    mode, warnings = classroom.parse({"hide": names + ",depth,junk1,junk1"})
    assert mode.hidden == {"depth"}
    assert warnings == ["hide: ignored 30,000 names that are not controls of this page"]
    assert classroom.parse({"hide": "wings,wings,<b>,<i>"})[1] == [
        "hide: there is no control called 'wings'", "hide: ignored a control this page does not have"]
    assert parse_query({f"junk{i}": "1" for i in range(999)}).warnings == ["ignored 999 parameters that no setting has"]
    assert parse_query({"junk": "1", "<b>": "1", "<i>": "1"}).warnings == [
        "ignored unknown parameter 'junk'", "ignored a parameter whose name no setting has"]

    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["hide"] = names
    at.run()
    at.run()  # a rerun draws the notice again: still one
    assert not at.exception
    assert len(at.warning) == 1 and "30,000 names" in at.warning[0].value
