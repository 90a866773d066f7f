"""The CPU/GPU benchmark harness: the seed way against ours, training and generation.

    python scripts/benchmark.py --config recipes/demo.yaml --model models/bench-llama --out results/bench/cpu.json

The stage is `arabic_sft.stages.bench` (its --help says every option); this file is its command line.
"""

from arabic_sft.runtime.errors import run_cli
from arabic_sft.stages.bench import main


if __name__ == "__main__":
    run_cli(main)
