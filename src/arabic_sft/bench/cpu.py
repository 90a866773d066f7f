"""Training and generation throughput: the seed scripts' way against this project's, same model, data and examples.

    python scripts/benchmark.py --config recipes/demo.yaml --model models/bench-llama --out results/bench/cpu.json
    # on a GPU, a random-weight model of a real shape (scripts/make_tiny_model.py --shape allam-7b), QLoRA:
    python scripts/benchmark.py --config recipes/demo.yaml --model models/allam-7b-shape --peft qlora \
        --out results/bench/h100-allam7b-qlora.json

Training, one epoch over the same tokenized examples and batch size, each side in its own process (fair peak memory):
  baseline  HF `Trainer`, every example padded to `max_length` (the seed scripts' tokenization); with --peft, the
            model wrapped by PEFT's `get_peft_model` as the SHEFAA seed does
  ours      TRL `SFTTrainer` as scripts/sft.py runs it: batches padded to their longest example, and grouped by
            length (`train_sampling_strategy: group_by_length`) unless --no_group_by_length; with --peft, TRL's
            own PEFT setup (`peft_config`)
Generation, greedy, the same prompts and max_new_tokens (after one untimed warm-up batch on each side):
  baseline  one `generate` call per example (the proverbs scripts); --baseline_gen_examples times it on the first K
            prompts only (its tokens/s is then measured on those K, and its outputs compared on those K)
  ours      length-sorted, left-padded batches (scripts/generate.py, --static_cache as there); outputs must equal
            the baseline's

tokens/s counts real tokens only (padding excluded): training input tokens, trained (answer + EOS) tokens, and
generated tokens. Peak memory is the process's peak RSS on CPU, `torch.cuda.max_memory_allocated` on GPU.
MFU (GPU only) = real tokens/s x F / the GPU's peak dense bf16 FLOP/s, with F the FLOPs per token: 6N for full
fine-tuning, 4N with --peft (frozen base: no weight gradients), +2N with --gradient_checkpointing (the forward runs
twice). N = the base model's parameters (bf16 shape, even under QLoRA), without the input embedding when it is not
tied to the LM head (a lookup, not a matmul). Attention's sequence-length term is left out (short examples here).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from arabic_sft.bench.refusals import refusal_results
from arabic_sft.recipe import field_choices
from arabic_sft.runs import bench_figures
from arabic_sft.runtime.errors import ScriptParser, UserError, run_cli
from arabic_sft.runtime.manifest import atomic_path, build_manifest, now, write_json_atomic


# Peak dense bf16 FLOP/s (vendor datasheets), matched in this order against torch.cuda.get_device_name().
GPU_PEAK_BF16_FLOPS = {
    "H100 PCIe": 756e12,
    "H100": 989e12,
    "H200": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "A10G": 70e12,
    "L4": 121e12,
}


def make_parser() -> argparse.ArgumentParser:
    parser = ScriptParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="recipe: data, prompt, max_length, learning rate")
    parser.add_argument("--model", help="model directory or id (default: the recipe's model_name_or_path)")
    parser.add_argument("--out", default=str(bench_figures("cpu")), help="results JSON (a .md summary beside it)")
    parser.add_argument("--train_examples", type=int, default=333, help="training examples (one epoch)")
    parser.add_argument("--batch_size", type=int, default=8, help="training batch size, both sides")
    parser.add_argument("--gen_examples", type=int, default=100, help="test prompts to generate for")
    parser.add_argument("--gen_batch_size", type=int, default=50)
    parser.add_argument("--max_new_tokens", type=int, default=64)
    parser.add_argument(
        "--baseline_gen_examples",
        type=int,
        help="time the one-by-one baseline on the first K prompts only (default: all)",
    )
    parser.add_argument("--no_group_by_length", action="store_true", help="ours: dynamic padding only")
    parser.add_argument(
        "--padding_free",
        action="store_true",
        help="ours: each batch as one row, sequences isolated by their position_ids (no padding)",
    )
    parser.add_argument(
        "--peft",
        choices=["none", "lora", "qlora"],
        default="none",
        help="training: full fine-tuning, LoRA on the model's dtype, or LoRA on a 4-bit nf4 base",
    )
    parser.add_argument("--lora_r", type=int, default=8, help="with --peft (default: SHEFAA's 8)")
    parser.add_argument("--lora_alpha", type=int, default=32)
    parser.add_argument("--lora_dropout", type=float, default=0.1)
    parser.add_argument("--lora_target_modules", nargs="+", default=["all-linear"])
    parser.add_argument(
        "--adapter_dtype",
        choices=field_choices("adapter_dtype"),
        default="auto",
        help="ours, with --peft: the LoRA parameters' dtype, as the recipe field of that name",
    )
    parser.add_argument("--gradient_checkpointing", action="store_true", help="training, both sides")
    parser.add_argument("--static_cache", action="store_true", help="ours: generation with a static KV cache")
    parser.add_argument(
        "--parts", nargs="+", choices=["train", "generate", "recipe"], default=["train", "generate", "recipe"]
    )
    parser.add_argument("--peak_tflops", type=float, help="the GPU's peak dense bf16 TFLOP/s, if not in the table")
    parser.add_argument("--part", choices=["train_baseline", "train_ours", "generate"], help=argparse.SUPPRESS)
    parser.add_argument("--examples_file", help=argparse.SUPPRESS)
    return parser


def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def load_setup(args):
    """(recipe fields, model path, tokenizer, chat or plain) for every part."""
    from arabic_sft.models import get_tokenizer
    from arabic_sft.prompts.builder import is_conversational
    from arabic_sft.recipe import load_recipe
    from arabic_sft.training.launch import check_in_process

    recipe = load_recipe(["--config", args.config])
    check_in_process(recipe)
    model = args.model or recipe.model.model_name_or_path
    tokenizer = get_tokenizer(model)
    return recipe.args, recipe.training, model, tokenizer, is_conversational(tokenizer, recipe.args.chat_format)


def tokenized_examples(args, work: Path) -> Path:
    """Tokenize the training examples once, as TRL does for sft.py (prompt masked, answer + EOS trained)."""
    from arabic_sft.data.splits import load_splits
    from arabic_sft.prompts.builder import build_dataset
    from arabic_sft.training.run import stand_in_trainer

    recipe, training, _, tokenizer, conversational = load_setup(args)
    splits, spec, _ = load_splits(recipe, training.seed, wanted=("train",))
    dataset = build_dataset(splits["train"].frame.head(args.train_examples), spec, conversational)
    # TRL's tokenization reads the tokenizer and the settings only: no 7B model is loaded here
    prepared = stand_in_trainer(training, dataset, tokenizer, work / "tokenize").train_dataset
    examples = [{"input_ids": row["input_ids"], "labels": row["labels"]} for row in prepared]
    path = work / "examples.json"
    path.write_text(json.dumps({"examples": examples, "max_length": training.max_length}), encoding="utf-8")
    return path


def step_timer():
    """Wall time of every optimizer step (`.steps`) and of the whole training loop (`.total`): a Trainer callback."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self):
            self.steps, self.total = [], 0.0

        def now(self) -> float:  # CUDA runs asynchronously: a step has ended when the GPU has finished it
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            return time.perf_counter()

        def on_train_begin(self, *_, **__):
            self.started = self.now()

        def on_step_begin(self, *_, **__):
            self.step_started = self.now()

        def on_step_end(self, *_, **__):
            self.steps.append(self.now() - self.step_started)

        def on_train_end(self, *_, **__):
            self.total = self.now() - self.started

    return StepTimer()


