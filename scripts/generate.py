"""Batched generation on a test split with the same prompt as training; resumable, rows in input order.

    # a recipe's trained output (its output_dir, test data, columns, prompt and chat format)
    python scripts/generate.py --config recipes/demo.yaml
    # a full fine-tune checkpoint, or a base model + LoRA adapter (the proverbs document's command lines); --task names
    # a preset in recipes/tasks/ that says how rows become prompts (or --config RECIPE for a recipe's)
    python scripts/generate.py --checkpoint_dir results/finetune_allam --test_path data/Test_data.csv \\
        --task proverbs --out_path results/finetune.csv --max_new_tokens 256 --temperature 0.0
    python scripts/generate.py --base_id ALLaM-AI/ALLaM-7B-Instruct-preview --adapter_dir results/adapter \\
        --test_path data/Test_data.csv --task proverbs --out_path results/finetune.csv

    # several processes (one per GPU), each a share of the rows; the same file as one process writes
    accelerate launch --config_file accelerate_configs/ddp.yaml --num_processes 8 scripts/generate.py --config ...

Rows are saved as batches finish (OUT.partial.jsonl, one file per process); a rerun after a crash continues where it
stopped, with any number of processes.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from accelerate import PartialState
from accelerate.utils import gather_object
from tqdm.auto import tqdm

from arabic_sft.checkpoints import MANIFEST
from arabic_sft.cli import UserError, run_cli
from arabic_sft.configs import DATA_FIELDS, RecipeArguments, read_preset, read_recipe, recipe_arguments
from arabic_sft.data import choose_shots, has_source, load_splits, prediction_columns
from arabic_sft.generation import iter_generations, length_sorted_batches
from arabic_sft.locks import exclusive_output
from arabic_sft.manifest import atomic_path, build_manifest, now, write_json_atomic
from arabic_sft.models import context_length, load_for_generation
from arabic_sft.partial import PartialWriter, partial_path, read_done, remove_partial
from arabic_sft.preemption import EXIT_STOPPED, StopRequest, die_with_launcher
from arabic_sft.prompts import build_model_prompt, is_conversational, predictions_table, prompt_token_ids
from arabic_sft.truncation import count_long_prompts


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_argument_group("model (one of)")
    source.add_argument("--config", help="recipe: generate with its trained output_dir, test_file and prompt")
    source.add_argument("--checkpoint_dir", help="full model (or adapter) directory")
    source.add_argument("--base_id", help="base model id or path, with --adapter_dir")
    source.add_argument("--adapter_dir", help="LoRA adapter directory, merged into --base_id")
    parser.add_argument(
        "--split",
        choices=["test", "validation"],
        default="test",
        help="with --config: the recipe's test_file or validation_file (default: test)",
    )
    parser.add_argument("--test_path", help="test data, any format sft.py reads (default: the recipe's for --split)")
    parser.add_argument("--out_path", help="predictions CSV (default: results/<recipe>/predictions_<split>.csv)")
    parser.add_argument("--task", help="a task preset (recipes/tasks/NAME.yaml): its columns and prompt")
    parser.add_argument("--prompt_template", help="default: the recipe's (or the preset's)")
    parser.add_argument("--chat_format", choices=["auto", "chat", "plain"], help="default: the recipe's, else auto")
    parser.add_argument(
        "--baseline",
        action="store_true",
        help="with --config: generate with the recipe's base model (model_name_or_path), untrained; "
        "default output results/<recipe>/baseline-<zero|K>-shot/predictions_<split>.csv",
    )
    parser.add_argument(
        "--shots",
        type=int,
        default=0,
        help="few-shot: K solved training rows before each prompt (chat turns, or prompt + answer "
        "blocks), drawn once with --seed and the same for every row, never one whose inputs are an "
        "answered row's",
    )
    parser.add_argument("--max_new_tokens", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    parser.add_argument("--top_p", type=float, default=1.0)
    parser.add_argument(
        "--batch_size",
        type=int,
        default=16,
        help="prompts per batch; a batch that runs out of memory is generated in halves",
    )
    parser.add_argument(
        "--device_map",
        choices=["auto"],
        help="spread a model too large for one GPU over this process's GPUs (one process only)",
    )
    parser.add_argument(
        "--static_cache",
        action="store_true",
        help="preallocated KV cache; on a GPU the decoding step is then compiled (torch.compile)",
    )
    parser.add_argument("--limit", type=int, help="generate for N examples, chosen reproducibly with --seed")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output (and its partial run)")
    return parser


def resolve(args) -> tuple[dict, RecipeArguments]:
    """(settings, the data fields): the command line, with the recipe's values where a flag is not given."""
    fields = read_recipe(args.config) if args.config else {}
    if args.task:  # a preset's columns and prompt replace the recipe's
        fields = {**fields, **read_preset(args.task)}
    fields.update(
        {key: getattr(args, key) for key in ("prompt_template", "chat_format") if getattr(args, key) is not None}
    )
    if args.test_path:  # a file given on the command line is used whole
        fields.update({f"{args.split}_file": args.test_path, f"{args.split}_fraction": 0.0, "dataset_name": None})
    recipe = recipe_arguments(fields, args.config or "arguments")
    if args.baseline and not args.config:
        raise UserError("--baseline needs --config (the recipe names the base model); without a recipe use --base_id")
    if args.config and not fields.get("output_dir") and not (args.checkpoint_dir or args.base_id or args.baseline):
        raise UserError(f"{args.config}: output_dir is not set, so there is no trained model to load")
    if not (args.config or args.checkpoint_dir or args.base_id):
        raise UserError("give a model: --config, --checkpoint_dir, or --base_id [--adapter_dir]")
    if not has_source(recipe, args.split) and not getattr(recipe, f"{args.split}_fraction"):
        raise UserError(
            f"{args.config}: no {args.split} data in the recipe; give --test_path"
            if args.config
            else "--test_path is required without --config"
        )
    run = f"baseline-{args.shots or 'zero'}-shot/" if args.baseline else ""
    out_path = args.out_path or (
        f"results/{Path(args.config).stem}/{run}predictions_{args.split}.csv" if args.config else None
    )
    if not out_path:
        raise UserError("--out_path is required without --config")
    data = {key: getattr(recipe, key) for key in DATA_FIELDS}
    settings = {
        "split": args.split,
        "data": data,
        "revision": fields.get("model_revision"),
        "trust_remote_code": bool(fields.get("trust_remote_code")),
        "split_seed": fields.get("seed", 42),
        "model_dir": args.checkpoint_dir
        or (None if args.base_id else fields.get("model_name_or_path") if args.baseline else fields.get("output_dir")),
        "out_path": out_path,
    }
    settings.update(
        {
            key: value
            for key, value in vars(args).items()
            if value is not None
            and key
            not in (
                "checkpoint_dir",
                "overwrite",
                "split",
                "config",
                "task",
                "prompt_template",
                "chat_format",
                "test_path",
                "out_path",
            )
        }
    )
    return settings, recipe


