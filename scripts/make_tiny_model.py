"""Build a tiny random-weight model whose tokenizer is trained on a recipe's training data, for offline runs.

    python scripts/make_tiny_model.py --config recipes/demo.yaml              # -> the recipe's model_name_or_path
    python scripts/make_tiny_model.py --config recipes/demo.yaml --arch gpt2 --out models/tiny-gpt2

`llama` has a chat template (stands in for ALLaM); `gpt2` has none and c_attn/c_proj/c_fc modules (stands in for Jais);
`jais2` is transformers' native Jais-2 class with a Jais-style chat template written here (stands in for Jais-2).

For speed and memory figures on a GPU, a random-weight Llama of a real model's shape (scripts/benchmark.py):

    python scripts/make_tiny_model.py --config recipes/demo.yaml --shape allam-7b --out models/allam-7b-shape \
        --dtype bfloat16 --device cuda
"""

import argparse
from pathlib import Path

import torch

from arabic_sft.data.splits import load_splits
from arabic_sft.prompts.builder import build_example, example_text
from arabic_sft.recipe import load_recipe
from arabic_sft.runtime.errors import ScriptParser, UserError, run_cli
from arabic_sft.tiny import ARCHITECTURES, SHAPES, build_tiny_model


def make_parser() -> argparse.ArgumentParser:
    parser = ScriptParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="recipe whose training data trains the tokenizer")
    parser.add_argument("--arch", choices=ARCHITECTURES, default="llama")
    parser.add_argument("--out", help="output directory (default: the recipe's model_name_or_path)")
    parser.add_argument("--vocab_size", type=int, default=2000)
    parser.add_argument("--hidden_size", type=int, default=64)
    parser.add_argument("--num_layers", type=int, default=2)
    parser.add_argument("--num_heads", type=int, default=4)
    parser.add_argument(
        "--shape",
        choices=sorted(SHAPES),
        help="a real model's shape (llama only; replaces --hidden_size/--num_layers/--num_heads)",
    )
    parser.add_argument(
        "--dtype", choices=["float32", "bfloat16", "float16"], default="float32", help="weights as created and saved"
    )
    parser.add_argument(
        "--tokenizer", choices=["sentencepiece", "bpe"],
        help="sentencepiece (a Llama's tokenizer.model, as ALLaM has; llama.cpp converts it: the Llama's default) "
        "or a byte-level BPE (the GPT-2's and Jais-2's default)",
    )  # fmt: skip
    parser.add_argument("--plain", action="store_true", help="no chat template (a base model's plain prompts)")
    parser.add_argument("--device", default="cpu", help="where to create the weights (cuda: much faster for 7B)")
    parser.add_argument("--overwrite", action="store_true", help="rebuild even if the output directory has a model")
    return parser


def main():
    args = make_parser().parse_args()
    recipe = load_recipe(["--config", args.config])
    out = Path(args.out or recipe.model.model_name_or_path)
    if (out / "config.json").is_file() and not args.overwrite:
        print(f"{out} already holds a model (use --overwrite to rebuild)")
        return
    splits, spec, _ = load_splits(recipe.args, 0, wanted=("train",))
    texts = [example_text(build_example(row, spec, False)) for row in splits["train"].frame.to_dict("records")]
    if args.shape and args.arch != "llama":
        raise UserError(f"--shape builds a Llama of {args.shape}'s shape; drop --arch {args.arch}")
    shape = (
        SHAPES[args.shape]
        if args.shape
        else {"hidden_size": args.hidden_size, "num_layers": args.num_layers, "num_heads": args.num_heads}
    )
    tokenizer = args.tokenizer or ("sentencepiece" if args.arch == "llama" else "bpe")
    build_tiny_model(args.arch, texts, out, args.vocab_size, **shape, dtype=getattr(torch, args.dtype),
                     device=args.device, tokenizer=tokenizer, chat=False if args.plain else None)  # fmt: skip
    print(
        f"built a random-weight {args.arch} model ({args.shape or 'tiny'} shape) with a {tokenizer} tokenizer "
        f"trained on {len(texts)} rows of {splits['train'].source} in {out}"
    )


if __name__ == "__main__":
    run_cli(main)
