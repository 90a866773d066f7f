"""The recipe's schema: our fields, one dataclass per stage (each field declaring its group, default and help),
composed into `RecipeArguments`, which TRL's parser reads beside its `SFTConfig` and `ModelConfig`; and the few
helpers that read fields by group or take some of them on a script's command line. Data only: nothing here reads a
file, probes the machine or prints."""

import json
from dataclasses import dataclass, field, fields, replace
from pathlib import PurePath

from arabic_sft import named
from arabic_sft.runtime.errors import UserError


RECIPES_DIR = named.folder("recipe")


# The group each of our fields belongs to (declared on the field): where it is used.
GROUPS = {
    "data": "where the rows are and how they are read (arabic_sft.data)",
    "prompt": "how a row becomes a prompt and an answer (arabic_sft.data.columns, arabic_sft.prompts); a task preset "
    "sets these",
    "cleaning": "near-duplicate and contaminated rows: found by make data-check and before every training, dropped "
    "when asked (arabic_sft.data.cleaning)",
    "training": "how training runs beyond SFTConfig (arabic_sft.training)",
    "evaluation": "what is measured during and after training (training.eval_generation, arabic_sft.scoring)",
    "general": "general ability before and after fine-tuning, through lm-evaluation-harness (arabic_sft.general)",
    "publishing": "what the model card says and make publish needs (arabic_sft.publishing)",
    "launch": "how make train launches it (arabic_sft.training.launch)",
}


def _field(group: str, default, help: str, **metadata):
    return field(default=default, metadata={"group": group, "help": help, **metadata})


@dataclass
class DataArguments:
    """Where the rows are and how they are read (arabic_sft.data)."""

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
    datasets: list | str | None = _field(
        "data",
        None,
        "Several sources, each with a weight (docs/data.md).",
    )


@dataclass
class CleaningArguments:
    """Near-duplicate and contaminated rows (arabic_sft.data.cleaning): found by make data-check and before every
    training, dropped from the training rows when asked."""

    deduplicate: str = _field(
        "cleaning",
        "none",
        "Leave duplicate training rows out: exact, near, or none. 'exact': the same words after Arabic "
        "normalization; 'near': also a word-shingle Jaccard similarity of at least near_duplicate_threshold. The "
        "first copy in train is kept; a training row that copies a validation or test row is left out.",
        choices=["none", "exact", "near"],
    )
    decontaminate: bool = _field(
        "cleaning",
        False,
        "Leave out training rows that quote a test input or a benchmark question. A quote: a span of "
        "contamination_ngram words shared with a test input or a question of the recipe's general_tasks (and the "
        "local lm-eval task).",
    )
    near_duplicate_threshold: float = _field(
        "cleaning", 0.8, "The Jaccard similarity from which rows are near-duplicates, in (0, 1]. Over word shingles."
    )
    shingle_size: int = _field(
        "cleaning", 1, "Words per shingle for near-duplicates. 1: word sets, which one changed word moves little."
    )
    contamination_ngram: int = _field("cleaning", 8, "Words in a span that marks contamination.")


@dataclass
class PromptArguments:
    """How a row becomes a prompt and an answer (data.columns, prompts); a task preset sets these."""

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


@dataclass
class TrainingExtras:
    """How training runs, beyond TRL's SFTConfig (arabic_sft.training)."""

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


