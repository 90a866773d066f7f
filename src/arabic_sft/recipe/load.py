"""The one recipe loader: a recipe YAML (with the task preset it names) plus command-line overrides, read once into
one `Recipe` that every script, the launcher and the console program ask.

A recipe sets three kinds of fields: ours (`RecipeArguments`, recipe.schema), TRL's `ModelConfig` (model, 4-bit,
LoRA) and TRL's `SFTConfig` (training). TRL's parser types them all from one YAML read; the TRL dataclasses are built
only when asked for. Reading a recipe never probes the machine (training fits it to the machine as a step of its
own: `training.launch.check_in_process`). `check.read_fields` reads fields without loading TRL.
"""

import argparse
import copy
import os
import sys
from dataclasses import fields
from functools import cached_property
from pathlib import Path
from types import MappingProxyType

from arabic_sft.named import read_yaml
from arabic_sft.recipe.check import check_values, read_preset, with_presets
from arabic_sft.recipe.defaults import project_defaults
from arabic_sft.recipe.help import DESCRIPTION, USAGE, short_help
from arabic_sft.recipe.schema import RECIPES_DIR, RecipeArguments
from arabic_sft.runtime.errors import UserError


def make_parser(source: str | None = None):
    """TRL's parser of our fields, `SFTConfig` and `ModelConfig`; its errors are one-line `UserError`s."""
    from trl import ModelConfig, SFTConfig, TrlParser

    class RecipeParser(TrlParser):
        @staticmethod
        def _parse_dataclass_field(parser, item):
            # The parser passes a field's metadata to argparse, which knows no `group`.
            if "group" in item.metadata:
                item = copy.copy(item)
                item.metadata = MappingProxyType({k: v for k, v in item.metadata.items() if k != "group"})
            TrlParser._parse_dataclass_field(parser, item)

    parser = RecipeParser((RecipeArguments, SFTConfig, ModelConfig), usage=USAGE, description=DESCRIPTION)

    def one_line_error(message: str):
        # argparse would print the whole usage (hundreds of fields) before the message.
        raise UserError(f"{source}: {message}" if source else message)

    parser.error = one_line_error
    return parser


def _flag_value(args: list[str], flag: str) -> str | None:
    """The value of `--flag VALUE` or `--flag=VALUE` in `args` (the last one given), or None."""
    value = None
    for index, arg in enumerate(args):
        if arg == flag:
            if index + 1 >= len(args):
                raise UserError(f"{flag} needs a value")
            value = args[index + 1]
        elif arg.startswith(flag + "="):
            value = arg.split("=", 1)[1]
    return value


def _given_on_command_line(parser, args: list[str]) -> set[str]:
    """The fields that `--FIELD VALUE` (or `--FIELD=VALUE`, `--no_FIELD`) arguments set."""
    actions = parser._option_string_actions  # argparse's map of option string to action
    return {actions[name].dest for arg in args if (name := arg.split("=", 1)[0]) in actions and name.startswith("--")}


def _without_config(args: list[str]) -> list[str]:
    kept, skip = [], False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--config":
            skip = True
        elif not arg.startswith("--config="):
            kept.append(arg)
    return kept


