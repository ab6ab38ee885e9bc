"""A tiny Streamlit page that draws DOT files with st.graphviz_chart, for bench_diagram.py (timings, screenshots).

Run by the benchmark as `streamlit run benchmarks/diagram_page.py` with DIAGRAM_PAGE_DIR set to a folder of
`NAME.dot` files. Query parameters: `dot=NAME` picks the file; `mode=shot` draws only that file (for
screenshots); otherwise the page first draws `warmup.dot` (so the browser's Graphviz is loaded) and draws
NAME only when the "draw" button is pressed, so the benchmark can time the drawing alone.
"""

from __future__ import annotations

import os
from pathlib import Path

import streamlit as st

st.set_page_config(page_title="diagram bench", layout="wide")

folder = Path(os.environ.get("DIAGRAM_PAGE_DIR", "."))
available = {p.stem: p for p in folder.glob("*.dot")}
name = st.query_params.get("dot", "")
if name not in available:
    st.error(f"no DOT file called {name!r} in {folder}; have: {', '.join(sorted(available))}")
    st.stop()

if st.query_params.get("mode") == "shot":
    st.graphviz_chart(available[name].read_text(encoding="utf-8"))
else:
    st.graphviz_chart(available["warmup"].read_text(encoding="utf-8"))
    if st.button("draw"):
        st.graphviz_chart(available[name].read_text(encoding="utf-8"))
