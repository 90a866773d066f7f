"""Baselines: few-shot prompts (K training rows, never the answered row, the same on a rerun), rendered as training
renders each example, batched = one by one; generate.py --baseline uses the recipe's base model."""

import json

import pandas as pd
import pytest
from helpers import SAMPLE_FILES, preset_spec, sample_rows, sharp_random_model, write_recipe
from transformers import AutoTokenizer

from arabic_sft.data.fewshot import choose_shots
from arabic_sft.generation.batched import generate_texts
from arabic_sft.prompts.builder import build_model_prompt, prompt_token_ids
from arabic_sft.runtime.errors import UserError


def test_shots_are_k_rows_never_an_answered_one_and_the_same_on_a_rerun():
    spec = preset_spec("proverbs")
    pool = pd.DataFrame(sample_rows("proverbs"))
    answered = pool.iloc[[2, 5]].copy()
    answered.loc[answered.index[0], "proverb"] = "مَنْ جَدّ وَجَد"  # row 1 of the pool, with diacritics: still the same
    chosen = choose_shots(pool, answered, spec, k=9, seed=3)
    assert len(chosen) == 9 == len(set(chosen)) and not {1, 5} & set(chosen)
    assert chosen == choose_shots(pool, answered, spec, k=9, seed=3) != choose_shots(pool, answered, spec, k=9, seed=4)
    with pytest.raises(UserError, match="only 10 rows"):
        choose_shots(pool, answered, spec, k=11, seed=3)


def test_chat_and_plain_few_shot_prompts_token_for_token(tiny_llama, tiny_gpt2):
    spec = preset_spec("proverbs")
    row, *shots = sample_rows("proverbs")[:3]
    chat = AutoTokenizer.from_pretrained(tiny_llama)
    turns = build_model_prompt(row, spec, True, shots)
    assert [turn["role"] for turn in turns] == ["user", "assistant", "user", "assistant", "user"]
    text = (
        chat.bos_token
        + "".join(
            f"<|user|>\n{spec.template.format(**shot)}\n<|assistant|>\n{shot['explanation']}{chat.eos_token}"
            for shot in shots
        )
        + f"<|user|>\n{spec.template.format(**row)}\n<|assistant|>\n"
    )
    assert prompt_token_ids(chat, turns) == chat(text, add_special_tokens=False)["input_ids"]

    plain = AutoTokenizer.from_pretrained(tiny_gpt2)
    prompt = build_model_prompt(row, spec, False, shots)
    expected = "".join(f"{spec.template.format(**shot)} {shot['explanation']}\n\n" for shot in shots)
    assert prompt == expected + spec.template.format(**row)
    assert prompt_token_ids(plain, prompt) == plain(expected + spec.template.format(**row))["input_ids"]


def test_batched_few_shot_generation_equals_one_by_one(tiny_llama):
    model, tokenizer = sharp_random_model(tiny_llama)
    spec = preset_spec("proverbs")
    rows = sample_rows("proverbs")
    shots = [rows[0], rows[1]]
    prompts = [prompt_token_ids(tokenizer, build_model_prompt(row, spec, True, shots)) for row in rows[2:]]
    batched = generate_texts(model, tokenizer, prompts, max_new_tokens=12, batch_size=4)
    assert batched == [generate_texts(model, tokenizer, [p], max_new_tokens=12, batch_size=1)[0] for p in prompts]


def test_generate_baseline_uses_the_base_model_and_records_its_shots(tiny_llama, tmp_path, script_in_process):
    write_recipe(
        tmp_path / "r.yaml",
        model_name_or_path=str(tiny_llama),
        output_dir=str(tmp_path / "never-trained"),
        task="proverbs",
        train_file=str(SAMPLE_FILES["proverbs"]),
        test_fraction=0.25,
        bf16=True,
    )
    result = script_in_process(
        "generate.py", "--config", "r.yaml", "--baseline", "--shots", 2, "--max_new_tokens", 4, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "results" / "r" / "baseline-2-shot" / "predictions_test.csv"
    assert len(pd.read_csv(out)) == 3
    manifest = json.loads(out.with_suffix(".manifest.json").read_text(encoding="utf-8"))
    shots = manifest["config"]["shots"]
    assert shots["k"] == 2 and len(shots["rows"]) == 2 and shots["same_for_every_row"]
    assert shots["source"].endswith("(train part)")  # the held-out test rows are never shots
    zero = script_in_process("generate.py", "--config", "r.yaml", "--baseline", "--max_new_tokens", 4, cwd=tmp_path)
    assert (
        zero.returncode == 0 and (tmp_path / "results" / "r" / "baseline-zero-shot" / "predictions_test.csv").is_file()
    )
