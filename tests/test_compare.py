"""compare.py on constructed per-example scores: intervals, paired differences and p-values behave as they must."""

import json

import numpy as np
import pandas as pd
import pytest
from helpers import assert_one_error_line

from arabic_sft.runtime.errors import UserError
from arabic_sft.scoring.compare import compare
from arabic_sft.scoring.metrics import summarize
from arabic_sft.scoring.scored import load_run


COLUMNS = ["run", "metric", "value", "ci_low", "ci_high", "diff", "diff_ci_low", "diff_ci_high", "p_value"]


def write_run(directory, references, rouge, bleu=None, arabic=None, predictions=None) -> str:
    """A scored run as score.py leaves it: metrics_test.json and metrics_test.examples.csv."""
    directory.mkdir(parents=True, exist_ok=True)
    n = len(references)
    per_example = {
        "bleu1": bleu if bleu is not None else rouge,
        "bleu2": rouge,
        "bleu4": rouge,
        "rouge1": rouge,
        "rouge2": rouge,
        "rougeL": rouge,
        "arabic_ratio": arabic if arabic is not None else [1.0] * n,
        "empty": [False] * n,
    }
    metrics = {
        **summarize({key: list(values) for key, values in per_example.items()}),
        "sacrebleu": 12.5,
        "chrf": 40.0,
    }
    (directory / "metrics_test.json").write_text(json.dumps({**metrics, "settings": {}}), encoding="utf-8")
    answers = predictions if predictions is not None else [f"p {i}" for i in range(n)]
    pd.DataFrame({"prediction": answers, "reference": references, **per_example}).to_csv(
        directory / "metrics_test.examples.csv", index=False
    )
    return str(directory)


def references(n):
    return [f"جواب {i}" for i in range(n)]


def test_identical_runs_differ_by_zero_with_p_one(tmp_path):
    rng = np.random.default_rng(1)
    scores = rng.uniform(size=200)
    base = load_run(write_run(tmp_path / "base", references(200), scores))
    same = load_run(write_run(tmp_path / "same", references(200), scores))
    table = compare([same], base, resamples=1000, seed=0)
    paired = table[(table["run"] == "same") & table["p_value"].notna()]
    assert len(paired) == 8  # bleu1..rougeL, arabic_ratio, empty_rate
    assert (paired["diff"] == 0).all() and (paired["diff_ci_low"] == 0).all() and (paired["diff_ci_high"] == 0).all()
    assert (paired["p_value"] == 1.0).all()


def test_a_run_better_on_every_example_is_significant(tmp_path):
    rng = np.random.default_rng(2)
    scores = rng.uniform(0, 0.5, size=100)
    base = load_run(write_run(tmp_path / "base", references(100), scores))
    better = load_run(write_run(tmp_path / "better", references(100), scores + rng.uniform(0.01, 0.2, size=100)))
    rouge = compare([better], base).set_index(["run", "metric"]).loc[("better", "rougeL")]
    assert rouge["p_value"] < 0.01 and rouge["diff_ci_low"] > 0 and rouge["diff"] > 0
    assert rouge["ci_low"] < rouge["value"] < rouge["ci_high"]


def test_intervals_shrink_as_examples_grow(tmp_path):
    rng = np.random.default_rng(3)
    widths = []
    for n in (50, 200, 800):
        run = load_run(write_run(tmp_path / f"n{n}", references(n), rng.uniform(size=n)))
        row = compare([], run).set_index("metric").loc["rougeL"]
        widths.append(row["ci_high"] - row["ci_low"])
    assert widths[0] > widths[1] > widths[2] > 0


def test_the_same_inputs_give_the_same_intervals_and_the_seed_matters(tmp_path):
    rng = np.random.default_rng(4)
    base = load_run(write_run(tmp_path / "base", references(60), rng.uniform(size=60)))
    run = load_run(write_run(tmp_path / "run", references(60), rng.uniform(size=60)))
    first, again = compare([run], base, seed=5), compare([run], base, seed=5)
    assert first.equals(again)
    assert not first["ci_low"].equals(compare([run], base, seed=6)["ci_low"])


