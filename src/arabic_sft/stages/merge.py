"""Merge a LoRA adapter into its base model and save a standalone model that any HF-compatible server can load.

    python scripts/merge_adapter.py --adapter_dir results/allam_proverbs_qlora/model \\
        --out results/allam_proverbs_qlora/merged
    python scripts/merge_adapter.py --adapter_dir ADAPTER --base_id humain-ai/ALLaM-7B-Instruct-preview --out MERGED

The base is the one adapter_config.json names unless --base_id is given. An adapter trained on a 4-bit (QLoRA) base
is merged into that base loaded in 4 bits and dequantized (the weights it was trained against), as the run manifest
beside the adapter says; --no_dequantize merges into the original full-precision weights instead. The merged model
is written to a temporary directory beside --out and renamed when complete.
"""

import argparse
import shutil
import tempfile
from pathlib import Path

import torch

from arabic_sft.models import adapter_base, load_model, model_tokenizer, training_quantization
from arabic_sft.runs import MERGE_MANIFEST
from arabic_sft.runtime.errors import ScriptParser, UserError
from arabic_sft.runtime.locks import exclusive_output
from arabic_sft.runtime.manifest import build_manifest, now, permissions_of_new, write_json_atomic


DTYPES = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}


def make_parser() -> argparse.ArgumentParser:
    parser = ScriptParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter_dir", required=True, help="LoRA adapter directory (a recipe's output_dir)")
    parser.add_argument("--out", required=True, help="directory for the merged model")
    parser.add_argument("--base_id", help="base model id or path (default: the one adapter_config.json names)")
    parser.add_argument("--revision", help="base model revision (pin it for remote code)")
    parser.add_argument("--trust_remote_code", action="store_true", help="for bases with their own code (Jais)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="bfloat16", help="dtype of the saved weights")
    parser.add_argument(
        "--no_dequantize",
        action="store_true",
        help="merge a QLoRA adapter into the original weights, not the dequantized 4-bit ones",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    return parser


def run(args: argparse.Namespace) -> list[Path]:
    """Merge as `args` (this stage's command line) say; what it wrote: the merged model's directory."""
    started = now()
    adapter, out = Path(args.adapter_dir), Path(args.out)
    if not (adapter / "adapter_config.json").is_file():
        raise UserError(f"{adapter}: no adapter_config.json (not a LoRA adapter directory)")
    with exclusive_output(out):  # one merge per output directory
        merge(args, adapter, out, started)
    return [out]


def main(argv: list[str] | None = None) -> list[Path]:
    return run(make_parser().parse_args(argv))


def merge(args, adapter: Path, out: Path, started: str):
    if out.exists() and not args.overwrite:
        raise UserError(f"{out}: already exists (pass --overwrite to replace it)")
    base_id = args.base_id or adapter_base(adapter)
    tokenizer = model_tokenizer(base_id, adapter, args.revision, args.trust_remote_code)

    quantized = training_quantization(adapter) is not None and not args.no_dequantize
    model = load_model(
        base_id, args.revision, args.trust_remote_code, DTYPES[args.dtype], adapter, not args.no_dequantize
    )
    if tokenizer.eos_token_id is not None:
        model.generation_config.eos_token_id = tokenizer.eos_token_id

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}."))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        settings = {**vars(args), "base_id": base_id, "dequantized_from_4bit": quantized}
        write_json_atomic(staging / MERGE_MANIFEST, build_manifest({"merge": settings}, [], started))
        staging.chmod(permissions_of_new(0o777))  # mkdtemp's 0700 would hide the model from colleagues
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f"merged {adapter} into {base_id}{' (dequantized from 4-bit)' if quantized else ''}: {out}")
