"""The one recipe loader: a recipe YAML (with the task preset it names) plus command-line overrides, read once into
one `Recipe` that every script, the launcher and `python -m arabic_sft.recipe` ask.

A recipe sets three kinds of fields: ours (`RecipeArguments`, below, each declaring its group), TRL's `ModelConfig`
(model, 4-bit, LoRA) and TRL's `SFTConfig` (training). TRL's parser types them all from one YAML read; the TRL
dataclasses are built only when asked for, because `SFTConfig` checks this machine (a GPU recipe's `bf16: true` is
refused on a CPU), which generation and scoring must not. This module imports neither torch nor model code.

    python -m arabic_sft.recipe recipes/demo.yaml output_dir accelerate_config    # one value per line
"""

import argparse
import copy
import json
import os
import sys
from dataclasses import dataclass, field, fields
from functools import cached_property
from pathlib import Path
from types import MappingProxyType

from arabic_sft import named
from arabic_sft.named import read_yaml
from arabic_sft.runtime.errors import UserError, run_cli


RECIPES_DIR = named.folder("recipe")

# The group each of our fields belongs to (declared on the field): where it is used.
GROUPS = {
    "data": "where the rows are and how they are read (arabic_sft.data)",
    "prompt": "how a row becomes a prompt and an answer (arabic_sft.data.columns, arabic_sft.prompts); a task preset "
    "sets these",
    "training": "how training runs beyond SFTConfig (arabic_sft.training)",
    "evaluation": "what is measured during and after training (training.eval_generation, arabic_sft.scoring)",
    "general": "general ability before and after fine-tuning, through lm-evaluation-harness (arabic_sft.general)",
    "publishing": "what the model card says and make publish needs (arabic_sft.publishing)",
    "launch": "how make train launches it (arabic_sft.training.launch)",
}


def _field(group: str, default, help: str, **metadata):
    return field(default=default, metadata={"group": group, "help": help, **metadata})


