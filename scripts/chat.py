"""Talk to a trained model beside its base on a local web page (Gradio), answering as make eval did.

    python scripts/chat.py --config recipes/demo.yaml --port 7860      # make chat RECIPE=demo [PORT=7860]

The stage is `arabic_sft.stages.chat` (its --help says what the page shows and its API); this file is its command line.
"""

from arabic_sft.runtime.errors import run_cli
from arabic_sft.stages.chat import main


if __name__ == "__main__":
    run_cli(main)
