"""General ability before and after fine-tuning: the recipe's base model and its fine-tuned model run through
lm-evaluation-harness on the same tasks with the same settings, each side's results and per-question samples written
to results/<recipe>/general/{base,tuned}/.

lm-eval does the evaluating (tasks, prompts, few-shot, log-likelihoods, its own results); this module only says
what to run (the two models from one recipe, the settings they share), checks the tasks before a model loads, keeps
lm-eval's answer cache so that a stopped run continues, and writes each side's folder whole or not at all.
"""

import difflib
import functools
import gc
import hashlib
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from arabic_sft.models import check_model_source
from arabic_sft.runs import SIDE_MANIFEST
from arabic_sft.runtime.errors import UserError
from arabic_sft.runtime.hub import hub_is_reachable
from arabic_sft.runtime.manifest import build_manifest, now, write_json_atomic


logger = logging.getLogger(__name__)

# What the Arabic leaderboards (OALL v2, QIMMA) measure general ability with, as lm-eval ships them.
DEFAULT_TASKS = ("arabicmmlu", "arabic_leaderboard_alghafa", "aexams", "arab_culture")
# The project's own lm-eval tasks (an lm-eval task folder): arabic_sft_mcq, 40 local questions, offline.
LOCAL_TASKS = Path(__file__).with_name("tasks")
SIDES = ("base", "tuned")
CACHE = ".cache"  # lm-eval's answer cache of each side, under the general folder: what a stopped run continues from


@dataclass(frozen=True)
class GeneralSettings:
    """What both sides share: the tasks, few-shot, batch, chat template, backend, seed and question limit."""

    tasks: tuple[str, ...]
    num_fewshot: int = 0
    batch_size: int = 8
    chat_template: bool = False
    backend: str = "hf"
    seed: int = 42
    limit: int | None = None
    device: str = field(default_factory=lambda: "cuda" if torch.cuda.is_available() else "cpu")


@dataclass(frozen=True)
class Side:
    """One model to evaluate: `base` (the recipe's model_name_or_path) or `tuned` (its output_dir: a full model, or
    a LoRA adapter on the base)."""

    name: str
    model_args: dict
    weights: tuple[str, ...]  # the files whose names, sizes and times key the answer cache


