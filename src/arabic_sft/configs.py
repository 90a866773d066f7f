"""Recipe fields beyond TRL's, and the parser that turns a recipe YAML (+ command-line overrides) into dataclasses."""

import argparse
import json
import os
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

import yaml
from trl import ModelConfig, SFTConfig, TrlParser

from arabic_sft.cli import UserError
from arabic_sft.models import ADAPTER_DTYPES
from arabic_sft.report import PUBLISHED


RECIPES_DIR = Path("recipes")
PROJECT_ROOT = Path(__file__).resolve().parents[2]


@dataclass
class RecipeArguments:
    """Data, prompt and launch fields of a recipe; model fields are TRL's `ModelConfig`, training `SFTConfig`."""

    # Data: files, or a `datasets` dataset
    train_file: str | None = field(
        default=None, metadata={"help": "Training data: .csv, .jsonl/.json, .parquet, or a save_to_disk directory."}
    )
    validation_file: str | None = field(default=None, metadata={"help": "Validation data (eval loss, best model)."})
    test_file: str | None = field(default=None, metadata={"help": "Test data, used by generation and scoring."})
    dataset_name: str | None = field(
        default=None,
        metadata={
            "help": "Instead of files: a dataset on the Hub or a local dataset directory (datasets.load_dataset)."
        },
    )
    dataset_config: str | None = field(default=None, metadata={"help": "dataset_name's configuration (subset)."})
    dataset_revision: str | None = field(
        default=None, metadata={"help": "dataset_name's revision (a commit pins it)."}
    )
    train_split: str = field(default="train", metadata={"help": "dataset_name's training split."})
    validation_split: str | None = field(default=None, metadata={"help": "dataset_name's validation split."})
    test_split: str | None = field(default=None, metadata={"help": "dataset_name's test split."})
    validation_fraction: float = field(
        default=0.0,
        metadata={"help": "Without a validation file or split: hold out this fraction of train (seeded by `seed`)."},
    )
    test_fraction: float = field(
        default=0.0,
        metadata={"help": "Without a test file or split: hold out this fraction of train for generation and scoring."},
    )
    # Columns and prompt
    task: str | None = field(
        default=None,
        metadata={"help": "A preset that fills the fields below: recipes/tasks/NAME.yaml (or a path to such a YAML)."},
    )
    prompt_template: str | None = field(
        default=None,
        metadata={
            "help": "Prompt with {placeholder}s filled from the columns. Unset: the data must be in TRL's formats "
            "(a `messages` column, or `prompt` and `completion` columns)."
        },
    )
    columns: dict | str | None = field(
        default=None,
        metadata={
            "help": "Column of each placeholder (and of the answer): a name or a list of accepted names, matched "
            "case-insensitively. Unset: the column named like the placeholder."
        },
    )
    answer_column: str = field(
        default="answer", metadata={"help": "The placeholder (key of `columns`) of the answer."}
    )
    output_columns: dict | str | None = field(
        default=None,
        metadata={
            "help": "Predictions CSV column names: {placeholder: name, generated: name}. Default: the inputs' own "
            "column names, Reference_<answer column>, Generated_<answer column>."
        },
    )
    chat_format: str = field(
        default="auto",
        metadata={
            "help": "'chat': wrap the prompt in the tokenizer's chat template; 'plain': raw text; "
            "'auto': chat when the tokenizer has a template.",
            "choices": ["auto", "chat", "plain"],
        },
    )
    csv_encoding: str = field(default="utf-8-sig", metadata={"help": "Encoding of the CSV files."})
    truncation: str = field(
        default="warn",
        metadata={
            "help": "Examples whose prompt + answer exceed max_length (TRL cuts them from the end, EOS included): "
            "'warn' (count them), 'drop' them (with a count), or 'error'.",
            "choices": ["warn", "drop", "error"],
        },
    )
    empty_cells: str = field(
        default="drop",
        metadata={
            "help": "Rows with an empty required cell: 'drop' (with a count) or 'error'.",
            "choices": ["drop", "error"],
        },
    )
    subsample_fraction: float = field(
        default=1.0, metadata={"help": "Train on this random fraction of the train/validation rows (seed: `seed`)."}
    )
    published_baseline: str | None = field(
        default=None,
        metadata={
            "help": "Published results shown beside this recipe's in make eval's table.",
            "choices": sorted(PUBLISHED),
        },
    )
    accelerate_config: str = field(
        default="single_gpu", metadata={"help": "Launch config in accelerate_configs/ that `make train` uses."}
    )
    loss_from_logits: bool = field(
        default=False,
        metadata={
            "help": "Compute the loss from the logits the model returns instead of TRL's fused LM-head loss "
            "(for models that scale their logits in their own forward, e.g. Jais)."
        },
    )
    adapter_dtype: str = field(
        default="auto",
        metadata={
            "help": "dtype of the trained LoRA parameters. 'auto': as TRL and PEFT store them (fp32; bf16 for a 4-bit "
            "model or under ZeRO-3), fp32 under fp16 mixed precision (its grad scaler needs it). 'bfloat16': bf16 "
            "adapters with a bf16 base (faster on a GPU: no fp32 adapter matmuls; updates are rounded to bf16). "
            "'float32': fp32 adapters.",
            "choices": list(ADAPTER_DTYPES),
        },
    )
    eval_generation_examples: int = field(
        default=0,
        metadata={
            "help": "At each evaluation, generate for this many validation rows (a fixed subset; 0 = off) and log "
            "eval_bleu4, eval_rougeL, eval_chrf, eval_arabic_ratio, eval_empty_rate (usable as "
            "metric_for_best_model) with the answers in output_dir/eval_generations/."
        },
    )
    eval_generation_max_new_tokens: int = field(default=64, metadata={"help": "Token limit of those answers."})
    eval_generation_batch_size: int = field(default=16, metadata={"help": "Prompts per batch for those answers."})
    check_loss_parity: bool = field(
        default=True,
        metadata={"help": "Before training, check that the trainer's loss equals the model's own loss on one batch."},
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={
            "help": "Train again from scratch into an output_dir that holds a finished or unfinished run (its "
            "checkpoints and manifest are removed first). Without it, a finished run is left as it is and an "
            "unfinished one resumes."
        },
    )
    inspect: int = field(
        default=0,
        metadata={"help": "Print N rendered training examples with their masks, then exit without training."},
    )
    inspect_json: str | None = field(
        default=None,
        metadata={"help": "With --inspect: also write the examples as JSON (answer, prompt, completion)."},
    )

    def __post_init__(self):
        for name in ("columns", "output_columns"):  # a mapping; on the command line, as JSON
            value = getattr(self, name)
            if isinstance(value, str):
                try:
                    setattr(self, name, value := json.loads(value))
                except json.JSONDecodeError:
                    raise ValueError(f"{name}: not a JSON mapping: {value}") from None
            if value is not None and not isinstance(value, dict):
                raise ValueError(f"{name}: must be a mapping of placeholder: column name, got {value!r}")
        # argparse checks `choices` on the command line only, not on values that come from the recipe YAML.
        for item in fields(self):
            choices = item.metadata.get("choices")
            value = getattr(self, item.name)
            if choices and value is not None and value not in choices:
                raise ValueError(f"{item.name}: {value!r} is not one of {', '.join(map(str, choices))}")


