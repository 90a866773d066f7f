"""Where a run's files live: the one owner of the layout of `results/<recipe>/` and of every file name in it.

    results/<recipe>/
        model/                         the trained model (the recipe's output_dir), with
            run_manifest.json          written last: its presence means training finished
            log_history.json           the trainer's log (losses, evaluations)
            README.md                  the model card
        predictions_<split>.csv        make eval (with .manifest.json beside it)
        metrics_<split>.json|.md|.examples.csv     score
        judge_<split>.json|.examples.csv|.cache.jsonl, pairwise_<split>.vs_<run>.*   judge
        baseline-zero-shot/, baseline-<K>-shot/    make baseline: the same files as the fine-tuned run
        seed-<N>/                      make train SEEDS=...: model/ and the same files, per training seed
        general/{base,tuned}/, general/comparison.{md,csv}                           make general
        compare_<split>.{md,csv,png,groups.csv,general.csv}                           make compare
        endpoint-<name>/               make endpoint: a model behind an OpenAI-compatible endpoint, as a run
        board_<split>.{md,csv,json}    make board: every system on the same test rows, ranked
        report.html, report.png        make report
        merged/                        the adapter merged into its base (make publish MERGED=1)
        export/                        the model as one folder for from_pretrained             make export
        data_check.json, data_check_pairs.csv      near-duplicates and contamination   make data-check
        data_check.cache.json          make data-check's result, reused by it and by training on the same rows
        published.json                 make publish's record
    results/bench/                     make bench's figures
    results/sweeps/<sweep>/            make sweep

Every stage asks this module for a path; nobody else spells `results/`, a file name or a suffix. It also finds "the
recipe's trained model (seed N)" (`RecipeResults.trained_run`; `recipe.check.trained_model_of` from a recipe file)
for export, serve, chat and publish. It imports nothing of the
package but runtime/, so every part may use it.
"""

import json
import re
from dataclasses import dataclass
from pathlib import Path

from arabic_sft.runtime.errors import UserError


RESULTS = Path("results")
# Written after the final model, as a training run's last act: its presence means the run finished.
MANIFEST = "run_manifest.json"
# The trainer's log (losses, evaluations, generation metrics at each evaluation), beside the final model.
LOG_HISTORY = "log_history.json"
# The Trainer's state in a checkpoint (its presence and readability mark a complete checkpoint).
TRAINER_STATE = "trainer_state.json"
# The model card, beside the model.
CARD = "README.md"
RANDOM_WEIGHTS = "random_weights.json"  # beside a tiny model's weights (arabic_sft.tiny): its weights are random
LOSS_SUM = "loss_sum.json"  # a checkpoint's training-loss sum so far: a resumed run's mean over the whole run
EXPORT_MANIFEST = "export_manifest.json"  # in make export's folder: the run it came from
GGUF_MANIFEST = "gguf_manifest.json"  # in make export FORMAT=gguf's folder: its source, tools, files, agreement
MERGE_MANIFEST = "merge_manifest.json"  # in a merged model's folder: the adapter and base it came from
SIDE_MANIFEST = "manifest.json"  # in each of make general's side folders
MODEL = "model"
GENERAL = "general"
SPLITS = ("test", "validation")

# What generate, score and judge write in a run's folder: KIND_<split>.json (the predictions are a .csv); a file of
# another name X.csv has X.KIND.json beside it.
OUTPUT_KINDS = ("predictions", "metrics", "judge", "pairwise")


def beside(path: str | Path, kind: str) -> Path:
    """The `kind` file (one of OUTPUT_KINDS, a .json) of the run `path` is a file of: predictions_X.csv,
    metrics_X.json or judge_X.json -> KIND_X.json; X.csv, X.metrics.json or X.judge.json -> X.KIND.json."""
    path = Path(path)
    name = path.name.removesuffix(path.suffix)
    for other in OUTPUT_KINDS:
        if name.startswith(f"{other}_"):
            return path.with_name(f"{kind}_{name.removeprefix(f'{other}_')}.json")
    for other in OUTPUT_KINDS:
        name = name.removesuffix(f".{other}")
    return path.with_name(f"{name}.{kind}.json")


def manifest_of(path: str | Path) -> Path:
    """The manifest beside a file a stage wrote (predictions_test.csv -> predictions_test.manifest.json)."""
    return Path(path).with_suffix(".manifest.json")


def examples_of(path: str | Path) -> Path:
    """The per-example rows beside a summary (metrics_test.json -> metrics_test.examples.csv)."""
    return Path(path).with_suffix(".examples.csv")


