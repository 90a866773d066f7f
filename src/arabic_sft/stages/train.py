"""The training stage: a recipe's SFT run (scripts/sft.py is its command line; every recipe field is an option).

python scripts/sft.py --config recipes/demo.yaml [--FIELD VALUE ...]
arabic-sft train demo                    # the recipe's seeds, one run each
"""

from pathlib import Path

from arabic_sft.recipe import Recipe, load_recipe
from arabic_sft.runtime.errors import UserError


def run(recipe: Recipe) -> list[Path]:
    """Train `recipe` (one run: a recipe with `seeds` needs --seed here; arabic-sft train runs each seed); returns
    what it wrote (its output_dir). Raises `Stopped` after SIGTERM or Ctrl-C, a checkpoint saved."""
    if recipe.args.seeds and "seed" not in recipe.given:
        raise UserError(
            f"{recipe.source}: seeds {recipe.args.seeds}: one run per seed is arabic-sft train (make train RECIPE="
            f"{recipe.name}); for one run here, give --seed N (and an --output_dir of its own)"
        )
    from arabic_sft.training.run import train  # torch and TRL: after the recipe is read and checked

    return train(recipe, on_finish=write_card)


def write_card(*args) -> None:
    """The model card, written when training finishes (imported then: the scoring libraries it reads with)."""
    from arabic_sft.publishing.card import write_card_after_training

    write_card_after_training(*args)


def main(argv: list[str] | None = None) -> list[Path]:
    return run(load_recipe(argv))