@dataclass
class EvaluationArguments:
    """What is measured during and after training (training.eval_generation, scoring, judging)."""

    eval_generation_examples: int = _field(
        "evaluation",
        0,
        "At each evaluation, generate for this many validation rows (a fixed subset; 0 = off) and log eval_bleu4, "
        "eval_rougeL, eval_chrf, eval_arabic_ratio, eval_empty_rate (usable as metric_for_best_model) with the "
        "answers in output_dir/eval_generations/.",
    )
    eval_generation_max_new_tokens: int = _field("evaluation", 64, "Token limit of those answers.")
    eval_generation_batch_size: int = _field("evaluation", 16, "Prompts per batch for those answers.")
    paper_baseline: str | None = _field(
        "evaluation",
        None,
        "A paper's results shown beside this recipe's (a file in data/paper_results/).",
        choices=named.names("paper"),
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
    endpoints: dict | str | None = _field(
        "evaluation",
        None,
        "Models behind OpenAI-compatible endpoints, each a system of this recipe: {NAME: {url: ..., model: ..., "
        "key_env: ..., concurrency: N}} (key_env and concurrency optional). make endpoint RECIPE=r NAME=NAME asks "
        "one the test rows, make endpoint RECIPE=r every one; make board ranks them.",
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


@dataclass
class GeneralArguments:
    """General ability before and after fine-tuning, through lm-evaluation-harness (arabic_sft.general)."""

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


@dataclass
class PublishingArguments:
    """What the model card says and publishing needs (arabic_sft.publishing)."""

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


@dataclass
class LaunchArguments:
    """How the console program launches training (arabic_sft.training.launch)."""

    accelerate_config: str | None = _field(
        "launch",
        None,
        "Launch config in accelerate_configs/ that make train uses. Unset: the one that fits this machine (cpu "
        "without a GPU, single_gpu with one, ddp with several: one process per GPU).",
    )


@dataclass
class RecipeArguments(
    LaunchArguments,
    PublishingArguments,
    GeneralArguments,
    EvaluationArguments,
    TrainingExtras,
    PromptArguments,
    CleaningArguments,
    DataArguments,
):
    """Our fields of a recipe, one dataclass per stage composed into one (in the stages' order); model fields are
    TRL's `ModelConfig`, training fields its `SFTConfig`."""

    def __post_init__(self):
        for name in ("columns", "output_columns", "endpoints", "datasets"):  # on the command line, as JSON
            value, kind = getattr(self, name), list if name == "datasets" else dict
            if isinstance(value, str):
                try:
                    setattr(self, name, value := json.loads(value))
                except json.JSONDecodeError:
                    raise ValueError(f"{name}: not JSON: {value}") from None
            if value is not None and not isinstance(value, kind):
                raise ValueError(f"{name}: must be a {'list' if kind is list else 'mapping'}, got {value!r}")
        check_endpoints(self.endpoints)
        check_sources(self)
        if not 0 < self.near_duplicate_threshold <= 1:
            raise ValueError(f"near_duplicate_threshold: {self.near_duplicate_threshold} is not in (0, 1]")
        for name in ("shingle_size", "contamination_ngram"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: {getattr(self, name)} words: give 1 or more")
        # argparse checks `choices` on the command line only, not on values that come from the recipe YAML.
        for item in fields(self):
            choices = item.metadata.get("choices")
            value = getattr(self, item.name)
            if choices and value is not None and value not in choices:
                raise ValueError(f"{item.name}: {value!r} is not one of {', '.join(map(str, choices))}")


# What a recipe's endpoint may say; url and model it must.
ENDPOINT_KEYS = {"url": str, "model": str, "key_env": str, "concurrency": int}


def check_endpoints(endpoints: dict | None) -> None:
    """The recipe's `endpoints`: each NAME a mapping with a url and a model, and nothing make endpoint does not
    take."""
    for name, settings in (endpoints or {}).items():
        if not isinstance(settings, dict) or not {"url", "model"} <= set(settings):
            raise ValueError(f"endpoints: {name}: give a mapping with url and model, got {settings!r}")
        if unknown := sorted(set(settings) - set(ENDPOINT_KEYS)):
            raise ValueError(f"endpoints: {name}: unknown key(s) {', '.join(unknown)} (known: url, model, key_env, "
                             "concurrency)")  # fmt: skip
        if wrong := [key for key, value in settings.items() if not isinstance(value, ENDPOINT_KEYS[key])]:
            raise ValueError(f"endpoints: {name}: {wrong[0]} must be a {ENDPOINT_KEYS[wrong[0]].__name__}")


# What a source of `datasets` may say beyond the data and prompt fields a recipe has (those it may say too): TRL's
# DatasetConfig names (path, name, split, fraction) and ours (id, rows, task: the recipe loader puts the preset's
# fields under the source's own).
SOURCE_KEYS = {"id", "path", "name", "split", "fraction", "rows", "task"}
SOURCE_FIELDS = (
    *("train_file", "validation_file", "test_file", "dataset_name", "dataset_config", "dataset_revision"),
    *("train_split", "validation_split", "test_split", "validation_fraction", "test_fraction", "csv_encoding"),
    *("empty_cells", "prompt_template", "columns", "answer_column", "output_columns"),
)


def check_sources(args) -> None:
    """The recipe's `datasets`: each source a mapping with known keys that names its training data, with a unique id
    and one weight at most; the recipe itself names no other data files (a source names its own)."""
    if args.datasets is None:
        return
    if not args.datasets:
        raise ValueError("datasets: an empty list; name one source or more, or drop the key")
    if given := [name for name in ("train_file", "dataset_name", "validation_file", "test_file", "validation_split",
                                   "test_split") if getattr(args, name)]:  # fmt: skip
        raise ValueError(f"datasets and {given[0]}: give each source's data in its entry of datasets")
    # each source with its id (its file's stem, or its dataset's name, when it gives none): what data.mixture reads
    args.datasets = [{**source, "id": check_source(number, source)} for number, source in enumerate(args.datasets, 1)]
    ids = [source["id"] for source in args.datasets]
    if repeated := sorted({name for name in ids if ids.count(name) > 1}):
        raise ValueError(f"datasets: the id {repeated[0]} names two sources; give each its own `id`")


def check_source(number: int, source) -> str:
    """One source of `datasets` (`number` in the list, from 1) checked; its id."""
    where = f"datasets: source {number}"
    if not isinstance(source, dict):
        raise ValueError(f"{where}: a mapping (id, train_file or path, fraction...), got {source!r}")
    if unknown := sorted(set(source) - SOURCE_KEYS - set(SOURCE_FIELDS)):
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(SOURCE_KEYS))}, "
                         "and the recipe's data and prompt fields)")  # fmt: skip
    if not (source.get("train_file") or source.get("path") or source.get("dataset_name")):
        raise ValueError(f"{where}: name its training data (train_file, path or dataset_name)")
    fraction, rows = source.get("fraction"), source.get("rows")
    if fraction is not None and rows is not None:
        raise ValueError(f"{where}: fraction or rows, not both")
    if fraction is not None and not (isinstance(fraction, (int, float)) and 0 < fraction <= 1):
        raise ValueError(f"{where}: fraction {fraction!r} is not in (0, 1] (a share of its training rows)")
    if rows is not None and not (isinstance(rows, int) and not isinstance(rows, bool) and rows > 0):
        raise ValueError(f"{where}: rows {rows!r}: give a whole number of training rows, 1 or more")
    return str(source.get("id") or source_name(source))