def base_parameters(model_path: str) -> int:
    """N of the MFU formula: the model's parameters at its full-precision shape (a 4-bit model packs two weights per
    byte, so it is counted from its config), without an input embedding that is not tied to the LM head."""
    from transformers import AutoConfig, AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(model_path))
    untied = model.get_input_embeddings().weight is not model.get_output_embeddings().weight
    return model.num_parameters() - (model.get_input_embeddings().weight.numel() if untied else 0)


def flops_per_token(parameters: int, peft: str, gradient_checkpointing: bool) -> int:
    return (6 if peft == "none" else 4) * parameters + (2 * parameters if gradient_checkpointing else 0)


def training_model_config(args, model_path: str):
    """TRL's `ModelConfig` for the model under test: bf16 on a GPU (fp32 on CPU), 4-bit nf4 with double quantization
    for --peft qlora, the LoRA options; turned into quantization and LoRA configs by the TRL functions sft.py uses."""
    from trl import ModelConfig

    target = args.lora_target_modules[0] if args.lora_target_modules == ["all-linear"] else args.lora_target_modules
    return ModelConfig(
        model_name_or_path=model_path, dtype="bfloat16" if torch.cuda.is_available() else "float32",
        use_peft=args.peft != "none", load_in_4bit=args.peft == "qlora", bnb_4bit_quant_type="nf4",
        use_bnb_nested_quant=True, lora_r=args.lora_r, lora_alpha=args.lora_alpha, lora_dropout=args.lora_dropout,
        lora_target_modules=target,
    )  # fmt: skip


