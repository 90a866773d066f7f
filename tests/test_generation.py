"""scripts/generate.py: batching changes nothing, a killed run resumes to the same file, columns as documented."""

import json
import signal
import subprocess
import time

import pandas as pd
import pytest
import torch
from helpers import (
    OPTIONS,
    ROOT,
    SAMPLE_FILES,
    assert_one_error_line,
    cpu_recipe,
    generate_command,
    preset_spec,
    run_script,
    sample_rows,
    sharp_random_model,
    write_recipe,
)
from transformers import AutoModelForCausalLM, AutoTokenizer

from arabic_sft.generation.batched import generate_texts, length_sorted_batches, stream_generation
from arabic_sft.prompts.builder import build_model_prompt, prompt_token_ids
from arabic_sft.runtime.locks import lock_path


@pytest.mark.parametrize("model_fixture, task", [("tiny_llama", "proverbs"), ("tiny_gpt2", "medical_qa")])
def test_batched_greedy_equals_one_by_one(request, model_fixture, task):
    model, tokenizer = sharp_random_model(request.getfixturevalue(model_fixture))
    conversational = tokenizer.chat_template is not None
    rows = sample_rows(task)
    prompts = [prompt_token_ids(tokenizer, build_model_prompt(row, preset_spec(task), conversational)) for row in rows]
    assert len({len(p) for p in prompts}) > 1  # the batches really need padding
    batched = generate_texts(model, tokenizer, prompts, max_new_tokens=20, batch_size=5)
    one_by_one = [generate_texts(model, tokenizer, [p], max_new_tokens=20, batch_size=1)[0] for p in prompts]
    assert batched == one_by_one
    assert all(batched)
    # A preallocated (static) KV cache, sized by the first (longest) batch and reused by later ones, changes nothing.
    static = generate_texts(model, tokenizer, prompts, max_new_tokens=20, batch_size=5, static_cache=True)
    assert static == batched
    # Streamed (make chat), one prompt at a time: the text grows piece by piece to exactly the batched answer.
    for prompt, expected in zip(prompts, batched):
        texts = list(stream_generation(model, tokenizer, prompt, max_new_tokens=20))
        assert texts[-1] == expected and len(texts) > 2
        assert all(expected.startswith(text) for text in texts)


def test_batches_are_length_sorted_and_cover_every_prompt_once():
    prompts = [[1] * n for n in (3, 9, 1, 7, 5)]
    batches = length_sorted_batches(prompts, 2)
    assert batches == [[1, 3], [4, 0], [2]]


def start_generation(tiny_llama, test_path, out, rows_written: int = 0, **popen) -> subprocess.Popen:
    """Start generating into `out`; return once it holds the output's lock and has saved `rows_written` rows."""
    process = subprocess.Popen(generate_command(tiny_llama, test_path, out, *OPTIONS), cwd=ROOT, **popen)
    partial, lock = out.with_name(out.name + ".partial.jsonl"), lock_path(out)
    deadline = time.time() + 120
    while (
        time.time() < deadline
        and process.poll() is None
        and not (
            lock.is_file()
            and f"process {process.pid} " in lock.read_text()
            and (rows_written == 0 or partial.is_file() and len(partial.read_text().splitlines()) > rows_written)
        )
    ):
        time.sleep(0.01)
    assert process.poll() is None, "generation ended before it could be interrupted"
    return process


