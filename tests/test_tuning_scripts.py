"""The tuning scripts (benchmarks/tuning/) chose today's constants and are rerun when a model
changes: each must still import, build its command line, and find the private parts of
s2r it reaches into."""

import ast
import importlib
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TUNING = ROOT / "benchmarks" / "tuning"
SCRIPTS = sorted(p for p in TUNING.glob("*.py") if p.stem != "paired")


@pytest.fixture(autouse=True)
def tuning_on_path(monkeypatch):
    monkeypatch.syspath_prepend(str(TUNING))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_each_tuning_script_imports_and_answers_help(script, monkeypatch, capsys):
    module = importlib.import_module(script.stem)
    monkeypatch.setattr(sys, "argv", [script.name, "--help"])
    with pytest.raises(SystemExit) as done:
        module.main()
    assert done.value.code == 0 and "usage:" in capsys.readouterr().out


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.stem)
def test_private_attributes_a_script_sets_still_exist(script):
    source = "\n".join(p.read_text() for p in (ROOT / "assistant").rglob("*.py"))
    for node in ast.walk(ast.parse(script.read_text())):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Attribute) and target.attr.startswith("_"):
                    assert f"self.{target.attr}" in source, (script.name, target.attr)
