"""`sft.py --help`: our fields by group, then the TRL fields most recipes set (`--help_all`: every field)."""

import argparse
import copy

from arabic_sft.recipe.schema import GROUPS, fields_in


USAGE = """sft.py --config recipes/NAME.yaml [--FIELD VALUE ...]
       RECIPE=NAME sft.py [--FIELD VALUE ...]          (runs recipes/NAME.yaml)"""


DESCRIPTION = """A recipe (YAML) sets the fields below: our data and prompt fields, TRL's SFTConfig (training) and
ModelConfig (model, 4-bit, LoRA). Any field can be overridden on the command line (--learning_rate 1e-4)."""


# The TRL fields `--help` shows (`--help_all`: every one), grouped as our fields are.
COMMON_FIELDS = {
    "model": (
        "TRL's ModelConfig: which model, 4-bit, LoRA",
        "model_name_or_path model_revision dtype trust_remote_code attn_implementation use_peft lora_r lora_alpha "
        "lora_dropout lora_target_modules load_in_4bit bnb_4bit_quant_type use_bnb_nested_quant",
    ),
    "trainer": (
        "TRL's SFTConfig, the fields most recipes set",
        "output_dir num_train_epochs max_steps per_device_train_batch_size gradient_accumulation_steps learning_rate "
        "lr_scheduler_type warmup_steps max_length packing bf16 fp16 use_cpu gradient_checkpointing eval_strategy "
        "eval_steps save_strategy save_steps save_total_limit logging_steps load_best_model_at_end "
        "metric_for_best_model report_to resume_from_checkpoint seed",
    ),
}


def short_help(parser) -> str:
    """`--help`: our fields by group, then the TRL fields most recipes set, with the first sentence of their help."""
    actions = {}
    for action in parser._actions:  # a bool field that defaults to true has --field, then --no_field
        actions.setdefault(action.dest, action)
    short = argparse.ArgumentParser(
        usage=USAGE,
        description=DESCRIPTION + " The project's defaults and the machine's choices: docs/training.md.",
        epilog="--help_all lists every field (all of TRL's SFTConfig and ModelConfig).",
        add_help=False,
    )
    sections = [(group, GROUPS[group], fields_in(group)) for group in GROUPS]
    sections += [(group, title, names.split()) for group, (title, names) in COMMON_FIELDS.items()]
    for group, title, names in sections:
        container = short.add_argument_group(f"{group}: {title}")
        for name in names:
            action = copy.copy(actions[name])
            action.option_strings = action.option_strings[:1]  # --field only, not also --field-name
            action.help = (action.help or "").split(". ")[0].rstrip(".") + "."
            container._add_action(action)
    return short.format_help()
