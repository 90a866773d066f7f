"""The whole path on a tiny native Jais-2 (Jais2ForCausalLM, its own chat template), as on the tiny Llama: inspect
(trained tokens = answer + EOS), QLoRA training, batched generation = one by one, merged adapter = adapter."""

import json

import pandas as pd
import pytest
from helpers import (
    SAMPLE_FILES,
    preset_spec,
    sample_rows,
    sample_texts,
    sharp_random_model,
    train_qlora_adapter,
)
from transformers import AutoTokenizer

from arabic_sft.generation.batched import generate_texts
from arabic_sft.prompts.builder import build_model_prompt, prompt_token_ids
from arabic_sft.tiny import build_tiny_model


pytestmark = pytest.mark.slow  # make test-fast skips this file


TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "up_proj", "down_proj"]  # as recipes/jais2_proverbs_qlora.yaml


@pytest.fixture(scope="module")
def tiny_jais2(tmp_path_factory):
    return build_tiny_model("jais2", sample_texts("proverbs"), tmp_path_factory.mktemp("tiny-jais2"), vocab_size=600)


@pytest.fixture(scope="module")
def jais2_adapter(tiny_jais2, tmp_path_factory):
    """A QLoRA adapter (nf4, double quant) trained by sft.py on the tiny Jais-2, with the Jais-2 recipe's targets."""
    work = tmp_path_factory.mktemp("jais2-qlora")
    return train_qlora_adapter(tiny_jais2, work, lora_alpha=16, lora_target_modules=TARGETS)


def test_tiny_jais2_is_the_native_class_with_its_own_template(tiny_jais2):
    config = json.loads((tiny_jais2 / "config.json").read_text())
    assert config["architectures"] == ["Jais2ForCausalLM"] and config["model_type"] == "jais2"
    tokenizer = AutoTokenizer.from_pretrained(tiny_jais2)
    rendered = tokenizer.apply_chat_template(
        [{"role": "user", "content": "سؤال"}], add_generation_prompt=True, tokenize=False
    )
    assert rendered == "<s>[|Human|]\nسؤال\n[|AI|]\n"


def test_inspect_trains_exactly_the_answer_and_eos(tiny_jais2, make_recipe, tmp_path, script_in_process):
    recipe = make_recipe(tiny_jais2, use_peft=True, lora_target_modules=TARGETS)
    result = script_in_process("sft.py", "--config", recipe, "--inspect", 4, "--inspect_json", tmp_path / "i.json")
    assert result.returncode == 0, result.stderr[-3000:]
    tokenizer = AutoTokenizer.from_pretrained(tiny_jais2)
    spec = preset_spec("proverbs")
    for row, example in zip(sample_rows("proverbs"), json.loads((tmp_path / "i.json").read_text(encoding="utf-8"))):
        assert example["completion"] == row["explanation"] + tokenizer.eos_token
        prompt = prompt_token_ids(tokenizer, build_model_prompt(row, spec, True))
        assert example["prompt"] == tokenizer.decode(prompt)


def test_batched_generation_equals_one_by_one(tiny_jais2):
    model, tokenizer = sharp_random_model(tiny_jais2)
    prompts = [
        prompt_token_ids(tokenizer, build_model_prompt(row, preset_spec("proverbs"), True))
        for row in sample_rows("proverbs")
    ]
    assert len({len(prompt) for prompt in prompts}) > 1
    batched = generate_texts(model, tokenizer, prompts, max_new_tokens=16, batch_size=5)
    assert batched == [generate_texts(model, tokenizer, [p], max_new_tokens=16, batch_size=1)[0] for p in prompts]
    assert len(set(batched)) > 1


def test_qlora_adapter_trains_and_its_merged_model_generates_the_same(jais2_adapter, tmp_path, script_in_process):
    adapter_config = json.loads((jais2_adapter / "adapter_config.json").read_text())
    assert sorted(adapter_config["target_modules"]) == sorted(TARGETS)
    merged = tmp_path / "merged"
    result = script_in_process(
        "merge_adapter.py", "--adapter_dir", jais2_adapter, "--out", merged, "--dtype", "float32"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((merged / "config.json").read_text())["architectures"] == ["Jais2ForCausalLM"]
    outputs = {}
    for name, model_dir in {"adapter": jais2_adapter, "merged": merged}.items():
        out = tmp_path / f"{name}.csv"
        result = script_in_process(
            "generate.py",
            "--checkpoint_dir",
            model_dir,
            "--test_path",
            SAMPLE_FILES["proverbs"],
            "--task",
            "proverbs",
            "--out_path",
            out,
            "--max_new_tokens",
            12,
            "--limit",
            4,
        )
        assert result.returncode == 0, result.stderr[-3000:]
        outputs[name] = pd.read_csv(out, keep_default_na=False)["Generated_Explanation"].tolist()
    assert outputs["adapter"] == outputs["merged"]


def test_make_tiny_model_builds_a_jais2_from_a_recipes_data(tmp_path, script_in_process):
    out = tmp_path / "jais2"
    result = script_in_process(
        "make_tiny_model.py",
        "--config",
        "recipes/example_own_data.yaml",
        "--arch",
        "jais2",
        "--out",
        out,
        "--vocab_size",
        400,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads((out / "config.json").read_text())["architectures"] == ["Jais2ForCausalLM"]
    assert "[|AI|]" in AutoTokenizer.from_pretrained(out).chat_template
