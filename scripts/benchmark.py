"""The CPU/GPU benchmark harness: the seed way against ours, training and generation.

    python scripts/benchmark.py --config recipes/demo.yaml --model models/bench-llama --out results/bench/cpu.json

The benchmark is `arabic_sft.bench.cpu` (its --help says every option); this file is its command line.
"""

from arabic_sft.bench.cpu import main
from arabic_sft.runtime.errors import run_cli


if __name__ == "__main__":
    run_cli(main)
