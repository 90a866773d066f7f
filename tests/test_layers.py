"""The package's parts import downward only, and docs/architecture.md shows the graph as the code has it."""

import subprocess
import sys

from helpers import ROOT

from arabic_sft.layers import cycles, graph, layers, module_graph


def test_no_two_parts_of_the_package_import_each_other():
    assert cycles(graph()) == []


def test_a_cycle_is_found_when_there_is_one():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [("a", "b"), ("a", "c"), ("b", "c")]
    assert layers({"runtime": set(), "recipe": {"runtime"}, "training": {"recipe", "runtime"}}) == [
        ["runtime"], ["recipe"], ["training"],
    ]  # fmt: skip


def test_the_architecture_page_shows_the_graph_the_code_has():
    printed = subprocess.run(
        [sys.executable, "-m", "arabic_sft.layers"], capture_output=True, text=True, check=True
    ).stdout
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert printed.strip() and printed.strip() in page, "docs/architecture.md: paste `python -m arabic_sft.layers`"


def test_no_two_modules_import_each_other_lazy_imports_included():
    assert cycles(module_graph()) == []
    edges = module_graph()  # what the graph reads: a function-level import, a relative one, `from package import x`
    assert "arabic_sft.recipe.check" in edges["arabic_sft.recipe.load"]
    assert "arabic_sft.named" in edges["arabic_sft.scoring.scored"]


def test_the_ground_floor_imports_nothing_heavy():
    code = (
        "import pkgutil, importlib, sys, arabic_sft.runtime as r\n"
        "for m in pkgutil.iter_modules(r.__path__): importlib.import_module(f'arabic_sft.runtime.{m.name}')\n"
        "print(' '.join(sorted({'torch', 'transformers', 'accelerate', 'trl', 'pandas', 'numpy'} & set(sys.modules))))"
    )
    heavy = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert heavy == ""


def test_no_stage_imports_another_stage():
    edges = module_graph()
    stages = {module for module in edges if module.startswith("arabic_sft.stages.")}
    assert {(module, other) for module in stages for other in edges[module] & stages} == set()
