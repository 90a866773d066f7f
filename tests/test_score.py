"""scripts/score.py: finds the columns, writes JSON + markdown + per-example CSV, and is honest when offline."""

import json
import os
import sys

import pandas as pd
import pytest
from helpers import SHARED_DATA, assert_one_error_line, run_in_this_process, run_script, write_recipe

from arabic_sft.runtime.locks import exclusive_output
from arabic_sft.scoring.metrics import CORPUS_KEYS, METRIC_KEYS


ROWS = [
    ("الصبر مفتاح الفرج", "يقال للحث على الصبر", "يقال للحث على الصبر"),
    ("من جد وجد", "يضرب لمن يجتهد في عمله", "يضرب لمن يعمل"),
    ("الجار قبل الدار", "يقال للنصح باختيار الجار", ""),
]


def write_predictions(path, rows=ROWS):
    frame = pd.DataFrame(rows, columns=["Proverb", "Reference_Explanation", "Generated_Explanation"])
    frame.to_csv(path, index=False, encoding="utf-8")
    return path


def test_scores_a_predictions_csv_with_local_embedding_models(tmp_path, tiny_bert, script_in_process):
    predictions = write_predictions(tmp_path / "predictions_test.csv")
    result = script_in_process(
        "score.py",
        predictions,
        "--bertscore_model",
        tiny_bert,
        "--semantic_model",
        tiny_bert,
        "--require_bertscore",
        "--require_semantic_similarity",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics_test.json").read_text(encoding="utf-8"))
    assert list(metrics) == [*METRIC_KEYS, "settings"]
    assert metrics["n"] == 3 and metrics["empty_rate"] == pytest.approx(1 / 3)
    assert all(0 <= metrics[key] <= 1 for key in METRIC_KEYS[1:] if key not in CORPUS_KEYS)
    assert all(0 <= metrics[key] <= 100 for key in CORPUS_KEYS)
    assert metrics["settings"]["config"]["scoring"]["signatures"]["chrf"].startswith(
        "nrefs:1|case:mixed|eff:yes|nc:6|nw:2"
    )
    assert metrics["settings"]["config"]["scoring"]["columns"] == {
        "reference": "Reference_Explanation",
        "prediction": "Generated_Explanation",
    }
    assert metrics["settings"]["versions"]["rouge-score"] and metrics["settings"]["data_sha256"]
    examples = pd.read_csv(tmp_path / "metrics_test.examples.csv")
    assert (
        len(examples) == 3
        and examples.loc[0, "bleu1"] == 1.0
        and examples.loc[0, "bertscore_f1"] == pytest.approx(1.0)
    )
    assert metrics["bleu1"] == pytest.approx(examples["bleu1"].mean())
    table = (tmp_path / "metrics_test.md").read_text(encoding="utf-8")
    assert "| BLEU-1 |" in table and "SHEFAA" not in table


@pytest.mark.slow
def test_an_unreachable_hub_is_detected_once_without_retries(tmp_path):
    # Nothing listens on port 9 of this machine: the Hub cannot be reached, by construction.
    unreachable = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_OFFLINE": ""}
    result = run_script(
        "score.py", write_predictions(tmp_path / "pred.csv"), "--out", tmp_path / "m.json", env=unreachable
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stderr.splitlines()
    assert [line for line in lines if line.startswith("note: ")] == [
        "note: 127.0.0.1 cannot be reached: offline, using locally cached models only"
    ]
    assert len([line for line in lines if line.startswith("warning: ") and "not computed" in line]) == 2
    assert "Retrying" not in result.stderr and "Traceback" not in result.stderr


def test_offline_embedding_models_are_recorded_null_in_one_line(tmp_path, script_in_process):
    predictions = write_predictions(tmp_path / "pred.csv")
    result = script_in_process("score.py", predictions, "--out", tmp_path / "m.json")
    assert result.returncode == 0, result.stderr[-3000:]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ") and "not computed" in line]
    assert len(warnings) == 2 and "BERTScore" in warnings[0] and "bert-base-multilingual-cased" in warnings[0]
    assert "Traceback" not in result.stderr
    metrics = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))
    assert metrics["bertscore_f1"] is None and metrics["semantic_similarity"] is None and metrics["bleu1"] > 0

    required = script_in_process("score.py", predictions, "--out", tmp_path / "m2.json", "--require_bertscore")
    assert_one_error_line(required, "BERTScore", "bert-base-multilingual-cased")
    assert not (tmp_path / "m2.json").exists()


