"""Hand a trained model on as one folder: results/<recipe>/export/ (results/<recipe>/seed-N/export/ for a seed) loads
with plain `AutoModelForCausalLM.from_pretrained` and `AutoTokenizer.from_pretrained`, and answers as `make eval` did.

    arabic-sft export demo                     # make export RECIPE=demo
    python scripts/export.py --config recipes/allam_proverbs_qlora.yaml [--seed N]

It holds the model (a LoRA adapter merged into its base in the training precision, a 4-bit base dequantized first:
the merge step `make publish MERGED=1` uses too, made once per training), the tokenizer and chat template as
trained, `generation_config.json` with the decoding `make eval` generated with (greedy unless it sampled, its
max_new_tokens) and the model card; `export_manifest.json` says where it came from. An export of this training is
kept; one of an earlier training is made again. Written beside the folder and renamed when complete.

GGUF (llama.cpp, Ollama): convert this folder with llama.cpp's own converter (docs/after_training.md).
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
    return parser


def run(args: argparse.Namespace) -> list[Path]:
    """Export as `args` (this stage's command line) say; what it wrote: the folder."""
    from arabic_sft.recipe.check import trained_model_of

    trained = trained_model_of(args.config, args.seed)  # a recipe never trained: one line, before the imports below
    from arabic_sft.publishing.export import exported
    from arabic_sft.recipe import load_recipe

    return [exported(load_recipe(["--config", args.config]), trained, args.overwrite)]


def main(argv: list[str] | None = None) -> list[Path]:
    return run(make_parser().parse_args(argv))
