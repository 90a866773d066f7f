"""Judge generated answers with an LLM: each row of a predictions CSV scored on each criterion of a rubric
(recipes/judges/), beside the predictions as judge_X.json and judge_X.examples.csv, which compare.py reads; or,
with --against, two runs' answers to the same rows compared, each pair in both orders (pairwise_X.vs_NAME.json).

    # a judge served by vLLM (or TGI, `transformers serve`) on this machine
    python scripts/judge.py results/demo/predictions_test.csv --judge_url http://127.0.0.1:8000/v1 \\
        --judge_model Qwen/Qwen2.5-72B-Instruct
    # a chat model run here (an id or a path; --judge_adapter, --judge_load_in_4bit), one process per GPU
    accelerate launch --config_file accelerate_configs/ddp.yaml scripts/judge.py results/demo/predictions_test.csv \\
        --judge_model Qwen/Qwen2.5-7B-Instruct --batch_size 32
    # the judge a recipe names (judge_url, judge_model, judge_rubric, ...), on its predictions for a split
    python scripts/judge.py --config recipes/allam_proverbs.yaml --split test
    # pairwise: the fine-tuned run against its zero-shot baseline
    python scripts/judge.py --config recipes/allam_proverbs.yaml \\
        --against results/allam_proverbs/baseline-zero-shot/predictions_test.csv
    # a hosted API: the key is read from the variable named, never written
    OPENAI_API_KEY=... python scripts/judge.py preds.csv --judge_url https://api.openai.com/v1 \\
        --judge_model gpt-4.1 --judge_api_key_env OPENAI_API_KEY

Greedy decoding; an answer that is not the JSON the rubric asks for is asked about once more (the reply and what was
wrong with it follow the conversation), then counted per criterion (never imputed). Every answer is cached as it
arrives (judge_X.cache.jsonl): a rerun after a kill asks only what is missing; SIGTERM or Ctrl-C stops once the
answers being made have arrived.
"""

import argparse
import os
import sys
from pathlib import Path

from arabic_sft.judging.backends import LocalJudge, OpenAICompatibleJudge
from arabic_sft.judging.rubric import load_rubric
from arabic_sft.judging.run import WORD_METRICS, judge_file, judge_paths, pairwise_file, refuse_existing
from arabic_sft.recipe import RecipeArguments, add_field_arguments, load_recipe, one_run, with_overrides
from arabic_sft.runs import RecipeResults
from arabic_sft.runtime.errors import ScriptParser, UserError
from arabic_sft.runtime.locks import exclusive_output
from arabic_sft.runtime.stopping import Stopped, stopped_by


JUDGE_FIELDS = [name for name in vars(RecipeArguments()) if name.startswith("judge_")]


def make_parser() -> argparse.ArgumentParser:
    parser = ScriptParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("predictions_csv", nargs="?", help="a predictions CSV of generate.py")
    parser.add_argument("--config", help="recipe: its judge fields, and results/<recipe>/predictions_<split>.csv")
    parser.add_argument("--split", choices=["test", "validation"], default="test")
    parser.add_argument(
        "--against", help="pairwise: a second run's predictions CSV on the same rows (a baseline's), judged against"
    )
    add_field_arguments(parser, JUDGE_FIELDS, "the judge: the recipe's fields of the same names")
    parser.add_argument("--max_new_tokens", type=int, default=256, help="the judge's answer length")
    server = parser.add_argument_group("a judge behind --judge_url")
    server.add_argument("--concurrency", type=int, default=8, help="requests in flight at once")
    server.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    server.add_argument(
        "--retries", type=int, default=4, help="retries of a request (backoff) on rate limits, server errors, timeouts"
    )
    parser.add_argument("--batch_size", type=int, default=16, help="a local judge's prompts per batch")
    parser.add_argument("--resamples", type=int, default=1000, help="pairwise: bootstrap resamples of the rows")
    parser.add_argument("--seed", type=int, default=0, help="pairwise: the bootstrap's seed")
    parser.add_argument("--limit", type=int, help="judge the first N rows only (a quick look)")
    parser.add_argument("--overwrite", action="store_true", help="judge again (cached answers are reused)")
    return parser


def make_judge(fields: dict, args) -> LocalJudge | OpenAICompatibleJudge:
    if fields["judge_url"]:
        return OpenAICompatibleJudge(
            fields["judge_url"],
            fields["judge_model"],
            fields["judge_api_key_env"],
            max_new_tokens=args.max_new_tokens,
            concurrency=args.concurrency,
            timeout=args.timeout,
            retries=args.retries,
        )
    return LocalJudge(
        fields["judge_model"],
        adapter=fields["judge_adapter"],
        revision=fields["judge_revision"],
        load_in_4bit=bool(fields["judge_load_in_4bit"]),
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
    )


