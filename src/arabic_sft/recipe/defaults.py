"""The project's defaults: what a recipe gets where TRL's defaults would leave a first run silent or slow."""

# The project's defaults, where TRL's would leave a first run silent; any value a recipe, its preset or the command
# line sets wins. Those that depend on the machine (precision, launch config) are chosen by `training.launch`.
PROJECT_DEFAULTS = {
    "logging_first_step": True,  # the loss before any update: what "did the loss move?" is measured against
}


# With validation rows and no `eval_strategy`: evaluate every 20% of the steps (5 times).
EVAL_DEFAULTS = {"eval_strategy": "steps", "eval_steps": 0.2}


# LoRA without a `learning_rate`: TRL's 2e-5 suits full fine-tuning; adapters learn at about ten times that.
LORA_LEARNING_RATE = 2.0e-4


VALIDATION_FIELDS = ("validation_file", "validation_split", "validation_fraction")


def has_validation(values: dict) -> bool:
    """Whether the recipe (or a source of its `datasets`, or the recipe for every source) names validation rows."""
    sources = values.get("datasets") if isinstance(values.get("datasets"), list) else []
    return any(bool(item.get(name) if isinstance(item, dict) and name in item else values.get(name))
               for item in [values, *sources] for name in VALIDATION_FIELDS)  # fmt: skip


def project_defaults(values: dict, explicit: set[str]) -> dict:
    """The project's defaults for the fields not in `explicit` (those the recipe, its preset or the command line
    set), given the recipe's `values` (parsed, TRL's defaults included)."""
    defaults = {name: value for name, value in PROJECT_DEFAULTS.items() if name not in explicit}
    if "eval_strategy" not in explicit and has_validation(values):
        defaults.update({name: value for name, value in EVAL_DEFAULTS.items() if name not in explicit})
    if "group_column" not in explicit and values.get("datasets"):
        defaults["group_column"] = "source"  # a mixture's results per source (its rows carry it: data.mixture)
    if "learning_rate" not in explicit and values.get("use_peft"):
        defaults["learning_rate"] = LORA_LEARNING_RATE
    return defaults
