"""Publish a finished run on the Hugging Face Hub: the model (a LoRA adapter, or with --merged the adapter merged into
its base by merge_adapter.py), its model card, the recipe, the manifests, the metrics, the comparison and the
predictions, in one commit.

    python scripts/publish.py --config recipes/demo.yaml --hub_id me/demo-proverbs --dry_run   # what would go up
    HF_TOKEN=hf_... python scripts/publish.py --config recipes/demo.yaml --hub_id me/demo-proverbs --private

The stage is `arabic_sft.stages.publish` (its --help says what is refused and written); this file is its command line.
"""

from arabic_sft.runtime.errors import run_cli
from arabic_sft.stages.publish import main


if __name__ == "__main__":
    run_cli(main)