@functools.cache
def task_manager():
    """lm-eval's task index with the project's local tasks (built once per process: it reads thousands of YAMLs)."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(LOCAL_TASKS))


def check_task_names(names, manager) -> None:
    """Every name a task, group or tag lm-eval knows; else one line with the closest names."""
    known = manager.all_tasks
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=5, cutoff=0.6)
            hint = f"closest: {', '.join(close)}" if close else "scripts/general.py --list_tasks PATTERN lists them"
            raise UserError(f"unknown lm-eval task '{name}' ({hint})")


def load_tasks(names, manager) -> list:
    """The tasks as lm-eval objects (a group with its subtasks, a tag as its tasks), their data loaded now, before
    any model: a task whose data is on the Hub fails here, in one line, when the Hub is unreachable."""
    check_task_names(names, manager)
    objects = []
    for name in names:
        try:
            loaded = manager.load([name])
        except ConnectionError as error:
            raise UserError(
                f"task {name}: its data is on the Hugging Face Hub, which cannot be reached from here ({error}); run "
                "once where the Hub is reachable (the data is then cached; HF_HUB_OFFLINE=1 reads the cache), or use "
                "a local task such as arabic_sft_mcq"
            ) from None
        top = loaded["groups"].get(name) or loaded["tasks"].get(name)
        objects.extend([top] if top is not None else loaded["tasks"].values())  # a tag: its tasks
    return objects


LOCAL_TASK = "arabic_sft_mcq"


def task_questions(names, manager=None) -> tuple[dict[str, list[str]], list[str]]:
    """({task: its evaluation questions as the model is asked them (lm-eval's doc_to_text)}, the tasks skipped:
    their data could not be had here, e.g. on the Hub without a connection). Groups and tags give their tasks."""
    manager = manager or task_manager()
    check_task_names(names, manager)
    if set(names) - {LOCAL_TASK}:
        hub_is_reachable()  # asked once; unreachable, offline from now on: a Hub task fails at once, no retries
    questions, skipped = {}, []
    for name in names:
        try:
            loaded = manager.load([name])
            for task_name, task in loaded["tasks"].items():
                questions[task_name] = [str(task.doc_to_text(doc)) for doc in task.eval_docs]
        except Exception as error:  # a dataset that cannot be had here, whatever `datasets` raises
            skipped.append(f"{name} ({type(error).__name__})")
    return questions, skipped


def files_in(folder: Path) -> tuple[str, ...]:
    return tuple(str(path) for path in sorted(folder.glob("*")) if path.is_file()) if folder.is_dir() else ()


def model_sides(recipe, names=SIDES) -> list[Side]:
    """The base model and the fine-tuned one (those of `names`) as lm-eval `model_args`, from one recipe."""
    model, fields = recipe.model, recipe.fields
    common = {"dtype": str(model.dtype or "auto"), "trust_remote_code": bool(fields.trust_remote_code)}
    base = {"pretrained": model.model_name_or_path, "revision": model.model_revision, **common}
    base_files = files_in(Path(model.model_name_or_path).expanduser())
    sides = [Side("base", base, base_files)] if "base" in names else []
    if "tuned" in names:
        tuned_dir = Path(fields.output_dir or "")
        if not fields.output_dir or not tuned_dir.is_dir():
            raise UserError(f"{fields.output_dir}: the fine-tuned model does not exist: train it first (make train)")
        if (tuned_dir / "adapter_config.json").is_file():
            tuned = {**base, "peft": str(tuned_dir)}
            if (tuned_dir / "tokenizer_config.json").is_file():  # sft.py saves the tokenizer it trained with
                tuned["tokenizer"] = str(tuned_dir)
            sides.append(Side("tuned", tuned, files_in(tuned_dir) + base_files))
        else:
            sides.append(Side("tuned", {"pretrained": str(tuned_dir), **common}, files_in(tuned_dir)))
    return sides


def backend_args(side: Side, backend: str) -> dict:
    """`model_args` as the backend names them: vLLM takes an adapter as `lora_local_path`."""
    args = {key: value for key, value in side.model_args.items() if value is not None}
    if backend == "vllm" and "peft" in args:
        args["lora_local_path"] = args.pop("peft")
        args["enable_lora"] = True
    return args


def cache_key(side: Side, settings: GeneralSettings) -> str:
    """What the answers depend on: the model (arguments, and its files' names, sizes and modification times), the
    settings. lm-eval keys its cache by request only; a new model under the same path must not reuse its answers."""
    stats = [(path, os.stat(path).st_size, os.stat(path).st_mtime_ns) for path in side.weights]
    payload = {"model": side.model_args, "files": stats, "settings": asdict(settings)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


def make_model(side: Side, settings: GeneralSettings):
    """lm-eval's model object for a side; a model that does not load is one line."""
    from lm_eval.api.registry import get_model

    args = backend_args(side, settings.backend)
    check_model_source(args.get("pretrained"), args.get("revision"), args.get("trust_remote_code", False))
    try:
        model_class = get_model(settings.backend)
    except (ImportError, ValueError, KeyError) as error:
        raise UserError(f"backend {settings.backend}: not available ({error}); pip install 'lm-eval[vllm]'") from None
    try:
        return model_class.create_from_arg_obj(args, {"batch_size": settings.batch_size, "device": settings.device})
    except ImportError as error:
        raise UserError(f"backend {settings.backend}: {error}") from None
    except (OSError, ValueError, RuntimeError, TypeError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{side.name} model {args.get('pretrained')}: does not load ({reason})") from None


def evaluate_side(side: Side, settings: GeneralSettings, tasks: list, manager, folder: Path, overwrite: bool) -> dict:
    """Run lm-eval on one side and write folder/<side>/ whole: lm-eval's results (results.json), its per-question
    samples (samples_TASK.jsonl) and the manifest. Answers are cached as they come (folder/.cache/), so the same
    command after a stop asks the model only what is missing. Returns lm-eval's results."""
    import lm_eval
    from lm_eval.utils import handle_non_serializable

    started = now()
    out = folder / side.name
    if out.exists() and not overwrite:
        raise UserError(f"{out}: already exists (pass --overwrite to evaluate it again)")
    cache = folder / CACHE / f"{side.name}-{cache_key(side, settings)}"
    cache.parent.mkdir(parents=True, exist_ok=True)
    lm = make_model(side, settings)
    clock = time.perf_counter()
    try:
        results = lm_eval.simple_evaluate(
            model=lm,
            model_args=backend_args(side, settings.backend),
            tasks=tasks,
            task_manager=manager,
            num_fewshot=settings.num_fewshot,
            batch_size=settings.batch_size,
            device=settings.device,
            limit=settings.limit,
            log_samples=True,
            use_cache=str(cache),
            apply_chat_template=settings.chat_template,
            fewshot_as_multiturn=settings.chat_template,
            random_seed=settings.seed,
            numpy_random_seed=settings.seed,
            torch_random_seed=settings.seed,
            fewshot_random_seed=settings.seed,
        )
    finally:
        del lm
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    if results is None:  # not the main process of a data-parallel launch
        return {}
    seconds = time.perf_counter() - clock
    samples = results.pop("samples")
    questions = sum(len({row["doc_id"] for row in rows}) for rows in samples.values())
    print(f"general ability, {side.name}: {questions} questions in {seconds:.1f} s", file=sys.stderr)
    staging = folder / f".{side.name}.writing"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    dump = lambda value: json.dumps(value, ensure_ascii=False, default=handle_non_serializable)  # noqa: E731
    (staging / "results.json").write_text(
        json.dumps(results, ensure_ascii=False, indent=2, default=handle_non_serializable), encoding="utf-8"
    )
    for task, rows in samples.items():
        lines = "".join(dump(row) + "\n" for row in rows)
        (staging / f"samples_{task}.jsonl").write_text(lines, encoding="utf-8")
    configs = {
        "general": {**asdict(settings), "side": side.name, "model_args": side.model_args},
        "timing": {"questions": questions, "seconds": round(seconds, 3)},
    }
    write_json_atomic(staging / SIDE_MANIFEST, build_manifest(configs, [], started))
    if out.exists():
        shutil.rmtree(out)
    os.replace(staging, out)
    for done in cache.parent.glob(f"{side.name}-*_rank*.db"):  # the side is written whole: its answers are in it
        done.unlink()
    return results
