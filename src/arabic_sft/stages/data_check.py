"""Near-duplicates and contamination in a recipe's data, after Arabic normalization (docs/data.md, "Clean data").

    arabic-sft data-check demo                 # make data-check RECIPE=demo
    python scripts/data_check.py --config recipes/jais_shefaa.yaml [--no_general]

Reads the recipe's splits as training and generation read them (columns, subsampling, held-out fractions) and finds
exact and near-duplicate rows within train and between train and validation/test (MinHash LSH over word shingles,
datasketch, each candidate confirmed by its true Jaccard similarity), and training rows sharing a long word span
with a test input or a question of the recipe's lm-eval general tasks (the local task always; a task whose data
cannot be had here is skipped, in one line). Writes results/<recipe>/data_check.json (counts per kind and split pair,
the settings, what training would drop, the data files' sha256) and data_check_pairs.csv (one row per pair, most
similar first), and prints a table with a few examples. The recipe's `deduplicate` and `decontaminate` say what
training leaves out; training runs the same check first.
"""

import argparse
import sys
from pathlib import Path

from arabic_sft.runtime.errors import ScriptParser, UserError


KINDS = ("exact", "near", "contaminated")


def make_parser() -> argparse.ArgumentParser:
    parser = ScriptParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="the recipe whose data is checked")
    return add_options(parser)


def add_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """This stage's options but --config (the console program takes them from here)."""
    parser.add_argument("--no_general", action="store_true", help="skip the lm-eval tasks' questions (no lm-eval)")
    parser.add_argument("--examples", type=int, default=3, help="pairs printed per kind (default 3)")
    return parser


def shorten(text: str, width: int = 60) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= width else text[: width - 1] + "…"


def table(found: dict) -> str:
    """The counts (`DataCheck.counts`): one row per kind, one column per split pair (or pair of sources)."""
    columns = sorted({where for kinds in found.values() for where in kinds}, key=lambda c: (c != "train-train", c))
    if not columns:
        return "no duplicate or contaminated rows"
    width = max(len(c) for c in columns) + 2
    lines = ["kind".ljust(13) + "".join(c.rjust(width) for c in columns)]
    for kind in KINDS:
        lines.append(kind.ljust(13) + "".join(str(found.get(kind, {}).get(c, 0)).rjust(width) for c in columns))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> list[Path]:
    """Check as `args` (this stage's command line) say; what it wrote: the summary and the pairs."""
    import pandas as pd

    from arabic_sft.data.cleaning import PAIR_COLUMNS, SOURCE_COLUMNS, counts
    from arabic_sft.data.splits import data_files, read_as_trained
    from arabic_sft.recipe import load_recipe
    from arabic_sft.runs import RecipeResults
    from arabic_sft.runtime.manifest import atomic_path, build_manifest, now, write_json_atomic
    from arabic_sft.training.data_check import run_check

    if args.examples < 0:
        raise UserError(f"--examples {args.examples}: give 0 or more")
    started = now()
    recipe = load_recipe(["--config", args.config])
    if recipe.name is None:
        raise UserError("--config: give a recipe file")
    data = recipe.args
    splits, spec, _ = read_as_trained(data, recipe.fields.seed)
    if "train" not in splits:
        raise UserError(f"{args.config}: no training data to check")
    results = RecipeResults(recipe.name)
    results.path.mkdir(parents=True, exist_ok=True)
    result = run_check(data, splits, spec, not args.no_general, results.data_check_cache)
    if line := result.reused_line():
        print(f"{line} ({results.data_check_cache})")
    columns = [*PAIR_COLUMNS, *(SOURCE_COLUMNS if data.datasets else ())]
    frame = pd.DataFrame([pair.record() for pair in result.pairs], columns=columns)
    with atomic_path(results.data_check_pairs) as temporary:
        frame.to_csv(temporary, index=False, encoding="utf-8")
    files = data_files(data)
    record = {**result.record(), "sources": {name: split.source for name, split in splits.items()}}
    write_json_atomic(results.data_check, build_manifest({"data_check": record}, files, started))

    sizes = ", ".join(f"{name} {rows} rows" for name, rows in result.rows.items())
    settings = result.settings
    near = f"Jaccard >= {settings['near_duplicate_threshold']} over {settings['shingle_size']}-word shingles"
    print(f"data check of {recipe.name} ({sizes}; near: {near}; contamination: {settings['contamination_ngram']}-word "
          "spans)")  # fmt: skip
    if result.tasks:
        print(f"general tasks compared: {', '.join(result.tasks)}")
    if result.skipped:
        print(f"general tasks skipped (their data cannot be had here): {', '.join(result.skipped)}", file=sys.stderr)
    print(table(result.counts()))
    if result.mixed():
        print(f"per source (split:source of each row):\n{table(counts(result.pairs, by_source=True))}")
    for kind in KINDS:
        for pair in [pair for pair in result.pairs if pair.kind == kind][: args.examples]:
            a, b = (f"{pair.source_a} {pair.split_a}".strip(), f"{pair.source_b} {pair.split_b}".strip())
            print(f"  {kind} {pair.similarity:.3f}  {a} row {pair.row_a}: {shorten(pair.text_a)}\n"
                  f"  {' ' * (len(kind) + 7)}{b} row {pair.row_b}: {shorten(pair.text_b)}")  # fmt: skip
    dropping = f"training leaves out {len(result.dropped)} row(s)" if result.dropped else "training drops nothing"
    print(f"{dropping} (deduplicate: {data.deduplicate}, decontaminate: {str(data.decontaminate).lower()})")
    print(f"wrote {results.data_check} and {results.data_check_pairs} ({len(frame)} pairs)")
    return [results.data_check, results.data_check_pairs]


def main(argv: list[str] | None = None) -> list[Path]:
    return run(make_parser().parse_args(argv))
