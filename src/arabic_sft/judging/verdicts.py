"""What a judge answered, read strictly: one JSON object of integer scores on each criterion's scale (or, pairwise,
{"winner": "A" | "B" | "tie"}). An answer that cannot be read is re-asked once, then counted with its reason, never
dropped or imputed. Pairwise verdicts are asked in both orders: an order-dependent verdict is a tie and an
inconsistency."""

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from arabic_sft.judging.rubric import Rubric


# Arabic-Indic and Persian digits, which an Arabic-speaking judge may write its scores in.
EASTERN_DIGITS = str.maketrans("٠١٢٣٤٥٦٧٨٩۰۱۲۳۴۵۶۷۸۹", "01234567890123456789")


@dataclass(frozen=True)
class Verdict:
    """Scores per criterion, or None with the reason the answer could not be used."""

    scores: dict[str, int] | dict[str, str] | None  # per criterion; pairwise: {"winner": ...}
    problem: str | None = None
    raw: str = ""


def json_object(text: str) -> dict | None:
    """The first JSON object in `text`: bare, in a ```json fence, or followed by prose; None when there is none."""
    text = text.translate(EASTERN_DIGITS)
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", text):
        try:
            value, _ = decoder.raw_decode(text, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _integer(value) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
        return int(value)
    return None


def parse_scores(text: str, rubric: Rubric) -> Verdict:
    """A judge's answer to `Rubric.messages` as a `Verdict`: every criterion present (names matched regardless of
    case), an integer within its scale."""
    found = json_object(text)
    if found is None:
        return Verdict(None, "no JSON object", text)
    by_name = {str(key).strip().lower(): value for key, value in found.items()}
    scores, problems = {}, []
    for criterion in rubric.criteria:
        if criterion.name.lower() not in by_name:
            problems.append(f"{criterion.name} missing")
            continue
        value = by_name[criterion.name.lower()]
        score = _integer(value)
        if score is None:
            problems.append(f"{criterion.name}: {value!r} is not an integer")
        elif not criterion.low <= score <= criterion.high:
            problems.append(f"{criterion.name}: {score} outside {criterion.low}-{criterion.high}")
        else:
            scores[criterion.name] = score
    return Verdict(None, "; ".join(problems), text) if problems else Verdict(scores, None, text)


WINNERS = {"a": "A", "b": "B", "tie": "tie"}


def parse_winner(text: str) -> tuple[str | None, str | None]:
    """A judge's answer to `Rubric.pairwise_messages`: ("A" | "B" | "tie", None), or (None, the problem)."""
    found = json_object(text)
    if found is None:
        return None, "no JSON object"
    value = {str(key).strip().lower(): value for key, value in found.items()}.get("winner")
    winner = WINNERS.get(str(value).strip().lower()) if value is not None else None
    return (winner, None) if winner else (None, f"winner: {value!r} is not A, B or tie")


def winner_verdict(text: str) -> Verdict:
    """`parse_winner` as a `Verdict` ({"winner": "A" | "B" | "tie"}), for `judge_all`."""
    winner, problem = parse_winner(text)
    return Verdict({"winner": winner} if winner else None, problem, text)


def judge_all(
    ask: Callable[[list[list[dict]]], list[str]],
    conversations: Sequence[list[dict]],
    parse: Callable[[str], Verdict],
    retry: Callable[[list[dict], Verdict], list[dict]],
) -> list[Verdict]:
    """Ask the judge (`ask`: a batch of conversations -> their answers, any backend), then once more about each
    answer `parse` could not use, in the conversation `retry` makes of it (the reply and what was wrong with it);
    what is still unusable keeps its reason."""
    verdicts = [parse(answer) for answer in ask(list(conversations))]
    again = [index for index, verdict in enumerate(verdicts) if verdict.scores is None]
    if again:
        followed = [retry(conversations[index], verdicts[index]) for index in again]
        for index, answer in zip(again, ask(followed), strict=True):
            verdicts[index] = parse(answer)
    return verdicts


def problem_counts(verdicts: Sequence[Verdict], rubric: Rubric) -> dict[str, int]:
    """Unusable answers per criterion (an answer with no JSON at all counts for every criterion)."""
    counts = {criterion.name: 0 for criterion in rubric.criteria}
    for verdict in verdicts:
        if verdict.scores is not None:
            continue
        for criterion in rubric.criteria:
            counts[criterion.name] += verdict.problem == "no JSON object" or criterion.name in (verdict.problem or "")
    return counts


# One pair's outcome for the first run: both orders agree, or the verdict depends on the order (a tie).
WIN, TIE, LOSS = 1.0, 0.5, 0.0


def pair_outcome(first_as_a: str | None, first_as_b: str | None) -> tuple[float | None, bool | None]:
    """(the first run's outcome: WIN, TIE or LOSS, whether both orders agreed) from the judge's winner with the first
    run's answer shown as A, then as B; (None, None) when either verdict is unusable."""
    if first_as_a is None or first_as_b is None:
        return None, None
    outcome_a = {"A": WIN, "B": LOSS, "tie": TIE}[first_as_a]
    outcome_b = {"B": WIN, "A": LOSS, "tie": TIE}[first_as_b]
    return (outcome_a, True) if outcome_a == outcome_b else (TIE, False)


def pairwise_summary(outcomes: Sequence[float | None], consistent: Sequence[bool | None], resamples: int, seed: int):
    """Win, tie and loss shares of the first run over the usable pairs with 95% bootstrap intervals (rows resampled),
    the share of pairs whose verdict changed with the order (the judge's inconsistency), and the unusable count."""
    from arabic_sft.stats import interval, resample_indices

    usable = [index for index, outcome in enumerate(outcomes) if outcome is not None]
    values = np.array([outcomes[index] for index in usable])
    summary = {"pairs": len(outcomes), "unusable": len(outcomes) - len(usable)}
    if not usable:
        return summary
    indices = resample_indices(len(values), resamples, seed)
    for name, target in (("win", WIN), ("tie", TIE), ("loss", LOSS)):
        hits = (values == target).astype(float)
        low, high = interval(hits[indices].mean(axis=1))
        summary[name] = {"share": float(hits.mean()), "low": low, "high": high}
    summary["order_dependent"] = sum(not consistent[index] for index in usable) / len(usable)
    return summary
