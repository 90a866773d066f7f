"""General ability before and after (scripts/general.py, lm-evaluation-harness): the project's local Arabic task on a
tiny base model and a tiny LoRA adapter trained on it, both sides' per-question samples, the comparison through the
comparison engine equal to a hand computation, a stopped run continuing to the uninterrupted result, and bad input
in one line."""

import json
import os
import signal
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import (
    assert_one_error_line,
    cpu_recipe,
    run_here,
    run_in_this_process,
)

from arabic_sft.general.harness import LOCAL_TASKS
from arabic_sft.general.paired import general_comparison, general_markdown
from arabic_sft.runtime.errors import UserError


pytestmark = pytest.mark.slow  # make test-fast skips this file


QUESTIONS = LOCAL_TASKS / "arabic_sft_mcq" / "questions.jsonl"
SAMPLES = "samples_arabic_sft_mcq.jsonl"


def general_recipe(folder: Path, base: Path, **fields) -> Path:
    """A recipe whose base is `base` and whose output_dir holds a LoRA adapter trained on it (trained by sft.py)."""
    return cpu_recipe(folder / "tiny.yaml", base, **{"output_dir": str(folder / "adapter"), "use_peft": True,
                      "lora_r": 8, "lora_alpha": 32, "lora_target_modules": "all-linear", "dtype": "float32",
                      "learning_rate": 5.0e-3, "num_train_epochs": 2, "general_tasks": ["arabic_sft_mcq"],
                      "general_batch_size": 1, **fields})  # fmt: skip


@pytest.fixture(scope="module")
def evaluated(tiny_llama, tmp_path_factory):
    """(folder, recipe): an adapter trained, then make general's script on both sides, as a user runs it."""
    folder = tmp_path_factory.mktemp("general")
    recipe = general_recipe(folder, tiny_llama)
    for step in (["sft.py", "--config", recipe], ["general.py", "--config", recipe]):
        assert run_here(*step, cwd=folder).returncode == 0, step
    return folder, recipe