def report(summary: dict, paths: dict) -> None:
    """What a judging found, in a few lines."""
    if "pairs" in summary:
        shares = ", ".join(
            f"{name} {summary[name]['share']:.0%} [{summary[name]['low']:.0%}, {summary[name]['high']:.0%}]"
            for name in ("win", "tie", "loss")
            if name in summary
        )
        order = f"; the verdict changed with the order for {summary['order_dependent']:.0%}" if shares else ""
        print(f"pairwise, the first run: {shares or 'no usable verdict'} of {summary['pairs']} pairs "
              f"({summary['unusable']} unusable){order}; wrote {paths['summary']}")  # fmt: skip
        return
    means = ", ".join(f"{key} {value:.2f}" for key, value in summary.items() if key.startswith("judge_") and value)
    print(f"judged: {summary['usable']} of {summary['n']} rows usable ({means or 'no scores'})")
    for name, values in summary["spearman"].items():
        rhos = ", ".join(f"{metric} {'-' if values[metric] is None else f'{values[metric]:+.2f}'}" for metric in
                         WORD_METRICS)  # fmt: skip
        print(f"  Spearman of {name} with {rhos} (over {values['n']} rows)")
    print(f"wrote {paths['summary']} and {paths['examples']}")


def judge_settings(args: argparse.Namespace) -> tuple[str, dict]:
    """(the predictions judged, the judge's fields: the recipe's with this command line's overrides), checked."""
    if args.limit is not None and args.limit < 1:
        raise UserError(f"--limit {args.limit}: give 1 or more")
    loaded = load_recipe(["--config", args.config]) if args.config else None
    if loaded and not args.predictions_csv:
        one_run(loaded, "judge")
    recipe = loaded.args if loaded else RecipeArguments()
    recipe = with_overrides(recipe, args, JUDGE_FIELDS, args.config or "arguments")
    fields = {name: getattr(recipe, name) for name in JUDGE_FIELDS}
    path = args.predictions_csv or (
        args.config and str(RecipeResults(Path(args.config).stem).tuned.predictions(args.split))
    )
    if not path:
        raise UserError("no predictions given: pass a predictions CSV, or --config recipes/NAME.yaml")
    for given in filter(None, (path, args.against)):
        if not Path(given).is_file():
            raise UserError(f"{given}: not found; generate it first (make eval, or scripts/generate.py)")
    if not fields["judge_model"]:
        raise UserError("no judge: give --judge_model (and --judge_url if it is served), or judge_model in the recipe")
    if fields["judge_language"] not in ("en", "ar"):
        raise UserError(f"--judge_language {fields['judge_language']}: not en or ar")
    return path, fields


def run(args: argparse.Namespace) -> list[Path]:
    """Judge as `args` (this stage's command line) say; the files written: the summary and the per-row CSV (none
    in the other processes of a multi-process launch). Raises `Stopped` when SIGTERM or Ctrl-C stopped it with the
    answers received kept."""
    path, fields = judge_settings(args)
    rubric = load_rubric(fields["judge_rubric"])
    if fields["judge_url"] and int(os.environ.get("WORLD_SIZE", "1")) > 1:  # under accelerate launch
        if os.environ.get("RANK", "0") != "0":
            return []
        print("note: a served judge is asked from one process (--concurrency: requests in flight)", file=sys.stderr)
    paths = judge_paths(path, args.against)
    refuse_existing(paths, args.overwrite)  # before a model is loaded or a server asked
    judge = make_judge(fields, args)
    try:
        with exclusive_output(paths["summary"], enabled=judge.is_main):  # one judging per output
            if args.against:
                summary = pairwise_file(
                    path, args.against, rubric, judge, fields["judge_language"], args.overwrite, args.resamples,
                    args.seed, args.limit,
                )  # fmt: skip
            else:
                summary = judge_file(path, rubric, judge, fields["judge_language"], args.overwrite, args.limit)
    except Stopped as stop:
        if judge.is_main:
            print(
                f"stopped by {stopped_by(stop.signum)}; the answers received are kept in {paths['cache']}: the same "
                "command continues (asking only what is missing)",
                file=sys.stderr,
            )
        raise
    if not judge.is_main:
        return []
    report(summary, paths)
    return [paths["summary"], paths["examples"]]


def main(argv: list[str] | None = None) -> list[Path]:
    return run(make_parser().parse_args(argv))
