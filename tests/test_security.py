"""Nothing a user sends is ever run: no eval/exec, no plain unpickling, no Lambda layers, no unsafe model loading."""

from __future__ import annotations

import ast

from tests.conftest import ROOT

SOURCES = sorted((ROOT / "explorer").rglob("*.py"))


def calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else ""
            owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
            yield node, owner, name


def test_sources_were_found():
    assert len(SOURCES) > 10


def test_no_eval_exec_or_plain_unpickling():
    for path in SOURCES:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node, owner, name in calls(tree):
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            bare = isinstance(node.func, ast.Name)
            assert not (bare and name in ("eval", "exec", "compile", "__import__")), where
            assert not (owner in ("pickle", "cPickle", "dill", "joblib") and name in ("load", "loads")), where
            assert not (owner == "yaml" and name == "load"), where
            assert name != "Lambda", where
            for kw in node.keywords:
                if kw.arg == "safe_mode":
                    assert isinstance(kw.value, ast.Constant) and kw.value.value is True, where
                if kw.arg == "shell":
                    assert isinstance(kw.value, ast.Constant) and kw.value.value is False, where


def test_unpickling_goes_through_the_restricted_unpickler():
    text = (ROOT / "explorer" / "data.py").read_text(encoding="utf-8")
    assert "class RestrictedUnpickler(pickle.Unpickler)" in text
    assert "def find_class" in text
