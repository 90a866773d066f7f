"""Judge generated answers with an LLM: each row of a predictions CSV scored on each criterion of a rubric
(recipes/judges/), beside the predictions as judge_X.json and judge_X.examples.csv, which compare.py reads.

    # a judge served by vLLM (or TGI, `transformers serve`) on this machine
    python scripts/judge.py results/demo/predictions_test.csv --judge_url http://127.0.0.1:8000/v1 \\
        --judge_model Qwen/Qwen2.5-72B-Instruct
    # the judge a recipe names (judge_url, judge_model, judge_rubric, ...), on its predictions for a split
    python scripts/judge.py --config recipes/allam_proverbs.yaml --split test
    # a hosted API: the key is read from the variable named, never written
    OPENAI_API_KEY=... python scripts/judge.py preds.csv --judge_url https://api.openai.com/v1 \\
        --judge_model gpt-4.1 --judge_api_key_env OPENAI_API_KEY

Greedy decoding; an answer that is not the JSON the rubric asks for is asked again once, then counted per
criterion (never imputed). Every answer is cached as it arrives (judge_X.cache.jsonl): a rerun after a kill asks
only what is missing.
"""

import argparse
from pathlib import Path

from arabic_sft.judging.backends import OpenAICompatibleJudge
from arabic_sft.judging.rubric import load_rubric
from arabic_sft.judging.run import judge_file, judge_paths
from arabic_sft.recipe import RecipeArguments, load_recipe
from arabic_sft.runtime.errors import ScriptParser, UserError, run_cli
from arabic_sft.runtime.locks import exclusive_output


def make_parser() -> argparse.ArgumentParser:
    parser = ScriptParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("predictions_csv", nargs="?", help="a predictions CSV of generate.py")
    parser.add_argument("--config", help="recipe: its judge fields, and results/<recipe>/predictions_<split>.csv")
    parser.add_argument("--split", choices=["test", "validation"], default="test")
    for name in ("judge_url", "judge_model", "judge_api_key_env", "judge_rubric", "judge_language"):
        parser.add_argument(f"--{name}", help=f"default: the recipe's, else {getattr(RecipeArguments, name)}")
    parser.add_argument("--max_new_tokens", type=int, default=256, help="the judge's answer length")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight at once")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    parser.add_argument(
        "--retries", type=int, default=4, help="retries of a request (backoff) on rate limits, server errors, timeouts"
    )
    parser.add_argument("--overwrite", action="store_true", help="judge again (cached answers are reused)")
    return parser


def main():
    args = make_parser().parse_args()
    recipe = load_recipe(["--config", args.config]).args if args.config else RecipeArguments()
    fields = {name: getattr(args, name) or getattr(recipe, name) for name in vars(recipe) if name.startswith("judge_")}
    path = args.predictions_csv or (args.config and f"results/{Path(args.config).stem}/predictions_{args.split}.csv")
    if not path:
        raise UserError("no predictions given: pass a predictions CSV, or --config recipes/NAME.yaml")
    if not Path(path).is_file():
        raise UserError(f"{path}: not found; generate it first (make eval, or scripts/generate.py)")
    if not fields["judge_url"] or not fields["judge_model"]:
        raise UserError("no judge: give --judge_url and --judge_model (or judge_url/judge_model in the recipe)")
    if fields["judge_language"] not in ("en", "ar"):
        raise UserError(f"--judge_language {fields['judge_language']}: not en or ar")
    rubric = load_rubric(fields["judge_rubric"])
    judge = OpenAICompatibleJudge(
        fields["judge_url"],
        fields["judge_model"],
        fields["judge_api_key_env"],
        max_new_tokens=args.max_new_tokens,
        concurrency=args.concurrency,
        timeout=args.timeout,
        retries=args.retries,
    )
    paths = judge_paths(path)
    with exclusive_output(paths["summary"]):
        summary = judge_file(path, rubric, judge, fields["judge_language"], args.overwrite)
    means = ", ".join(f"{key} {value:.2f}" for key, value in summary.items() if key.startswith("judge_") and value)
    usable = f"{summary['usable']} of {summary['n']} rows usable"
    print(f"judged: {usable} ({means}); wrote {paths['summary']} and {paths['examples']}")


if __name__ == "__main__":
    run_cli(main)
