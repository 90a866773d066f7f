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
from dataclasses import fields
from pathlib import Path

from arabic_sft.generation import run as generation
from arabic_sft.generation.settings import GenerateOptions
from arabic_sft.recipe import add_field_arguments
from arabic_sft.runtime.errors import ScriptParser


def make_parser() -> argparse.ArgumentParser:
    """generate.py's flags: `GenerateOptions`' fields, each with its help, default and type."""
    parser = ScriptParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    groups, recipe_fields = {}, []
    for item in fields(GenerateOptions):
        flag = dict(item.metadata)
        if flag.pop("recipe_field", False):
            recipe_fields.append(item.name)
            continue
        group = flag.pop("group", None)
        where = groups.setdefault(group, parser.add_argument_group(group)) if group else parser
        kind = next(kind for kind in getattr(item.type, "__args__", (item.type,)) if kind is not type(None))
        typed = {"action": "store_true"} if kind is bool else {"type": kind}
        where.add_argument(f"--{item.name}", default=item.default, **typed, **flag)
    add_field_arguments(parser, recipe_fields, "the prompt: the recipe's fields of these names")
    return parser


def run(options: GenerateOptions) -> list[Path]:
    """Generate as `options` say; the files written: the predictions and their manifest. Raises `Stopped` when
    SIGTERM or Ctrl-C stopped it with its rows saved."""
    return generation.run(options)


def main(argv: list[str] | None = None) -> list[Path]:
    return run(GenerateOptions(**vars(make_parser().parse_args(argv))))