# The fields that say where the data is and how its rows become prompts (what generation needs of a recipe).
DATA_FIELDS = (
    "train_file", "validation_file", "test_file", "dataset_name", "dataset_config", "dataset_revision", "train_split",
    "validation_split", "test_split", "validation_fraction", "test_fraction", "task", "prompt_template", "columns",
    "answer_column", "output_columns", "chat_format", "csv_encoding", "empty_cells",
)  # fmt: skip

USAGE = """sft.py --config recipes/NAME.yaml [--FIELD VALUE ...]
       RECIPE=NAME sft.py [--FIELD VALUE ...]          (runs recipes/NAME.yaml)"""

DESCRIPTION = """A recipe (YAML) sets the fields below: our data and prompt fields, TRL's SFTConfig (training) and
ModelConfig (model, 4-bit, LoRA). Any field can be overridden on the command line (--learning_rate 1e-4)."""


def make_parser() -> TrlParser:
    return TrlParser((RecipeArguments, SFTConfig, ModelConfig), usage=USAGE, description=DESCRIPTION)


def _config_path(args: list[str]) -> str | None:
    if "--config" in args:
        index = args.index("--config")
        if index + 1 >= len(args):
            raise UserError("--config needs a recipe path")
        return args[index + 1]
    return None


def read_recipe(path: str | Path) -> dict:
    """A recipe's fields as written, checked (file, YAML mapping, known keys) without building a training config.

    Generation and scoring need a few of its fields, not training arguments that are valid on this machine (a GPU
    recipe's `bf16: true` is refused by `SFTConfig` on a CPU). Errors are `UserError`s naming the file and key.
    """
    if not Path(path).is_file():
        raise UserError(f"{path}: recipe not found")
    try:
        recipe = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise UserError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(recipe, dict):
        raise UserError(f"{path}: a recipe must be a YAML mapping of field: value")
    known = {action.dest for action in make_parser()._actions} | {"env"}
    unknown = sorted(set(recipe) - known)
    if unknown:
        raise UserError(f"{path}: unknown recipe key(s): {', '.join(unknown)} (see --help for the fields)")
    return {**read_preset(recipe["task"], path), **recipe} if recipe.get("task") else recipe