def held_out_as_trained(settings: dict, record: dict | None) -> None:
    """A fraction split must hold out the rows the training run held out (its manifest records them)."""
    manifest = Path(settings["model_dir"] or settings.get("adapter_dir") or "", MANIFEST)
    if record is None or not manifest.is_file():
        return
    trained = json.loads(manifest.read_text(encoding="utf-8"))["config"].get("data", {}).get("held_out")
    split = settings["split"]
    if trained and trained.get(f"{split}_rows") != record.get(f"{split}_rows"):
        raise UserError(
            f"{record['source']}: the {split} rows held out now differ from those the training run in "
            f"{settings['model_dir']} held out (the file or the seed changed since training)"
        )


def count_every_process(bar, out: Path) -> None:
    """Move the main process's bar to the rows every process has saved (their partial files)."""
    bar.update(len(read_done(out)) - bar.n)


def wait_for_all(state: PartialState, out: Path, bar, generated: int) -> list[int]:
    """Wait until every process has finished its share, the main process's bar counting their rows meanwhile; the
    number of rows each process generated in this run."""
    if state.num_processes == 1:
        return [generated]
    import torch.distributed as dist

    waiting = dist.barrier(async_op=True)
    while not waiting.is_completed():
        if state.is_main_process:
            count_every_process(bar, out)
        time.sleep(0.2)
    if state.is_main_process:
        count_every_process(bar, out)
    return gather_object([generated])


def main():
    args = make_parser().parse_args()
    started = now()
    settings, recipe = resolve(args)
    # Under `accelerate launch`, each process generates a share of the rows; one process alone otherwise.
    die_with_launcher()
    state = PartialState(cpu=not torch.cuda.is_available())  # CPU processes: gloo
    if args.device_map and state.num_processes > 1:
        raise UserError("--device_map splits one model over the GPUs of one process: launch one process")
    with exclusive_output(settings["out_path"], enabled=state.is_main_process):  # one generation per output file
        generate(args, settings, recipe, started, state)


