"""The recipe: its schema (`schema`: our fields, one dataclass per stage), the project's defaults (`defaults`),
`--help` (`help`), the one loader (`load`) and its quick check without TRL (`check`). Import from here."""

from arabic_sft.recipe.check import check_recipe, read_fields, read_preset
from arabic_sft.recipe.defaults import EVAL_DEFAULTS, LORA_LEARNING_RATE, PROJECT_DEFAULTS, project_defaults
from arabic_sft.recipe.help import short_help
from arabic_sft.recipe.load import Recipe, load_recipe, make_parser, one_run, recipe_path
from arabic_sft.recipe.schema import (
    GROUPS,
    PRESET_FIELDS,
    RECIPES_DIR,
    RecipeArguments,
    add_field_arguments,
    field_choices,
    fields_in,
    with_overrides,
)


__all__ = [
    "EVAL_DEFAULTS", "GROUPS", "LORA_LEARNING_RATE", "PRESET_FIELDS", "PROJECT_DEFAULTS", "RECIPES_DIR", "Recipe",
    "RecipeArguments", "add_field_arguments", "check_recipe", "field_choices", "fields_in", "load_recipe",
    "make_parser", "one_run", "project_defaults", "read_fields", "read_preset", "recipe_path", "short_help",
    "with_overrides",
]  # fmt: skip
