"""The package's parts and which parts each imports (module- and function-level imports alike, read from the source
with `ast`, nothing imported). The parts must import downward only: `tests/test_layers.py` fails on a cycle, and
docs/architecture.md shows the graph this prints.

    python -m arabic_sft.layers          # one line per part: the parts it imports
"""

import ast
from pathlib import Path


PACKAGE = Path(__file__).resolve().parent


def part_of(path: Path) -> str:
    """A module's part: its folder under the package, or the module itself (recipe, runs, ...)."""
    part = path.relative_to(PACKAGE).with_suffix("").parts[0]
    return "cli" if part == "__main__" else part  # `python -m arabic_sft` is the console program


def imported_parts(path: Path) -> set[str]:
    """The package's parts that a file imports (absolute imports; relative ones stay within a part)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            modules = [node.module]
            if node.module == PACKAGE.name:  # from arabic_sft import named
                modules = [f"{PACKAGE.name}.{alias.name}" for alias in node.names]
        else:
            continue
        for module in modules:
            names = module.split(".")
            if len(names) > 1 and names[0] == PACKAGE.name:
                found.add(names[1])
    return found


def graph() -> dict[str, set[str]]:
    """part -> the other parts it imports, for every part of the package."""
    edges: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__init__.py" and path.parent == PACKAGE:
            continue
        part = part_of(path)
        edges.setdefault(part, set()).update(imported_parts(path) - {part})
    return edges


def cycles(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Pairs of parts that reach each other (each pair once, sorted)."""

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            part = todo.pop()
            for other in edges.get(part, ()):
                if other == goal:
                    return True
                if other not in seen:
                    seen.add(other)
                    todo.append(other)
        return False

    return sorted({tuple(sorted((a, b))) for a in edges for b in edges[a] if reaches(b, a)})


def layers(edges: dict[str, set[str]]) -> list[list[str]]:
    """The parts in layers, lowest first: each part's imports lie in the layers below it (needs no cycle)."""
    placed: dict[str, int] = {}

    def depth(part: str) -> int:
        if part not in placed:
            placed[part] = 1 + max((depth(other) for other in edges.get(part, ())), default=-1)
        return placed[part]

    for part in edges:
        depth(part)
    return [
        sorted(part for part, level in placed.items() if level == number) for number in range(max(placed.values()) + 1)
    ]


def main() -> None:
    edges = graph()
    if found := cycles(edges):
        raise SystemExit("parts in a cycle: " + ", ".join(f"{a} <-> {b}" for a, b in found))
    for number, parts in enumerate(layers(edges)):
        for part in parts:
            print(f"{number}  {part:<12} -> {', '.join(sorted(edges[part])) or '-'}")


if __name__ == "__main__":
    main()
