"""Batched generation on a test split with the same prompt as training; resumable, rows in input order.

    # a recipe's trained output (its output_dir, test data, columns, prompt and chat format)
    python scripts/generate.py --config recipes/demo.yaml
    # a full fine-tune checkpoint, or a base model + LoRA adapter (the proverbs document's command lines); --task names
    # a preset in recipes/tasks/ that says how rows become prompts (or --config RECIPE for a recipe's)
    python scripts/generate.py --checkpoint_dir results/finetune_allam --test_path data/Test_data.csv \\
        --task proverbs --out_path results/finetune.csv --max_new_tokens 256 --temperature 0.0
    python scripts/generate.py --base_id humain-ai/ALLaM-7B-Instruct-preview --adapter_dir results/adapter \\
        --test_path data/Test_data.csv --task proverbs --out_path results/finetune.csv

    # several processes (one per GPU), each a share of the rows; the same file as one process writes
    accelerate launch --config_file accelerate_configs/ddp.yaml --num_processes 8 scripts/generate.py --config ...

Rows are saved as batches finish (OUT.partial.jsonl, one file per process); a rerun after a crash continues where it
stopped, with any number of processes.
"""

import argparse
from pathlib import Path

from arabic_sft.generation import run as generation
from arabic_sft.generation.settings import GenerateOptions
from arabic_sft.recipe import add_field_arguments
from arabic_sft.runtime.errors import ScriptParser


def make_parser() -> argparse.ArgumentParser:
    parser = ScriptParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
    add_field_arguments(
        parser, ("prompt_template", "chat_format", "group_column"), "the prompt: the recipe's fields of these names"
    )  # --group_column '': none (a file of new questions)
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
    parser.add_argument(
        "--accept_changed_data",
        action="store_true",
        help="generate on data files whose sha256 differs from what the training run recorded",
    )
    return parser


def run(options: GenerateOptions) -> list[Path]:
    """Generate as `options` say; the files written: the predictions and their manifest. Raises `Stopped` when
    SIGTERM or Ctrl-C stopped it with its rows saved."""
    return generation.run(options)


def main(argv: list[str] | None = None) -> list[Path]:
    return run(GenerateOptions(**vars(make_parser().parse_args(argv))))