def generate(args, settings: dict, recipe: RecipeArguments, started: str, state: PartialState):
    out = Path(settings["out_path"])
    if out.exists() and not args.overwrite:
        raise UserError(f"{out}: already exists (pass --overwrite to replace it)")
    if args.overwrite and state.is_main_process:
        remove_partial(out)
    wanted = (args.split, "train") if args.shots else (args.split,)
    splits, spec, record = load_splits(recipe, settings["split_seed"], wanted=wanted, require_answer=False)
    held_out_as_trained(settings, record)
    split = splits[args.split]
    data = split.frame
    if args.limit is not None:
        if not 0 < args.limit <= len(data):
            raise UserError(f"--limit {args.limit}: {split.source} has {len(data)} rows")
        data = data.sample(n=args.limit, random_state=args.seed).sort_index().reset_index(drop=True)

    state.wait_for_everyone()  # --overwrite's removal is done before anyone reads
    done = read_done(out, settings)
    model, tokenizer = load_for_generation(
        settings["model_dir"],
        settings.get("base_id"),
        settings.get("adapter_dir"),
        settings["revision"],
        settings["trust_remote_code"],
        device=None if args.device_map else state.device,
        device_map=args.device_map,
    )
    conversational = is_conversational(tokenizer, recipe.chat_format, spec)
    rows = data.to_dict("records")
    shots = {}
    if args.shots:
        positions = choose_shots(splits["train"].frame, data, spec, args.shots, args.seed)
        shots = {
            "k": args.shots,
            "seed": args.seed,
            "source": splits["train"].source,
            "rows": positions,
            "same_for_every_row": True,
            "rendering": "chat turns" if conversational else "plain text blocks",
        }
    examples = [splits["train"].frame.iloc[i].to_dict() for i in shots.get("rows", [])]
    prompts = [prompt_token_ids(tokenizer, build_model_prompt(row, spec, conversational, examples)) for row in rows]
    if warning := count_long_prompts(prompts, args.max_new_tokens, context_length(model)):
        print(warning, file=sys.stderr)

    out.parent.mkdir(parents=True, exist_ok=True)
    # The batches not finished yet, dealt out in turn: each process a disjoint share, decided from what every
    # process read before any of them writes.
    pending = [
        number
        for number, batch in enumerate(length_sorted_batches(prompts, args.batch_size))
        if not all(index in done for index in batch)
    ]
    mine = set(pending[state.process_index :: state.num_processes])
    state.wait_for_everyone()
    stop = StopRequest()  # SIGTERM: the batch being generated is finished and saved, then the run stops
    writer, generated = PartialWriter(out, state.process_index, settings), 0
    bar = tqdm(total=len(rows), initial=len(done), unit="ex", desc="generating", disable=not state.is_main_process)
    for batch in iter_generations(
        model,
        tokenizer,
        prompts,
        args.max_new_tokens,
        args.batch_size,
        args.temperature,
        args.top_p,
        args.seed,
        skip=done,
        static_cache=args.static_cache,
        take=mine,
    ):
        writer.write(batch)
        generated += len(batch)
        if state.num_processes > 1:
            count_every_process(bar, out)
        else:
            bar.update(len(batch))
        if stop.requested:
            break
    writer.close()
    counts = wait_for_all(state, out, bar, generated)  # rows each process generated in this run
    bar.close()
    if not state.is_main_process:
        return
    done = read_done(out, settings)
    if len(done) < len(rows):
        if not stop.requested:
            raise UserError(f"{out}: {len(rows) - len(done)} rows are missing after generation")
        print(
            f"stopped by SIGTERM after {len(done)} of {len(rows)} rows (saved in {partial_path(out)}); the same "
            "command continues",
            file=sys.stderr,
        )
        sys.exit(EXIT_STOPPED)
    settings = {**settings, "num_processes": state.num_processes, "rows_per_process": counts}

    predictions = predictions_table(
        rows, spec, prediction_columns(spec, split.names), [done[i] for i in range(len(rows))]
    )
    with atomic_path(out) as temporary:
        predictions.to_csv(temporary, index=False, encoding="utf-8")
    remove_partial(out)
    files = [
        getattr(recipe, f"{split_name}_file")
        for split_name in ("train", args.split)
        if getattr(recipe, f"{split_name}_file")
    ]
    write_json_atomic(
        out.with_suffix(".manifest.json"),
        build_manifest({"generation": settings, "held_out": record, "shots": shots or None}, files, started),
    )
    print(f"wrote {len(predictions)} predictions to {out}")


if __name__ == "__main__":
    run_cli(main)
