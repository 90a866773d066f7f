"""The model card of a trained run: `README.md` in its output directory, written when training finishes and refreshed
by make compare and make report. Its metadata is huggingface_hub's `ModelCardData` (the Hub's fields, model-index
built by huggingface_hub); its body says only what the run's files back: the manifest training wrote, the metrics,
comparison and generation manifest of the run's results folder, the recipe's data source. A result the files cannot
tie to this training (answers generated before it finished, a comparison of other scores) is left out, and the card
says so.

TRL drafts a card too (its tags, its citation): we take those, and not the rest, which names no data, no results and
the versions installed when the card is written rather than those the run used.
"""

import logging
import re
from pathlib import Path

import pandas as pd
from huggingface_hub import EvalResult, ModelCard, ModelCardData

from arabic_sft.general.paired import display_rows
from arabic_sft.named import PROJECT_ROOT, data_source
from arabic_sft.recipe import Recipe
from arabic_sft.runs import CARD, LOG_HISTORY, RANDOM_WEIGHTS, RecipeResults, RunFolder, TrainedRun
from arabic_sft.runtime.hub import is_local
from arabic_sft.runtime.manifest import atomic_path, read_json
from arabic_sft.scoring.metrics import CORPUS_KEYS, METRIC_KEYS
from arabic_sft.scoring.scored import default_name, system_name
from arabic_sft.scoring.tables import ComparisonTable, figure, label


logger = logging.getLogger(__name__)
TEMPLATE = Path(__file__).parent / "templates" / "model_card.md.j2"
LANGUAGE = "ar"
PIPELINE_TAG = "text-generation"
# The hyperparameters the card lists: (section of the manifest's config, field).
HYPERPARAMETERS = [
    ("training", "learning_rate"), ("training", "lr_scheduler_type"), ("training", "warmup_steps"),
    ("training", "num_train_epochs"), ("training", "max_steps"), ("training", "per_device_train_batch_size"),
    ("training", "gradient_accumulation_steps"), ("launch", "num_processes"), ("launch", "global_batch_size"),
    ("training", "max_length"), ("training", "packing"), ("training", "optim"), ("training", "weight_decay"),
    ("training", "max_grad_norm"), ("training", "seed"), ("model", "dtype"), ("training", "bf16"),
    ("training", "fp16"), ("training", "gradient_checkpointing"), ("recipe", "subsample_fraction"),
]  # fmt: skip
LORA = ["lora_r", "lora_alpha", "lora_dropout", "lora_target_modules", "use_rslora", "use_dora"]
QUANTIZATION = ["load_in_4bit", "bnb_4bit_quant_type", "use_bnb_nested_quant", "load_in_8bit"]


def evaluation(run: TrainedRun, split: str) -> tuple[dict | None, str | None]:
    """(this model's scores on `split` with what produced them, or None; a note when scores were found but are not
    this training's: answers generated from another model, or before this training finished)."""
    folder = RunFolder(run.results)
    metrics_path = folder.metrics(split)
    metrics = read_json(metrics_path)
    generation = read_json(folder.generation_manifest(split))
    if metrics is None:
        return None, None
    settings = ((generation or {}).get("config") or {}).get("generation") or {}
    if generation is None or folder.stale_answers(split, run.model_dir):
        return None, (
            f"{metrics_path} was not scored from this training's answers (they came from another model or were "
            f"generated before it finished): make eval RECIPE={run.recipe} scores this model"
        )
    values = {key: metrics[key] for key in METRIC_KEYS[1:] if isinstance(metrics.get(key), (int, float))}
    scoring = ((metrics.get("settings") or {}).get("config") or {}).get("scoring") or {}
    return {
        "path": str(metrics_path),
        "n": metrics.get("n"),
        "values": values,
        "rows": [{"key": key, "label": label(key), "value": figure(value)} for key, value in values.items()],
        "rouge_tokenizer": scoring.get("rouge_tokenizer"),
        "greedy": not settings.get("temperature"),
        "temperature": settings.get("temperature"),
        "max_new_tokens": settings.get("max_new_tokens"),
        "generated": generation.get("finished"),
    }, None


