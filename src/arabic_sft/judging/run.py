"""A judged predictions CSV: every row's answer scored by the judge on each criterion of the rubric, written beside
the predictions as `judge_X.examples.csv` (one row per example, as score.py's `metrics_X.examples.csv`) and
`judge_X.json` (means, unusable answers per criterion, the manifest), which compare.py reads beside the metrics."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from arabic_sft.judging.backends import AnswerCache, OpenAICompatibleJudge
from arabic_sft.judging.rubric import Rubric
from arabic_sft.judging.verdicts import judge_all, parse_scores, problem_counts
from arabic_sft.runtime.errors import UserError
from arabic_sft.runtime.manifest import atomic_path, build_manifest, now, write_json_atomic
from arabic_sft.scoring.predictions import beside, prediction_rows, questions


PREFIX = "judge_"


def judge_paths(predictions_csv: str | Path) -> dict[str, Path]:
    """predictions_X.csv -> judge_X.json, judge_X.examples.csv and the answer cache judge_X.cache.jsonl."""
    summary = beside(predictions_csv, "judge")
    return {
        "summary": summary,
        "examples": summary.with_suffix(".examples.csv"),
        "cache": summary.with_suffix(".cache.jsonl"),
    }


def judge_file(
    predictions_csv: str | Path, rubric: Rubric, judge: OpenAICompatibleJudge, language: str, overwrite: bool
) -> dict:
    """Judge every row of `predictions_csv`; returns the summary written to judge_X.json."""
    started = now()
    paths = judge_paths(predictions_csv)
    existing = [path for path in (paths["summary"], paths["examples"]) if path.exists()]
    if existing and not overwrite:
        raise UserError(f"{existing[0]}: already exists (pass --overwrite to judge again; cached answers are reused)")
    frame, columns = prediction_rows(predictions_csv)
    references, answers = frame[columns["reference"]].tolist(), frame[columns["prediction"]].tolist()
    conversations = [
        rubric.messages(language, question, reference, answer)
        for question, reference, answer in zip(questions(frame, columns), references, answers, strict=True)
    ]
    judge.cache = AnswerCache(paths["cache"])
    rounds = iter(["judging", "asking again"])  # judge_all asks at most twice: all rows, then the unusable ones

    def ask(batch):
        description = next(rounds)
        return judge.ask(batch, attempt=int(description != "judging"), description=description)

    try:
        verdicts = judge_all(ask, conversations, lambda text: parse_scores(text, rubric))
    finally:
        judge.cache.close()
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
    settings = {
        "judge": judge.identity(),
        "rubric": {"name": rubric.name, "source": rubric.source, "sha256": rubric.digest()},
        "language": language,
        "scales": {criterion.name: [criterion.low, criterion.high] for criterion in rubric.criteria},
    }
    with atomic_path(paths["examples"]) as temporary:
        examples.to_csv(temporary, index=False, encoding="utf-8")
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
