"""Publish a finished run on the Hugging Face Hub: the model (a LoRA adapter, or with --merged the adapter merged into
its base by merge_adapter.py), its model card, the recipe, the manifests, the metrics, the comparison and the
predictions, in one commit.

    python scripts/publish.py --config recipes/demo.yaml --hub_id me/demo-proverbs --dry_run   # what would go up
    HF_TOKEN=hf_... python scripts/publish.py --config recipes/demo.yaml --hub_id me/demo-proverbs --private
    make publish RECIPE=demo HUB_ID=me/demo-proverbs [MERGED=1] [PRIVATE=1] [DRY_RUN=1] [SEED=N]

The token is read from HF_TOKEN and never written. Refused, in one line and before anything is sent: no finished
training, no `license` in the recipe, a bad HUB_ID, --merged on a full model, no HF_TOKEN, the Hub unreachable, a card
the Hub's validator rejects. Writes results/<recipe>/published.json (the commit and its files).
"""

import argparse
from pathlib import Path

from arabic_sft.runtime.errors import ScriptParser


def make_parser() -> argparse.ArgumentParser:
    parser = ScriptParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="the recipe whose trained model is published")
    return add_options(parser)


def add_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """This stage's options but --config (the console program takes them from here)."""
    parser.add_argument("--hub_id", help="the Hub repository, org/name (created if it does not exist)")
    parser.add_argument("--merged", action="store_true", help="publish the adapter merged into its base model")
    parser.add_argument("--private", action="store_true", help="a private repository (when it is created)")
    parser.add_argument("--dry_run", action="store_true", help="list the files and sizes; send nothing")
    parser.add_argument("--seed", type=int, help="of a recipe trained with several seeds: results/<recipe>/seed-N")
    parser.add_argument("--split", default="test", help="the split whose results go up (default test)")
    return parser


def run(args: argparse.Namespace) -> list[Path]:
    """Publish as `args` (this stage's command line) say; the files written here: the publish record (and the merged
    model with --merged); nothing on a dry run."""
    from arabic_sft.recipe.check import trained_model_of

    trained = trained_model_of(args.config, args.seed)  # a recipe never trained: one line, before the imports below
    from arabic_sft.publishing.upload import publish
    from arabic_sft.recipe import load_recipe

    recipe = load_recipe(["--config", args.config])
    return publish(recipe, trained, args.hub_id, args.split, args.seed, args.merged, args.private, args.dry_run)


def main(argv: list[str] | None = None) -> list[Path]:
    return run(make_parser().parse_args(argv))