def this_run_name(run: TrainedRun, split: str) -> str:
    """The name make compare gives this run's system: the recipe (results/NAME), or NAME (seeds ...)."""
    if run.seed is None:
        return default_name(RunFolder(run.results).metrics(split))
    results = RecipeResults(run.recipe)
    return system_name([path for seed in results.seeds() if (path := results.seed(seed).metrics(split)).is_file()])


# ▲ when the difference's interval lies on the better side of 0, ▼ on the worse side.
SIGNS = {1: " ▲", -1: " ▼", 0: ""}


def comparison(run: TrainedRun, split: str, scores: dict | None) -> tuple[dict | None, str | None]:
    """make compare's table for this run's system against its baselines (compare_<split>.csv in results/NAME), when
    its values are this run's scores (the mean over the seeds for a multi-seed system); else a note."""
    results = RecipeResults(run.recipe)
    path = results.compare(split).with_suffix(".csv")
    if not path.is_file() or scores is None:
        return None, None
    table = pd.read_csv(path)
    name = this_run_name(run, split)
    ours = table[table["run"] == name]
    expected = dict(scores["values"])
    if run.seed is not None:  # the system's value: the mean over the seeds' scores
        seeds = [read_json(results.seed(seed).metrics(split)) or {} for seed in results.seeds()]
        expected = {key: sum(seed.get(key) or 0 for seed in seeds) / len(seeds) for key in expected}
    recorded = {row.metric: row.value for row in ours.itertuples() if row.metric in expected}
    if not recorded or any(abs(recorded[key] - expected[key]) > 1e-12 for key in recorded):
        return None, f"{path} does not hold this run's current scores: make compare RECIPE={run.recipe} refreshes it"
    view = ComparisonTable(table, table["run"].iloc[0])  # compare writes the baseline first
    baseline, cells = view.baseline, view.cells
    # this recipe's own systems (its one run, its seeds) are not baselines of this model
    own = {baseline, name, run.recipe}
    others = [other for other in view.runs if other not in own and not other.startswith(f"{run.recipe} (seeds")]
    rows = []
    for cell in view.run_cells(name):
        rows.append({
            "key": cell.metric,
            "label": cell.label,
            "value": cell.value,
            "baseline": cells[baseline, cell.metric].value if (baseline, cell.metric) in cells else "n/a",
            "others": [cells[other, cell.metric].bare if (other, cell.metric) in cells else "n/a" for other in others],
            "diff": cell.difference + SIGNS[cell.significant] if cell.difference else "",
            "p": cell.p,
        })  # fmt: skip
    return {"path": str(path), "name": name, "baseline": baseline, "others": others, "rows": rows}, None


def general(run: TrainedRun, split: str) -> dict | None:
    """make general's comparison (base against fine-tuned on lm-eval's tasks), when its fine-tuned side is this
    training's model, evaluated after it finished."""
    results = RecipeResults(run.recipe)
    table_path = results.general / "comparison.csv"
    if not table_path.is_file() or not results.general_side("tuned").is_dir():
        return None
    if results.stale_general("tuned", run.model_dir):  # another model, or an earlier training in this directory
        return None
    rows = display_rows(pd.read_csv(table_path))
    return {"path": str(table_path), "rows": rows}


