"""Compare scored runs: every metric with its 95% bootstrap interval, and paired tests against a baseline.

    python scripts/compare.py --config recipes/demo.yaml

The stage is `arabic_sft.stages.compare` (its --help says every option); this file is its command line.
"""

from arabic_sft.runtime.errors import run_cli
from arabic_sft.stages.compare import main


if __name__ == "__main__":
    run_cli(main)
