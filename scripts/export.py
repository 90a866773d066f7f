"""Hand a trained model on as one folder that loads with AutoModelForCausalLM.from_pretrained and answers as make eval
did: results/<recipe>/export/.

    python scripts/export.py --config recipes/demo.yaml            # make export RECIPE=demo

The stage is `arabic_sft.stages.export` (its --help says what the folder holds); this file is its command line.
"""

from arabic_sft.runtime.errors import run_cli
from arabic_sft.stages.export import main


if __name__ == "__main__":
    run_cli(main)
