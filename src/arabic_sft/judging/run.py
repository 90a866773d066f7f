"""A judged predictions CSV: every row's answer scored by the judge on each criterion of the rubric, written beside
the predictions as `judge_X.examples.csv` (one row per example, as score.py's `metrics_X.examples.csv`) and
`judge_X.json` (means, unusable answers per criterion, each criterion's rank correlation with the word metrics, the
manifest), which compare.py reads beside the metrics. Pairwise, two runs' answers to the same rows, each pair judged
in both orders: `pairwise_X.vs_NAME.json` and its examples CSV beside the first run's predictions."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from arabic_sft.judging.backends import AnswerCache, Judge
from arabic_sft.judging.rubric import Rubric
from arabic_sft.judging.verdicts import (
    judge_all,
    pair_outcome,
    pairwise_summary,
    parse_scores,
    problem_counts,
    winner_verdict,
)
from arabic_sft.runs import beside, examples_of
from arabic_sft.runtime.errors import UserError
from arabic_sft.runtime.manifest import atomic_path, build_manifest, now, write_json_atomic
from arabic_sft.runtime.stopping import StopRequest
from arabic_sft.scoring import metrics
from arabic_sft.scoring.predictions import prediction_rows, questions


PREFIX = "judge_"
# The word metrics each criterion is rank-correlated with (per example: nltk BLEU-4, ROUGE-L, sacreBLEU chrF++).
WORD_METRICS = ("bleu4", "rougeL", "chrf")


def judge_paths(predictions_csv: str | Path, against: str | Path | None = None) -> dict[str, Path]:
    """predictions_X.csv -> judge_X.json, judge_X.examples.csv and the answer cache judge_X.cache.jsonl; with
    `against` (pairwise, a second run's predictions) pairwise_X.vs_NAME.json, .examples.csv and .cache.jsonl, NAME
    being the folder of the second run (baseline-zero-shot, ...)."""
    if against is None:
        summary = beside(predictions_csv, "judge")
    else:
        first = beside(predictions_csv, "pairwise")
        against, folder = Path(against), Path(predictions_csv).parent
        name = against.parent.name if against.parent != folder else against.stem
        summary = first.with_name(f"{first.stem}.vs_{name}.json")
    return {
        "summary": summary,
        "examples": examples_of(summary),
        "cache": summary.with_suffix(".cache.jsonl"),
    }


def refuse_existing(paths: dict[str, Path], overwrite: bool) -> None:
    existing = [path for path in (paths["summary"], paths["examples"]) if path.exists()]
    if existing and not overwrite:
        raise UserError(f"{existing[0]}: already exists (pass --overwrite to judge again; cached answers are reused)")


def ask_all(judge: Judge, rubric: Rubric, language: str, conversations, parse, cache: Path):
    """`judge_all` through `judge` with its answer cache at `cache` and SIGTERM / Ctrl-C stopping it once the answers
    being made have arrived (`Stopped`, raised from `Judge.ask`)."""
    judge.cache = AnswerCache(cache, judge.process_index)
    judge.stop = StopRequest("stopping once the answers being made have arrived", say=judge.is_main)
    rounds = iter(["judging", "asking again"])  # judge_all asks at most twice: all rows, then the unusable ones
    try:
        return judge_all(
            lambda batch: judge.ask(batch, description=next(rounds)),
            conversations,
            parse,
            lambda messages, verdict: rubric.retry_messages(language, messages, verdict.raw, verdict.problem),
        )
    finally:
        judge.stop.close()
        judge.cache.close()


def correlations(examples: pd.DataFrame, names: list[str]) -> dict[str, dict]:
    """Spearman's rank correlation of each criterion with each word metric over the rows the judge scored, with the
    number of rows; None where fewer than 3 rows were scored or either side is constant (no ranking to compare)."""
    from scipy.stats import spearmanr

    predictions, references = examples["prediction"].tolist(), examples["reference"].tolist()
    words = {
        "bleu4": metrics.bleu_scores(predictions, references)["bleu4"],
        "rougeL": metrics.rouge_scores(predictions, references)["rougeL"],
        "chrf": metrics.sentence_chrf(predictions, references),
    }
    result = {}
    for name in names:
        scores = examples[PREFIX + name].to_numpy(dtype=float)
        scored = ~np.isnan(scores)
        result[name] = {"n": int(scored.sum())}
        for metric in WORD_METRICS:
            values = np.asarray(words[metric])[scored]
            constant = scored.sum() < 3 or np.ptp(scores[scored]) == 0 or np.ptp(values) == 0
            result[name][metric] = None if constant else float(spearmanr(scores[scored], values).statistic)
    return result


def judge_file(
    predictions_csv: str | Path, rubric: Rubric, judge: Judge, language: str, overwrite: bool, limit: int | None = None
) -> dict:
    """Judge every row of `predictions_csv` (or its first `limit` rows); returns the summary written to judge_X.json
    (by the main process; the others of a launch return it without writing)."""
    started = now()
    paths = judge_paths(predictions_csv)
    refuse_existing(paths, overwrite)
    frame, columns = prediction_rows(predictions_csv)
    frame = frame.head(limit) if limit else frame
    references, answers = frame[columns["reference"]].tolist(), frame[columns["prediction"]].tolist()
    conversations = [
        rubric.messages(language, question, reference, answer)
        for question, reference, answer in zip(questions(frame, columns), references, answers, strict=True)
    ]
    verdicts = ask_all(judge, rubric, language, conversations, lambda text: parse_scores(text, rubric), paths["cache"])
    names = [criterion.name for criterion in rubric.criteria]
    examples = pd.DataFrame({"prediction": answers, "reference": references})
    for name in names:
        examples[PREFIX + name] = [np.nan if v.scores is None else v.scores[name] for v in verdicts]
    examples[PREFIX + "problem"] = [verdict.problem or "" for verdict in verdicts]
    examples[PREFIX + "answer"] = [verdict.raw for verdict in verdicts]
    unusable = problem_counts(verdicts, rubric)
    summary = {"n": len(verdicts), "usable": sum(verdict.scores is not None for verdict in verdicts)}
    for criterion in rubric.criteria:
        values = examples[PREFIX + criterion.name].dropna()
        summary[PREFIX + criterion.name] = float(values.mean()) if len(values) else None
    summary["unusable"] = unusable
    summary["spearman"] = correlations(examples, names)
    if not judge.is_main:
        return summary
    with atomic_path(paths["examples"]) as temporary:
        examples.to_csv(temporary, index=False, encoding="utf-8")
    settings = {**judge_settings(judge, rubric, language), "word_metrics": WORD_METRICS, "limit": limit}
    write_json_atomic(
        paths["summary"],
        {**summary, "settings": build_manifest({"judging": settings}, [str(predictions_csv)], started)},
    )
    if summary["usable"] < summary["n"]:
        print(
            f"warning: {summary['n'] - summary['usable']} of {summary['n']} judge answers were unusable after one "
            f"more try (per criterion: {', '.join(f'{k} {v}' for k, v in unusable.items())}); they are counted, "
            f"not scored: see {PREFIX}problem in {paths['examples']}",
            file=sys.stderr,
        )
    return summary


def judge_settings(judge: Judge, rubric: Rubric, language: str) -> dict:
    """What the manifest records of a judging: the judge (model and revision, or URL and served model; decoding),
    the rubric and its hash, the prompts' language, the scales, the processes."""
    return {
        "judge": judge.identity(),
        "rubric": {"name": rubric.name, "source": rubric.source, "sha256": rubric.digest()},
        "language": language,
        "scales": {criterion.name: [criterion.low, criterion.high] for criterion in rubric.criteria},
        "num_processes": judge.num_processes,
    }


def pairwise_file(
    first_csv: str | Path,
    second_csv: str | Path,
    rubric: Rubric,
    judge: Judge,
    language: str,
    overwrite: bool,
    resamples: int = 1000,
    seed: int = 0,
    limit: int | None = None,
) -> dict:
    """Which of two runs answered each row better, asked in both orders (the first run's answer as A, then as B):
    the first run's win / tie / loss shares with bootstrap intervals over the rows, and the share of pairs whose
    verdict changed with the order (the judge's position bias), written to pairwise_X.vs_NAME.json."""
    started = now()
    paths = judge_paths(first_csv, second_csv)
    refuse_existing(paths, overwrite)
    first, first_columns = prediction_rows(first_csv)
    second, second_columns = prediction_rows(second_csv)
    first, second = (first.head(limit), second.head(limit)) if limit else (first, second)
    asked = questions(first, first_columns)
    references = first[first_columns["reference"]].tolist()
    if asked != questions(second, second_columns) or references != second[second_columns["reference"]].tolist():
        raise UserError(
            f"{first_csv} and {second_csv}: not the same rows (their inputs or references differ); pairwise judging "
            "compares two runs' answers to the same test rows"
        )
    ours, theirs = first[first_columns["prediction"]].tolist(), second[second_columns["prediction"]].tolist()
    conversations = []
    for question, reference, a, b in zip(asked, references, ours, theirs, strict=True):
        conversations.append(rubric.pairwise_messages(language, question, reference, a, b))
        conversations.append(rubric.pairwise_messages(language, question, reference, b, a))
    verdicts = ask_all(judge, rubric, language, conversations, winner_verdict, paths["cache"])
    winners = [verdict.scores["winner"] if verdict.scores else None for verdict in verdicts]
    pairs = [pair_outcome(winners[2 * row], winners[2 * row + 1]) for row in range(len(asked))]
    summary = pairwise_summary([p[0] for p in pairs], [p[1] for p in pairs], resamples, seed)
    summary.update(first=str(first_csv), second=str(second_csv))
    if not judge.is_main:
        return summary
    examples = pd.DataFrame(
        {
            "reference": references, "first": ours, "second": theirs,
            "winner_first_shown_as_a": [w or "" for w in winners[0::2]],
            "winner_first_shown_as_b": [w or "" for w in winners[1::2]],
            "first_outcome": [p[0] for p in pairs],  # 1 win, 0.5 tie (or order-dependent), 0 loss, empty unusable
            "order_dependent": [None if p[1] is None else not p[1] for p in pairs],
            "problem": [" | ".join(filter(None, (verdicts[2 * r].problem, verdicts[2 * r + 1].problem)))
                        for r in range(len(asked))],
        }
    )  # fmt: skip
    with atomic_path(paths["examples"]) as temporary:
        examples.to_csv(temporary, index=False, encoding="utf-8")
    settings = {**judge_settings(judge, rubric, language), "resamples": resamples, "seed": seed}
    write_json_atomic(
        paths["summary"],
        {**summary, "settings": build_manifest({"judging": settings}, [str(first_csv), str(second_csv)], started)},
    )
    return summary