def test_arabic_ratio_is_paired_over_the_examples_both_runs_define(tmp_path):
    base = load_run(write_run(tmp_path / "base", references(4), [0.1] * 4, arabic=[1.0, None, 0.5, 1.0]))
    run = load_run(write_run(tmp_path / "run", references(4), [0.1] * 4, arabic=[0.5, 1.0, None, 1.0]))
    row = compare([run], base).set_index(["run", "metric"]).loc[("run", "arabic_ratio")]
    assert row["diff"] == pytest.approx((-0.5 + 0.0) / 2)  # rows 1 and 4 only


@pytest.mark.parametrize(
    "case, message",
    [
        ("count", "50 examples in .* but 49 in"),
        ("order", "the same references in another order"),
        ("text", "different references from example 3 on"),
    ],
)
def test_runs_scored_on_different_examples_are_refused(tmp_path, case, message):
    base = load_run(write_run(tmp_path / "base", references(50), [0.5] * 50))
    other = {
        "count": references(49),
        "order": references(50)[::-1],
        "text": references(2) + ["آخر"] + references(50)[3:],
    }[case]
    run = load_run(write_run(tmp_path / case, other, [0.5] * len(other)))
    with pytest.raises(UserError, match=message):
        compare([run], base)


def test_script_writes_markdown_csv_and_chart_with_a_published_row(tmp_path, script_in_process):
    rng = np.random.default_rng(5)
    scores = rng.uniform(0, 0.5, size=80)
    base = write_run(tmp_path / "results" / "baseline-zero-shot", references(80), scores)
    tuned = write_run(tmp_path / "results" / "model", references(80), scores + 0.1)
    out = tmp_path / "compare.md"
    result = script_in_process("compare.py", tuned, "--baseline", base, "--out", out, "--paper", "shefaa")
    assert result.returncode == 0, result.stderr[-2000:]
    table = pd.read_csv(out.with_suffix(".csv"))
    assert list(table.columns) == COLUMNS
    assert set(table["run"]) == {"baseline-zero-shot", "model", "SHEFAA (published)"}
    assert table[table["run"] == "baseline-zero-shot"][["diff", "p_value"]].isna().all().all()
    shefaa = table[table["run"] == "SHEFAA (published)"]
    assert shefaa["ci_low"].isna().all() and shefaa.set_index("metric").loc["bleu1", "value"] == 0.037
    assert out.with_suffix(".png").read_bytes().startswith(b"\x89PNG")
    text = out.read_text(encoding="utf-8")
    assert "| model | ROUGE-L (F1) | 0.1000 [0.1000, 0.1000] | 0.001 |" in text
    again = script_in_process("compare.py", tuned, "--baseline", base, "--out", out)
    assert_one_error_line(again, "already exists")
    missing = script_in_process(
        "compare.py", str(tmp_path / "nowhere"), "--baseline", base, "--out", tmp_path / "x.md"
    )
    assert_one_error_line(missing, "nowhere")


