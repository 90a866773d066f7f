"""Batched generation on a test CSV with the same prompt as training; resumable, rows in input order.

    # a recipe's trained output (its output_dir, test_file, prompt and chat format)
    python scripts/generate.py --config recipes/demo.yaml
    # a full fine-tune checkpoint, or a base model + LoRA adapter (the proverbs document's command lines)
    python scripts/generate.py --checkpoint_dir results/finetune_allam --test_path data/Test_data.csv \\
        --out_path results/finetune.csv --max_new_tokens 256 --temperature 0.0
    python scripts/generate.py --base_id ALLaM-AI/ALLaM-7B-Instruct-preview --adapter_dir results/adapter \\
        --test_path data/Test_data.csv --out_path results/finetune.csv

Rows are saved as batches finish (OUT.partial.jsonl); a rerun after a crash continues where it stopped.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from arabic_sft.cli import UserError, run_cli
from arabic_sft.configs import read_recipe, recipe_arguments
from arabic_sft.data import TASKS, get_task, load_split
from arabic_sft.generation import iter_generations
from arabic_sft.locks import exclusive_output
from arabic_sft.manifest import atomic_path, build_manifest, now, write_json_atomic
from arabic_sft.models import load_for_generation
from arabic_sft.preemption import EXIT_STOPPED, StopRequest
from arabic_sft.prompts import build_model_prompt, is_conversational, prompt_token_ids, resolve_template


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_argument_group("model (one of)")
    source.add_argument("--config", help="recipe: generate with its trained output_dir, test_file and prompt")
    source.add_argument("--checkpoint_dir", help="full model (or adapter) directory")
    source.add_argument("--base_id", help="base model id or path, with --adapter_dir")
    source.add_argument("--adapter_dir", help="LoRA adapter directory, merged into --base_id")
    parser.add_argument("--split", choices=["test", "validation"], default="test",
                        help="with --config: the recipe's test_file or validation_file (default: test)")
    parser.add_argument("--test_path", help="test CSV (default: the recipe's file for --split)")
    parser.add_argument("--out_path", help="predictions CSV (default: results/<recipe>/predictions_<split>.csv)")
    parser.add_argument("--task", choices=sorted(TASKS), help="data format (default: the recipe's, else proverbs)")
    parser.add_argument("--prompt_template", help="default: the recipe's, else the task's seed prompt")
    parser.add_argument("--chat_format", choices=["auto", "chat", "plain"], help="default: the recipe's, else auto")
    parser.add_argument("--max_new_tokens", type=int, default=256)
    parser.add_argument("--temperature", type=float, default=0.0, help="0 = greedy")
    parser.add_argument("--top_p", type=float, default=1.0)
    parser.add_argument("--batch_size", type=int, default=16,
                        help="prompts per batch; a batch that runs out of memory is generated in halves")
    parser.add_argument("--static_cache", action="store_true",
                        help="preallocated KV cache; on a GPU the decoding step is then compiled (torch.compile)")
    parser.add_argument("--limit", type=int, help="generate for N examples, chosen reproducibly with --seed")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing output (and its partial run)")
    return parser


def resolve(args) -> dict:
    """Settings from the command line, with the recipe's values where a flag is not given."""
    settings = {"task": "proverbs", "prompt_template": None, "chat_format": "auto", "revision": None,
                "trust_remote_code": False, "csv_encoding": "utf-8-sig", "model_dir": args.checkpoint_dir}
    if args.config:
        fields = read_recipe(args.config)
        recipe = recipe_arguments(fields, args.config)
        if not fields.get("output_dir"):
            raise UserError(f"{args.config}: output_dir is not set, so there is no trained model to load")
        settings.update(task=recipe.task, prompt_template=recipe.prompt_template, chat_format=recipe.chat_format,
                        csv_encoding=recipe.csv_encoding, revision=fields.get("model_revision"),
                        trust_remote_code=bool(fields.get("trust_remote_code")),
                        model_dir=args.checkpoint_dir or fields["output_dir"],
                        test_path=recipe.test_file if args.split == "test" else recipe.validation_file,
                        out_path=f"results/{Path(args.config).stem}/predictions_{args.split}.csv")
    settings.update({key: value for key, value in vars(args).items() if value is not None and key not in ("checkpoint_dir", "overwrite", "split")})
    if not (settings["model_dir"] or settings.get("base_id")):
        raise UserError("give a model: --config, --checkpoint_dir, or --base_id [--adapter_dir]")
    for key in ("test_path", "out_path"):
        if not settings.get(key):
            raise UserError(f"--{key} is required without --config" if not args.config else
                            f"{args.config}: no {args.split} file in the recipe; give --test_path")
    return settings


