"""Every recipe parses with TRL's parser (no unknown keys) and carries the values of the system it reproduces."""

import json
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import torch
from helpers import ROOT

from arabic_sft.named import PROJECT_RECIPES
from arabic_sft.recipe import GROUPS, PRESET_FIELDS, RecipeArguments, fields_in, load_recipe, read_preset
from arabic_sft.runtime.errors import UserError
from arabic_sft.training.launch import check_in_process


RECIPES = [ROOT / "recipes" / f"{name}.yaml" for name in PROJECT_RECIPES]  # the project's, not a user's own

# The proverbs document's instruction and SHEFAA's prompt, as the seed documents print them.
SEED_PROVERBS_INSTRUCTION = """You are a linguistic expert in Yemeni proverbs.
Explain the figurative meaning of the following proverb clearly and concisely
in Modern Standard Arabic only. Do not translate into English.
Proverb: {proverb}
Explanation:"""
SEED_SHEFAA_PROMPT = "سؤال: {question}\nالتصنيف: {category}\nالإجابة:"


def parse(name: str):
    # GPU recipes ask for bf16; `use_cpu` lets TrainingArguments validate them on a machine without a GPU.
    recipe = load_recipe(["--config", str(ROOT / "recipes" / f"{name}.yaml"), "--use_cpu", "true"])
    check_in_process(recipe)  # first: what the recipe leaves unset is chosen for the machine (example_own_data)
    training = recipe.training
    return recipe.args, training, recipe.model


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda path: path.stem)
def test_recipe_parses_and_names_an_existing_launch_config(recipe):
    recipe_args, training_args, model_args = parse(recipe.stem)
    assert model_args.model_name_or_path
    assert recipe_args.train_file
    assert (recipe_args.validation_file or recipe_args.validation_fraction) and (
        recipe_args.test_file or recipe_args.test_fraction
    )
    assert (ROOT / "accelerate_configs" / f"{recipe_args.accelerate_config}.yaml").is_file()
    assert training_args.output_dir == f"results/{recipe.stem}/model"


def test_seed_prompts_are_the_documented_ones():
    assert read_preset("proverbs")["prompt_template"] == SEED_PROVERBS_INSTRUCTION
    assert read_preset("medical_qa")["prompt_template"] == SEED_SHEFAA_PROMPT


@pytest.mark.parametrize(
    "name, task",
    [("allam_proverbs", "proverbs"), ("allam_proverbs_qlora", "proverbs"), ("demo", "proverbs"),
     ("demo_lora", "proverbs"), ("jais2_proverbs_qlora", "proverbs"), ("jais_shefaa", "medical_qa")],
)  # fmt: skip
def test_seed_recipes_take_their_columns_and_prompt_from_their_task_preset(name, task):
    text = (ROOT / "recipes" / f"{name}.yaml").read_text(encoding="utf-8")
    recipe = parse(name)[0]
    assert recipe.task == task
    for key, value in read_preset(task).items():
        assert getattr(recipe, key) == value
        assert f"\n{key}:" not in text  # said once, in the preset


def test_every_field_declares_its_group():
    names = [item.name for item in fields(RecipeArguments)]
    assert sorted(fields_in(*GROUPS)) == sorted(names)
    assert set(PRESET_FIELDS) == set(fields_in("prompt")) - {"task"}