def split_of(path: str | Path, default: str = "test") -> str:
    """The split a run's file is for (predictions_validation.csv -> validation), else `default`."""
    stem = Path(path).name.split(".")[0]
    return next((split for split in SPLITS if any(stem == f"{kind}_{split}" for kind in OUTPUT_KINDS)), default)


def seed_number(folder: str | Path) -> int:
    """N of a seed's folder, seed-N."""
    folder = Path(folder)
    number = folder.name.removeprefix("seed-")
    if not folder.name.startswith("seed-") or not number.isdigit():
        raise UserError(f"{folder}: a seed's folder is named seed-N (N the training seed)")
    return int(number)


def metrics_files(folder: str | Path) -> list[Path]:
    """The metrics JSONs score wrote in a folder (one per split)."""
    return sorted(Path(folder).glob("metrics_*.json"))


def is_split_file(path: str | Path, kind: str) -> bool:
    """Whether `path` is a `kind` file of a split (metrics_test.json), not one named after another file."""
    return any(Path(path).stem == f"{kind}_{split}" for split in SPLITS)


def read_record(path: str | Path) -> dict:
    """A manifest's JSON, or {} when it is missing or unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def finished_run(output_dir: str | Path) -> dict | None:
    """When `output_dir` holds a finished training, the manifest it wrote last; else None."""
    return read_record(Path(output_dir) / MANIFEST) or None


def same_path(a, b) -> bool:
    return a is not None and b is not None and Path(a).resolve() == Path(b).resolve()


def not_made_by(made_by: str | Path, started: str, model: str | Path, verb: str) -> str | None:
    """Why results `verb` (generated, evaluated) by `made_by` at `started` are not `model`'s as it is now: another
    model, or a training of it that finished after them; None when they are its."""
    local = Path(str(model)).exists() or Path(str(made_by)).exists()  # a directory here, else a Hub id
    if not (same_path(made_by, model) if local else str(made_by) == str(model)):
        return f"{verb} by {made_by}, not {model}"
    finished = read_record(Path(model) / MANIFEST).get("finished", "") if local else ""
    if finished and started < finished:
        return f"{verb} at {started}, before the training in {model} finished ({finished})"
    return None


class RunFolder:
    """A folder make eval (or make baseline) writes: the predictions, scores and judgements of one run."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunFolder({str(self.path)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, RunFolder) and self.path == other.path

    def __hash__(self) -> int:
        return hash(self.path)

    def predictions(self, split: str = "test") -> Path:
        return self.path / f"predictions_{split}.csv"

    def generation_manifest(self, split: str = "test") -> Path:
        return manifest_of(self.predictions(split))

    def metrics(self, split: str = "test") -> Path:
        return self.path / f"metrics_{split}.json"

    def judge(self, split: str = "test") -> Path:
        return self.path / f"judge_{split}.json"

    def generated_by(self, split: str = "test") -> tuple[str | None, str]:
        """(the model directory or id the answers for `split` came from, when they were generated); (None, "")
        without a generation manifest."""
        record = read_record(self.generation_manifest(split))
        settings = (record.get("config") or {}).get("generation") or {}
        return settings.get("adapter_dir") or settings.get("model_dir"), record.get("started", "")

    def stale_answers(self, split: str, model: str | Path) -> str | None:
        """Why the answers for `split` here are not those of `model` as it is now (another model, or a training of
        it that finished after they were generated); None when they are, or when there are no answers."""
        if not self.predictions(split).is_file():
            return None
        made_by, started = self.generated_by(split)
        if made_by is None:
            return None  # answers written without a manifest (by hand, or by another tool): taken as they are
        return not_made_by(made_by, started, model, "generated")

    def files(self, split: str = "test") -> list[Path]:
        """What make eval writes here for `split` (those that exist): answers, scores, judgements."""
        predictions, metrics, judge = self.predictions(split), self.metrics(split), self.judge(split)
        paths = [metrics, metrics.with_suffix(".md"), examples_of(metrics), predictions,
                 self.generation_manifest(split), judge, examples_of(judge)]  # fmt: skip
        return [path for path in paths if path.is_file()]

    @property
    def model(self) -> Path:
        """Where a seed's training writes its model (results/<recipe>/seed-N/model)."""
        return self.path / MODEL

    @property
    def export(self) -> Path:
        """make export's folder: the model as one folder that loads with AutoModelForCausalLM.from_pretrained."""
        return self.path / "export"

    @property
    def export_gguf(self) -> Path:
        """make export FORMAT=gguf's folder: the model in GGUF (llama.cpp, Ollama, LM Studio) and a Modelfile."""
        return self.path / "export-gguf"

    @property
    def merged(self) -> Path:
        """The run's adapter merged into its base (make publish MERGED=1)."""
        return self.path / "merged"

    @property
    def published(self) -> Path:
        """make publish's record: where the run went, with which files."""
        return self.path / "published.json"


