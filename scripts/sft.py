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
The stage is `arabic_sft.stages.train`; this file is its command line.
"""

import arabic_sft  # noqa: F401  (first: silences third-party import-time noise)


# isort: split
from arabic_sft.runtime.errors import run_cli
from arabic_sft.stages.train import main


if __name__ == "__main__":
    run_cli(main)