def test_config_compares_a_recipes_run_with_its_baselines(tmp_path, script_in_process):
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "mine.yaml").write_text("paper_baseline: shefaa\n", encoding="utf-8")
    rng = np.random.default_rng(6)
    scores = rng.uniform(0, 0.5, size=30)
    write_run(tmp_path / "results" / "mine", references(30), scores + 0.2)
    missing = script_in_process("compare.py", "--config", "recipes/mine.yaml", cwd=tmp_path)
    assert_one_error_line(missing, "make baseline RECIPE=mine")
    write_run(tmp_path / "results" / "mine" / "baseline-zero-shot", references(30), scores)
    write_run(tmp_path / "results" / "mine" / "baseline-3-shot", references(30), scores + 0.1)
    result = script_in_process("compare.py", "--config", "recipes/mine.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    table = pd.read_csv(tmp_path / "results" / "mine" / "compare_test.csv")
    assert list(dict.fromkeys(table["run"])) == ["baseline-zero-shot", "baseline-3-shot", "mine", "SHEFAA (published)"]


def test_runs_with_the_same_answers_are_noted_as_such(tmp_path, script_in_process):
    # As the demo's untrained model, which says the same thing whatever its prompt: zero-shot = 3-shot.
    same = ["يجب يجب يجب"] * 20
    scores = np.full(20, 0.1)
    base = write_run(tmp_path / "zero-shot", references(20), scores, predictions=same)
    shots = write_run(tmp_path / "3-shot", references(20), scores, predictions=same)
    tuned = write_run(tmp_path / "tuned", references(20), scores + 0.2)
    out = tmp_path / "c.md"
    result = script_in_process("compare.py", shots, tuned, "--baseline", base, "--out", out)
    assert result.returncode == 0, result.stderr[-2000:]
    notes = [line for line in out.read_text(encoding="utf-8").splitlines() if line.startswith("Note:")]
    assert notes == ["Note: zero-shot and 3-shot gave the same answer on every example, so their scores are equal "
                     "(difference 0, p = 1) by construction."]  # fmt: skip


def write_judgement(directory, references, correctness) -> None:
    """What judge.py leaves beside the predictions: judge_test.json and judge_test.examples.csv (NaN: unusable)."""
    values = pd.Series(correctness, dtype=float)
    summary = {"n": len(values), "usable": int(values.notna().sum()), "judge_correctness": float(values.mean())}
    (directory / "judge_test.json").write_text(json.dumps({**summary, "settings": {}}), encoding="utf-8")
    frame = {"prediction": ["p"] * len(values), "reference": references, "judge_correctness": values}
    pd.DataFrame({**frame, "judge_problem": ["" if v == v else "no JSON object" for v in values]}).to_csv(
        directory / "judge_test.examples.csv", index=False
    )


def test_judge_scores_get_intervals_and_paired_tests_like_every_metric(tmp_path):
    from arabic_sft.scoring.tables import markdown

    refs = references(6)
    base_dir, tuned_dir = tmp_path / "base", tmp_path / "tuned"
    write_run(base_dir, refs, [0.1] * 6)
    write_run(tuned_dir, refs, [0.1] * 6)
    write_judgement(base_dir, refs, [1, 2, 1, 2, 1, np.nan])
    write_judgement(tuned_dir, refs, [4, 5, 4, 5, 4, 5])
    base, tuned = load_run(str(base_dir), "base"), load_run(str(tuned_dir), "tuned")
    table = compare([tuned], base, resamples=500, seed=0)
    row = table[(table["run"] == "tuned") & (table["metric"] == "judge_correctness")].iloc[0]
    assert row["value"] == pytest.approx(27 / 6) and row["diff"] == pytest.approx(3.0)  # paired over 5 rows
    indices = np.random.default_rng(0).integers(0, 6, size=(500, 6))
    differences = np.array([3, 3, 3, 3, 3, np.nan])
    with np.errstate(invalid="ignore"):
        expected = np.nanpercentile(np.nanmean(differences[indices], axis=1), [2.5, 97.5])
    assert (row["diff_ci_low"], row["diff_ci_high"]) == tuple(expected)
    assert row["p_value"] == pytest.approx(1 / 501)
    text = markdown(table, "base", 500, 0)
    assert text.splitlines()[4].endswith("| Empty generations | Judge: correctness |")  # the table's header
    assert "| tuned | Judge: correctness | 3.00 [3.00, 3.00] | 0.002 |" in text


def test_a_judgement_of_other_examples_is_refused(tmp_path):
    write_run(tmp_path / "run", references(3), [0.1] * 3)
    write_judgement(tmp_path / "run", ["other", "rows", "here"], [1, 2, 3])
    with pytest.raises(UserError, match="judged other examples than"):
        load_run(str(tmp_path / "run"))


def test_what_is_written_beside_a_predictions_csv_is_named_one_way():
    from arabic_sft.runs import beside

    assert beside("r/predictions_test.csv", "metrics").as_posix() == "r/metrics_test.json"
    assert beside("r/metrics_validation.json", "judge").as_posix() == "r/judge_validation.json"
    assert beside("r/mine.csv", "metrics").as_posix() == "r/mine.metrics.json"
    assert beside("r/mine.metrics.json", "judge").as_posix() == "r/mine.judge.json"


def test_the_comparison_shows_the_pairwise_verdicts_and_where_the_judge_agrees_with_the_word_metrics(tmp_path):
    from arabic_sft.judging.verdicts import LOSS, TIE, WIN, pairwise_summary
    from arabic_sft.scoring.tables import judge_section

    refs = references(4)
    base_dir, tuned_dir = tmp_path / "baseline-zero-shot", tmp_path / "tuned"
    write_run(base_dir, refs, [0.1] * 4)
    write_run(tuned_dir, refs, [0.2] * 4)
    write_judgement(tuned_dir, refs, [4, 5, 4, 5])
    summary = json.loads((tuned_dir / "judge_test.json").read_text(encoding="utf-8"))
    summary["spearman"] = {"correctness": {"n": 4, "bleu4": 0.5, "rougeL": -0.25, "chrf": None}}
    (tuned_dir / "judge_test.json").write_text(json.dumps(summary), encoding="utf-8")
    pairwise = pairwise_summary([WIN, WIN, TIE, LOSS], [True, True, False, True], resamples=200, seed=0)
    (tuned_dir / "pairwise_test.vs_baseline-zero-shot.json").write_text(json.dumps(pairwise), encoding="utf-8")
    base, tuned = load_run(str(base_dir), "baseline-zero-shot"), load_run(str(tuned_dir), "tuned")
    lines = judge_section([base, tuned])
    win, tie, loss = (pairwise[key] for key in ("win", "tie", "loss"))
    assert (
        f"| tuned | baseline-zero-shot | 50% [{win['low']:.0%}, {win['high']:.0%}] | 25% [{tie['low']:.0%}, "
        f"{tie['high']:.0%}] | 25% [{loss['low']:.0%}, {loss['high']:.0%}] | 25% | 0 of 4 |"
    ) in lines
    assert "| tuned | correctness | +0.50 | -0.25 | n/a | 4 |" in lines
    assert judge_section([base]) == []  # nothing judged: no section


def test_the_comparison_within_each_group_equals_a_hand_computation(tmp_path, script_in_process):
    """12 rows: 10 of one category, 2 of another. Within each group the values, the paired difference and (for the
    group large enough) its interval are those of the group's rows alone, computed here by hand."""
    refs = references(12)
    category = ["أمراض القلب"] * 10 + ["الجلدية"] * 2
    base_scores = np.array([0.1, 0.2, 0.3, 0.2, 0.1, 0.4, 0.2, 0.3, 0.1, 0.2, 0.5, 0.6])
    tuned_scores = base_scores + np.array([0.3, 0.1, 0.2, 0.0, 0.4, 0.1, 0.2, 0.3, 0.1, 0.2, -0.2, -0.4])
    for name, scores in (("base", base_scores), ("tuned", tuned_scores)):
        write_run(tmp_path / name, refs, scores)
        predictions = {"Question": [f"س {i}" for i in range(12)], "Category": category, "Reference_Answer": refs}
        pd.DataFrame({**predictions, "Generated_Answer": [f"p {i}" for i in range(12)]}).to_csv(
            tmp_path / name / "predictions_test.csv", index=False
        )
    out = tmp_path / "c.md"
    result = script_in_process(
        "compare.py", tmp_path / "tuned", "--baseline", tmp_path / "base", "--out", out, "--group_column", "category",
        "--resamples", 200,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    groups = pd.read_csv(out.with_suffix(".groups.csv"))
    rouge = groups[(groups["run"] == "tuned") & (groups["metric"] == "rougeL")].set_index("group")
    assert list(rouge.index) == ["أمراض القلب", "الجلدية"]  # largest first
    heart = rouge.loc["أمراض القلب"]
    assert heart["group_rows"] == 10 and not heart["too_small"]
    assert heart["value"] == pytest.approx(tuned_scores[:10].mean()) and heart["diff"] == pytest.approx(0.19)
    indices = np.random.default_rng(0).integers(0, 10, size=(200, 10))
    differences = (tuned_scores - base_scores)[:10][indices].mean(axis=1)
    expected = tuple(np.percentile(differences, [2.5, 97.5]))
    assert (heart["diff_ci_low"], heart["diff_ci_high"]) == pytest.approx(expected)
    skin = rouge.loc["الجلدية"]
    assert skin["group_rows"] == 2 and skin["too_small"] and skin["diff"] == pytest.approx(-0.3)
    assert np.isnan(skin["diff_ci_low"]) and np.isnan(skin["p_value"])  # too few rows for an interval
    assert "sacrebleu" not in set(groups["metric"])  # corpus-level: not a mean over a group's rows
    text = out.read_text(encoding="utf-8")
    assert "| category | Rows | Run |" in text and "| الجلدية | 2 (too small) | tuned |" in text
    assert "| أمراض القلب | 10 | tuned | " in text


def test_a_group_column_the_predictions_lack_is_one_line(tmp_path, script_in_process):
    for name in ("base", "tuned"):
        write_run(tmp_path / name, references(3), [0.1, 0.2, 0.3])
        pd.DataFrame({"Proverb": ["a", "b", "c"], "Reference_Explanation": references(3),
                      "Generated_Explanation": ["x", "y", "z"]}).to_csv(tmp_path / name / "predictions_test.csv",
                                                                        index=False)  # fmt: skip
    out = tmp_path / "c.md"
    result = script_in_process(
        "compare.py", tmp_path / "tuned", "--baseline", tmp_path / "base", "--out", out, "--group_column", "category"
    )
    assert_one_error_line(result, "group_column category: not a column of", "found: Proverb, Reference_Explanation")
    assert not out.exists()


def seed_runs(tmp_path, per_seed: list[list[float]], name="tuned"):
    """A system trained with len(per_seed) seeds: one scored run per seed (ROUGE-L etc. = the given scores)."""
    from arabic_sft.scoring.scored import seed_system

    n = len(per_seed[0])
    runs = [load_run(write_run(tmp_path / f"seed-{i}", references(n), scores)) for i, scores in enumerate(per_seed)]
    return seed_system(name, runs)


def rouge_row(table, run="tuned"):
    return table[(table["run"] == run) & (table["metric"] == "rougeL")].iloc[0]


def test_seeds_that_differ_while_rows_do_not_put_the_whole_interval_on_the_seeds(tmp_path):
    # Each seed scores every row the same (0.2, 0.6, 0.4), the baseline 0.1 everywhere: resampling rows changes
    # nothing, so all of the difference's variance comes from the seeds; its interval lies within the seeds' range.
    from arabic_sft.scoring.tables import markdown

    tuned = seed_runs(tmp_path, [[0.2] * 30, [0.6] * 30, [0.4] * 30])
    base = load_run(write_run(tmp_path / "base", references(30), [0.1] * 30))
    row = rouge_row(compare([tuned], base, resamples=1000, seed=0))
    assert row["value"] == pytest.approx(0.4) and row["diff"] == pytest.approx(0.3)
    assert row["seeds"] == 3 and row["seed_sd"] == pytest.approx(0.2)  # sd of (0.2, 0.6, 0.4), ddof 1
    assert row["seed_share"] == 1.0
    assert 0.1 - 1e-12 <= row["diff_ci_low"] < row["diff"] < row["diff_ci_high"] <= 0.5 + 1e-12
    text = markdown(compare([tuned], base, resamples=1000, seed=0), base.name, 1000, 0)
    assert "## Training seeds" in text and "| tuned | ROUGE-L (F1) | 3 | 0.2000 |" in text and "| 100% | 0% |" in text


def test_seeds_that_agree_while_rows_differ_put_the_whole_interval_on_the_rows(tmp_path):
    rng = np.random.default_rng(3)
    scores = rng.uniform(size=40).tolist()
    tuned = seed_runs(tmp_path, [scores, scores])
    base = load_run(write_run(tmp_path / "base", references(40), rng.uniform(size=40)))
    table = compare([tuned], base, resamples=1000, seed=0)
    row = rouge_row(table)
    assert row["seed_share"] == 0.0 and row["seed_sd"] == 0.0
    assert row["diff_ci_low"] < row["diff"] < row["diff_ci_high"]
    # the seeds are the same run twice: the interval is the one-seed interval (the same row resamples)
    single = rouge_row(compare([load_run(tmp_path / "seed-0", "tuned")], base, resamples=1000, seed=0))
    assert (row["diff"], row["diff_ci_low"], row["diff_ci_high"]) == pytest.approx(
        (single["diff"], single["diff_ci_low"], single["diff_ci_high"]), abs=1e-12
    )


def test_one_seed_is_the_run_as_it_is(tmp_path):
    tuned = seed_runs(tmp_path, [[0.3, 0.5, 0.9, 0.1] * 5])
    base = load_run(write_run(tmp_path / "base", references(20), [0.2, 0.4, 0.4, 0.3] * 5))
    alone = load_run(tmp_path / "seed-0", "tuned")
    assert tuned.seeds is None
    assert compare([tuned], base, seed=0).equals(compare([alone], base, seed=0))


def test_few_seeds_are_said_to_be_few():
    from arabic_sft.scoring.tables import seed_markdown

    def table(seeds: int) -> pd.DataFrame:
        return pd.DataFrame([{"run": "r", "metric": "rougeL", "seeds": seeds, "seed_sd": 0.01, "diff": 0.1,
                              "diff_ci_low": 0.0, "diff_ci_high": 0.2, "seed_share": 0.5}])  # fmt: skip

    assert "Few seeds: 3." in "\n".join(seed_markdown(table(3), "base"))
    assert "Few seeds" not in "\n".join(seed_markdown(table(5), "base"))


def test_a_difference_whose_interval_holds_zero_is_coloured_neither_gain_nor_loss():
    from arabic_sft.scoring.tables import ComparisonTable

    rows = [  # (metric, diff, its interval): float noise of a zero difference; intervals across, above, below 0
        ("bleu1", 9.4e-14, 0.0, 0.0), ("rougeL", 0.05, -0.01, 0.1), ("rouge1", 0.05, 0.01, 0.1),
        ("rouge2", -0.05, -0.1, -0.01), ("empty_rate", -0.05, -0.1, -0.01),  # fewer empty answers: a gain
        ("chrf", 1e-13, None, None), ("sacrebleu", 3.0, None, None),  # corpus-level: no interval, the sign as shown
    ]  # fmt: skip
    frame = pd.DataFrame(
        [{"run": "tuned", "metric": metric, "value": 0.5, "ci_low": None, "ci_high": None, "diff": diff,
          "diff_ci_low": low, "diff_ci_high": high, "p_value": 1.0} for metric, diff, low, high in rows]
        + [{"run": "base", "metric": metric, "value": 0.5} for metric, *_ in rows]
    )  # fmt: skip
    table = ComparisonTable(frame, "base")
    tones = {metric: table.cells["tuned", metric].tone for metric, *_ in rows}
    assert tones == {"bleu1": 0, "rougeL": 0, "rouge1": 1, "rouge2": -1, "empty_rate": 1, "chrf": 0, "sacrebleu": 1}
