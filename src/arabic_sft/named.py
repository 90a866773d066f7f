"""Named YAML files, one lookup for every kind: recipes, task presets, judges' rubrics, sweeps, data sources and
papers' results. What varies is data; a new one is a file, not code.

A name is looked up as `<folder>/<name>.yaml` in the working directory, then in the project (so the project's own files
are found from anywhere); a value ending in .yaml/.yml is a path. This module imports nothing of the package but the
one-line error, so every part may use it.
"""

from pathlib import Path

import yaml

from arabic_sft.runtime.errors import UserError


PROJECT_ROOT = Path(__file__).resolve().parents[2]
# kind -> (folder, what one is called in messages)
# The recipes the project ships and its tests check; a user's own recipes in recipes/ are theirs, not the tests'.
PROJECT_RECIPES = (
    "allam_proverbs", "allam_proverbs_qlora", "demo", "demo_offline", "example_own_data", "jais2_proverbs_qlora",
    "jais_shefaa",
)  # fmt: skip

KINDS = {
    "recipe": ("recipes", "recipe"),
    "task": ("recipes/tasks", "task preset"),
    "judge": ("recipes/judges", "judge rubric"),
    "sweep": ("recipes/sweeps", "sweep file"),
    "source": ("data/sources", "data source"),
    "paper": ("data/paper_results", "paper results file"),
}


def folder(kind: str) -> Path:
    return Path(KINDS[kind][0])


def names(kind: str) -> list[str]:
    """The names of the project's files of `kind` (and the working directory's, when it is elsewhere)."""
    found = {path.stem for base in (Path.cwd(), PROJECT_ROOT) for path in (base / folder(kind)).glob("*.yaml")}
    return sorted(found)


def is_path(value: str | Path) -> bool:
    return str(value).endswith((".yaml", ".yml"))


def find(kind: str, name: str | Path) -> Path:
    """The file `name` names (its path, when it is one); a `UserError` listing the known names when there is none."""
    path = Path(name) if is_path(name) else folder(kind) / f"{name}.yaml"
    if not path.is_file() and not path.is_absolute() and (PROJECT_ROOT / path).is_file():
        path = PROJECT_ROOT / path
    if not path.is_file():
        known = ", ".join(names(kind)) or "none"
        raise UserError(f"{KINDS[kind][1]} '{name}': {path} not found (known: {known})")
    return path


def read(kind: str, name: str | Path) -> tuple[Path, dict]:
    """(the file, its mapping) of the named file of `kind`."""
    path = find(kind, name)
    return path, read_yaml(path, KINDS[kind][1])


def read_yaml(path: str | Path, what: str = "recipe") -> dict:
    """A YAML mapping from a file; a missing file, bad YAML or another type is a `UserError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: {what} not found")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise UserError(f"{path}: {yaml_error(error)}") from None
    if not isinstance(values, dict):
        raise UserError(f"{path}: a {what} must be a YAML mapping of field: value")
    return values


def yaml_error(error: yaml.YAMLError) -> str:
    """A YAML error as one sentence with the line and column where the faulty construct starts (1-based)."""
    mark = getattr(error, "context_mark", None) or getattr(error, "problem_mark", None)
    what = ", ".join(part for part in (getattr(error, "context", None), getattr(error, "problem", None)) if part)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return f"not valid YAML{where}: {what or str(error).splitlines()[0]}; check the quotes and indentation there"


# What a data source file (data/sources/NAME.yaml) holds: what the model card says of the data, and where its files
# go in a clone (`folder`) with how to get them (`get`: what a missing file's error says).
SOURCE_FIELDS = ("title", "url", "license", "hub_id", "citation", "folder", "get")


def data_source(name: str | None) -> dict | None:
    """A data source file (data/sources/NAME.yaml, or a YAML path): title, url, license, hub_id, citation."""
    if not name:
        return None
    try:
        path, source = read("source", name)
    except UserError as error:
        raise UserError(f"data_source: {error}") from None
    if unknown := sorted(set(source) - set(SOURCE_FIELDS)):
        raise UserError(
            f"{path}: unknown field(s) {', '.join(unknown)} (a data source has {', '.join(SOURCE_FIELDS)})"
        )
    if not source.get("title"):
        raise UserError(f"{path}: a data source needs a title")
    return {field: source.get(field) for field in SOURCE_FIELDS}


def data_source_holding(path: str | Path) -> dict | None:
    """The data source whose `folder` holds the data file `path`, None when none does."""
    where = Path(path).resolve()
    for name in names("source"):
        source = data_source(name)
        if source["folder"] and any(where.is_relative_to((base / source["folder"]).resolve())
                                    for base in (Path.cwd(), PROJECT_ROOT)):  # fmt: skip
            return source
    return None
