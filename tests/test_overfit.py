"""End to end on a tiny model: sft.py learns 8 examples by heart, and greedy generation gives them back."""

import pandas as pd
from helpers import preset_spec, sample_rows
from transformers import AutoModelForCausalLM, AutoTokenizer

from arabic_sft.generation.batched import generate_texts
from arabic_sft.prompts.builder import build_example, prompt_token_ids


def test_tiny_llama_overfits_eight_examples_and_regenerates_them(tiny_llama, make_recipe, tmp_path, script_in_process):
    rows = pd.DataFrame(sample_rows("proverbs")).head(8)
    train_file = tmp_path / "eight.csv"
    rows.to_csv(train_file, index=False)
    recipe = make_recipe(
        tiny_llama,
        train_file=str(train_file),
        validation_file=None,
        num_train_epochs=120,
        per_device_train_batch_size=8,
        learning_rate=1e-2,
        lr_scheduler_type="constant",
        warmup_steps=0,
        logging_steps=20,
    )
    result = script_in_process("sft.py", "--config", recipe)
    assert result.returncode == 0, result.stderr[-3000:]

    out = tmp_path / "out"
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out).eval()
    prompts = [
        prompt_token_ids(tokenizer, build_example(row, preset_spec("proverbs"), True)["prompt"])
        for row in rows.to_dict("records")
    ]
    generated = generate_texts(model, tokenizer, prompts, max_new_tokens=96, batch_size=4)
    assert generated == rows["explanation"].tolist()
