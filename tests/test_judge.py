"""The judge's rubric is data and its answers are read strictly: JSON bare, fenced or followed by prose, Eastern
Arabic digits; out-of-range scores and missing criteria are counted, re-asked once, never imputed; a pairwise
verdict that flips with the order is a tie and an inconsistency."""

import json

import numpy as np
import pytest
import yaml
from helpers import ROOT

from arabic_sft.judging.rubric import fill, load_rubric
from arabic_sft.judging.verdicts import (
    LOSS,
    TIE,
    WIN,
    Verdict,
    json_object,
    judge_all,
    pair_outcome,
    pairwise_summary,
    parse_scores,
    parse_winner,
    problem_counts,
)
from arabic_sft.runtime.errors import UserError


@pytest.fixture(scope="module")
def rubric():
    return load_rubric("qa_reference")


GOOD = {"correctness": 4, "completeness": 3, "conciseness": 5, "language": 5}


@pytest.mark.parametrize(
    "answer",
    [
        json.dumps(GOOD),
        "```json\n" + json.dumps(GOOD, indent=2) + "\n```",
        json.dumps(GOOD) + "\nThe answer is mostly right but misses one point {see the reference}.",
        "Scores: " + json.dumps(GOOD),
        '{"Correctness": "٤", "completeness": ٣, "conciseness": 5.0, "LANGUAGE": "۵"}',  # Eastern digits, case
    ],
)
def test_a_usable_answer_in_any_common_wrapping_gives_the_scores(rubric, answer):
    verdict = parse_scores(answer, rubric)
    assert verdict.scores == GOOD and verdict.problem is None


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ("The answer is good: 4/5.", "no JSON object"),
        ('{"correctness": 4, "completeness": 3, "conciseness": 5}', "language missing"),
        ('{"correctness": 7, "completeness": 3, "conciseness": 5, "language": 0}', "correctness: 7 outside 1-5"),
        ('{"correctness": "good", "completeness": 3, "conciseness": 5, "language": 5}', "'good' is not an integer"),
        ('{"correctness": 3.5, "completeness": 3, "conciseness": 5, "language": 5}', "3.5 is not an integer"),
        ('{"correctness": true, "completeness": 3, "conciseness": 5, "language": 5}', "True is not an integer"),
    ],
)
def test_an_unusable_answer_gives_no_scores_and_says_why(rubric, answer, problem):
    verdict = parse_scores(answer, rubric)
    assert verdict.scores is None and problem in verdict.problem and verdict.raw == answer


def test_out_of_range_names_every_bad_criterion(rubric):
    verdict = parse_scores('{"correctness": 7, "completeness": 3, "conciseness": 5, "language": 0}', rubric)
    assert verdict.problem == "correctness: 7 outside 1-5; language: 0 outside 1-5"


def test_json_object_takes_the_first_object_and_skips_braces_that_are_not_json():
    assert json_object('see {the reference} then {"a": 1} and {"b": 2}') == {"a": 1}
    assert json_object("[1, 2]") is None and json_object("") is None


def test_the_prompts_fill_every_placeholder_once_and_keep_json_braces(rubric):
    question = "ما معنى {answer} في النص؟"  # a placeholder inside a value is text, not filled again
    messages = rubric.messages("en", question, "المرجع", "الجواب")
    assert [message["role"] for message in messages] == ["system", "user"]
    user = messages[1]["content"]
    assert question in user and "المرجع" in user and user.count("الجواب") == 1
    assert '{"correctness": 5, "completeness": 5, "conciseness": 5, "language": 5}' in user
    assert "- correctness (1-5): Does the answer state what the reference states?" in user
    arabic = rubric.messages("ar", "س", "م", "ج")[1]["content"]
    assert "- language (1-5): هل الإجابة مكتوبة بالعربية الفصحى" in arabic
    pairwise = rubric.pairwise_messages("en", "q", "r", "first", "second")[1]["content"]
    assert "Answer A:\nfirst" in pairwise and "Answer B:\nsecond" in pairwise and '{"winner": "tie"}' in pairwise
    assert fill("{question} {unknown} {answer}", question="{answer}", answer="x") == "{answer} {unknown} x"