def training_log(model_dir: Path) -> dict:
    history = read_json(model_dir / LOG_HISTORY) or []
    losses = [entry for entry in history if "loss" in entry and "step" in entry]
    evals = [entry for entry in history if "eval_loss" in entry]
    best = min(evals, key=lambda entry: entry["eval_loss"]) if evals else None
    final = read_json(model_dir / "train_results.json") or {}
    return {
        "first_loss": f"{losses[0]['loss']:.4f} (step {losses[0]['step']})" if losses else None,
        "last_loss": f"{losses[-1]['loss']:.4f} (step {losses[-1]['step']})" if losses else None,
        "best_eval_loss": f"{best['eval_loss']:.4f} (step {best['step']})" if best else None,
        "train_loss": f"{final['train_loss']:.4f}" if final.get("train_loss") is not None else None,
        "runtime": f"{final['train_runtime']:.1f} s" if "train_runtime" in final else None,
    }


def hub_datasets(config: dict, source: dict | None) -> list[str]:
    ids = [config["recipe"].get("dataset_name"), (source or {}).get("hub_id")]
    return list(dict.fromkeys(item for item in ids if item))


def shown_path(path: str) -> str:
    """A data file as a card shows it: relative to the project when it is inside it, else its name alone (a card
    that goes to the Hub does not carry a machine's folders; the sha256 beside it identifies the file)."""
    resolved = Path(path).resolve()
    for root in (Path.cwd().resolve(), PROJECT_ROOT.resolve()):
        if resolved.is_relative_to(root):
            return str(resolved.relative_to(root)) if Path(path).is_absolute() else path
    return f"{Path(path).name} (a local file)" if Path(path).is_absolute() else path


def data_files(config: dict, manifest: dict, scores: dict | None) -> list[dict]:
    """The data the run read: each file with the rows it used and the sha256 training recorded (the test file: the
    rows scored)."""
    recipe, examples = config["recipe"], (config.get("data") or {}).get("examples") or {}
    hashes = manifest.get("data_sha256") or {}
    if sources := (config.get("data") or {}).get("sources"):
        return mixture_files(sources, hashes)
    rows = []
    for role, field, count in [("train", "train_file", examples.get("train")),
                               ("validation", "validation_file", examples.get("validation")),
                               ("test", "test_file", (scores or {}).get("n"))]:  # fmt: skip
        path = recipe.get(field)
        if path:
            shown = shown_path(path)
            rows.append({"role": role, "file": shown, "rows": count, "sha256": hashes.get(path, "not recorded")})
    if recipe.get("dataset_name"):
        for role, split in [("train", recipe.get("train_split")), ("validation", recipe.get("validation_split")),
                            ("test", recipe.get("test_split"))]:  # fmt: skip
            if split:
                rows.append({"role": role, "file": f"{recipe['dataset_name']} ({split})",
                             "rows": examples.get(role) if role != "test" else (scores or {}).get("n"),
                             "sha256": f"revision {recipe.get('dataset_revision') or 'not pinned'}"})  # fmt: skip
    return rows


def mixture_files(sources: list[dict], hashes: dict) -> list[dict]:
    """A mixture's data (the run manifest's `data.sources`): each source's files, with the rows it used of each (its
    weight drew the training rows) and the sha256 training recorded."""
    rows = []
    for source in sources:
        for role, read in source.get("read", {}).items():
            used = source.get(f"{role}_rows") or {}
            count = (
                f"{used.get('count')} of {used.get('of')}" if used.get("count") != used.get("of") else used.get("of")
            )
            rows.append({"role": f"{role} ({source['id']})", "file": shown_path(read) if read in hashes else read,
                         "rows": count, "sha256": hashes.get(read, "not recorded")})  # fmt: skip
    return rows