class Recipe:
    """A recipe as read once: `path`, `fields` (every field, typed by TRL's parser), `args` (our `RecipeArguments`),
    and TRL's `model` (`ModelConfig`) and `training` (`SFTConfig`, checked against this machine) when asked for."""

    def __init__(
        self, path: Path | None, values: dict, explicit: set[str] | None = None, given: set[str] = frozenset()
    ):
        self.path = path
        self.given = frozenset(given)  # the fields the command line set
        self.fields = argparse.Namespace(**values)
        # The fields the recipe, its preset or the command line set (the rest are defaults: TRL's, ours, the machine's)
        self.explicit = frozenset(values if explicit is None else explicit)
        self.source = str(path) if path else "arguments"
        self.args = self._build(RecipeArguments)

    def choose(self, values: dict) -> None:
        """Set fields the recipe left unset (the machine's choices: precision, launch config), before `training` is
        built."""
        if "training" in vars(self):
            raise RuntimeError("choose() after SFTConfig was built")
        for name, value in values.items():
            setattr(self.fields, name, value)
        self.explicit = self.explicit | set(values)
        self.args = self._build(RecipeArguments)

    @property
    def name(self) -> str | None:
        """The recipe's name: its file's stem (results/<name>/ holds what it produced)."""
        return self.path.stem if self.path else None

    def _build(self, cls, taken: tuple = ()):
        names = {item.name for item in fields(cls) if item.init} - {
            item.name for earlier in taken for item in fields(earlier) if item.init
        }
        try:
            return cls(**{name: value for name, value in vars(self.fields).items() if name in names})
        except ValueError as error:
            raise UserError(f"{self.source}: {str(error).splitlines()[0]}") from None

    @cached_property
    def model(self):
        from trl import ModelConfig, SFTConfig

        return self._build(ModelConfig, (RecipeArguments, SFTConfig))

    @cached_property
    def training(self):
        """TRL's `SFTConfig`. Training fits the recipe to the machine first (`training.launch.check_in_process`: the
        precision chosen, what this machine cannot run said in one line); reading it never probes the machine."""
        from trl import SFTConfig

        return self._build(SFTConfig, (RecipeArguments,))


def recipe_path(args: list[str]) -> str | None:
    """The recipe a command line names: `--config PATH`, else `recipes/$RECIPE.yaml` when `$RECIPE` is set."""
    path = _flag_value(args, "--config")
    if path is None and os.environ.get("RECIPE") and not {"-h", "--help"} & set(args):
        path = str(RECIPES_DIR / f"{os.environ['RECIPE']}.yaml")
    return path


def load_recipe(args: list[str] | None = None) -> Recipe:
    """The recipe of a command line (`--config RECIPE.yaml`, else `$RECIPE`) with its overrides (`--FIELD VALUE`).

    The YAML is read once; a `task:` preset fills the prompt fields the recipe leaves unset (a `--task` on the command
    line replaces the recipe's values with its preset's). Without a recipe the arguments must name the model. Every
    error (file, YAML, unknown key, bad value) is a `UserError` naming the file and field.
    """
    args = list(sys.argv[1:] if args is None else args)
    if {"-h", "--help", "--help_all"} & set(args):
        parser = make_parser()
        print(parser.format_help() if "--help_all" in args else short_help(parser))
        raise SystemExit(0)
    path = recipe_path(args)
    overrides = _without_config(args)
    if path is None and not {"-h", "--help", "--model_name_or_path"} & set(args):
        raise UserError(
            "no recipe given: pass --config recipes/NAME.yaml, or set RECIPE=NAME (make train RECIPE=NAME)"
        )
    values = read_yaml(path) if path else {}
    if path:
        check_values(path, values)  # a mistyped recipe refused in a second, before TRL is imported
    parser = make_parser(path)
    known = {action.dest for action in parser._actions}
    if unknown := sorted(set(values) - known - {"env"}):
        raise UserError(f"{path}: unknown recipe key(s): {', '.join(unknown)} (see --help for the fields)")
    if not isinstance(values.get("env", {}), dict):
        raise UserError(f"{path}: env: must be a mapping of variable: value")
    for key, value in values.pop("env", {}).items():  # as TRL's parser does
        os.environ[key] = str(value)
    values = with_presets(values, path)
    if task := _flag_value(overrides, "--task"):
        values = {**values, **read_preset(task, "--task"), "task": task}
    parser.set_defaults_with_config(**values)
    namespace = vars(parser.parse_args(overrides))
    given = _given_on_command_line(parser, overrides)
    explicit = set(values) | given
    namespace.update(project_defaults(namespace, explicit))
    return Recipe(Path(path) if path else None, namespace, explicit, given)


def one_run(recipe: Recipe, stage: str) -> None:
    """A stage that works on the recipe's one trained model refuses, in one line, a recipe trained with several seeds
    (one model per seed: the console program runs the stage for each, or the command names one seed's files)."""
    if recipe.args.seeds:
        raise UserError(
            f"{recipe.source}: seeds {recipe.args.seeds}: one model per seed, in results/{recipe.name}/seed-N/; "
            f"`arabic-sft {stage} {recipe.name}` (make {stage}) runs it for each seed, or name one seed's files here"
        )
