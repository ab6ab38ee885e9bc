"""The committed diagram-viewer bundle is built from the committed front-end sources (explorer/frontend/)."""

from __future__ import annotations

import hashlib
import json

from tests.conftest import ROOT

FRONTEND = ROOT / "explorer" / "frontend"
BUNDLE = ROOT / "explorer" / "static" / "diagram"
BUILD = "npm --prefix explorer/frontend ci && npm --prefix explorer/frontend run build"


def source_sha256() -> str:
    """The recipe of explorer/frontend/build.mjs: path + NUL + bytes of each source file, sorted by path."""
    files = [FRONTEND / name for name in ("package-lock.json", "package.json", "tsconfig.json", "build.mjs")]
    files += [p for p in (FRONTEND / "src").rglob("*") if p.is_file()]
    digest = hashlib.sha256()
    for name, path in sorted((p.relative_to(FRONTEND).as_posix(), p) for p in files):
        digest.update(name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def test_the_committed_bundle_is_built_from_the_current_sources():
    built = json.loads((BUNDLE / "bundle.json").read_text(encoding="utf-8"))
    assert built["source_sha256"] == source_sha256(), f"the viewer bundle is older than its sources: run {BUILD}"


def test_the_bundle_is_complete_and_needs_no_network():
    viewer = (BUNDLE / "viewer.js").read_text(encoding="utf-8")
    worker = (BUNDLE / "layout-worker.js").read_text(encoding="utf-8")
    assert "export" in viewer and "mount" in viewer
    assert len(worker) > 200_000  # Graphviz compiled to WebAssembly, embedded
    for text in (viewer, worker):
        assert "cdn.jsdelivr" not in text and "unpkg.com" not in text and "googleapis" not in text


def test_the_lock_file_pins_what_package_json_asks_for():
    package = json.loads((FRONTEND / "package.json").read_text(encoding="utf-8"))
    lock = json.loads((FRONTEND / "package-lock.json").read_text(encoding="utf-8"))
    wanted = {**package.get("dependencies", {}), **package.get("devDependencies", {})}
    assert "@hpcc-js/wasm-graphviz" in wanted
    for name in wanted:
        assert f"node_modules/{name}" in lock["packages"], name
