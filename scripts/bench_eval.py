"""Evaluation at scale: score, compare and report over 1k, 10k and 100k test rows, and the report in chromium.

    python scripts/bench_eval.py                  # results/bench/eval.{json,md}

The stage is `arabic_sft.stages.bench_eval` (its --help says every option); this file is its command line.
"""

from arabic_sft.runtime.errors import run_cli
from arabic_sft.stages.bench_eval import main


if __name__ == "__main__":
    run_cli(main)
