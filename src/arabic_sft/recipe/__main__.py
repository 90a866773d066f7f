"""Print fields of a recipe as loaded (preset and defaults applied), one value per line:

python -m arabic_sft.recipe recipes/demo.yaml output_dir accelerate_config
"""

import argparse
import json

from arabic_sft import named
from arabic_sft.recipe.load import load_recipe
from arabic_sft.runtime.errors import UserError, run_cli


def main() -> None:
    parser = argparse.ArgumentParser(description="Print fields of a recipe as loaded (preset and defaults applied).")
    parser.add_argument("recipe", help="recipes/NAME.yaml, or NAME")
    parser.add_argument("field", nargs="+", help="field names (ours, SFTConfig's or ModelConfig's)")
    options = parser.parse_args()
    path = str(named.find("recipe", options.recipe))
    recipe = load_recipe(["--config", path])
    for name in options.field:
        if not hasattr(recipe.fields, name):
            raise UserError(f"{name}: not a recipe field (see scripts/sft.py --help)")
        value = getattr(recipe.fields, name)
        print(json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else value)


if __name__ == "__main__":
    run_cli(main)
