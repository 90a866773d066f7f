"""The leaderboard: every system on the same test rows, ranked, each against the best with paired tests.

    python scripts/board.py demo

The stage is `arabic_sft.stages.board` (its --help says every option); this file is its command line.
"""

from arabic_sft.runtime.errors import run_cli
from arabic_sft.stages.board import main


if __name__ == "__main__":
    run_cli(main)
