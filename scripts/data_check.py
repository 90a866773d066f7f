"""Near-duplicates and contamination in a recipe's data: results/<recipe>/data_check.{json,_pairs.csv}.

    python scripts/data_check.py --config recipes/demo.yaml        # make data-check RECIPE=demo

The stage is `arabic_sft.stages.data_check` (its --help says what is compared); this file is its command line.
"""

from arabic_sft.runtime.errors import run_cli
from arabic_sft.stages.data_check import main


if __name__ == "__main__":
    run_cli(main)