def test_the_recipe_schema_imports_neither_torch_nor_trl():
    code = "import sys, arabic_sft.recipe; print(sorted({'torch', 'trl', 'transformers'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_recipe_fields_from_the_command_line():
    command = [sys.executable, "-m", "arabic_sft.recipe", "demo", "accelerate_config", "output_dir", "columns"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["cpu", "results/demo/model"]
    assert json.loads(lines[2]) == read_preset("proverbs")["columns"]


def test_jais_shefaa_carries_the_shefaa_baseline():
    recipe, training, model = parse("jais_shefaa")
    assert model.model_name_or_path == "inceptionai/Jais-family-256m"
    assert training.trust_remote_code
    assert model.load_in_4bit and model.bnb_4bit_quant_type == "nf4" and model.use_bnb_nested_quant
    assert (model.use_peft, model.lora_r, model.lora_alpha, model.lora_dropout) == (True, 8, 32, 0.1)
    assert model.lora_target_modules == ["c_attn", "c_proj", "c_fc", "c_fc2"]
    assert training.num_train_epochs == 1
    assert training.per_device_train_batch_size == training.per_device_eval_batch_size == 8
    assert training.learning_rate == 1e-4
    assert {training.eval_strategy, training.save_strategy, training.logging_strategy} == {"epoch"}
    assert training.load_best_model_at_end and training.metric_for_best_model == "eval_loss"
    # Mixed precision: bf16 instead of the seed's fp16, which crashes under TRL 1.16 with a 4-bit model.
    assert training.bf16 and not training.fp16 and model.dtype == "bfloat16"
    assert recipe.answer_column == "answer" and recipe.chat_format == "plain"
    assert recipe.prompt_template == SEED_SHEFAA_PROMPT
    assert recipe.subsample_fraction == 0.1 and training.seed == 42
    assert recipe.loss_from_logits


def test_allam_proverbs_carries_the_proverbs_baseline():
    recipe, training, model = parse("allam_proverbs")
    assert model.model_name_or_path == "humain-ai/ALLaM-7B-Instruct-preview"
    assert not model.use_peft and not model.load_in_4bit
    assert training.learning_rate == 2e-5 and training.num_train_epochs == 3
    assert training.per_device_train_batch_size == 2 and training.gradient_accumulation_steps == 8
    assert training.max_length == 1024 and training.bf16 and training.gradient_checkpointing
    assert training.load_best_model_at_end and training.metric_for_best_model == "eval_loss"
    assert recipe.prompt_template == SEED_PROVERBS_INSTRUCTION and recipe.chat_format == "chat"
    assert [Path(f).name for f in (recipe.train_file, recipe.validation_file, recipe.test_file)] == [
        "Train_data.csv",
        "Validation_data.csv",
        "Test_data.csv",
    ]
    assert recipe.accelerate_config.startswith("zero")


def test_allam_qlora_is_the_same_task_as_a_4bit_adapter():
    recipe, training, model = parse("allam_proverbs_qlora")
    baseline, _, _ = parse("allam_proverbs")
    assert model.load_in_4bit and model.use_peft and model.bnb_4bit_quant_type == "nf4"
    assert (recipe.columns, recipe.prompt_template, recipe.train_file) == (
        baseline.columns,
        baseline.prompt_template,
        baseline.train_file,
    )
    assert recipe.accelerate_config == "single_gpu"


def test_command_line_overrides_a_recipe_field():
    recipe = load_recipe(["--config", str(ROOT / "recipes" / "demo.yaml"), "--learning_rate", "0.5"])
    assert recipe.training.learning_rate == 0.5


def test_recipe_named_by_environment_when_no_config(monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("RECIPE", "demo")
    recipe = load_recipe([])
    assert (
        recipe.model.model_name_or_path == "models/tiny-llama-proverbs" and recipe.args.answer_column == "explanation"
    )


def test_unknown_recipe_key_names_the_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text((ROOT / "recipes" / "demo.yaml").read_text(encoding="utf-8") + "lerning_rate: 0.1\n")
    with pytest.raises(UserError, match=r"bad\.yaml: unknown recipe key\(s\): lerning_rate"):
        load_recipe(["--config", str(path)])


def test_jais2_targets_its_own_modules():
    # Jais-2's MLP has up_proj and down_proj and no gate_proj: every target must name a module the model has.
    from transformers import Jais2Config, Jais2ForCausalLM

    recipe, training, model = parse("jais2_proverbs_qlora")
    assert model.model_name_or_path == "inceptionai/Jais-2-8B-Chat" and not training.trust_remote_code
    assert model.load_in_4bit and model.bnb_4bit_quant_type == "nf4" and model.use_bnb_nested_quant and model.use_peft
    tiny = Jais2ForCausalLM(
        Jais2Config(
            vocab_size=32,
            hidden_size=16,
            intermediate_size=32,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=2,
            head_dim=8,
        )
    )
    names = {name.rsplit(".", 1)[-1] for name, module in tiny.named_modules() if isinstance(module, torch.nn.Linear)}
    assert set(model.lora_target_modules) == names - {"lm_head"}
    assert recipe.task == "proverbs" and recipe.chat_format == "chat" and recipe.accelerate_config == "single_gpu"


def test_a_training_process_reads_its_recipe_once(tiny_llama, make_recipe, script_in_process, monkeypatch):
    from arabic_sft.recipe import load as module

    reads, parsers = [], []
    read_yaml, make_parser = module.read_yaml, module.make_parser
    monkeypatch.setattr(
        module, "read_yaml", lambda path, what="recipe": reads.append(str(path)) or read_yaml(path, what)
    )
    monkeypatch.setattr(module, "make_parser", lambda source=None: parsers.append(source) or make_parser(source))
    recipe = make_recipe(tiny_llama)
    result = script_in_process("sft.py", "--config", recipe, "--inspect", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert reads.count(str(recipe)) == 1 and len(parsers) == 1


def test_the_recipe_check_counts_the_fields_the_recipe_sets_and_names_the_rest(tmp_path):
    recipe = tmp_path / "mine.yaml"  # 3 keys; the proverbs preset and the project's defaults fill more
    recipe.write_text("model_name_or_path: org/model\ntask: proverbs\noutput_dir: results/mine/model\n", "utf-8")
    command = [sys.executable, "-m", "arabic_sft.recipe", str(recipe)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    added = sorted([*read_preset("proverbs"), "logging_first_step"])
    assert result.stdout.strip() == (
        f"{recipe}: 3 fields set, every one known and of its type; its task preset and the project's defaults set "
        f"{len(added)} more: {', '.join(added)}"
    )
