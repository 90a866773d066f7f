"""Check a recipe, or print fields of it as loaded (preset and defaults applied), one value per line:

    python -m arabic_sft.recipe recipes/demo.yaml                       # checked: a second, no TRL imported
    python -m arabic_sft.recipe recipes/demo.yaml output_dir seeds      # their values

A field the recipe, its preset and the project's defaults leave to TRL's defaults is read through TRL's parser
(`load_recipe`, ~10 s) when its default is not a plain value.
"""

import argparse
import json

from arabic_sft import named
from arabic_sft.recipe.check import NO_DEFAULT, check_recipe, known_fields
from arabic_sft.runtime.errors import UserError, run_cli


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", help="recipes/NAME.yaml, or NAME")
    parser.add_argument("field", nargs="*", help="field names (ours, SFTConfig's or ModelConfig's)")
    options = parser.parse_args()
    path = named.find("recipe", options.recipe)
    values, known = check_recipe(path), known_fields()
    if not options.field:
        written = set(named.read_yaml(path)) - {"env"}
        more = sorted(set(values) - written)  # a task preset's fields, the project's defaults
        print(
            f"{path}: {len(written)} fields set, every one known and of its type"
            + (f"; its task preset and the project's defaults set {len(more)} more: {', '.join(more)}" if more else "")
        )
        return
    for name in options.field:
        if name not in known:
            raise UserError(f"{name}: not a recipe field (see scripts/sft.py --help)")
    if any(name not in values and known[name].default is NO_DEFAULT for name in options.field):
        from arabic_sft.recipe.load import load_recipe

        values = vars(load_recipe(["--config", str(path)]).fields)
    for name in options.field:
        value = values[name] if name in values else known[name].default
        print(json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else value)


if __name__ == "__main__":
    run_cli(main)
