"""A recipe read and checked without importing TRL, transformers or torch (a second, not ten): every key a known
field, every number and switch a value its field takes, our own fields built (their checks run), the preset found.

TRL's and transformers' fields (`SFTConfig`, `ModelConfig`, `TrainingArguments`) are read from their installed
source files with `ast`: importing them to learn the field names costs ~7 s, which every mistyped recipe paid before
the console program said a word. `load_recipe` (TRL's parser) stays the one loader of a recipe that runs; this is
its quick front door, and tests/test_recipe_check.py proves both know the same fields.
"""

import ast
import difflib
import importlib.util
from dataclasses import MISSING, dataclass, fields
from functools import cache
from pathlib import Path

from arabic_sft import named
from arabic_sft.named import read_yaml
from arabic_sft.recipe.defaults import project_defaults
from arabic_sft.recipe.schema import PRESET_FIELDS, RecipeArguments
from arabic_sft.runtime.errors import UserError


# The classes TRL's parser reads a recipe into (ours aside), subclasses first: a field a subclass declares again
# (SFTConfig's learning_rate) is the subclass's.
LIBRARY_CLASSES = (
    ("trl", "trainer/sft_config.py", "SFTConfig"),
    ("trl", "trainer/base_config.py", "_BaseConfig"),
    ("transformers", "training_args.py", "TrainingArguments"),
    ("trl", "trainer/model_config.py", "ModelConfig"),
)
NO_DEFAULT = object()  # a default that is not a literal (a factory, a computed value): load_recipe knows it
TRUE, FALSE = {"true", "yes", "t", "y", "1"}, {"false", "no", "f", "n", "0"}  # HfArgumentParser's string_to_bool


def read_preset(task: str, source: str | Path = "arguments") -> dict:
    """The fields of a task preset: `recipes/tasks/<task>.yaml`, or a YAML file's path."""
    try:
        path = named.find("task", task)
    except UserError as error:
        raise UserError(f"{source}: {error}") from None
    preset = read_yaml(path, "task preset")
    if not set(preset) <= set(PRESET_FIELDS):
        raise UserError(f"{path}: a task preset is a mapping of {', '.join(PRESET_FIELDS)}")
    return preset


def with_presets(values: dict, source: str | Path) -> dict:
    """The recipe's values with its task preset's fields under its own, and each source of its `datasets` with its
    own `task` preset's fields under the source's."""
    if task := values.get("task"):
        values = {**read_preset(task, source), **values}
    if isinstance(values.get("datasets"), list):
        values["datasets"] = [
            {**read_preset(item["task"], source), **item} if isinstance(item, dict) and item.get("task") else item
            for item in values["datasets"]
        ]
    return values


@dataclass(frozen=True)
class Field:
    name: str
    kind: str | None  # "int", "float", "bool" when the field holds only that (or None); else None: not checked here
    default: object


def package_dir(name: str) -> Path:
    """An installed package's folder, found without importing it."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"{name} is not installed in this environment (make setup installs it)")
    return Path(spec.submodule_search_locations[0])


def simple_kind(annotation: str) -> str | None:
    parts = {part.strip() for part in annotation.replace("Optional[", "").rstrip("]").split("|")} - {"None"}
    return parts.pop() if len(parts) == 1 and parts <= {"int", "float", "bool"} else None


def literal_default(value: ast.expr | None) -> object:
    if value is None:
        return NO_DEFAULT
    if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "field":
        keywords = {keyword.arg: keyword.value for keyword in value.keywords}
        value = keywords.get("default")
        if value is None:
            return NO_DEFAULT
    try:
        return ast.literal_eval(value)
    except ValueError:
        return NO_DEFAULT


def class_fields(path: Path, name: str) -> list[Field]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    body = next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == name).body
    found = []
    for node in body:
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        annotation = ast.unparse(node.annotation)
        call = node.value if isinstance(node.value, ast.Call) else None
        if annotation.startswith("ClassVar") or (call and any(
            keyword.arg == "init" and getattr(keyword.value, "value", True) is False for keyword in call.keywords
        )):  # fmt: skip
            continue  # not a field the parser offers
        found.append(Field(node.target.id, simple_kind(annotation), literal_default(node.value)))
    return found


@cache
def library_fields() -> dict[str, Field]:
    """SFTConfig's, TrainingArguments' and ModelConfig's fields, from their source files."""
    table: dict[str, Field] = {}
    for package, file, name in LIBRARY_CLASSES:
        for item in class_fields(package_dir(package) / file, name):
            table.setdefault(item.name, item)
    return table


@cache
def our_fields() -> dict[str, Field]:
    table = {}
    for item in fields(RecipeArguments):
        annotation = item.type if isinstance(item.type, str) else str(item.type).replace("typing.", "")
        annotation = {"<class 'int'>": "int", "<class 'float'>": "float", "<class 'bool'>": "bool"}.get(
            annotation, annotation
        )
        default = item.default if item.default is not MISSING else NO_DEFAULT
        table[item.name] = Field(item.name, simple_kind(annotation), default)
    return table