def rows(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_both_sides_write_lm_evals_results_and_every_question_and_the_comparison_matches_them(evaluated):
    folder, _ = evaluated
    general = folder / "results" / "tiny" / "general"
    questions = rows(QUESTIONS)
    assert len(questions) == 40 and all(len(q["choices"]) == 4 and 0 <= q["answer"] < 4 for q in questions)
    accuracy = {}
    for side in ("base", "tuned"):
        samples = rows(general / side / SAMPLES)
        assert [row["doc_id"] for row in samples] == list(range(40))
        assert [row["doc"]["question"] for row in samples] == [q["question"] for q in questions]
        results = json.loads((general / side / "results.json").read_text(encoding="utf-8"))
        accuracy[side] = np.mean([row["acc"] for row in samples])
        assert results["results"]["arabic_sft_mcq"]["acc,none"] == pytest.approx(accuracy[side], abs=1e-12)
        manifest = json.loads((general / side / "manifest.json").read_text(encoding="utf-8"))
        assert manifest["config"]["general"]["side"] == side and manifest["config"]["general"]["batch_size"] == 1
    tuned_args = json.loads((general / "tuned" / "manifest.json").read_text())["config"]["general"]["model_args"]
    assert tuned_args["peft"] == str(folder / "adapter")  # the adapter on its base
    base_scores = [row["resps"] for row in rows(general / "base" / SAMPLES)]
    assert base_scores != [row["resps"] for row in rows(general / "tuned" / SAMPLES)]  # the adapter changed them
    table = pd.read_csv(general / "comparison.csv")
    row = table.iloc[0]
    assert (row.task, row.kind, row.questions, row.metric) == ("arabic_sft_mcq", "task", 40, "acc")
    assert row.base == pytest.approx(accuracy["base"], abs=1e-12) and row.tuned == pytest.approx(accuracy["tuned"])
    assert row["diff"] == pytest.approx(accuracy["tuned"] - accuracy["base"], abs=1e-12)
    assert not list((general / ".cache").glob("*.db"))  # both sides written whole: the answer cache is gone


def write_side(folder: Path, side: str, tasks: dict[str, list[float]], hashes: dict | None = None) -> None:
    """A side as make general writes it, constructed: per-question `acc` for each task, group g over a and b."""
    (folder / side).mkdir(parents=True)
    for task, values in tasks.items():
        lines = [
            json.dumps(
                {
                    "doc_id": i,
                    "doc_hash": (hashes or {}).get((task, i), f"h{i}"),
                    "filter": "none",
                    "metrics": ["acc"],
                    "acc": value,
                }
            )  # fmt: skip
            for i, value in enumerate(values)
        ]
        (folder / side / f"samples_{task}.jsonl").write_text("\n".join(lines) + "\n")
    (folder / side / "results.json").write_text(json.dumps({"group_subtasks": {"g": ["a", "b"]}}))


def test_the_paired_comparison_per_task_and_pooled_per_group_equals_a_hand_computation(tmp_path):
    # a: 4 questions, the fine-tuned model right on every one the base got right and one more (+0.25 each resample
    # can only move in [0, 0.5]); b: 6 questions, the same answers on both sides (difference 0 in every resample).
    write_side(tmp_path, "base", {"a": [1, 0, 0, 0], "b": [1, 1, 1, 0, 0, 0]})
    write_side(tmp_path, "tuned", {"a": [1, 1, 0, 0], "b": [1, 1, 1, 0, 0, 0]})
    table = general_comparison(tmp_path, resamples=1000, seed=0).set_index("task")
    assert list(table.index) == ["a", "b", "g"] and list(table["kind"]) == ["task", "task", "group"]
    assert table.loc["a", ["base", "tuned", "diff"]].tolist() == [0.25, 0.5, 0.25]
    assert table.loc["b", ["base", "tuned", "diff", "diff_ci_low", "diff_ci_high", "p_value"]].tolist() == [
        0.5, 0.5, 0.0, 0.0, 0.0, 1.0]  # fmt: skip  # no difference anywhere: interval [0, 0], p = 1
    # the group pools its 10 questions (lm-eval's size-weighted mean), not the mean of the two tasks' means
    assert table.loc["g", ["questions", "base", "tuned", "diff"]].tolist() == [10, 0.4, 0.5, pytest.approx(0.1)]
    # a's difference is 1/4 per resampled copy of its second question: every resample's mean is a multiple of 0.25
    low, high = table.loc["a", ["diff_ci_low", "diff_ci_high"]]
    assert 0 <= low <= 0.25 <= high <= 1 and (low * 4).is_integer() and (high * 4).is_integer()
    text = "\n".join(general_markdown(table.reset_index(), 1000, 0))
    assert "| g (group) | 10 | acc | 0.4000" in text and "## General ability" in text


def test_sides_that_answered_different_questions_are_refused(tmp_path):
    write_side(tmp_path, "base", {"a": [1, 0, 0]})
    write_side(tmp_path, "tuned", {"a": [1, 0, 0]}, hashes={("a", 2): "another question"})
    with pytest.raises(UserError, match="different questions"):
        general_comparison(tmp_path)


def test_a_stopped_run_continues_from_its_cached_answers_to_the_uninterrupted_result(
    evaluated, tiny_llama, tmp_path, monkeypatch, capsys
):
    from lm_eval.api import model as lm_model

    folder, _ = evaluated
    recipe = general_recipe(tmp_path, tiny_llama, output_dir=str(folder / "adapter"))
    original, calls = lm_model.CacheHook.add_partial, []

    def stop_at_the_50th(self, attr, request, result):  # SIGTERM through the real handler, at a chosen answer
        original(self, attr, request, result)
        calls.append(attr)
        if len(calls) == 50:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(lm_model.CacheHook, "add_partial", stop_at_the_50th)
    command = ("general.py", "--config", recipe, "--side", "base")
    stopped = run_in_this_process(monkeypatch, capsys, *command, cwd=tmp_path)
    assert stopped.returncode == 143 and "the same command continues" in stopped.stderr
    general = tmp_path / "results" / "tiny" / "general"
    assert not (general / "base").exists()  # nothing half-written
    (cache,) = (general / ".cache").glob("base-*_rank0.db")
    with sqlite3.connect(cache) as db:
        assert db.execute("SELECT COUNT(*) FROM unnamed").fetchone()[0] == 50  # each answer saved as it came

    monkeypatch.setattr(lm_model.CacheHook, "add_partial", original)
    resumed = run_in_this_process(monkeypatch, capsys, *command, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert (general / "base" / SAMPLES).read_bytes() == (folder / "results/tiny/general/base" / SAMPLES).read_bytes()
    again = run_in_this_process(monkeypatch, capsys, *command, cwd=tmp_path)  # make general again: nothing to do
    assert again.returncode == 0 and "general/base exists and is" in again.stdout and ": kept" in again.stdout
    assert (general / "base" / SAMPLES).read_bytes() == (folder / "results/tiny/general/base" / SAMPLES).read_bytes()
    fewer = run_in_this_process(monkeypatch, capsys, *command, "--limit", "5", cwd=tmp_path)  # other settings
    assert fewer.returncode == 0 and "evaluated with other limit: evaluating it again" in fewer.stdout
    assert len(rows(general / "base" / SAMPLES)) == 5


def test_compare_adds_the_general_ability_block(evaluated, monkeypatch, capsys):
    folder, recipe = evaluated
    run = folder / "results" / "tiny"
    for name in ("baseline-zero-shot", "."):  # two scored runs, constructed: compare needs them before its block
        (run / name).mkdir(parents=True, exist_ok=True)
        pd.DataFrame({"reference": ["ا", "ب"], "prediction": ["ا", "ج"], "rougeL": [1.0, 0.0]}).to_csv(
            run / name / "metrics_test.examples.csv", index=False
        )
        (run / name / "metrics_test.json").write_text(json.dumps({"n": 2, "rougeL": 0.5}))
    result = run_in_this_process(monkeypatch, capsys, "compare.py", "--config", recipe, cwd=folder)
    assert result.returncode == 0, result.stderr[-3000:]
    text = (run / "compare_test.md").read_text(encoding="utf-8")
    assert "## General ability (lm-evaluation-harness)" in text and "| arabic_sft_mcq | 40 | acc |" in text
    assert pd.read_csv(run / "compare_test.general.csv").equals(pd.read_csv(run / "general" / "comparison.csv"))


@pytest.mark.parametrize(
    "args, words",
    [
        (["--tasks", "arabicmmlu_stm"], ["unknown lm-eval task 'arabicmmlu_stm'", "arabicmmlu_stem"]),
        (["--tasks", "copa_ar"], ["task copa_ar: its data is on the Hugging Face Hub", "cannot be reached"]),
        (["--limit", "0"], ["--limit"]),
    ],
)
def test_bad_tasks_are_one_line_before_any_model_loads(
    evaluated, tiny_llama, tmp_path, monkeypatch, capsys, args, words
):  # noqa: E501
    folder, _ = evaluated
    recipe = general_recipe(tmp_path, tiny_llama, output_dir=str(folder / "adapter"))
    result = run_in_this_process(monkeypatch, capsys, "general.py", "--config", recipe, *args, cwd=tmp_path)
    assert_one_error_line(result, *words)
    assert not (tmp_path / "results" / "tiny" / "general" / "base").exists()


def test_a_model_that_does_not_load_is_one_line_and_writes_nothing(tiny_llama, tmp_path, monkeypatch, capsys):
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    recipe = general_recipe(tmp_path, tiny_llama, output_dir=str(tmp_path / "broken"))
    args = ("general.py", "--config", recipe, "--side", "tuned")
    result = run_in_this_process(monkeypatch, capsys, *args, cwd=tmp_path)
    assert_one_error_line(result, "tuned model", "does not load")
    assert not (tmp_path / "results" / "tiny" / "general" / "tuned").exists()