def run_training(args, part: str) -> dict:
    from datasets import Dataset
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, Trainer, TrainingArguments, default_data_collator
    from trl import SFTConfig, SFTTrainer, get_peft_config, get_quantization_config

    from arabic_sft.training.model import adapter_torch_dtype, cast_trainable

    recipe, training, model_path, tokenizer, _ = load_setup(args)
    payload = json.loads(Path(args.examples_file).read_text(encoding="utf-8"))
    examples, max_length = payload["examples"], payload["max_length"]
    common = {
        "output_dir": tempfile.mkdtemp(prefix="bench-"), "per_device_train_batch_size": args.batch_size,
        "num_train_epochs": 1, "learning_rate": training.learning_rate, "lr_scheduler_type": "constant",
        "save_strategy": "no", "eval_strategy": "no", "report_to": "none", "disable_tqdm": True, "seed": 0,
        "use_cpu": not torch.cuda.is_available(), "bf16": torch.cuda.is_available(), "dataloader_num_workers": 0,
        "gradient_checkpointing": args.gradient_checkpointing, "logging_strategy": "no",
    }  # fmt: skip
    model_args = training_model_config(args, model_path)
    lora = get_peft_config(model_args)
    model = AutoModelForCausalLM.from_pretrained(
        model_path,
        dtype=getattr(torch, model_args.dtype),
        quantization_config=get_quantization_config(model_args),
        device_map={"": 0} if torch.cuda.is_available() else None,
    )
    timer = step_timer()
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if part == "train_baseline":
        rows = []
        for example in examples:  # the seed scripts: every example padded to max_length
            ids, labels = example["input_ids"][:max_length], example["labels"][:max_length]
            padding = max_length - len(ids)
            rows.append(
                {
                    "input_ids": ids + [pad] * padding,
                    "attention_mask": [1] * len(ids) + [0] * padding,
                    "labels": labels + [-100] * padding,
                }
            )
        if lora is not None:
            model = get_peft_model(model, lora)
            if args.gradient_checkpointing:
                model.enable_input_require_grads()
        trainer = Trainer(
            model=model,
            args=TrainingArguments(**common),
            train_dataset=Dataset.from_list(rows),
            data_collator=default_data_collator,
            callbacks=[timer],
        )
        padded = len(rows) * max_length
    else:
        strategy = "random" if args.no_group_by_length else "group_by_length"
        # The examples are already truncated to max_length; TRL refuses max_length with padding_free (not enforced).
        config = SFTConfig(
            **common,
            max_length=None if args.padding_free else max_length,
            train_sampling_strategy=strategy,
            padding_free=args.padding_free,
        )
        trainer = SFTTrainer(
            model=model,
            args=config,
            train_dataset=Dataset.from_list(examples),
            processing_class=tokenizer,
            peft_config=lora,
            callbacks=[timer],
        )
        padded = None
        if args.peft != "none":
            cast_trainable(trainer.model, adapter_torch_dtype(args.adapter_dtype))
    trainable = [p for p in trainer.model.parameters() if p.requires_grad]
    trainable_dtypes = sorted({str(p.dtype).removeprefix("torch.") for p in trainable})
    trainer.train()
    tokens = sum(min(len(e["input_ids"]), max_length) for e in examples)
    trained = sum(sum(label != -100 for label in e["labels"][:max_length]) for e in examples)
    return {
        "examples": len(examples), "steps": len(timer.steps), "train_seconds": timer.total,
        "median_step_s": statistics.median(timer.steps), "tokens": tokens, "trained_tokens": trained,
        "padded_tokens": padded, "tokens_per_s": tokens / timer.total, "trained_tokens_per_s": trained / timer.total,
        "peak_mem_mb": peak_memory_mb(), "trainable_parameters": sum(p.numel() for p in trainable),
        "trainable_dtypes": trainable_dtypes,
    }  # fmt: skip