def test_text_files_score_like_the_csv(tmp_path, script_in_process):
    write_predictions(tmp_path / "pred.csv", ROWS[:2])
    (tmp_path / "p.txt").write_text("\n".join(row[2] for row in ROWS[:2]) + "\n", encoding="utf-8")
    (tmp_path / "r.txt").write_text("\n".join(row[1] for row in ROWS[:2]) + "\n", encoding="utf-8")
    options = ["--no_bertscore", "--no_semantic_similarity"]
    from_csv = script_in_process("score.py", tmp_path / "pred.csv", "--out", tmp_path / "a.json", *options)
    text_files = ["--predictions", tmp_path / "p.txt", "--references", tmp_path / "r.txt"]
    from_text = script_in_process("score.py", *text_files, "--out", tmp_path / "b.json", *options)
    assert from_csv.returncode == 0 and from_text.returncode == 0, from_text.stderr[-2000:]
    a, b = (json.loads((tmp_path / name).read_text(encoding="utf-8")) for name in ("a.json", "b.json"))
    assert {k: a[k] for k in METRIC_KEYS} == {k: b[k] for k in METRIC_KEYS}


def test_rouge_default_tokenizer_reproduces_the_seed_zero(tmp_path, script_in_process):
    predictions = write_predictions(tmp_path / "pred.csv")
    result = script_in_process(
        "score.py",
        predictions,
        "--out",
        tmp_path / "m.json",
        "--rouge_tokenizer",
        "default",
        "--no_bertscore",
        "--no_semantic_similarity",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))
    assert metrics["rouge1"] == 0.0 and metrics["bleu1"] > 0


