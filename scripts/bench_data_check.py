"""The data check at 10k, 30k and 100k training rows (built from the AHQAD sample): results/bench/data_check.{json,md}.

    python scripts/bench_data_check.py [--rows 10000 30000 100000]      # part of make bench

The benchmark is `arabic_sft.bench.data_check` (its --help says how the rows are built); this file is its command line.
"""

from arabic_sft.bench.data_check import main
from arabic_sft.runtime.errors import run_cli


if __name__ == "__main__":
    run_cli(main)
