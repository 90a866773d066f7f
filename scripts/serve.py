"""Serve a trained model to any OpenAI client on 127.0.0.1 (transformers serve), answering as make eval did.

    python scripts/serve.py --config recipes/demo.yaml --port 8000      # make serve RECIPE=demo [PORT=8000]

The stage is `arabic_sft.stages.serve` (its --help says the routes and what it prints); this file is its command line.
"""

from arabic_sft.runtime.errors import run_cli
from arabic_sft.stages.serve import main


if __name__ == "__main__":
    run_cli(main)
