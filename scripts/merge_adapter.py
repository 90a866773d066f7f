"""A LoRA adapter merged into its base model (a QLoRA base dequantized first), saved as a full model.

    python scripts/merge_adapter.py --adapter_dir results/allam_proverbs_qlora/model \\
        --out results/allam_proverbs_qlora/merged

The stage is `arabic_sft.stages.merge` (its --help says every option); this file is its command line.
"""

from arabic_sft.runtime.errors import run_cli
from arabic_sft.stages.merge import main


if __name__ == "__main__":
    run_cli(main)