def known_fields() -> dict[str, Field]:
    return {**library_fields(), **our_fields()}


def typed(item: Field, value: object, source: str) -> object:
    """`value` as the field's type would parse it; a value it cannot take is one line naming the field."""
    if value is None or item.kind is None:
        return value
    wrong = UserError(f"{source}: argument --{item.name}: invalid {item.kind} value: {value!r}")  # as argparse says
    if item.kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in TRUE | FALSE:
            return value.lower() in TRUE
        raise wrong
    if isinstance(value, bool):
        raise wrong
    if item.kind == "float" and isinstance(value, int | float):
        return float(value)
    if item.kind == "int" and (isinstance(value, int) or isinstance(value, float) and value.is_integer()):
        return int(value)
    if isinstance(value, str):
        try:
            return int(value) if item.kind == "int" else float(value)
        except ValueError:
            raise wrong from None
    raise wrong


def check_recipe(path: str | Path) -> dict:
    """The recipe's fields as its file, its preset and the project's defaults set them (not TRL's defaults, which
    are left to `load_recipe`), checked; a recipe `load_recipe` would refuse is refused here, in one line."""
    path = named.find("recipe", str(path))
    return check_values(path, read_yaml(path))


def check_values(path: str | Path, values: dict) -> dict:
    """`check_recipe` of the values already read from the recipe file `path` (a process reads its recipe once)."""
    values = dict(values)
    known = known_fields()
    if unknown := sorted(set(values) - set(known) - {"env"}):
        hints = [f"{key} (did you mean {close[0]}?)" if (close := difflib.get_close_matches(key, known, 1)) else key
                 for key in unknown]  # fmt: skip
        raise UserError(f"{path}: unknown recipe key(s): {', '.join(hints)} (see --help for the fields)")
    if not isinstance(values.pop("env", {}), dict):
        raise UserError(f"{path}: env: must be a mapping of variable: value")
    values = with_presets(values, path)
    values = {name: typed(known[name], value, str(path)) for name, value in values.items()}
    ours = {name: value for name, value in values.items() if name in our_fields()}
    try:
        RecipeArguments(**ours)  # our fields' own checks
    except ValueError as error:
        raise UserError(f"{path}: {str(error).splitlines()[0]}") from None
    defaults = {name: item.default for name, item in known.items() if item.default is not NO_DEFAULT}
    return {**values, **project_defaults({**defaults, **values}, set(values))}


def read_fields(path: str | Path, *names: str) -> dict:
    """Fields of a checked recipe (its file, preset and the project's defaults, else the field's default) without
    loading TRL: for what decides which stages run (the console program)."""
    values, known = check_recipe(path), known_fields()
    chosen = {name: values[name] if name in values else known[name].default for name in names}
    seeds = chosen.get("seeds")
    if seeds is not None and not (isinstance(seeds, list) and all(isinstance(seed, int) for seed in seeds)):
        raise UserError(f"{path}: seeds: a list of whole numbers, got {seeds!r}")
    return chosen


def recipe_precision(fields) -> str:
    """The recipe's mixed precision as accelerate names it: 'bf16', 'fp16' or 'no' (TRL: bf16 unless fp16)."""
    if fields.fp16:
        return "fp16"
    return "no" if fields.bf16 is False else "bf16"


def precision_refusal(source: str, fields, gpu: bool, bf16_gpu: bool) -> str | None:
    """Why a machine with a GPU (`gpu`) with bf16 (`bf16_gpu`), or without, cannot train the recipe's precision
    (`fields`: bf16, fp16, use_cpu); None when it can."""
    precision = recipe_precision(fields)
    make = 'make train: ARGS="--bf16 false --use_cpu true" ACCELERATE_CONFIG=cpu'
    hint = f"on a CPU: --bf16 false --use_cpu true ({make})"
    if precision == "bf16" and not fields.use_cpu and not bf16_gpu:
        found = "its GPU has none (Ampere or newer has)" if gpu else "this machine has no GPU"
        return f"{source}: bf16 mixed precision needs a GPU with bf16 and {found}; {hint}"
    if precision == "fp16" and not fields.use_cpu and not gpu:
        return f"{source}: fp16 mixed precision needs a GPU and this machine has none; {hint}"
    return None


def recipe_arguments(path: str | Path) -> RecipeArguments:
    """The project's fields of a checked recipe (data, prompt, output_dir...) without loading TRL."""
    return RecipeArguments(**{name: value for name, value in check_recipe(path).items() if name in our_fields()})


def trained_model_of(path: str | Path, seed: int | None = None):
    """The recipe file's trained model (seed `seed`'s when given), found by the owner of a run's files from the
    recipe's output_dir read without loading TRL: export, serve, chat and publish refuse a recipe never trained in
    the command's first second."""
    from arabic_sft.runs import RecipeResults

    return RecipeResults(Path(path).stem).trained_run(read_fields(path, "output_dir")["output_dir"], seed)
