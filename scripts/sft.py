"""Supervised fine-tuning of a causal LM on Arabic question/answer data (any format a recipe names), with answer-only
loss (TRL SFTTrainer).

Usage:

    # one GPU, or CPU for the tiny demo model
    python scripts/sft.py --config recipes/demo.yaml

    # several GPUs with DeepSpeed ZeRO-2
    accelerate launch --config_file accelerate_configs/zero2.yaml scripts/sft.py --config recipes/allam_proverbs.yaml

    # any recipe field can be overridden on the command line
    python scripts/sft.py --config recipes/demo.yaml --num_train_epochs 1 --output_dir /tmp/run

    # show which tokens are masked and which are trained, then exit
    python scripts/sft.py --config recipes/demo.yaml --inspect 3 --inspect_json examples.json

Without --config, the recipe named by $RECIPE (recipes/$RECIPE.yaml) runs.
"""

import arabic_sft  # noqa: F401  (first: silences third-party import-time noise)


# isort: split
from arabic_sft.recipe import Recipe, load_recipe
from arabic_sft.runtime.errors import UserError, run_cli
from arabic_sft.training.run import train


def main(recipe: Recipe) -> int:
    if recipe.args.seeds and "seed" not in recipe.given:
        raise UserError(
            f"{recipe.source}: seeds {recipe.args.seeds}: one run per seed is arabic-sft train (make train RECIPE="
            f"{recipe.name}); for one run here, give --seed N (and an --output_dir of its own)"
        )
    return train(recipe, on_finish=write_card)


def write_card(*args) -> None:
    """The model card, written when training finishes (imported then: the scoring libraries it reads with)."""
    from arabic_sft.publishing.card import write_card_after_training

    write_card_after_training(*args)


if __name__ == "__main__":
    run_cli(lambda: main(load_recipe()))