def test_config_scores_the_recipes_predictions_with_its_paper_baseline(tmp_path, script_in_process):
    write_recipe(
        tmp_path / "shefaa_like.yaml", model_name_or_path="unused", task="medical_qa", paper_baseline="shefaa"
    )
    (tmp_path / "results" / "shefaa_like").mkdir(parents=True)
    frame = pd.DataFrame(
        {
            "Question": ["ما علاج الصداع؟"],
            "Category": ["الأعصاب"],
            "Reference_Answer": ["الراحة وشرب الماء"],
            "Generated_Answer": ["الراحة والنوم الكافي"],
        }
    )
    frame.to_csv(tmp_path / "results" / "shefaa_like" / "predictions_validation.csv", index=False)
    result = script_in_process(
        "score.py",
        "--config",
        "shefaa_like.yaml",
        "--split",
        "validation",
        "--no_bertscore",
        "--no_semantic_similarity",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    table = (tmp_path / "results" / "shefaa_like" / "metrics_validation.md").read_text(encoding="utf-8")
    assert "SHEFAA (published)" in table and "| BLEU-1 | 0.3333 | 0.0330 |" in table


def test_no_reference_column_means_nothing_to_score(tmp_path, script_in_process):
    path = tmp_path / "pred.csv"
    pd.DataFrame({"Proverb": ["مثل"], "Generated_Explanation": ["شرح"]}).to_csv(path, index=False)
    result = script_in_process("score.py", path, "--no_bertscore", "--no_semantic_similarity")
    assert_one_error_line(result, str(path), "reference column", "Generated_Explanation", "nothing to score against")


def test_text_files_of_different_lengths_are_refused(tmp_path, script_in_process):
    (tmp_path / "p.txt").write_text("أ\nب\n", encoding="utf-8")
    (tmp_path / "r.txt").write_text("أ\n", encoding="utf-8")
    text_files = ["--predictions", tmp_path / "p.txt", "--references", tmp_path / "r.txt"]
    result = script_in_process("score.py", *text_files, "--out", tmp_path / "m.json")
    assert_one_error_line(result, "p.txt", "2 lines", "1")


@pytest.mark.skipif(not (SHARED_DATA / "yemeni_proverbs").is_dir(), reason="../shared/data is not beside the repo")
def test_real_references_score_one_against_themselves(tmp_path, script_in_process):
    test = pd.read_csv(SHARED_DATA / "yemeni_proverbs" / "Test_data.csv", encoding="utf-8-sig")
    rows = [(p, e, e) for p, e in zip(test["Proverbs"], test["Explanation"])]
    result = script_in_process(
        "score.py",
        write_predictions(tmp_path / "p.csv", rows),
        "--out",
        tmp_path / "m.json",
        "--no_bertscore",
        "--no_semantic_similarity",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    metrics = json.loads((tmp_path / "m.json").read_text(encoding="utf-8"))
    assert metrics["n"] == 100 and metrics["bleu1"] == 1.0 and metrics["rougeL"] == 1.0 and metrics["empty_rate"] == 0
    assert metrics["arabic_ratio"] > 0.99


def test_existing_metrics_are_kept_unless_overwrite(tmp_path, script_in_process):
    predictions = write_predictions(tmp_path / "predictions_test.csv")
    options = ["--no_bertscore", "--no_semantic_similarity"]
    (tmp_path / "metrics_test.json").write_text("{}", encoding="utf-8")
    refused = script_in_process("score.py", predictions, *options)
    assert_one_error_line(refused, "metrics_test.json", "already exists", "--overwrite")
    assert (tmp_path / "metrics_test.json").read_text(encoding="utf-8") == "{}"
    replaced = script_in_process("score.py", predictions, *options, "--overwrite")
    assert replaced.returncode == 0, replaced.stderr[-2000:]
    assert json.loads((tmp_path / "metrics_test.json").read_text(encoding="utf-8"))["n"] == 3


def test_a_second_scorer_of_the_same_metrics_is_refused(tmp_path, monkeypatch, capsys):
    predictions = write_predictions(tmp_path / "predictions_test.csv")
    out = tmp_path / "metrics_test.json"
    with exclusive_output(out):  # another run holds it (this process, through its own open file)
        result = run_in_this_process(
            monkeypatch, capsys, "score.py", predictions, "--no_bertscore", "--no_semantic_similarity"
        )
    assert_one_error_line(result, f"{out}: in use by process {os.getpid()} on ")
    assert not out.exists()


def test_a_recipes_local_embedding_models_score_through_config_and_make(tmp_path, tiny_bert, monkeypatch, capsys):
    """bertscore_model / semantic_model in a recipe: score.py --config uses them, and `make eval` / `make baseline`
    pass them to score.py (for a baseline's predictions, which score.py reads without the recipe)."""
    import subprocess

    from helpers import ROOT

    recipe = write_recipe(
        tmp_path / "local_metrics.yaml", task="proverbs", bertscore_model=str(tiny_bert), semantic_model=str(tiny_bert)
    )
    write_predictions((tmp_path / "results" / "local_metrics").mkdir(parents=True) or
                      tmp_path / "results" / "local_metrics" / "predictions_test.csv")  # fmt: skip
    result = run_in_this_process(monkeypatch, capsys, "score.py", "--config", recipe, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((tmp_path / "results" / "local_metrics" / "metrics_test.json").read_text(encoding="utf-8"))
    assert metrics["bertscore_f1"] is not None and metrics["semantic_similarity"] is not None
    scoring = metrics["settings"]["config"]["scoring"]
    assert scoring["bertscore_model"] == scoring["semantic_model"] == str(tiny_bert)

    name = os.path.relpath(recipe.with_suffix(""), ROOT / "recipes")  # RECIPE names recipes/$(RECIPE).yaml
    shown = subprocess.run(  # what `make baseline RECIPE=name` runs
        [sys.executable, "-m", "arabic_sft", "--show", "baseline", name], cwd=ROOT, capture_output=True, text=True
    )
    scoring = next(line for line in shown.stdout.splitlines() if "scripts/score.py" in line)
    assert f"--bertscore_model {tiny_bert} --semantic_model {tiny_bert}" in scoring, shown.stdout
    assert "scripts/judge.py" not in shown.stdout  # the recipe names no judge


def test_few_rows_and_mostly_empty_answers_are_said_at_once(tmp_path, script_in_process):
    rows = [ROWS[0], (ROWS[1][0], ROWS[1][1], ""), ROWS[2]]  # 2 of 3 answers empty
    write_predictions(tmp_path / "pred.csv", rows)
    result = script_in_process("score.py", tmp_path / "pred.csv", "--no_bertscore", "--no_semantic_similarity")
    assert result.returncode == 0, result.stderr[-2000:]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2
    assert "only 3 rows scored" in warnings[0] and "67% of the answers are empty" in warnings[1]