@dataclass
class RecipeArguments:
    """Our fields of a recipe; model fields are TRL's `ModelConfig`, training fields its `SFTConfig`."""

    # Data: files, or a `datasets` dataset
    train_file: str | None = _field(
        "data", None, "Training data: .csv, .jsonl/.json, .parquet, or a save_to_disk directory."
    )
    validation_file: str | None = _field("data", None, "Validation data (eval loss, best model).")
    test_file: str | None = _field("data", None, "Test data, used by generation and scoring.")
    dataset_name: str | None = _field(
        "data", None, "Instead of files: a dataset on the Hub or a local dataset directory (datasets.load_dataset)."
    )
    dataset_config: str | None = _field("data", None, "dataset_name's configuration (subset).")
    dataset_revision: str | None = _field("data", None, "dataset_name's revision (a commit pins it).")
    train_split: str = _field("data", "train", "dataset_name's training split.")
    validation_split: str | None = _field("data", None, "dataset_name's validation split.")
    test_split: str | None = _field("data", None, "dataset_name's test split.")
    validation_fraction: float = _field(
        "data", 0.0, "Without a validation file or split: hold out this fraction of train (seeded by `seed`)."
    )
    test_fraction: float = _field(
        "data", 0.0, "Without a test file or split: hold out this fraction of train for generation and scoring."
    )
    csv_encoding: str = _field("data", "utf-8-sig", "Encoding of the CSV files.")
    empty_cells: str = _field(
        "data",
        "drop",
        "Rows with an empty required cell: 'drop' (with a count) or 'error'.",
        choices=["drop", "error"],
    )
    # Columns and prompt
    task: str | None = _field(
        "prompt", None, "A preset that fills the fields below: recipes/tasks/NAME.yaml (or a path to such a YAML)."
    )
    prompt_template: str | None = _field(
        "prompt",
        None,
        "Prompt with {placeholder}s filled from the columns. Unset: the data must be in TRL's formats (a `messages` "
        "column, or `prompt` and `completion` columns).",
    )
    columns: dict | str | None = _field(
        "prompt",
        None,
        "Column of each placeholder and of the answer: a name or a list of names (any case). Unset: the column named "
        "like the placeholder.",
    )
    answer_column: str = _field("prompt", "answer", "The placeholder (key of `columns`) of the answer.")
    output_columns: dict | str | None = _field(
        "prompt",
        None,
        "Predictions CSV column names: {placeholder: name, generated: name}. Default: the inputs' own column names, "
        "Reference_<answer column>, Generated_<answer column>.",
    )
    chat_format: str = _field(
        "prompt",
        "auto",
        "'chat': wrap the prompt in the tokenizer's chat template; 'plain': raw text; 'auto': chat when the "
        "tokenizer has a template.",
        choices=["auto", "chat", "plain"],
    )
    # Training, beyond TRL's SFTConfig
    truncation: str = _field(
        "training",
        "warn",
        "Examples whose prompt + answer exceed max_length (TRL cuts them from the end, EOS included): 'warn' (count "
        "them), 'drop' them (with a count), or 'error'.",
        choices=["warn", "drop", "error"],
    )
    subsample_fraction: float = _field(
        "training", 1.0, "Train on this random fraction of the train/validation rows (seed: `seed`)."
    )
    loss_from_logits: bool = _field(
        "training",
        False,
        "Compute the loss from the logits the model returns instead of TRL's fused LM-head loss (for models that "
        "scale their logits in their own forward, e.g. Jais).",
    )
    adapter_dtype: str = _field(
        "training",
        "auto",
        "dtype of the trained LoRA parameters. 'auto': as TRL and PEFT store them (fp32; bf16 for a 4-bit model or "
        "under ZeRO-3), fp32 under fp16 mixed precision (its grad scaler needs it). 'bfloat16': bf16 adapters with a "
        "bf16 base (faster on a GPU: no fp32 adapter matmuls; updates are rounded to bf16). 'float32': fp32 adapters.",
        choices=["auto", "bfloat16", "float32"],
    )
    check_loss_parity: bool = _field(
        "training", True, "Before training, check that the trainer's loss equals the model's own loss on one batch."
    )
    overwrite_output_dir: bool = _field(
        "training",
        False,
        "Train again from scratch into an output_dir that holds a finished or unfinished run (its checkpoints and "
        "manifest are removed first). Without it, a finished run is left as it is and an unfinished one resumes.",
    )
    inspect: int = _field(
        "training", 0, "Print N rendered training examples with their masks, then exit without training."
    )
    inspect_json: str | None = _field(
        "training", None, "With --inspect: also write the examples as JSON (answer, prompt, completion)."
    )
    seeds: list[int] | None = _field(
        "training",
        None,
        "make train: one complete run per seed, in results/<recipe>/seed-N/. make eval follows; compare and report "
        "treat the runs as one system with the seeds' variance in every interval (SEEDS='1 2 3' says the same).",
    )
    # Evaluation
    eval_generation_examples: int = _field(
        "evaluation",
        0,
        "At each evaluation, generate for this many validation rows (a fixed subset; 0 = off) and log eval_bleu4, "
        "eval_rougeL, eval_chrf, eval_arabic_ratio, eval_empty_rate (usable as metric_for_best_model) with the "
        "answers in output_dir/eval_generations/.",
    )
    eval_generation_max_new_tokens: int = _field("evaluation", 64, "Token limit of those answers.")
    eval_generation_batch_size: int = _field("evaluation", 16, "Prompts per batch for those answers.")
    published_baseline: str | None = _field(
        "evaluation",
        None,
        "Published results shown beside this recipe's (a file in data/published/).",
        choices=named.names("published"),
    )
    judge_rubric: str = _field(
        "evaluation", "qa_reference", "The judge's rubric: recipes/judges/NAME.yaml, or a path to such a YAML."
    )
    judge_url: str | None = _field(
        "evaluation",
        None,
        "An OpenAI-compatible endpoint of the judge (http://127.0.0.1:8000/v1 for `vllm serve`); unset: judge_model "
        "runs here.",
    )
    judge_model: str | None = _field(
        "evaluation",
        None,
        "The judge: with judge_url, the model name the endpoint serves; without, a Hugging Face chat model (an id or "
        "a path) run here through the batched generator. Unset: no judge.",
    )
    judge_revision: str | None = _field("evaluation", None, "A local judge's Hub revision (a commit, to pin it).")
    judge_adapter: str | None = _field("evaluation", None, "A LoRA adapter directory on a local judge model.")
    judge_load_in_4bit: bool = _field("evaluation", False, "Load a local judge in 4 bits (nf4; a GPU).")
    judge_api_key_env: str | None = _field(
        "evaluation", None, "The environment variable that holds the endpoint's API key (the key is never written)."
    )
    judge_language: str = _field(
        "evaluation", "en", "The language of the judge's prompts (the rubric has both).", choices=["en", "ar"]
    )
    group_column: str | None = _field(
        "evaluation",
        None,
        "A column of the data to break the comparison down by (category): every metric per group, with intervals, in "
        "compare's markdown and FILE.groups.csv.",
    )
    bertscore_model: str | None = _field(
        "evaluation",
        None,
        "BERTScore's model for score.py (an id, or a local path offline); unset: bert-base-multilingual-cased.",
    )
    semantic_model: str | None = _field(
        "evaluation",
        None,
        "The sentence-transformers model of semantic similarity (an id or a local path); unset: "
        "paraphrase-multilingual-mpnet-base-v2.",
    )
    # General ability (make general)
    general_tasks: list[str] | None = _field(
        "general",
        None,
        "lm-eval tasks for make general. Unset: arabicmmlu, arabic_leaderboard_alghafa, aexams, arab_culture "
        "(they need the Hub once); arabic_sft_mcq is the project's local task (40 questions, offline).",
    )
    general_num_fewshot: int = _field("general", 0, "Few-shot examples per question (both models).")
    general_batch_size: int = _field("general", 8, "lm-eval's batch size (requests per forward pass).")
    general_chat_template: bool = _field(
        "general", False, "Questions through the chat template, both models. Few-shot examples become turns."
    )
    general_backend: str = _field(
        "general",
        "hf",
        "lm-eval's backend: hf or vllm. vllm: pip install lm-eval[vllm], a GPU.",
        choices=["hf", "vllm"],
    )
    # Publishing (the model card, make publish)
    license: str | None = _field(
        "publishing",
        None,
        "The model's Hub license id (cc-by-4.0). make publish needs it: one the base model's and the data's licenses "
        "allow.",
    )
    data_source: str | None = _field(
        "publishing",
        None,
        "The data's source: data/sources/NAME.yaml or a path. It holds the title, url, license, hub_id and citation "
        "the model card shows.",
    )
    # Launch
    accelerate_config: str | None = _field(
        "launch",
        None,
        "Launch config in accelerate_configs/ that make train uses. Unset: the one that fits this machine (cpu "
        "without a GPU, single_gpu with one, ddp with several: one process per GPU).",
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


def fields_in(*groups: str) -> tuple[str, ...]:
    """The names of our fields in `groups`."""
    return tuple(item.name for item in fields(RecipeArguments) if item.metadata["group"] in groups)


def field_choices(name: str) -> list:
    """The values one of our fields accepts."""
    return next(item.metadata["choices"] for item in fields(RecipeArguments) if item.name == name)


# The project's defaults, where TRL's would leave a first run silent; any value a recipe, its preset or the command
# line sets wins. Those that depend on the machine (precision, launch config) are chosen by `training.launch`.
PROJECT_DEFAULTS = {
    "logging_first_step": True,  # the loss before any update: what "did the loss move?" is measured against
}
# With validation rows and no `eval_strategy`: evaluate every 20% of the steps (5 times).
EVAL_DEFAULTS = {"eval_strategy": "steps", "eval_steps": 0.2}
# LoRA without a `learning_rate`: TRL's 2e-5 suits full fine-tuning; adapters learn at about ten times that.
LORA_LEARNING_RATE = 2.0e-4


def has_validation(values: dict) -> bool:
    return bool(values.get("validation_file") or values.get("validation_split") or values.get("validation_fraction"))


def project_defaults(values: dict, explicit: set[str]) -> dict:
    """The project's defaults for the fields not in `explicit` (those the recipe, its preset or the command line
    set), given the recipe's `values` (parsed, TRL's defaults included)."""
    defaults = {name: value for name, value in PROJECT_DEFAULTS.items() if name not in explicit}
    if "eval_strategy" not in explicit and has_validation(values):
        defaults.update({name: value for name, value in EVAL_DEFAULTS.items() if name not in explicit})
    if "learning_rate" not in explicit and values.get("use_peft"):
        defaults["learning_rate"] = LORA_LEARNING_RATE
    return defaults


# What a task preset may set: how a dataset's columns make a prompt (not which preset: that is the recipe's choice).
PRESET_FIELDS = tuple(name for name in fields_in("prompt") if name != "task")

USAGE = """sft.py --config recipes/NAME.yaml [--FIELD VALUE ...]
       RECIPE=NAME sft.py [--FIELD VALUE ...]          (runs recipes/NAME.yaml)"""

DESCRIPTION = """A recipe (YAML) sets the fields below: our data and prompt fields, TRL's SFTConfig (training) and
ModelConfig (model, 4-bit, LoRA). Any field can be overridden on the command line (--learning_rate 1e-4)."""


# The TRL fields `--help` shows (`--help_all`: every one), grouped as our fields are.
COMMON_FIELDS = {
    "model": (
        "TRL's ModelConfig: which model, 4-bit, LoRA",
        "model_name_or_path model_revision dtype trust_remote_code attn_implementation use_peft lora_r lora_alpha "
        "lora_dropout lora_target_modules load_in_4bit bnb_4bit_quant_type use_bnb_nested_quant",
    ),
    "trainer": (
        "TRL's SFTConfig, the fields most recipes set",
        "output_dir num_train_epochs max_steps per_device_train_batch_size gradient_accumulation_steps learning_rate "
        "lr_scheduler_type warmup_steps max_length packing bf16 fp16 use_cpu gradient_checkpointing eval_strategy "
        "eval_steps save_strategy save_steps save_total_limit logging_steps load_best_model_at_end "
        "metric_for_best_model report_to resume_from_checkpoint seed",
    ),
}


def short_help(parser) -> str:
    """`--help`: our fields by group, then the TRL fields most recipes set, with the first sentence of their help."""
    actions = {}
    for action in parser._actions:  # a bool field that defaults to true has --field, then --no_field
        actions.setdefault(action.dest, action)
    short = argparse.ArgumentParser(
        usage=USAGE,
        description=DESCRIPTION + " The project's defaults and the machine's choices: docs/training.md.",
        epilog="--help_all lists every field (all of TRL's SFTConfig and ModelConfig).",
        add_help=False,
    )
    sections = [(group, GROUPS[group], fields_in(group)) for group in GROUPS]
    sections += [(group, title, names.split()) for group, (title, names) in COMMON_FIELDS.items()]
    for group, title, names in sections:
        container = short.add_argument_group(f"{group}: {title}")
        for name in names:
            action = copy.copy(actions[name])
            action.option_strings = action.option_strings[:1]  # --field only, not also --field-name
            action.help = (action.help or "").split(". ")[0].rstrip(".") + "."
            container._add_action(action)
    return short.format_help()


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
    parser = make_parser(path)
    known = {action.dest for action in parser._actions}
    if unknown := sorted(set(values) - known - {"env"}):
        raise UserError(f"{path}: unknown recipe key(s): {', '.join(unknown)} (see --help for the fields)")
    if not isinstance(values.get("env", {}), dict):
        raise UserError(f"{path}: env: must be a mapping of variable: value")
    for key, value in values.pop("env", {}).items():  # as TRL's parser does
        os.environ[key] = str(value)
    if task := values.get("task"):
        values = {**read_preset(task, path), **values}
    if task := _flag_value(overrides, "--task"):
        values = {**values, **read_preset(task, "--task"), "task": task}
    parser.set_defaults_with_config(**values)
    namespace = vars(parser.parse_args(overrides))
    given = _given_on_command_line(parser, overrides)
    explicit = set(values) | given
    namespace.update(project_defaults(namespace, explicit))
    return Recipe(Path(path) if path else None, namespace, explicit, given)


def read_fields(path: str | Path, *names: str) -> dict:
    """Some of our fields as a recipe file sets them (its task preset included), else their defaults: a quick read
    that loads no TRL, for what decides which stages run (the console program). `load_recipe` checks the whole."""
    values = read_yaml(path)
    if task := values.get("task"):
        values = {**read_preset(task, path), **values}
    defaults = {item.name: item.default for item in fields(RecipeArguments)}
    chosen = {name: values.get(name, defaults[name]) for name in names}
    seeds = chosen.get("seeds")
    if seeds is not None and not (isinstance(seeds, list) and all(isinstance(seed, int) for seed in seeds)):
        raise UserError(f"{path}: seeds: a list of whole numbers, got {seeds!r}")
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description="Print fields of a recipe as loaded (preset and defaults applied).")
    parser.add_argument("recipe", help="recipes/NAME.yaml, or NAME")
    parser.add_argument("field", nargs="+", help="field names (ours, SFTConfig's or ModelConfig's)")
    options = parser.parse_args()
    path = str(named.find("recipe", options.recipe))
    recipe = load_recipe(["--config", path])
    for name in options.field:
        if not hasattr(recipe.fields, name):
            raise UserError(f"{name}: not a recipe field (see scripts/sft.py --help)")
        value = getattr(recipe.fields, name)
        print(json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else value)


if __name__ == "__main__":
    run_cli(main)