# What a task preset may set: how a dataset's columns make a prompt, nothing about models or training.
PRESET_FIELDS = ("prompt_template", "columns", "answer_column", "output_columns", "chat_format")


def read_preset(task: str, recipe_path: str | Path = "arguments") -> dict:
    """The fields of a task preset: `recipes/tasks/<task>.yaml`, or a YAML file's path. A recipe's own values win."""
    path = Path(task) if str(task).endswith((".yaml", ".yml")) else RECIPES_DIR / "tasks" / f"{task}.yaml"
    if not path.is_file() and not path.is_absolute() and (PROJECT_ROOT / path).is_file():
        path = PROJECT_ROOT / path  # the project's own presets, from any directory
    if not path.is_file():
        known = sorted(item.stem for item in (PROJECT_ROOT / RECIPES_DIR / "tasks").glob("*.yaml"))
        raise UserError(f"{recipe_path}: task '{task}': no preset {path} (presets: {', '.join(known) or 'none'})")
    try:
        preset = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise UserError(f"{path}: not valid YAML ({str(error).splitlines()[0]})") from None
    if not isinstance(preset, dict) or not set(preset) <= set(PRESET_FIELDS):
        raise UserError(f"{path}: a task preset is a mapping of {', '.join(PRESET_FIELDS)}")
    return preset


def recipe_arguments(recipe: dict, path: str | Path) -> RecipeArguments:
    """The `RecipeArguments` of the recipe at `path`, read with `read_recipe` (defaults for the fields it omits)."""
    names = {item.name for item in fields(RecipeArguments)}
    try:
        return RecipeArguments(**{key: value for key, value in recipe.items() if key in names})
    except ValueError as error:
        raise UserError(f"{path}: {error}") from None


def with_recipe(args: list[str] | None = None) -> tuple[str | None, list[str]]:
    """(recipe path, arguments that name it): `--config RECIPE.yaml`, else the recipe named by `$RECIPE`.

    Without either, the arguments must name the model (`--model_name_or_path`): a `UserError` says how to give a
    recipe. The recipe file is checked (exists, YAML mapping, known keys).
    """
    args = list(args) if args is not None else sys.argv[1:]
    path = _config_path(args)
    if path is None and os.environ.get("RECIPE") and not {"-h", "--help"} & set(args):
        path = str(RECIPES_DIR / f"{os.environ['RECIPE']}.yaml")
        args = ["--config", path, *args]
    if path is not None:
        read_recipe(path)
    elif not {"-h", "--help", "--model_name_or_path"} & set(args):
        raise UserError(
            "no recipe given: pass --config recipes/NAME.yaml, or set RECIPE=NAME (make train RECIPE=NAME)"
        )
    return path, args


def _recipe_parser(path: str | None) -> TrlParser:
    parser = make_parser()

    def one_line_error(message: str):
        # argparse would print the whole usage (hundreds of fields) before the message.
        raise UserError(f"{path}: {message}" if path else message)

    parser.error = one_line_error
    return parser


def recipe_fields(args: list[str] | None = None) -> tuple[str | None, argparse.Namespace]:
    """(recipe path, every field as the recipe and the command line set it), read by TRL's parser without building
    the dataclasses, whose checks of this machine (bf16 on a CPU) would fail in every process of a launch before the
    launch itself can be checked."""
    path, args = with_recipe(args)
    parser = _recipe_parser(path)
    if path is not None:
        parser.set_defaults_with_config(**{key: value for key, value in read_recipe(path).items() if key != "env"})
        args = [
            arg
            for index, arg in enumerate(args)
            if arg != "--config" and (index == 0 or args[index - 1] != "--config")
        ]
    fields_, _ = parser.parse_known_args(args)
    return path, fields_


def parse_recipe(args: list[str] | None = None) -> tuple[RecipeArguments, SFTConfig, ModelConfig]:
    """Parse `--config RECIPE.yaml` plus overrides; without `--config`, the recipe named by `$RECIPE`.

    Unknown recipe keys and unreadable recipes are `UserError`s that name the file and key.
    """
    path, args = with_recipe(args)
    parser = _recipe_parser(path)
    if path is not None and (task := yaml.safe_load(Path(path).read_text(encoding="utf-8")).get("task")):
        parser.set_defaults_with_config(**read_preset(task, path))  # under the recipe's own values
    try:
        return parser.parse_args_and_config(args)
    except ValueError as error:
        raise UserError(f"{path or 'arguments'}: {str(error).splitlines()[0]}") from None