@dataclass
class TrainedRun:
    """A finished training of a recipe: its model directory, the results folder make eval writes for it, its seed
    when the recipe was trained with several (results/NAME/seed-N/), and the manifest training wrote last."""

    recipe: str
    model_dir: Path
    results: Path
    seed: int | None
    manifest: dict

    @property
    def display(self) -> str:
        return self.recipe + (f" (seed {self.seed})" if self.seed is not None else "")


class RecipeResults:
    """Everything a recipe's runs write: `results/<name>/`."""

    def __init__(self, name: str, root: str | Path = RESULTS):
        self.name = name
        self.path = Path(root) / name

    def __repr__(self) -> str:
        return f"RecipeResults({self.name!r})"

    @property
    def tuned(self) -> RunFolder:
        """The fine-tuned model's evaluation (the recipe's one training, not a seed's)."""
        return RunFolder(self.path)

    @property
    def model(self) -> Path:
        """The default output_dir of a recipe's training."""
        return self.path / MODEL

    def trained_run_in(self, model_dir: str | Path) -> TrainedRun | None:
        """The finished training in `model_dir`, with its results folder: results/NAME/seed-N for a seed's model
        (results/NAME/seed-N/model, make train SEEDS=...), the folder above a model elsewhere in results/ (a sweep's
        trial), else results/NAME, where make eval writes; None when it has not finished."""
        model_dir = Path(model_dir)
        if not (manifest := finished_run(model_dir)):
            return None
        folder = model_dir.parent
        if folder.name.startswith("seed-") and folder.parent == self.path:
            return TrainedRun(self.name, model_dir, folder, seed_number(folder), manifest)
        if in_results(model_dir) and not model_dir.resolve().is_relative_to(self.path.resolve()):
            return TrainedRun(self.name, model_dir, folder, None, manifest)  # elsewhere in results/: a sweep's trial
        return TrainedRun(self.name, model_dir, self.path, None, manifest)

    def trained_runs(self, output_dir: str | Path | None) -> list[TrainedRun]:
        """The recipe's finished trainings: its `output_dir`, and each seed's results/NAME/seed-N/model."""
        seeds = [model for seed in self.seeds() if (model := self.seed(seed).model).is_dir()]
        models = list(dict.fromkeys([*([Path(output_dir)] if output_dir else []), *seeds]))
        return [run for model in models if (run := self.trained_run_in(model))]

    def trained_run(self, output_dir: str | Path | None, seed: int | None = None) -> TrainedRun:
        """The recipe's trained model: its `output_dir`'s, or with `seed` results/NAME/seed-N/model's; one line when
        there is none, or when there is one per seed and no `seed` says which."""
        runs = self.trained_runs(output_dir)
        if seed is not None:
            if not (runs := [run for run in runs if run.seed == seed]):
                raise UserError(
                    f"{self.seed(seed).model}: no finished training; make train RECIPE={self.name} SEEDS={seed} first"
                )
            return runs[0]
        if plain := [run for run in runs if run.seed is None]:
            return plain[0]
        if runs:
            seeds = ", ".join(str(run.seed) for run in runs)
            raise UserError(f"{self.path}: one finished training per seed ({seeds}): say which, SEED=N")
        raise UserError(f"{output_dir}: no finished training (no {MANIFEST}): make train RECIPE={self.name} first")

    def seed(self, seed: int) -> RunFolder:
        return RunFolder(self.path / f"seed-{seed}")

    def seeds(self) -> list[int]:
        """The training seeds with a folder here, in order."""
        return sorted(seed_number(path) for path in self.path.glob("seed-*") if path.is_dir())

    def runs(self, seeds: list[int] | None = None) -> list[RunFolder]:
        """The folders make eval writes: one per seed when the recipe has seeds, else the one fine-tuned run."""
        return [self.seed(seed) for seed in seeds] if seeds else [self.tuned]

    def baseline(self, shots: int = 0) -> RunFolder:
        return RunFolder(self.path / f"baseline-{shots or 'zero'}-shot")

    def endpoint(self, name: str) -> RunFolder:
        """make endpoint's folder: a model behind an OpenAI-compatible endpoint (`name`: what make endpoint calls it,
        else its model name), asked the recipe's test rows."""
        safe = re.sub(r"[^\w.-]+", "-", name).strip("-") or "model"  # a model name may hold / or :
        return RunFolder(self.path / f"endpoint-{safe}")

    def endpoints(self) -> list[RunFolder]:
        """make endpoint's folders, by name."""
        return [RunFolder(path) for path in sorted(self.path.glob("endpoint-*")) if path.is_dir()]

    def few_shot_baselines(self) -> list[RunFolder]:
        """The few-shot baselines' folders, in order of their shots."""
        folders = [path for path in self.path.glob("baseline-*-shot") if path.name != "baseline-zero-shot"]
        return [RunFolder(path) for path in sorted(folders, key=lambda path: path.name)]

    @property
    def data_check(self) -> Path:
        """make data-check's summary (counts, settings, the data files' sha256)."""
        return self.path / "data_check.json"

    @property
    def data_check_cache(self) -> Path:
        """make data-check's last result with the digest of what it was made from: make data-check and training
        reuse it when their rows, settings and engine are the same."""
        return self.path / "data_check.cache.json"

    @property
    def data_check_pairs(self) -> Path:
        """make data-check's pairs, one row each, most similar first."""
        return self.path / "data_check_pairs.csv"

    @property
    def general(self) -> Path:
        """make general's folder: base/ and tuned/ (lm-eval's files), comparison.{md,csv}."""
        return self.path / GENERAL

    def general_side(self, side: str) -> Path:
        return self.general / side

    def has_general(self) -> bool:
        return all(self.general_side(side).is_dir() for side in ("base", "tuned"))

    def general_made_by(self, side: str) -> tuple[str | None, str]:
        """(the model directory or id general/<side> evaluated: an adapter, else the full model; when it started)."""
        record = read_record(self.general_side(side) / SIDE_MANIFEST)
        model_args = ((record.get("config") or {}).get("general") or {}).get("model_args") or {}
        return model_args.get("peft") or model_args.get("pretrained"), record.get("started", "")

    def stale_general(self, side: str, model: str | Path) -> str | None:
        """Why general/<side> is not `model`'s as it is now (evaluated from another model, or before its training
        finished); None when it is, or when the side was not evaluated."""
        if not self.general_side(side).is_dir():
            return None
        made_by, started = self.general_made_by(side)
        return f"{self.general_side(side)} has no manifest" if made_by is None else not_made_by(
            made_by, started, model, "evaluated"
        )  # fmt: skip

    def current_general(self, base: str | Path, tuned: str | Path | None, seeds=None) -> bool:
        """Whether make general's two sides are there and are `base`'s and `tuned`'s (the recipe's one trained model)
        as they are now; never for a recipe trained with `seeds` (a system of several models has no one model)."""
        if seeds or tuned is None or not self.has_general():
            return False
        return not (self.stale_general("base", base) or self.stale_general("tuned", tuned))

    def compare(self, split: str = "test") -> Path:
        """compare's markdown; its .csv, .png, .groups.csv and .general.csv go beside it."""
        return self.path / f"compare_{split}.md"

    def compare_files(self, split: str = "test") -> list[Path]:
        """compare's outputs for `split` (those that exist), its general-ability table aside."""
        markdown = self.compare(split)
        paths = [markdown, *(markdown.with_suffix(suffix) for suffix in (".csv", ".png", ".groups.csv"))]
        return [path for path in paths if path.is_file()]

    def board(self, split: str = "test") -> Path:
        """make board's table (markdown); its numbers (.csv) and record (.json: rows, settings, systems left out)
        beside it."""
        return self.path / f"board_{split}.md"

    @property
    def report(self) -> Path:
        return self.path / "report.html"


def bench_figures(kind: str, root: str | Path = RESULTS) -> Path:
    """make bench's figures of `kind` (cpu, data_check, eval): results/bench/KIND.json, with a .md beside it."""
    return Path(root) / "bench" / f"{kind}.json"


def sweep_dir(name: str, root: str | Path = RESULTS) -> Path:
    """A sweep's folder: study.db, trial-NNNN/, trials.csv, best.json."""
    return Path(root) / "sweeps" / name


def in_results(path: str | Path, root: str | Path = RESULTS) -> bool:
    return Path(path).resolve().is_relative_to(Path(root).resolve())


def untrained(model_dir: str | Path, name: str) -> UserError:
    """The one line for a fine-tuned model folder that is not there."""
    return UserError(f"{model_dir} does not exist: train it first with make train RECIPE={name}")