def source_name(source: dict) -> str:
    """A source's name when it gives no `id`: its training file's stem, else its dataset's name."""
    if file := source.get("train_file"):
        return PurePath(str(file)).stem
    return PurePath(str(source.get("path") or source.get("dataset_name"))).name


def fields_in(*groups: str) -> tuple[str, ...]:
    """The names of our fields in `groups`."""
    return tuple(item.name for item in fields(RecipeArguments) if item.metadata["group"] in groups)


def field_choices(name: str) -> list:
    """The values one of our fields accepts."""
    return next(item.metadata["choices"] for item in fields(RecipeArguments) if item.name == name)


def _flag_type(item):
    """The type a field's command-line value is read as: its annotation without None (str | None -> str)."""
    kinds = [kind for kind in getattr(item.type, "__args__", (item.type,)) if kind is not type(None)]
    kind = kinds[0] if kinds else str
    if kind is bool:
        return lambda text: str(text).lower() in ("1", "true", "yes")
    return kind if kind in (int, float, str) else str


def add_field_arguments(parser, names, title: str) -> None:
    """--FIELD flags for some of our fields, typed, checked and documented by the recipe's own schema, for a script
    that takes a few of them without a whole recipe; `with_overrides` applies what was given."""
    group = parser.add_argument_group(title)
    for item in fields(RecipeArguments):
        if item.name in names:
            kind = _flag_type(item)
            group.add_argument(
                f"--{item.name}",
                type=kind,
                nargs="?" if item.type is bool else None,
                const=True if item.type is bool else None,
                choices=item.metadata.get("choices"),
                help=item.metadata["help"].split(". ")[0].rstrip(".")
                + f" (default: the recipe's, else {item.default})",
            )


def with_overrides(args: "RecipeArguments", options, names, source: str = "arguments") -> "RecipeArguments":
    """`args` with the fields among `names` that `options` (`add_field_arguments`) gives, checked as a recipe's."""
    changes = {name: getattr(options, name) for name in names if getattr(options, name, None) is not None}
    try:
        return replace(args, **changes)
    except ValueError as error:
        raise UserError(f"{source}: {str(error).splitlines()[0]}") from None


# What a task preset may set: how a dataset's columns make a prompt (not which preset: that is the recipe's choice).
PRESET_FIELDS = tuple(name for name in fields_in("prompt") if name != "task")
