"""A sweep file (recipes/sweeps/NAME.yaml): the recipe it varies, the search space, the objective and its direction,
the number of trials, pruning and where the study lives; read and checked whole before anything starts."""

import math
from dataclasses import dataclass, field
from pathlib import Path

from arabic_sft import named
from arabic_sft.recipe import load_recipe
from arabic_sft.runs import sweep_dir
from arabic_sft.runtime.errors import UserError
from arabic_sft.training.eval_generation import GENERATION_METRICS
from arabic_sft.training.launch import check_in_process


FIELDS = {
    "recipe": "the recipe it varies (a name in recipes/, or a path)",
    "space": "each field varied: {low, high[, log, step]} for numbers, or {choices: [...]}",
    "objective": "a metric the trainer logs at each evaluation: eval_loss, or eval_rougeL etc. (generation metrics)",
    "direction": "minimize or maximize",
    "trials": "how many trials, all workers together",
    "overrides": "recipe fields fixed for every trial (optional)",
    "pruner": "median (default) or none",
    "pruner_startup_trials": "trials finished before any is pruned (default 2)",
    "storage": "an Optuna storage URL (default: sqlite:///results/sweeps/NAME/study.db; a database server on Slurm)",
    "heartbeat_interval": "seconds between a running trial's heartbeats (default 60)",
    "grace_period": "seconds without a heartbeat before a trial counts as failed and is retried (default 180)",
    "max_retry": "how many times a failed trial is retried (default 2)",
    "sampler_seed": "the TPE sampler's seed (default 0)",
}


@dataclass(frozen=True)
class Param:
    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple | None = None

    def suggest(self, trial):
        if self.choices is not None:
            return trial.suggest_categorical(self.name, list(self.choices))
        integer = all(isinstance(value, int) for value in (self.low, self.high, self.step or 1)) and not self.log
        if integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1))
        return trial.suggest_float(self.name, float(self.low), float(self.high), log=self.log, step=self.step)

    def example(self):
        return self.choices[0] if self.choices is not None else self.low


@dataclass(frozen=True)
class Sweep:
    name: str
    path: Path
    recipe: Path
    space: tuple[Param, ...]
    objective: str
    direction: str
    trials: int
    overrides: dict = field(default_factory=dict)
    pruner: str = "median"
    pruner_startup_trials: int = 2
    storage: str | None = None
    heartbeat_interval: int = 60
    grace_period: int = 180
    max_retry: int = 2
    sampler_seed: int = 0

    @property
    def folder(self) -> Path:
        return sweep_dir(self.name)

    @property
    def storage_url(self) -> str:
        return self.storage or f"sqlite:///{self.folder / 'study.db'}"

    def recipe_args(self, values: dict) -> list[str]:
        """`load_recipe` arguments: the recipe, the fixed overrides, then `values` (a trial's parameters)."""
        args = ["--config", str(self.recipe)]
        for key, value in {**self.overrides, **values}.items():
            args += [f"--{key}", str(value).lower() if isinstance(value, bool) else str(value)]
        return args


def _param(name: str, spec, where: str) -> Param:
    if not isinstance(spec, dict):
        raise UserError(f"{where}: space: {name}: give {{low, high}} or {{choices: [...]}}, got {spec!r}")
    unknown = sorted(set(spec) - {"low", "high", "log", "step", "choices"})
    if unknown:
        raise UserError(f"{where}: space: {name}: unknown key(s) {', '.join(unknown)} (low, high, log, step, choices)")
    if "choices" in spec:
        if not isinstance(spec["choices"], list) or not spec["choices"]:
            raise UserError(f"{where}: space: {name}: choices must be a non-empty list")
        return Param(name, choices=tuple(spec["choices"]))
    low, high = spec.get("low"), spec.get("high")
    numbers = all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in (low, high))
    if not numbers or not low < high or (spec.get("log") and low <= 0) or not all(map(math.isfinite, (low, high))):
        raise UserError(f"{where}: space: {name}: needs numbers low < high (low > 0 with log: true), got {spec}")
    return Param(name, low, high, bool(spec.get("log", False)), spec.get("step"))


def read_sweep(path: str | Path) -> Sweep:
    """The sweep file, checked: known fields, a non-empty space of recipe fields, an objective the trainer logs."""
    path = Path(path) if Path(path).suffix or Path(path).exists() else named.find("sweep", path)
    values = named.read_yaml(path, "sweep file")
    if unknown := sorted(set(values) - set(FIELDS)):
        raise UserError(f"{path}: unknown field(s) {', '.join(unknown)} (known: {', '.join(FIELDS)})")
    for required in ("recipe", "space", "objective", "trials"):
        if values.get(required) in (None, "", {}, []):
            raise UserError(f"{path}: {required}: required ({FIELDS[required]})")
    if not isinstance(values["space"], dict):
        raise UserError(f"{path}: space: a mapping of field: range, got {values['space']!r}")
    recipe = Path(values["recipe"])
    recipe = recipe if recipe.suffix else named.folder("recipe") / f"{recipe}.yaml"
    direction = values.get("direction", "minimize")
    if direction not in ("minimize", "maximize"):
        raise UserError(f"{path}: direction: minimize or maximize, got {direction!r}")
    if not isinstance(values["trials"], int) or values["trials"] < 1:
        raise UserError(f"{path}: trials: a whole number of 1 or more, got {values['trials']!r}")
    if values.get("pruner", "median") not in ("median", "none"):
        raise UserError(f"{path}: pruner: median or none, got {values['pruner']!r}")
    overrides = values.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise UserError(f"{path}: overrides: a mapping of recipe field: value")
    space = tuple(_param(name, spec, str(path)) for name, spec in values["space"].items())
    options = {key: values[key] for key in FIELDS if key in values and key not in ("recipe", "space", "overrides")}
    sweep = Sweep(path.stem, path, recipe, space, overrides=overrides, **{"direction": direction, **options})
    check_against_recipe(sweep)
    return sweep


def check_against_recipe(sweep: Sweep) -> None:
    """Each varied field is a recipe field that takes the space's values, and the objective is logged at the
    evaluations of the recipe as the sweep runs it; else one line, before any trial."""
    try:
        recipe = load_recipe(sweep.recipe_args({param.name: param.example() for param in sweep.space}))
    except UserError as error:
        raise UserError(f"{sweep.path}: with its recipe {sweep.recipe}: {error}") from None
    check_in_process(recipe)
    training, args = recipe.training, recipe.args
    evaluates = training.eval_strategy != "no" and bool(
        args.validation_file or args.validation_split or args.validation_fraction
    )
    if not evaluates:
        raise UserError(
            f"{sweep.path}: objective {sweep.objective}: never logged, the recipe {sweep.recipe} does not evaluate "
            "(it needs validation data and an eval_strategy; set them in overrides)"
        )
    generation = args.eval_generation_examples and sweep.objective in GENERATION_METRICS
    if sweep.objective != "eval_loss" and not generation:
        logged = ["eval_loss", *(GENERATION_METRICS if args.eval_generation_examples else ())]
        raise UserError(
            f"{sweep.path}: objective {sweep.objective}: never logged by this recipe's evaluations (logged: "
            f"{', '.join(logged)}; generation metrics need eval_generation_examples)"
        )
