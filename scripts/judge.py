"""Judge generated answers with an LLM, each row on each criterion of a rubric (or two runs pairwise).

    python scripts/judge.py --config recipes/allam_proverbs.yaml --split test

The stage is `arabic_sft.stages.judge` (its --help says every option); this file is its command line.
"""

from arabic_sft.runtime.errors import run_cli
from arabic_sft.stages.judge import main


if __name__ == "__main__":
    run_cli(main)