@pytest.mark.slow
def test_killed_generation_resumes_to_the_same_file(tiny_llama, long_generation, tmp_path):
    test_path, reference = long_generation
    out = tmp_path / "resumed.csv"
    partial = tmp_path / "resumed.csv.partial.jsonl"
    process = start_generation(
        tiny_llama, test_path, out, rows_written=4, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not out.exists()
    written = len(partial.read_text().splitlines()) - 1
    assert 0 < written < 48  # some batches, not all
    assert f"process {process.pid} " in lock_path(out).read_text()  # the dead run's lock file is still there

    result = run_script("generate.py", *generate_command(tiny_llama, test_path, out, *OPTIONS)[2:])
    assert result.returncode == 0, result.stderr[-2000:]  # and its lock is taken over at once
    assert out.read_bytes() == reference.read_bytes()
    assert not partial.exists()


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "said"), [(signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "Ctrl-C")])
def test_sigterm_or_ctrl_c_finishes_the_batch_and_the_rerun_gives_the_same_file(
    tiny_llama, long_generation, tmp_path, signum, said
):
    test_path, reference = long_generation
    out = tmp_path / "stopped.csv"
    process = start_generation(
        tiny_llama, test_path, out, rows_written=2, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 128 + signum, stderr[-2000:]
    assert f"stopped by {said} after" in stderr and "the same command continues" in stderr
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
    lines = out.with_name(out.name + ".partial.jsonl").read_text(encoding="utf-8").splitlines()
    assert all(json.loads(line) for line in lines)  # every saved row whole: the batch was finished, not cut
    assert not out.exists()
    if signum == signal.SIGINT:
        return  # the rerun is the same as after SIGTERM

    result = run_script("generate.py", *generate_command(tiny_llama, test_path, out, *OPTIONS)[2:])
    assert result.returncode == 0, result.stderr[-2000:]
    assert out.read_bytes() == reference.read_bytes()


@pytest.mark.slow
def test_a_second_generation_into_the_same_file_is_refused(tiny_llama, long_generation, tmp_path, script_in_process):
    test_path, reference = long_generation
    out = tmp_path / "shared.csv"
    partial = tmp_path / "shared.csv.partial.jsonl"
    first = start_generation(tiny_llama, test_path, out, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first.send_signal(signal.SIGSTOP)  # holds its lock while the second run starts, however fast either machine is
    try:
        before = partial.read_bytes() if partial.exists() else None
        second = script_in_process("generate.py", *generate_command(tiny_llama, test_path, out, *OPTIONS)[2:])
        error = assert_one_error_line(second)
        assert error.startswith(f"error: {out}: in use by process {first.pid} on ")
        assert "generate.py" in error and error.endswith("wait for it to end, or stop it")
        assert (partial.read_bytes() if partial.exists() else None) == before  # the second run wrote nothing
    finally:
        first.send_signal(signal.SIGCONT)
    assert first.wait(timeout=300) == 0
    assert out.read_bytes() == reference.read_bytes()


def test_output_columns_and_a_test_file_without_references(tiny_gpt2, tmp_path, script_in_process):
    test_path = tmp_path / "questions.csv"
    pd.DataFrame(sample_rows("medical_qa"))[["question", "category"]].to_csv(test_path, index=False)
    out = tmp_path / "pred.csv"
    result = script_in_process(
        "generate.py",
        *generate_command(tiny_gpt2, test_path, out, "--task", "medical_qa", "--max_new_tokens", 8, "--limit", 5)[2:],
    )
    assert result.returncode == 0, result.stderr[-2000:]
    predictions = pd.read_csv(out)
    assert list(predictions.columns) == ["Question", "Category", "Generated_Answer"] and len(predictions) == 5
    again = script_in_process("generate.py", *generate_command(tiny_gpt2, test_path, out, "--task", "medical_qa")[2:])
    assert_one_error_line(again, "already exists")


def test_a_group_column_that_is_not_an_input_is_carried_into_the_predictions(tiny_llama, tmp_path, script_in_process):
    # The per-group comparison reads the group from the predictions CSV: a column the prompt does not use (here
    # "Region", one cell empty) must travel with its row, through --limit's sampling and the empty-cell drop.
    rows = pd.DataFrame(sample_rows("proverbs")).head(8)
    rows["Region"] = [f"r{i % 3}" for i in range(len(rows))]
    rows.loc[2, "Region"] = ""
    rows.loc[5, "proverb"] = ""  # an empty input: the row is dropped, the regions stay aligned
    test_path = tmp_path / "with_region.csv"
    rows.to_csv(test_path, index=False)
    out = tmp_path / "pred.csv"
    command = generate_command(tiny_llama, test_path, out, "--task", "proverbs", "--max_new_tokens", 2)[2:]
    result = script_in_process("generate.py", *command, "--group_column", "region", "--limit", 6)
    assert result.returncode == 0, result.stderr[-2000:]
    predictions = pd.read_csv(out, keep_default_na=False)
    assert list(predictions.columns) == ["Proverb", "Region", "Reference_Explanation", "Generated_Explanation"]
    source = {row["proverb"]: row["Region"] for _, row in rows.iterrows() if row["proverb"]}
    assert len(predictions) == 6 and all(source[p] == r for p, r in zip(predictions["Proverb"], predictions["Region"]))
    missing = script_in_process("generate.py", *command, "--group_column", "ward", "--overwrite")
    assert_one_error_line(missing, "no column 'ward' (group_column")


def test_config_generates_for_a_gpu_recipe_on_cpu_and_names_the_split(tiny_llama, tmp_path, script_in_process):
    # A recipe written for a GPU (bf16) still drives generation here: only its data, prompt and output_dir are read.
    write_recipe(
        tmp_path / "gpu_recipe.yaml",
        model_name_or_path="unused",
        output_dir=str(tiny_llama),
        bf16=True,
        task="proverbs",
        validation_file=str(SAMPLE_FILES["proverbs"]),
    )
    result = script_in_process(
        "generate.py",
        "--config",
        "gpu_recipe.yaml",
        "--split",
        "validation",
        "--max_new_tokens",
        4,
        "--limit",
        3,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    predictions = pd.read_csv(tmp_path / "results" / "gpu_recipe" / "predictions_validation.csv")
    assert list(predictions.columns) == ["Proverb", "Reference_Explanation", "Generated_Explanation"]
    assert len(predictions) == 3
    missing = script_in_process("generate.py", "--config", "gpu_recipe.yaml", cwd=tmp_path)
    assert_one_error_line(missing, "no test data in the recipe")


def test_a_batch_that_runs_out_of_memory_is_generated_in_halves(tiny_llama, capsys):
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama)
    model = AutoModelForCausalLM.from_pretrained(tiny_llama).eval()
    rows = sample_rows("proverbs")
    prompts = [prompt_token_ids(tokenizer, build_model_prompt(row, preset_spec("proverbs"), True)) for row in rows]
    expected = generate_texts(model, tokenizer, prompts, max_new_tokens=6, batch_size=12)

    generate = model.generate

    def generate_at_most_three(**kwargs):  # a device that holds three prompts at a time
        if kwargs["input_ids"].shape[0] > 3:
            raise torch.OutOfMemoryError("simulated")
        return generate(**kwargs)

    model.generate = generate_at_most_three
    assert generate_texts(model, tokenizer, prompts, max_new_tokens=6, batch_size=12) == expected
    assert "out of memory with a batch of 12 prompts" in capsys.readouterr().err


def test_a_partial_run_resumes_only_under_the_same_resume_key(tmp_path):
    from dataclasses import replace

    from arabic_sft.generation.settings import GenerationSettings
    from arabic_sft.runtime.errors import UserError
    from arabic_sft.runtime.partial import PartialWriter, read_done

    settings = GenerationSettings(data={"test_file": "t.csv"}, model_dir="m", max_new_tokens=48, batch_size=2)
    out = tmp_path / "p.csv"
    writer = PartialWriter(out, 0, settings.resume_key())
    writer.write([(0, "نص"), (1, "آخر")])
    writer.close()
    # Where the output goes and how the cache is kept change neither the rows nor their text: it resumes.
    same = replace(settings, out_path=str(tmp_path / "elsewhere.csv"), static_cache=True, device_map="auto")
    assert read_done(out, same.resume_key()) == {0: "نص", 1: "آخر"}
    assert same.record()["static_cache"] and "static_cache" not in same.resume_key()
    # What the text depends on is refused, by name.
    other = replace(settings, max_new_tokens=64, temperature=0.7)
    with pytest.raises(
        UserError, match=r"other settings \(max_new_tokens, temperature\); delete it or pass --overwrite"
    ):
        read_done(out, other.resume_key())


def test_data_changed_after_training_is_refused_unless_accepted(tiny_llama, make_recipe, tmp_path, script_in_process):
    import shutil

    test_file = tmp_path / "test.csv"
    shutil.copy(SAMPLE_FILES["proverbs"], test_file)
    recipe = make_recipe(tiny_llama, test_file=str(test_file), max_steps=1)
    assert script_in_process("sft.py", "--config", recipe).returncode == 0
    with open(test_file, "a", encoding="utf-8") as handle:
        handle.write("مثل أضيف بعد التدريب,شرح\n")  # a row appended after training
    options = ["--out_path", tmp_path / "p.csv", "--max_new_tokens", 4, "--limit", 2]
    refused = script_in_process("generate.py", "--config", recipe, *options)
    assert_one_error_line(refused, str(test_file), "changed since the training run", "--accept_changed_data")
    accepted = script_in_process("generate.py", "--config", recipe, *options, "--accept_changed_data")
    assert accepted.returncode == 0, accepted.stderr[-2000:]


def test_a_file_of_new_questions_is_answered_with_the_recipe_s_prompt(tiny_llama, tmp_path, script_in_process):
    # A recipe with a group column outside the prompt and a held-out test fraction; a file with only the input
    # column: answered, no group needed, the recipe's held-out rows not asked for.
    rows = pd.DataFrame(sample_rows("proverbs"))
    rows["Region"] = [f"r{i % 3}" for i in range(len(rows))]
    rows.to_csv(tmp_path / "mine.csv", index=False)
    recipe = cpu_recipe(tmp_path / "mine.yaml", tiny_llama, train_file=str(tmp_path / "mine.csv"),
                        test_fraction=0.25, group_column="Region", max_steps=1)  # fmt: skip
    trained = script_in_process("sft.py", "--config", recipe)
    assert trained.returncode == 0, trained.stderr[-2000:]
    questions = pd.DataFrame({"Proverb": ["اللي ما يعرف الصقر يشويه", "الجار قبل الدار"]})
    questions.to_csv(tmp_path / "ask.csv", index=False)
    out = tmp_path / "answers.csv"
    ask = ["--config", recipe, "--test_path", tmp_path / "ask.csv", "--out_path", out, "--max_new_tokens", 4]
    result = script_in_process("generate.py", *ask)
    assert result.returncode == 0, result.stderr[-2000:]
    answers = pd.read_csv(out, keep_default_na=False)
    assert list(answers.columns) == ["Proverb", "Generated_Explanation"] and len(answers) == 2
    assert "has no column 'Region' (group_column): the answers carry no groups" in result.stderr
    again = script_in_process("generate.py", *ask, "--group_column", "", "--overwrite")
    assert again.returncode == 0 and "group_column" not in again.stderr
    held_out = script_in_process("generate.py", "--config", recipe, "--out_path", tmp_path / "held.csv",
                                 "--max_new_tokens", 4)  # fmt: skip
    assert held_out.returncode == 0 and "Region" in pd.read_csv(tmp_path / "held.csv").columns