def run_generation(args) -> dict:
    from arabic_sft.data.splits import load_splits
    from arabic_sft.generation.batched import generate_texts
    from arabic_sft.models import load_for_generation
    from arabic_sft.prompts.builder import build_model_prompt, prompt_token_ids

    recipe, training, model_path, _, conversational = load_setup(args)
    model, tokenizer = load_for_generation(model_path)
    splits, spec, _ = load_splits(recipe, training.seed, wanted=("test",), require_answer=False)
    prompts = [
        prompt_token_ids(tokenizer, build_model_prompt(row, spec, conversational))
        for row in splits["test"].frame.head(args.gen_examples).to_dict("records")
    ]
    options = {"max_new_tokens": args.max_new_tokens}
    baseline_prompts = prompts[: args.baseline_gen_examples or len(prompts)]

    def one_by_one(some: list[list[int]]) -> tuple[list[str], int]:
        texts, count = [], 0
        with torch.no_grad():
            for prompt in some:  # the seed scripts: one generate call per example
                output = model.generate(input_ids=torch.tensor([prompt], device=model.device), do_sample=False,
                                        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                                        **options)[0, len(prompt):].tolist()  # fmt: skip
                count += len(output)
                texts.append(tokenizer.decode(output, skip_special_tokens=True))
        return texts, count

    def timed(function, *arguments):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        started = time.perf_counter()
        result = function(*arguments)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        return result, time.perf_counter() - started

    counts: dict[int, int] = {}

    def batched(some: list[list[int]]) -> list[str]:
        counts.clear()
        return generate_texts(
            model,
            tokenizer,
            some,
            batch_size=args.gen_batch_size,
            static_cache=args.static_cache,
            token_counts=counts,
            **options,
        )

    # Untimed warm-ups: CUDA context and kernels, and for --static_cache the compilation of the decoding step.
    (_, _), baseline_warmup = timed(one_by_one, prompts[:1])
    _, warmup = timed(batched, prompts[: args.gen_batch_size])
    (reference, baseline_tokens), baseline_seconds = timed(one_by_one, baseline_prompts)
    ours, ours_seconds = timed(batched, prompts)
    new_tokens = sum(counts.values())
    return {
        "examples": len(prompts), "new_tokens": new_tokens, "ours_seconds": ours_seconds,
        "ours_tokens_per_s": new_tokens / ours_seconds, "warmup_seconds": warmup,
        "baseline_examples": len(baseline_prompts), "baseline_new_tokens": baseline_tokens,
        "baseline_seconds": baseline_seconds, "baseline_tokens_per_s": baseline_tokens / baseline_seconds,
        "baseline_warmup_seconds": baseline_warmup, "outputs_equal": ours[: len(baseline_prompts)] == reference,
        "new_tokens_equal": sum(counts[i] for i in range(len(baseline_prompts))) == baseline_tokens,
    }  # fmt: skip


def run_part(args, part: str, examples_file: Path | None = None) -> dict:
    """One measurement in a fresh process, so that each side's peak memory is its own."""
    command = [sys.executable, "-m", "arabic_sft.bench.cpu", "--part", part, *sys.argv[1:]]
    if examples_file is not None:
        command += ["--examples_file", str(examples_file)]
    result = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    )
    if result.returncode != 0:
        raise UserError(f"benchmark part {part} failed: {result.stderr.strip().splitlines()[-1]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def gpu_peak_flops(args) -> float | None:
    if args.peak_tflops:
        return args.peak_tflops * 1e12
    name = torch.cuda.get_device_name(0)
    return next((flops for key, flops in GPU_PEAK_BF16_FLOPS.items() if key in name), None)


def training_results(args, baseline: dict, ours: dict) -> dict:
    parameters = base_parameters(args.model or load_setup(args)[2])
    per_token = flops_per_token(parameters, args.peft, args.gradient_checkpointing)
    results = {
        "train_tokens_per_s_baseline": baseline["tokens_per_s"], "train_tokens_per_s": ours["tokens_per_s"],
        "train_speedup": ours["tokens_per_s"] / baseline["tokens_per_s"],
        "trained_tokens_per_s_baseline": baseline["trained_tokens_per_s"],
        "trained_tokens_per_s": ours["trained_tokens_per_s"],
        "median_step_s_baseline": baseline["median_step_s"], "median_step_s": ours["median_step_s"],
        "peak_mem_baseline_mb": baseline["peak_mem_mb"], "peak_mem_mb": ours["peak_mem_mb"],
        "parameters": parameters, "flops_per_token": per_token, "mfu_baseline": None, "mfu": None,
    }  # fmt: skip
    peak = gpu_peak_flops(args) if torch.cuda.is_available() else None
    if peak:
        results["mfu_baseline"] = baseline["tokens_per_s"] * per_token / peak
        results["mfu"] = ours["tokens_per_s"] * per_token / peak
    return results


def recipe_check_results(config: str, repeats: int = 5) -> dict:
    """Seconds to read and check the recipe as every command does first (`python -m arabic_sft.recipe RECIPE`: a new
    process, no TRL imported), the median of `repeats`; and whether TRL or torch got imported."""
    probe = "import sys; from arabic_sft.recipe.check import check_recipe; check_recipe(sys.argv[1]); " \
        "print(sorted(name for name in ('trl', 'transformers', 'torch') if name in sys.modules))"  # fmt: skip
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "arabic_sft.recipe", config], check=True, capture_output=True)
        seconds.append(time.perf_counter() - started)
    imported = subprocess.run([sys.executable, "-c", probe, config], check=True, capture_output=True, text=True)
    return {"recipe_check_s": statistics.median(seconds), "recipe_check_imports": imported.stdout.strip()}


