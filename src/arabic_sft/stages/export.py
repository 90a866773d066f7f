"""Hand a trained model on as one folder: results/<recipe>/export/ (results/<recipe>/seed-N/export/ for a seed) loads
with plain `AutoModelForCausalLM.from_pretrained` and `AutoTokenizer.from_pretrained`, and answers as `make eval` did.

    arabic-sft export demo                     # make export RECIPE=demo
    python scripts/export.py --config recipes/allam_proverbs_qlora.yaml [--seed N]

It holds the model (a LoRA adapter merged into its base in the training precision, a 4-bit base dequantized first:
the merge step `make publish MERGED=1` uses too, made once per training), the tokenizer and chat template as
trained, `generation_config.json` with the decoding `make eval` generated with (greedy unless it sampled, its
max_new_tokens) and the model card; `export_manifest.json` says where it came from. An export of this training is
kept; one of an earlier training is made again. Written beside the folder and renamed when complete.

    arabic-sft export demo --format gguf --quant q8_0   # make export RECIPE=demo FORMAT=gguf QUANT=q8_0

also writes results/<recipe>/export-gguf/ (`publishing.gguf`): the model in GGUF at 16 bits by llama.cpp's own
converter, the quantized file when asked, an Ollama Modelfile, and what llama.cpp answered on make eval's test rows.
"""

import argparse
from pathlib import Path

from arabic_sft.runtime.errors import ScriptParser


def make_parser() -> argparse.ArgumentParser:
    parser = ScriptParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="the recipe whose trained model is exported")
    return add_options(parser)


def add_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """This stage's options but --config (the console program takes them from here)."""
    parser.add_argument("--seed", type=int, help="of a recipe trained with several seeds: results/<recipe>/seed-N")
    parser.add_argument("--overwrite", action="store_true", help="export again though this training's export exists")
    parser.add_argument(
        "--format",
        choices=["hf", "gguf"],
        default="hf",
        help="gguf: also results/<recipe>/export-gguf/ for llama.cpp, Ollama, LM Studio (make gguf)",
    )
    parser.add_argument("--quant", help="with --format gguf: a quantized file too (q8_0, q4_k_m, ...: llama.cpp's)")
    return parser


def run(args: argparse.Namespace) -> list[Path]:
    """Export as `args` (this stage's command line) say; what it wrote: the folder."""
    from arabic_sft.recipe.check import trained_model_of
    from arabic_sft.runtime.errors import UserError

    if args.quant and args.format != "gguf":
        raise UserError(f"--quant {args.quant}: a GGUF quantization; give --format gguf too (make: FORMAT=gguf)")
    trained = trained_model_of(args.config, args.seed)  # a recipe never trained: one line, before the imports below
    if args.format == "gguf":
        from arabic_sft.publishing.gguf import check_quantization, converter

        converter()  # llama.cpp's tools are here, and the quantization is one it has: before any work
        check_quantization(args.quant)
    from arabic_sft.publishing.export import exported
    from arabic_sft.recipe import load_recipe

    recipe = load_recipe(["--config", args.config])
    folder = exported(recipe, trained, args.overwrite)
    if args.format != "gguf":
        return [folder]
    from arabic_sft.publishing.gguf import exported_gguf

    return [folder, exported_gguf(recipe, trained, folder, args.quant, args.overwrite)]


def main(argv: list[str] | None = None) -> list[Path]:
    return run(make_parser().parse_args(argv))