def test_the_rubric_hash_changes_with_what_the_judge_is_asked(rubric, tmp_path):
    values = yaml.safe_load((ROOT / "recipes" / "judges" / "qa_reference.yaml").read_text(encoding="utf-8"))
    (tmp_path / "same.yaml").write_text(yaml.safe_dump({**values, "name": "other"}), encoding="utf-8")
    values["criteria"][0]["scale"] = [0, 10]
    (tmp_path / "wider.yaml").write_text(yaml.safe_dump(values), encoding="utf-8")
    assert load_rubric(str(tmp_path / "same.yaml")).digest() == rubric.digest()  # the name is not asked
    assert load_rubric(str(tmp_path / "wider.yaml")).digest() != rubric.digest()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"criteria": []}, "criteria: a rubric needs at least one criterion"),
        ({"criteria": [{"name": "x", "scale": [5, 1], "description": {"en": "", "ar": ""}}]}, "criterion x: scale"),
        ({"criteria": [{"name": "x", "scale": [1, 5], "description": {"en": "e"}}]}, "an 'en' and an 'ar' text"),
        ({"prompts": {"en": {}}}, "prompts: needs an 'en' and an 'ar'"),
    ],
)
def test_a_bad_rubric_is_one_line_naming_the_file_and_the_field(tmp_path, change, words):
    values = yaml.safe_load((ROOT / "recipes" / "judges" / "qa_reference.yaml").read_text(encoding="utf-8"))
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**values, **change}), encoding="utf-8")
    with pytest.raises(UserError) as error:
        load_rubric(str(path))
    assert str(error.value).startswith(f"{path}: ") and words in str(error.value) and "\n" not in str(error.value)


def test_a_rubric_prompt_without_its_placeholders_is_refused(tmp_path):
    values = yaml.safe_load((ROOT / "recipes" / "judges" / "qa_reference.yaml").read_text(encoding="utf-8"))
    values["prompts"]["ar"]["user"] = values["prompts"]["ar"]["user"].replace("{reference}", "")
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")
    with pytest.raises(UserError, match=r"prompts\.ar\.user: no \{reference\} placeholder"):
        load_rubric(str(path))
    with pytest.raises(UserError, match="no file .*no_such_rubric.yaml .rubrics: qa_reference"):
        load_rubric("no_such_rubric")


def test_an_unusable_answer_is_asked_again_once_then_counted_not_imputed(rubric):
    asked = []
    answers = iter(
        [
            [json.dumps(GOOD), "I think 4.", '{"correctness": 9}'],  # first round: one usable
            ['{"correctness": 2, "completeness": 2, "conciseness": 2, "language": 2}', "still no JSON"],
        ]
    )

    def ask(conversations):
        asked.append([conversation[0]["content"] for conversation in conversations])
        return next(answers)

    conversations = [[{"role": "user", "content": f"row {i}"}] for i in range(3)]
    verdicts = judge_all(ask, conversations, lambda text: parse_scores(text, rubric))
    assert asked == [["row 0", "row 1", "row 2"], ["row 1", "row 2"]]  # only the unusable ones, once
    assert [verdict.scores for verdict in verdicts] == [GOOD, dict.fromkeys(GOOD, 2), None]
    assert verdicts[2].problem == "no JSON object"
    assert problem_counts(verdicts, rubric) == dict.fromkeys(GOOD, 1)
    partial = [Verdict(None, "language missing"), Verdict(GOOD)]
    assert problem_counts(partial, rubric) == {"correctness": 0, "completeness": 0, "conciseness": 0, "language": 1}


def test_pairwise_winner_is_read_strictly():
    assert parse_winner('{"winner": "a"}') == ("A", None)
    assert parse_winner('```json\n{"Winner": "TIE"}\n```') == ("tie", None)
    assert parse_winner('{"winner": "both"}') == (None, "winner: 'both' is not A, B or tie")
    assert parse_winner("A is better") == (None, "no JSON object")


def test_a_verdict_that_flips_with_the_order_is_a_tie_and_an_inconsistency():
    assert pair_outcome("A", "B") == (WIN, True)  # the first run wins shown first and shown second
    assert pair_outcome("B", "A") == (LOSS, True)
    assert pair_outcome("tie", "tie") == (TIE, True)
    assert pair_outcome("A", "A") == (TIE, False)  # the judge prefers whatever is shown first
    assert pair_outcome("A", "tie") == (TIE, False)
    assert pair_outcome(None, "A") == (None, None)


def test_pairwise_summary_equals_hand_computed_shares_and_intervals():
    outcomes = [WIN, WIN, TIE, LOSS, None]
    consistent = [True, True, False, True, None]
    summary = pairwise_summary(outcomes, consistent, resamples=200, seed=0)
    assert summary["pairs"] == 5 and summary["unusable"] == 1
    assert (summary["win"]["share"], summary["tie"]["share"], summary["loss"]["share"]) == (0.5, 0.25, 0.25)
    assert summary["order_dependent"] == 0.25
    # the interval is the 2.5/97.5 percentiles of the resampled win shares, computed here by hand
    indices = np.random.default_rng(0).integers(0, 4, size=(200, 4))
    wins = np.array([1.0, 1.0, 0.0, 0.0])[indices].mean(axis=1)
    assert (summary["win"]["low"], summary["win"]["high"]) == tuple(np.percentile(wins, [2.5, 97.5]))
    assert pairwise_summary([None], [None], 10, 0) == {"pairs": 1, "unusable": 1}
