"""The package's parts import downward only, and docs/architecture.md shows the graph as the code has it."""

import subprocess
import sys

from helpers import ROOT

from arabic_sft.layers import cycles, graph, layers


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
