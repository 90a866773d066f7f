"""make export: one folder that loads with plain AutoModelForCausalLM / AutoTokenizer and, with its own
generation_config.json (no decoding argument given), answers every test row exactly as make eval wrote, byte for byte:
for a full fine-tune and for a LoRA adapter (merged into its base)."""

import json

import pandas as pd
import pytest
import torch
from helpers import SAMPLE_FILES, assert_one_error_line, cpu_recipe, preset_spec, run_here, sample_rows
from transformers import AutoModelForCausalLM, AutoTokenizer

from arabic_sft.prompts.builder import build_model_prompt, prompt_token_ids


LORA = {"use_peft": True, "lora_r": 8, "lora_alpha": 32, "lora_target_modules": "all-linear", "dtype": "float32",
        "learning_rate": 5.0e-3}  # fmt: skip


@pytest.fixture(scope="module", params=["full", "lora"])
def exported(request, tiny_llama, tmp_path_factory):
    """(folder, recipe name): a tiny training, make eval's answers (8 new tokens), then make export's folder."""
    work = tmp_path_factory.mktemp(f"export-{request.param}")
    name = request.param
    fields = LORA if name == "lora" else {"learning_rate": 2.0e-3}
    cpu_recipe(work / f"{name}.yaml", tiny_llama, test_file=str(SAMPLE_FILES["proverbs"]),
               output_dir=f"results/{name}/model", max_steps=4, **fields)  # fmt: skip
    for step in (["sft.py", "--config", f"{name}.yaml"],
                 ["generate.py", "--config", f"{name}.yaml", "--max_new_tokens", "8"],
                 ["export.py", "--config", f"{name}.yaml"]):  # fmt: skip
        assert run_here(*step, cwd=work).returncode == 0, step
    return work, name


def test_the_exported_folder_answers_as_make_eval_did(exported):
    work, name = exported
    folder = work / "results" / name / "export"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()  # plain transformers: no PEFT, no project code
    assert not (folder / "adapter_config.json").exists() and model.generation_config.max_new_tokens == 8
    assert model.generation_config.do_sample is False
    answers = pd.read_csv(work / "results" / name / "predictions_test.csv", keep_default_na=False)
    spec = preset_spec("proverbs")
    for row, expected in zip(sample_rows("proverbs"), answers["Generated_Explanation"], strict=True):
        ids = torch.tensor([prompt_token_ids(tokenizer, build_model_prompt(row, spec, True))])
        with torch.no_grad():
            output = model.generate(ids, attention_mask=torch.ones_like(ids))  # its own generation_config
        assert tokenizer.decode(output[0, ids.shape[1] :], skip_special_tokens=True).strip() == expected
    manifest = json.loads((folder / "export_manifest.json").read_text(encoding="utf-8"))
    assert manifest["config"]["export"]["merged"] is (name == "lora")
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "has random weights" in card and ("merged" in card) == (name == "lora")


def test_an_export_of_this_training_is_kept_and_an_unknown_seed_is_one_line(exported, script_in_process):
    work, name = exported
    kept = script_in_process("export.py", "--config", f"{name}.yaml", cwd=work)
    assert kept.returncode == 0 and "is this training's export already: kept" in kept.stdout
    missing = script_in_process("export.py", "--config", f"{name}.yaml", "--seed", "7", cwd=work)
    assert_one_error_line(missing, "seed-7/model: no finished training")


def test_a_recipe_never_trained_is_one_line(tiny_llama, tmp_path, script_in_process):
    cpu_recipe(tmp_path / "new.yaml", tiny_llama, output_dir="results/new/model")
    result = script_in_process("export.py", "--config", "new.yaml", cwd=tmp_path)
    assert_one_error_line(result, "results/new/model: no finished training", "make train RECIPE=new")
    assert not (tmp_path / "results" / "new" / "export").exists()
