"""One self-contained HTML report of a recipe's results.

    python scripts/report.py --config recipes/demo.yaml

The stage is `arabic_sft.stages.report` (its --help says every option); this file is its command line.
"""

from arabic_sft.runtime.errors import run_cli
from arabic_sft.stages.report import main


if __name__ == "__main__":
    run_cli(main)