def cleaning_note(config: dict) -> str | None:
    """What the data check before training found and left out, in a sentence (None for a run before it existed)."""
    cleaning = (config.get("data") or {}).get("cleaning")
    if not cleaning:
        return None
    settings, found = cleaning["settings"], cleaning.get("counts") or {}
    kinds = ", ".join(f"{sum(where.values())} {kind}" for kind, where in found.items()) or "no"
    dropped = cleaning["dropped"]["count"]
    action = (
        f"{dropped} training row(s) were left out (deduplicate: {settings['deduplicate']}, decontaminate: "
        f"{str(settings['decontaminate']).lower()}; their positions are in the run manifest)"
        if dropped
        else f"no row was left out (deduplicate: {settings['deduplicate']}, decontaminate: "
        f"{str(settings['decontaminate']).lower()})"
    )
    return (
        f"Before training, the data check (after Arabic normalization; near: word-shingle Jaccard >= "
        f"{settings['near_duplicate_threshold']}; contamination: {settings['contamination_ngram']}-word spans shared "
        "with a test input"
        f"{' or a general-ability question' if settings['decontaminate'] else ''}) found {kinds} pair(s) of "
        f"duplicate or contaminated rows; {action}."
    )


def answer_only(config: dict) -> str:
    """What the loss was computed on, as the recorded settings say."""
    training, data = config["training"], config.get("data") or {}
    if data.get("kind") == "messages":
        if training.get("assistant_only_loss"):
            return "every assistant turn only (the rest of the conversation masked)"
        return "the whole conversation (the model's chat template marks no assistant turns)"
    if training.get("completion_only_loss") is False:
        return "prompt and answer (completion_only_loss: false)"
    return "the answer only: the prompt's tokens and padding are masked out of the loss"


def eos_token(model_dir: Path) -> str | None:
    """The token every answer ended with: the saved tokenizer's EOS (TRL appends it; the manifest masks SFTConfig's
    eos_token as it masks every *_token field)."""
    return (read_json(model_dir / "tokenizer_config.json") or {}).get("eos_token")


def trl_card(base_model: str | None, model_name: str, hub_id: str | None):
    """TRL's own draft card (its tags and its citation are what we take)."""
    from trl.trainer.utils import generate_model_card

    return generate_model_card(base_model=base_model, model_name=model_name, hub_model_id=hub_id or model_name,
                               dataset_name=None, tags=["trl", "sft"], wandb_url=None, trackio_url=None,
                               trainer_name="SFT")  # fmt: skip


def eval_results(scores: dict | None, general_block: dict | None, dataset: dict, split: str) -> list[EvalResult]:
    """model-index entries: this model's scores on the test split, and its accuracy on each general-ability task."""
    results = []
    for key, value in (scores or {}).get("values", {}).items():
        results.append(EvalResult(task_type=PIPELINE_TAG, task_name="Answer generation (greedy)", **dataset,
                                  dataset_split=split, metric_type=key, metric_name=label(key), metric_value=value,
                                  metric_config="corpus" if key in CORPUS_KEYS else "mean over examples"))  # fmt: skip
    for row in (general_block or {}).get("rows", []):
        results.append(EvalResult(task_type="multiple-choice", task_name="General ability (lm-evaluation-harness)",
                                  dataset_type=row["task"], dataset_name=row["task"], metric_type=row["metric"],
                                  metric_name=f"{row['task']} {row['metric']}",
                                  metric_value=row["tuned_value"]))  # fmt: skip
    return results


