"""The trainer trains on exactly the answer + EOS, and sees exactly the prompt that generation will send."""

import json

import pytest
from helpers import ROOT, SAMPLE_FILES, assert_one_error_line, preset_spec, sample_rows
from transformers import AutoTokenizer

from arabic_sft.prompts.builder import PLAIN_SEPARATOR, build_example, prompt_token_ids


@pytest.mark.parametrize(
    "model_fixture, task, conversational",
    [("tiny_llama", "proverbs", True), ("tiny_gpt2", "medical_qa", False)],
    ids=["chat-template", "plain-text"],
)
def test_trained_tokens_are_answer_plus_eos(
    request, make_recipe, tmp_path, model_fixture, task, conversational, script_in_process
):
    model = request.getfixturevalue(model_fixture)
    out_json = tmp_path / "inspect.json"
    result = script_in_process(
        "sft.py", "--config", make_recipe(model, task), "--inspect", 5, "--inspect_json", out_json
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "masked (prompt, no loss)" in result.stdout

    tokenizer = AutoTokenizer.from_pretrained(model)
    assert (tokenizer.chat_template is not None) == conversational
    rows, spec = sample_rows(task), preset_spec(task)
    examples = json.loads(out_json.read_text(encoding="utf-8"))
    assert len(examples) == 5
    separator = "" if conversational else PLAIN_SEPARATOR
    for row, example in zip(rows, examples):
        answer = row[spec.answer]
        assert example["answer"] == answer
        # Exactly the answer and EOS are trained: nothing of the prompt, no padding, nothing after EOS.
        assert example["completion"] == separator + answer + tokenizer.eos_token
        assert answer not in example["prompt"]
        # The masked prompt is, token for token, what generation sends for the same row.
        prompt = build_example(row, spec, conversational)["prompt"]
        assert example["prompt"] == tokenizer.decode(prompt_token_ids(tokenizer, prompt))


def test_inspect_runs_a_gpu_recipe_on_this_cpu_without_the_model_s_weights(tiny_llama, tmp_path, script_in_process):
    """The shipped QLoRA recipe (bf16, 4-bit nf4, an 8B model) inspected on a CPU: only the tokenizer is read, so a
    folder with the tokenizer and no weights at all is enough, and the trained tokens are exactly answer + EOS."""
    import shutil

    folder = tmp_path / "tokenizer-only"
    shutil.copytree(tiny_llama, folder, ignore=shutil.ignore_patterns("*.safetensors"))
    out_json, sample = tmp_path / "inspect.json", str(SAMPLE_FILES["proverbs"])
    result = script_in_process(
        "sft.py", "--config", ROOT / "recipes" / "jais2_proverbs_qlora.yaml", "--model_name_or_path", folder,
        "--train_file", sample, "--validation_file", sample, "--test_file", sample, "--output_dir", tmp_path / "out",
        "--inspect", 3, "--inspect_json", out_json,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    examples = json.loads(out_json.read_text(encoding="utf-8"))
    assert [example["completion"] for example in examples] == [
        row["explanation"] + tokenizer.eos_token for row in sample_rows("proverbs")[:3]
    ]
    assert not (tmp_path / "out").exists()  # inspecting writes nothing of a run


def test_inspect_without_the_tokenizer_is_one_line(tmp_path, script_in_process):
    sample = str(SAMPLE_FILES["proverbs"])
    result = script_in_process(
        "sft.py", "--config", ROOT / "recipes" / "jais2_proverbs_qlora.yaml", "--model_name_or_path",
        tmp_path / "absent-model", "--train_file", sample, "--validation_file", sample, "--test_file", sample,
        "--inspect", 3,
    )  # fmt: skip
    assert_one_error_line(result, "absent-model")
