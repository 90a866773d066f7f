"""make board on constructed scored systems: every system of two recipes that share their test rows in one table,
ranked, each against the best with the comparison engine's numbers (equal to compare.py's for the same pair), Holm's
correction as computed by hand, an endpoint's cost from its manifest; a recipe on other rows named and left out."""

import json

import numpy as np
import pandas as pd
import pytest
from helpers import assert_one_error_line
from test_compare import write_run

from arabic_sft.scoring.board import holm


QUESTIONS = [f"ما معنى المثل رقم {i}؟" for i in range(60)]
ANSWERS = [f"جواب {i}" for i in range(60)]
# Each system's per-row ROUGE-L: the order of their means is the board's order.
LEVELS = {"a": 0.50, "a/baseline-zero-shot": 0.20, "a/endpoint-served": 0.45, "b": 0.30, "c": 0.90}
USAGE = {"prompt_tokens": 900, "completion_tokens": 300, "requests": 60, "seconds": 30.0}


def write_system(folder, level: float, seed: int, questions=QUESTIONS, answers=ANSWERS, usage=None) -> None:
    """A system as make eval leaves it: predictions_test.csv (inputs, reference, answer), its manifest, and the
    scores beside it (per-row values drawn around `level`)."""
    rouge = np.clip(np.random.default_rng(seed).normal(level, 0.15, len(answers)), 0, 1)
    write_run(folder, answers, rouge)
    pd.DataFrame({"Question": questions, "Reference_Answer": answers,
                  "Generated_Answer": [f"ناتج {i}" for i in range(len(answers))]}).to_csv(
        folder / "predictions_test.csv", index=False)  # fmt: skip
    generation = {"usage": usage} if usage else {}
    (folder / "predictions_test.manifest.json").write_text(json.dumps({"config": {"generation": generation}}))


@pytest.fixture
def systems(tmp_path):
    """Recipes a and b on the same 60 rows (a: fine-tuned, its zero-shot baseline, an endpoint; b: fine-tuned), c on
    other rows; their recipe files."""
    results = tmp_path / "results"
    for seed, (name, level) in enumerate(LEVELS.items()):
        other = name == "c"
        write_system(results / name, level, seed, questions=QUESTIONS[::-1] if other else QUESTIONS,
                     usage=USAGE if "endpoint" in name else None)  # fmt: skip
    for recipe in "abc":
        (tmp_path / f"{recipe}.yaml").write_text("task: proverbs\n")
    return tmp_path


def test_holm_equals_a_hand_computation():
    # sorted: 0.0625 x 3 = 0.1875; 0.125 x 2 = 0.25; 0.25 x 1 = 0.25 (never below the step before)
    assert holm([0.25, 0.0625, None, 0.125]) == [0.25, 0.1875, None, 0.25]
    assert holm([0.5, 0.75]) == [1.0, 1.0]  # capped at 1
    assert holm([None]) == [None]


def test_two_recipes_on_the_same_rows_share_one_board_and_one_on_other_rows_is_left_out(systems, script_in_process):
    made = script_in_process("board.py", "a.yaml", "b.yaml", "c.yaml", cwd=systems)
    assert made.returncode == 0, made.stderr
    board = pd.read_csv(systems / "results/a/board_test.csv", float_precision="round_trip")
    record = json.loads((systems / "results/a/board_test.json").read_text())
    order = ["a", "a/endpoint-served", "b", "a/baseline-zero-shot"]  # by mean ROUGE-L; c is better but elsewhere
    rouge = board[board["metric"] == "rougeL"].set_index("system")
    assert list(rouge.index) == order and rouge["rank"].tolist() == [1, 2, 3, 4]
    assert record["best"] == "a" and record["rows"]["rows"] == 60
    assert [item["system"] for item in record["left_out"]] == ["c"]
    assert "other test rows (the same number of rows" in record["left_out"][0]["why"]
    assert "- c: other test rows" in made.stdout and "| 1 | a | fine-tuned |" in made.stdout
    # each system against the best: the numbers compare.py gives for that pair, exactly
    columns = ["value", "ci_low", "ci_high", "diff", "diff_ci_low", "diff_ci_high", "p_value"]
    for system in order[1:]:
        out = systems / f"pair-{system.replace('/', '-')}.md"
        pair = script_in_process("compare.py", f"results/{system}", "--baseline", "results/a", "--names", "a", system,
                                 "--out", out, cwd=systems)  # fmt: skip
        assert pair.returncode == 0, pair.stderr
        compared = pd.read_csv(out.with_suffix(".csv"), float_precision="round_trip")
        compared = compared[compared["run"] == system].set_index("metric")[columns]
        ours = board[board["system"] == system].set_index("metric")[columns]
        pd.testing.assert_frame_equal(ours, compared, check_exact=True)
    # Holm over the three systems compared with the best, metric by metric
    assert rouge["p_holm"].iloc[1:].tolist() == holm(rouge["p_value"].iloc[1:].tolist())
    endpoint = rouge.loc["a/endpoint-served"]
    assert endpoint["tokens_per_row"] == 20.0 and endpoint["seconds_per_row"] == 0.5  # 1200 tokens, 30 s, 60 requests
    assert np.isnan(rouge.loc["b", "tokens_per_row"])
    assert (systems / "results/a/board_test.md").read_text(encoding="utf-8") in made.stdout


def test_the_board_ranks_by_the_metric_named_and_says_which_it_cannot(systems, script_in_process):
    made = script_in_process("board.py", "a.yaml", "--metric", "Empty generations", cwd=systems)
    assert made.returncode == 0, made.stderr
    record = json.loads((systems / "results/a/board_test.json").read_text())
    assert record["metric"] == "empty_rate"  # named by its label; every system ties at 0: the order given
    wrong = script_in_process("board.py", "a.yaml", "--metric", "judge_fluency", "--overwrite", cwd=systems)
    assert "--metric judge_fluency: no system has it (they have: bleu1" in assert_one_error_line(wrong)
    again = script_in_process("board.py", "a.yaml", cwd=systems)
    assert "board_test.md: already exists (pass --overwrite" in assert_one_error_line(again)


def test_a_board_of_a_recipe_with_nothing_scored_is_one_line(tmp_path, script_in_process):
    (tmp_path / "empty.yaml").write_text("task: proverbs\n")
    made = script_in_process("board.py", "empty.yaml", cwd=tmp_path)
    assert "no scored system on the test split; make eval, make baseline or make endpoint" in (
        assert_one_error_line(made)
    )
    assert not (tmp_path / "results").exists()
