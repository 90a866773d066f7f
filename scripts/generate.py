"""Batched generation on a test split with the same prompt as training; resumable, rows in input order.

    python scripts/generate.py --config recipes/demo.yaml
    python scripts/generate.py --checkpoint_dir results/demo/model --test_path ask.csv --task proverbs \\
        --out_path answers.csv

The stage is `arabic_sft.stages.generate` (its --help says every option); this file is its command line.
"""

from arabic_sft.runtime.errors import run_cli
from arabic_sft.stages.generate import main


if __name__ == "__main__":
    run_cli(main)