def generation_results(generation: dict) -> dict:
    # With --baseline_gen_examples, the baseline's time for all prompts is extrapolated from its tokens/s.
    baseline_seconds = generation["new_tokens"] / generation["baseline_tokens_per_s"]
    return {
        "gen_tokens_per_s_baseline": generation["baseline_tokens_per_s"],
        "gen_tokens_per_s": generation["ours_tokens_per_s"],
        "gen_speedup": generation["ours_tokens_per_s"] / generation["baseline_tokens_per_s"],
        "gen_seconds_baseline": baseline_seconds, "gen_seconds": generation["ours_seconds"],
        "gen_baseline_extrapolated": generation["baseline_examples"] < generation["examples"],
        "gen_outputs_equal": generation["outputs_equal"] and generation["new_tokens_equal"],
    }  # fmt: skip


def summary_table(results: dict) -> str:
    settings = results["settings"]
    lines = [f"# Benchmark: {settings['model']} on {results['device']}", "",
             f"peft: {settings['peft']}, gradient checkpointing: {settings['gradient_checkpointing']}, "
             f"batch {settings['batch_size']}, static cache: {settings['static_cache']}", "",
             "| measure | value |", "|---|---|"]  # fmt: skip
    skip = {"parts", "device", "settings", "manifest"}
    lines += [
        f"| {key} | {value:.4g} |" if isinstance(value, float) else f"| {key} | {value} |"
        for key, value in results.items()
        if key not in skip
    ]
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> list[Path]:
    """Benchmark as `args` (this stage's command line) say, each part in a process of its own; the files written:
    the results JSON and its markdown table (none for one part, whose figures go to stdout as JSON)."""
    if args.part:
        result = run_generation(args) if args.part == "generate" else run_training(args, args.part)
        print(json.dumps(result))
        return []
    if args.baseline_gen_examples is not None and not 0 < args.baseline_gen_examples <= args.gen_examples:
        raise UserError(f"--baseline_gen_examples must be between 1 and --gen_examples ({args.gen_examples})")
    out = Path(args.out)
    started = now()
    parts, results = {}, {}
    if "train" in args.parts:
        with tempfile.TemporaryDirectory() as work:
            print("tokenizing the training examples")
            examples = tokenized_examples(args, Path(work))
            for part in ("train_baseline", "train_ours"):
                print(f"running {part}")
                parts[part] = run_part(args, part, examples)
        results.update(training_results(args, parts["train_baseline"], parts["train_ours"]))
    if "generate" in args.parts:
        print("running generate")
        parts["generate"] = run_part(args, "generate")
        results.update(generation_results(parts["generate"]))
    if "recipe" in args.parts:
        print("timing the recipe check and the refusals that need no model")
        results.update(recipe_check_results(args.config))
        with tempfile.TemporaryDirectory() as work:
            results.update(refusal_results(Path(work)))
    manifest = build_manifest({"benchmark": vars(args)}, [], started)
    results.update(
        parts=parts,
        device=manifest["device"],
        settings={**vars(args), "model": args.model or "recipe model"},
        manifest=manifest,
    )
    write_json_atomic(out, results)
    table = summary_table(results)
    with atomic_path(out.with_suffix(".md")) as temporary:
        temporary.write_text(table, encoding="utf-8")
    print(table)
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return [out, out.with_suffix(".md")]


def main(argv: list[str] | None = None) -> list[Path]:
    return run(make_parser().parse_args(argv))


if __name__ == "__main__":
    run_cli(main)
