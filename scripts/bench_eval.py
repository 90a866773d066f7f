"""Evaluation at scale: score, compare and report over 1k, 10k and 100k test rows, and the report in chromium.

    python scripts/bench_eval.py                  # results/bench/eval.{json,md}

The benchmark is `arabic_sft.bench.evaluation` (its --help says every option); this file is its command line.
"""

from arabic_sft.bench.evaluation import main
from arabic_sft.runtime.errors import run_cli


if __name__ == "__main__":
    run_cli(main)