def read_partial(path: Path, settings: dict) -> dict[int, str]:
    """Rows a killed run already wrote; a torn last line (killed mid-write) is ignored."""
    if not path.is_file():
        return {}
    lines = path.read_text(encoding="utf-8").splitlines()
    if not lines or json.loads(lines[0]).get("settings") != settings:
        raise UserError(f"{path}: a partial run with other settings; delete it or pass --overwrite")
    done = {}
    for line in lines[1:]:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            break
        done[row["index"]] = row["text"]
    return done


def main():
    args = make_parser().parse_args()
    started = now()
    settings = resolve(args)
    with exclusive_output(settings["out_path"]):  # one generation per output file
        generate(args, settings, started)


def generate(args, settings: dict, started: str):
    out = Path(settings["out_path"])
    partial = out.with_name(out.name + ".partial.jsonl")
    if args.overwrite:
        partial.unlink(missing_ok=True)
    elif out.exists():
        raise UserError(f"{out}: already exists (pass --overwrite to replace it)")
    task = get_task(settings["task"])
    template = resolve_template(settings["task"], settings["prompt_template"])
    data = load_split(settings["test_path"], settings["task"], require_answer=False, encoding=settings["csv_encoding"])
    if args.limit is not None:
        if not 0 < args.limit <= len(data):
            raise UserError(f"--limit {args.limit}: {settings['test_path']} has {len(data)} rows")
        data = data.sample(n=args.limit, random_state=args.seed).sort_index().reset_index(drop=True)

    done = read_partial(partial, settings)
    model, tokenizer = load_for_generation(
        settings["model_dir"], settings.get("base_id"), settings.get("adapter_dir"), settings["revision"],
        settings["trust_remote_code"],
    )
    conversational = is_conversational(tokenizer, settings["chat_format"])
    rows = data.to_dict("records")
    prompts = [prompt_token_ids(tokenizer, build_model_prompt(row, template, conversational)) for row in rows]

    out.parent.mkdir(parents=True, exist_ok=True)
    stop = StopRequest()  # SIGTERM: the batch being generated is finished and saved, then the run stops
    with open(partial, "a", encoding="utf-8") as handle, tqdm(total=len(rows), initial=len(done), unit="ex", desc="generating") as bar:
        if not done:
            handle.write(json.dumps({"settings": settings}, ensure_ascii=False) + "\n")
        for batch in iter_generations(
            model, tokenizer, prompts, args.max_new_tokens, args.batch_size, args.temperature, args.top_p, args.seed,
            skip=done, static_cache=args.static_cache,
        ):
            handle.write("".join(json.dumps({"index": i, "text": t}, ensure_ascii=False) + "\n" for i, t in batch))
            handle.flush()
            os.fsync(handle.fileno())
            done.update(batch)
            bar.update(len(batch))
            if stop.requested:
                break
    if stop.requested and len(done) < len(rows):
        print(f"stopped by SIGTERM after {len(done)} of {len(rows)} rows (saved in {partial}); the same command "
              "continues", file=sys.stderr)
        sys.exit(EXIT_STOPPED)

    predictions = data.rename(columns=task.output_columns)
    predictions[task.generated_column] = [done[index] for index in range(len(rows))]
    with atomic_path(out) as temporary:
        predictions.to_csv(temporary, index=False, encoding="utf-8")
    partial.unlink()
    write_json_atomic(out.with_suffix(".manifest.json"), build_manifest({"generation": settings}, [settings["test_path"]], started))
    print(f"wrote {len(predictions)} predictions to {out}")


if __name__ == "__main__":
    run_cli(main)
