"""The leaderboard: every system evaluated on the same test rows, ranked, each against the best with paired tests.

    python scripts/board.py demo                        # -> results/demo/board_test.{md,csv,json}
    python scripts/board.py allam_proverbs jais_proverbs --metric chrf

The systems: each recipe's fine-tuned run (its seeds as one system; --each_seed: each seed), its baselines (make
baseline) and its endpoints (make endpoint). The board's rows are the first recipe's test rows: a system whose rows
differ (by a digest of their inputs and references) is named and left out. Writes the table (.md, also printed), its
numbers (.csv: one row per system and metric) and its record (.json: the rows' digest, the settings, the systems left
out) in the first recipe's results folder; make report shows it.
"""

import argparse
import json
from pathlib import Path

from arabic_sft import named
from arabic_sft.runs import RecipeResults
from arabic_sft.runtime.errors import ScriptParser, UserError
from arabic_sft.runtime.locks import exclusive_output
from arabic_sft.runtime.manifest import atomic_path, now, package_versions


def add_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--split", default="test", choices=["test", "validation"])
    parser.add_argument("--metric", default="rougeL", help="the metric ranking the systems (a key, e.g. chrf, "
                        "bertscore_f1, judge_correctness, or its label; default rougeL)")  # fmt: skip
    parser.add_argument("--each_seed", action="store_true", help="each training seed a system (default: one system)")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the resampling (as make compare's)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing board")
    return parser


def make_parser() -> argparse.ArgumentParser:
    parser = ScriptParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipes", nargs="+", metavar="RECIPE", help="recipes/NAME.yaml or NAME; the first's test "
                        "rows are the board's")  # fmt: skip
    return add_options(parser)


def outputs(markdown: Path) -> list[Path]:
    return [markdown, markdown.with_suffix(".csv"), markdown.with_suffix(".json")]


def run(args: argparse.Namespace) -> list[Path]:
    """Write the board of `args.recipes`; the files written: the markdown, CSV and record."""
    from arabic_sft.scoring.board import make_board
    from arabic_sft.scoring.tables import board_markdown

    if args.resamples < 100:
        raise UserError(f"--resamples {args.resamples}: use at least 100 (1,000 or more for 95% intervals)")
    recipes = list(dict.fromkeys(named.find("recipe", recipe).stem for recipe in args.recipes))
    written = outputs(RecipeResults(recipes[0]).board(args.split))
    if not args.overwrite and (existing := [path for path in written if path.exists()]):
        raise UserError(f"{existing[0]}: already exists (pass --overwrite to replace it)")
    frame, record = make_board(recipes, args.metric, args.split, args.each_seed, args.resamples, args.seed)
    record.update(made=now(), versions=package_versions())
    text = board_markdown(frame, record)
    with exclusive_output(written[0]):
        with atomic_path(written[1]) as temporary:
            frame.to_csv(temporary, index=False, encoding="utf-8")
        with atomic_path(written[2]) as temporary:
            temporary.write_text(json.dumps(record, ensure_ascii=False, indent=2), encoding="utf-8")
        with atomic_path(written[0]) as temporary:
            temporary.write_text(text, encoding="utf-8")
    print(text)
    print(f"wrote {written[0]}, {written[1]} and {written[2]}")
    return written


def main(argv: list[str] | None = None) -> list[Path]:
    return run(make_parser().parse_args(argv))