def build_card(
    run: TrainedRun, recipe: Recipe, split: str = "test", hub_id: str | None = None, merged: bool = False
) -> ModelCard:
    """The card of `run` (a merged model's when `merged`; naming `hub_id` when it is published there)."""
    manifest = run.manifest
    config = manifest["config"]
    model, training = config["model"], config["training"]
    peft = bool(model.get("use_peft"))
    base = model["model_name_or_path"]
    base_on_hub = not is_local(base)
    random_base = (Path(base) / RANDOM_WEIGHTS).is_file() if not base_on_hub else False
    source = data_source(recipe.args.data_source)
    scores, scores_note = evaluation(run, split)
    compared, compared_note = comparison(run, split, scores)
    general_block = general(run, split)
    name = hub_id or run.display
    datasets = hub_datasets(config, source)
    dataset = {
        "dataset_type": datasets[0] if datasets else (config["recipe"].get("test_file") or "local"),
        "dataset_name": (source or {}).get("title") or Path(config["recipe"].get("test_file") or "local").name,
    }
    trl = trl_card(base if base_on_hub else None, name, hub_id)
    tags = [*trl.data.tags, "arabic", "arabic-sft"]
    if peft:
        tags += ["lora"] + (["qlora"] if model.get("load_in_4bit") else [])
    results = eval_results(scores, general_block, dataset, split)
    data = ModelCardData(
        language=LANGUAGE,
        license=recipe.args.license,
        base_model=base if base_on_hub else None,
        datasets=datasets or None,
        library_name="peft" if peft and not merged else "transformers",
        pipeline_tag=PIPELINE_TAG,
        tags=tags,
        model_name=name,
        eval_results=results or None,
    )
    citation = re.search(r"```bibtex\n(.*?)```", trl.text, re.S)
    hyperparameters = [(field, config.get(section, {}).get(field)) for section, field in HYPERPARAMETERS]
    quantized = model.get("load_in_4bit") or model.get("load_in_8bit")
    context = {
        "name": name,
        "run": run,
        "hub_id": hub_id,
        "merged": merged,
        "peft": peft,
        "base": base,
        "base_on_hub": base_on_hub,
        "random_base": random_base,
        "revision": model.get("model_revision"),
        "trust_remote_code": training.get("trust_remote_code"),
        "recipe_path": f"recipes/{recipe.name}.yaml" if recipe.path else None,
        "source": source,
        "files": data_files(config, manifest, scores),
        "cleaning": cleaning_note(config),
        "recipe": config["recipe"],
        "chat": (config.get("data") or {}).get("chat"),
        "kind": (config.get("data") or {}).get("kind"),
        "loss": answer_only(config),
        "eos": eos_token(run.model_dir),
        "hyperparameters": [(field, value) for field, value in hyperparameters if value is not None and value != -1],
        "lora": [(field, model.get(field)) for field in LORA] if peft else [],
        "quantization": [(field, model.get(field)) for field in QUANTIZATION if quantized],
        "launch": config.get("launch") or {},
        "manifest": manifest,
        "log": training_log(run.model_dir),
        "scores": scores,
        "scores_note": scores_note,
        "compared": compared,
        "compared_note": compared_note,
        "general": general_block,
        "split": split,
        "trl_citation": citation.group(1).strip() if citation else None,
    }  # fmt: skip
    return ModelCard.from_template(data, template_path=str(TEMPLATE), **context)


def write_card(
    run: TrainedRun, recipe: Recipe, split: str = "test", folder: Path | None = None, merged: bool = False
) -> Path:
    """Write (or refresh) `run`'s card, README.md in its model directory (or `folder`: make export's, a `merged`
    model's), whole or not at all."""
    card = build_card(run, recipe, split, merged=merged)
    path = (folder or run.model_dir) / CARD
    with atomic_path(path) as temporary:
        temporary.write_text(str(card), encoding="utf-8")
    return path


def refresh_cards(recipe: Recipe, split: str = "test") -> list[Path]:
    """Refresh the card of each of the recipe's finished trainings (make compare, make report)."""
    runs = RecipeResults(recipe.name).trained_runs(getattr(recipe.fields, "output_dir", None))
    return [write_card(run, recipe, split) for run in runs]


def write_card_after_training(recipe: Recipe, output_dir: str | Path) -> None:
    """The model card of a training that just finished (README.md beside the model, replacing TRL's draft), before
    any evaluation: compare and report refresh it with the results. A card that cannot be written costs the run
    nothing: the model and its manifest are saved, and the next refresh tries again."""
    try:
        write_card(RecipeResults(recipe.name or Path(output_dir).name).trained_run_in(output_dir), recipe)
    except Exception as error:  # noqa: BLE001 - the trained model matters more than its card
        logger.warning("the model card could not be written (%s); make compare writes it", error)
