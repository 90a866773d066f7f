"""The package's parts and modules, and which each imports (module- and function-level imports alike, read from the
source with `ast`, nothing imported). Parts and modules alike must import downward only: `tests/test_layers.py`
fails on a cycle of either, and docs/architecture.md shows the parts' graph this prints.

    python -m arabic_sft.layers          # one line per part: the parts it imports (exit 1 on any cycle)
"""

import ast
from pathlib import Path


PACKAGE = Path(__file__).resolve().parent


def module_of(path: Path) -> str:
    """A file's module name (arabic_sft.scoring.compare; a package's __init__.py is the package)."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def part_of(module: str) -> str:
    """A module's part: its folder under the package, or the module itself (recipe, runs, ...)."""
    part = module.split(".")[1]
    return "cli" if part == "__main__" else part  # `python -m arabic_sft` is the console program


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The package's modules (of `modules`) that a file imports: `import a.b`, `from a.b import c` (the module a.b.c
    when there is one, else a.b), relative imports resolved; a name that is no module is its nearest module above."""
    here = module_of(path).split(".")
    if path.name != "__init__.py":
        here = here[:-1]  # a relative import starts from the file's package
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            stem = ".".join(here[: len(here) - node.level + 1] + [node.module or ""]).strip(".") if node.level else (
                node.module or ""
            )  # fmt: skip
            names = [f"{stem}.{alias.name}" if f"{stem}.{alias.name}" in modules else stem for alias in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name:
                found.add(name)
    return found


def module_graph() -> dict[str, set[str]]:
    """module -> the other modules of the package it imports (a package's own __init__ aside: importing a module
    imports its package's __init__, which is no edge back)."""
    paths = {module_of(path): path for path in sorted(PACKAGE.rglob("*.py"))}
    return {
        module: {other for other in imported_modules(path, set(paths)) if not module.startswith(other + ".")}
        - {module}
        for module, path in paths.items()
    }


def graph() -> dict[str, set[str]]:
    """part -> the other parts it imports, for every part of the package."""
    edges: dict[str, set[str]] = {}
    for module, imported in module_graph().items():
        if "." in module:  # the package's own __init__ belongs to no part
            part = part_of(module)
            edges.setdefault(part, set()).update({part_of(other) for other in imported if "." in other} - {part})
    return edges


def cycles(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    """Pairs of nodes that reach each other (each pair once, sorted)."""

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            for other in edges.get(node, ()):
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
    for kind, found in (("parts", cycles(edges)), ("modules", cycles(module_graph()))):
        if found:
            raise SystemExit(f"{kind} in a cycle: " + ", ".join(f"{a} <-> {b}" for a, b in found))
    for number, parts in enumerate(layers(edges)):
        for part in parts:
            print(f"{number}  {part:<12} -> {', '.join(sorted(edges[part])) or '-'}")


if __name__ == "__main__":
    main()
