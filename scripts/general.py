"""Did it forget? The base and the fine-tuned model through lm-evaluation-harness, compared question by question.

    python scripts/general.py --config recipes/demo.yaml --tasks arabic_sft_mcq

The stage is `arabic_sft.stages.general` (its --help says every option); this file is its command line.
"""

from arabic_sft.runtime.errors import run_cli
from arabic_sft.stages.general import main


if __name__ == "__main__":
    run_cli(main)
