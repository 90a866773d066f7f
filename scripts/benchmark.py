"""Training and generation throughput: the seed scripts' way against this project's, same model, data and examples.

    python scripts/benchmark.py --config recipes/demo.yaml --model models/bench-llama --out results/bench/cpu.json

Training, one epoch over the same tokenized examples and batch size, each side in its own process (fair peak memory):
  baseline  HF `Trainer`, every example padded to `max_length` (the seed scripts' tokenization)
  ours      TRL `SFTTrainer` as scripts/sft.py runs it: batches padded to their longest example, and grouped by
            length (`train_sampling_strategy: group_by_length`) unless --no_group_by_length
Generation, greedy, the same prompts and max_new_tokens:
  baseline  one `generate` call per example (the proverbs scripts)
  ours      length-sorted, left-padded batches (scripts/generate.py); outputs must equal the baseline's

tokens/s counts real tokens only (padding excluded): training input tokens, trained (answer + EOS) tokens, and
generated tokens up to EOS. Peak memory is the process's peak RSS on CPU, `torch.cuda.max_memory_allocated` on GPU.
MFU (GPU only) = real tokens/s x 6 x N / peak bf16 FLOP/s, with N the model's parameters (full fine-tuning; a LoRA
run with a frozen base would use 4 x N, +2 x N with gradient checkpointing).
"""

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from arabic_sft.cli import UserError, run_cli
from arabic_sft.manifest import atomic_path, build_manifest, now, write_json_atomic

GPU_PEAK_BF16_FLOPS = {"H100": 989e12, "H200": 989e12, "A100": 312e12}


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="recipe: data, prompt, max_length, learning rate")
    parser.add_argument("--model", help="model directory or id (default: the recipe's model_name_or_path)")
    parser.add_argument("--out", default="results/bench/cpu.json", help="results JSON (a .md summary beside it)")
    parser.add_argument("--train_examples", type=int, default=333, help="training examples (one epoch)")
    parser.add_argument("--batch_size", type=int, default=8, help="training batch size, both sides")
    parser.add_argument("--gen_examples", type=int, default=100, help="test prompts to generate for")
    parser.add_argument("--gen_batch_size", type=int, default=50)
    parser.add_argument("--max_new_tokens", type=int, default=64)
    parser.add_argument("--no_group_by_length", action="store_true", help="ours: dynamic padding only")
    parser.add_argument("--part", choices=["train_baseline", "train_ours", "generate"], help=argparse.SUPPRESS)
    parser.add_argument("--examples_file", help=argparse.SUPPRESS)
    return parser


def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def load_setup(args):
    """(recipe fields, model path, tokenizer, chat or plain) for every part."""
    from arabic_sft.configs import parse_recipe
    from arabic_sft.models import get_tokenizer
    from arabic_sft.prompts import is_conversational

    recipe, training, model_args = parse_recipe(["--config", args.config])
    model = args.model or model_args.model_name_or_path
    tokenizer = get_tokenizer(model)
    return recipe, training, model, tokenizer, is_conversational(tokenizer, recipe.chat_format)


