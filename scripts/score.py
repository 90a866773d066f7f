"""Score generated answers against their references, correctly for Arabic.

    python scripts/score.py results/demo/predictions_test.csv
    python scripts/score.py --config recipes/jais_shefaa.yaml --split test

The stage is `arabic_sft.stages.score` (its --help says every option); this file is its command line.
"""

from arabic_sft.runtime.errors import run_cli
from arabic_sft.stages.score import main


if __name__ == "__main__":
    run_cli(main)