def tokenized_examples(args, work: Path) -> Path:
    """Tokenize the training examples once, as TRL does for sft.py (prompt masked, answer + EOS trained)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from arabic_sft.data import get_task, load_split
    from arabic_sft.prompts import build_dataset, resolve_template

    recipe, training, model, tokenizer, conversational = load_setup(args)
    rows = load_split(recipe.train_file, recipe.task, encoding=recipe.csv_encoding).head(args.train_examples)
    dataset = build_dataset(rows, resolve_template(recipe.task, recipe.prompt_template), get_task(recipe.task).answer,
                            conversational)
    config = SFTConfig(output_dir=str(work / "tokenize"), max_length=training.max_length, use_cpu=True, bf16=False,
                       report_to="none", gradient_checkpointing=False)
    prepared = SFTTrainer(model=model, args=config, train_dataset=dataset, processing_class=tokenizer).train_dataset
    examples = [{"input_ids": row["input_ids"], "labels": row["labels"]} for row in prepared]
    path = work / "examples.json"
    path.write_text(json.dumps({"examples": examples, "max_length": training.max_length}), encoding="utf-8")
    return path


class StepTimer:
    """Wall time of every optimizer step and of the whole training loop (a Trainer callback)."""

    def __init__(self):
        from transformers import TrainerCallback

        timer = self

        class Callback(TrainerCallback):
            def on_train_begin(self, *_, **__):
                timer.started = time.perf_counter()

            def on_step_begin(self, *_, **__):
                timer.step_started = time.perf_counter()

            def on_step_end(self, *_, **__):
                timer.steps.append(time.perf_counter() - timer.step_started)

            def on_train_end(self, *_, **__):
                timer.total = time.perf_counter() - timer.started

        self.steps, self.total, self.callback = [], 0.0, Callback()


def run_training(args, part: str) -> dict:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments, default_data_collator
    from trl import SFTConfig, SFTTrainer

    recipe, training, model_path, tokenizer, _ = load_setup(args)
    payload = json.loads(Path(args.examples_file).read_text(encoding="utf-8"))
    examples, max_length = payload["examples"], payload["max_length"]
    common = {
        "output_dir": tempfile.mkdtemp(prefix="bench-"), "per_device_train_batch_size": args.batch_size,
        "num_train_epochs": 1, "learning_rate": training.learning_rate, "lr_scheduler_type": "constant",
        "save_strategy": "no", "eval_strategy": "no", "report_to": "none", "disable_tqdm": True, "seed": 0,
        "use_cpu": not torch.cuda.is_available(), "bf16": torch.cuda.is_available(), "dataloader_num_workers": 0,
        "gradient_checkpointing": False, "logging_strategy": "no",
    }  # fmt: skip
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch.bfloat16 if torch.cuda.is_available() else torch.float32)
    timer = StepTimer()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if part == "train_baseline":
        rows = []
        for example in examples:  # the seed scripts: every example padded to max_length
            ids, labels = example["input_ids"][:max_length], example["labels"][:max_length]
            padding = max_length - len(ids)
            rows.append({"input_ids": ids + [pad] * padding, "attention_mask": [1] * len(ids) + [0] * padding,
                         "labels": labels + [-100] * padding})
        trainer = Trainer(model=model, args=TrainingArguments(**common), train_dataset=Dataset.from_list(rows),
                          data_collator=default_data_collator, callbacks=[timer.callback])
        padded = len(rows) * max_length
    else:
        strategy = "random" if args.no_group_by_length else "group_by_length"
        config = SFTConfig(**common, max_length=max_length, train_sampling_strategy=strategy)
        trainer = SFTTrainer(model=model, args=config, train_dataset=Dataset.from_list(examples),
                             processing_class=tokenizer, callbacks=[timer.callback])
        padded = None
    trainer.train()
    tokens = sum(min(len(e["input_ids"]), max_length) for e in examples)
    trained = sum(sum(label != -100 for label in e["labels"][:max_length]) for e in examples)
    return {
        "examples": len(examples), "steps": len(timer.steps), "train_seconds": timer.total,
        "median_step_s": statistics.median(timer.steps), "tokens": tokens, "trained_tokens": trained,
        "padded_tokens": padded, "tokens_per_s": tokens / timer.total, "trained_tokens_per_s": trained / timer.total,
        "peak_mem_mb": peak_memory_mb(), "parameters": model.num_parameters(),
    }  # fmt: skip


def run_generation(args) -> dict:
    from arabic_sft.data import load_split
    from arabic_sft.generation import generate_texts
    from arabic_sft.models import load_for_generation
    from arabic_sft.prompts import build_model_prompt, prompt_token_ids, resolve_template

    recipe, _, model_path, _, conversational = load_setup(args)
    model, tokenizer = load_for_generation(model_path)
    template = resolve_template(recipe.task, recipe.prompt_template)
    rows = load_split(recipe.test_file, recipe.task, require_answer=False, encoding=recipe.csv_encoding)
    prompts = [prompt_token_ids(tokenizer, build_model_prompt(row, template, conversational))
               for row in rows.head(args.gen_examples).to_dict("records")]
    options = {"max_new_tokens": args.max_new_tokens}

    started = time.perf_counter()
    one_by_one, new_tokens = [], 0
    with torch.no_grad():
        for prompt in prompts:  # the seed scripts: one generate call per example
            output = model.generate(input_ids=torch.tensor([prompt], device=model.device), do_sample=False,
                                    eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                                    **options)[0, len(prompt):].tolist()
            new_tokens += len(output)
            one_by_one.append(tokenizer.decode(output, skip_special_tokens=True).strip())
    baseline_seconds = time.perf_counter() - started

    started = time.perf_counter()
    batched = generate_texts(model, tokenizer, prompts, batch_size=args.gen_batch_size, **options)
    ours_seconds = time.perf_counter() - started
    return {
        "examples": len(prompts), "new_tokens": new_tokens, "baseline_seconds": baseline_seconds,
        "ours_seconds": ours_seconds, "baseline_tokens_per_s": new_tokens / baseline_seconds,
        "ours_tokens_per_s": new_tokens / ours_seconds, "outputs_equal": batched == one_by_one,
    }  # fmt: skip


def run_part(args, part: str, examples_file: Path | None = None) -> dict:
    """One measurement in a fresh process, so that each side's peak memory is its own."""
    command = [sys.executable, __file__, "--part", part, *sys.argv[1:]]
    if examples_file is not None:
        command += ["--examples_file", str(examples_file)]
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    if result.returncode != 0:
        raise UserError(f"benchmark part {part} failed: {result.stderr.strip().splitlines()[-1]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def summary_table(results: dict) -> str:
    keys = ["train_tokens_per_s_baseline", "train_tokens_per_s", "train_speedup", "trained_tokens_per_s_baseline",
            "trained_tokens_per_s", "median_step_s_baseline", "median_step_s", "peak_mem_baseline_mb", "peak_mem_mb",
            "gen_tokens_per_s_baseline", "gen_tokens_per_s", "gen_speedup", "gen_seconds_baseline", "gen_seconds",
            "gen_outputs_equal"]  # fmt: skip
    lines = [f"# Benchmark: {results['settings']['model']} on {results['device']}", "",
             "| measure | value |", "|---|---|"]
    lines += [f"| {key} | {results[key]:.4g} |" if isinstance(results[key], float) else f"| {key} | {results[key]} |"
              for key in keys]
    return "\n".join(lines) + "\n"


def main():
    args = make_parser().parse_args()
    if args.part:
        result = run_generation(args) if args.part == "generate" else run_training(args, args.part)
        print(json.dumps(result))
        return
    started = now()
    with tempfile.TemporaryDirectory() as work:
        print("tokenizing the training examples")
        examples = tokenized_examples(args, Path(work))
        parts = {}
        for part in ("train_baseline", "train_ours", "generate"):
            print(f"running {part}")
            parts[part] = run_part(args, part, examples)
    baseline, ours, generation = parts["train_baseline"], parts["train_ours"], parts["generate"]
    results = {
        "train_tokens_per_s_baseline": baseline["tokens_per_s"], "train_tokens_per_s": ours["tokens_per_s"],
        "train_speedup": ours["tokens_per_s"] / baseline["tokens_per_s"],
        "trained_tokens_per_s_baseline": baseline["trained_tokens_per_s"],
        "trained_tokens_per_s": ours["trained_tokens_per_s"],
        "median_step_s_baseline": baseline["median_step_s"], "median_step_s": ours["median_step_s"],
        "peak_mem_baseline_mb": baseline["peak_mem_mb"], "peak_mem_mb": ours["peak_mem_mb"],
        "gen_tokens_per_s_baseline": generation["baseline_tokens_per_s"],
        "gen_tokens_per_s": generation["ours_tokens_per_s"],
        "gen_speedup": generation["baseline_seconds"] / generation["ours_seconds"],
        "gen_seconds_baseline": generation["baseline_seconds"], "gen_seconds": generation["ours_seconds"],
        "gen_outputs_equal": generation["outputs_equal"],
        "mfu": None, "mfu_baseline": None,
    }  # fmt: skip
    if torch.cuda.is_available():
        peak = next((flops for name, flops in GPU_PEAK_BF16_FLOPS.items() if name in torch.cuda.get_device_name(0)), None)
        if peak:
            flops_per_token = 6 * ours["parameters"]
            results["mfu"] = ours["tokens_per_s"] * flops_per_token / peak
            results["mfu_baseline"] = baseline["tokens_per_s"] * flops_per_token / peak
    manifest = build_manifest({"benchmark": vars(args)}, [], started)
    results.update(parts=parts, device=manifest["device"],
                   settings={**vars(args), "model": args.model or "recipe model"}, manifest=manifest)
    out = Path(args.out)
    write_json_atomic(out, results)
    table = summary_table(results)
    with atomic_path(out.with_suffix(".md")) as temporary:
        temporary.write_text(table, encoding="utf-8")
    print(table)
    print(f"wrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    run_cli(main)
