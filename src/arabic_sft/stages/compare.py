"""Compare scored runs: every metric with its 95% bootstrap interval, and each run against a baseline with the paired
difference, its interval and a paired bootstrap p-value, over the same examples.

    python scripts/compare.py results/demo --baseline results/demo/baseline-zero-shot --out results/demo/compare.md
    # a recipe's fine-tuned run against its baselines (make baseline), and the paper figures it names
    python scripts/compare.py --config recipes/demo.yaml          # -> results/demo/compare_test.md
    python scripts/compare.py results/jais_shefaa --baseline results/jais_shefaa/baseline-zero-shot \\
        --paper shefaa --out results/jais_shefaa/compare.md

A RUN is a metrics JSON written by score.py, or the directory holding it; its per-example scores (.examples.csv)
must be beside it. Writes FILE.md, FILE.csv (one row per run and metric) and FILE.png (each metric with its intervals);
with --group_column (or the recipe's group_column) also FILE.groups.csv: the same comparison within each group;
with --config, when make general has run, FILE.general.csv and a general-ability block: base against fine-tuned on
lm-eval's tasks, question by question. With --config, the trained model's card (README.md beside it) is refreshed
with these results.
"""

import argparse
import sys
from pathlib import Path

from arabic_sft.general.paired import general_comparison, general_markdown
from arabic_sft.named import data_source
from arabic_sft.publishing.card import refresh_cards
from arabic_sft.runs import RecipeResults
from arabic_sft.runtime.errors import ScriptParser, UserError
from arabic_sft.runtime.locks import exclusive_output
from arabic_sft.runtime.manifest import atomic_path
from arabic_sft.scoring.compare import compare, compare_groups
from arabic_sft.scoring.plots import plot
from arabic_sft.scoring.scored import Run, group_labels, identical_predictions, load_system, paper_run, recipe_runs
from arabic_sft.scoring.tables import few_seeds, group_markdown, judge_section, markdown


def make_parser() -> argparse.ArgumentParser:
    parser = ScriptParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "runs", nargs="*", metavar="RUN", help="metrics JSON (or its directory) of each run to compare"
    )
    parser.add_argument("--baseline", metavar="RUN", help="the run the others are compared with")
    parser.add_argument("--out", help="FILE.md; FILE.csv and FILE.png are written beside it")
    parser.add_argument(
        "--config",
        help="instead of RUNs: the recipe's fine-tuned run (results/<recipe>) against its "
        "zero-shot baseline, with its few-shot baselines and a paper's figures; out "
        "results/<recipe>/compare_<split>.md",
    )
    parser.add_argument(
        "--names", nargs="+", help="names for the baseline and the runs, in that order (default: their directories)"
    )
    parser.add_argument("--paper", help="a paper's figures without per-example scores, shown as a row (shefaa)")
    parser.add_argument("--split", default="test", help="with --config or --paper: the split compared")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples (default 1000)")
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the resampling: the same inputs give the same intervals"
    )
    parser.add_argument(
        "--group_column",
        help="also compare within each group of this column of the predictions (category; default: the recipe's "
        "group_column): FILE.groups.csv and a table in FILE.md",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.set_defaults(general=None, recipe=None)  # with --config: make general's folder, when both sides exist
    return parser


def from_recipe(args: argparse.Namespace) -> argparse.Namespace:
    """`args` with runs, baseline, out, paper, group column and general ability filled in from a recipe's results
    directory (a copy: `args` stays as given)."""
    from arabic_sft.recipe import load_recipe

    if args.runs or args.baseline:
        raise UserError("--config finds the runs itself: give it without RUN or --baseline")
    loaded = load_recipe(["--config", args.config])
    recipe, fields = loaded.args, loaded.fields
    baseline, runs = recipe_runs(Path(args.config).stem, args.split)  # a list among the runs: one system of seeds
    results = RecipeResults(Path(args.config).stem)
    data_source(recipe.data_source)  # the model card's: a wrong name fails before any work
    seeded = any(isinstance(run, list) for run in runs)
    current = results.current_general(fields.model_name_or_path, fields.output_dir, seeded)
    filled = {
        "recipe": loaded, "baseline": str(baseline), "runs": runs, "out": args.out or str(results.compare(args.split)),
        "paper": args.paper or recipe.paper_baseline, "group_column": args.group_column or recipe.group_column,
        "general": results.general if current else None,
    }  # fmt: skip
    return argparse.Namespace(**{**vars(args), **filled})


def run(args: argparse.Namespace) -> list[Path]:
    """Compare as `args` (this stage's command line) say; the files written: the markdown, CSV and chart (and the
    groups' and general ability's CSVs when there are groups and make general's two sides); with --config the model
    card refreshed too."""
    if args.config:
        args = from_recipe(args)
    baseline, runs = systems(args)
    out = Path(args.out)
    outputs = [out, out.with_suffix(".csv"), out.with_suffix(".png")]
    outputs += [out.with_suffix(".groups.csv")] if args.group_column else []
    outputs += [out.with_suffix(".general.csv")] if args.general else []
    if not args.overwrite and (existing := [path for path in outputs if path.exists()]):
        raise UserError(f"{existing[0]}: already exists (pass --overwrite to replace it)")
    with exclusive_output(out):
        text = write_comparison(args, baseline, runs, outputs)
    print(text)
    print(f"wrote {', '.join(map(str, outputs[:-1]))} and {outputs[-1]}")
    if args.config:  # the trained model's card, with these results
        for card in refresh_cards(args.recipe, args.split):
            print(f"refreshed the model card {card}")
            outputs.append(card)
    return outputs


def systems(args: argparse.Namespace) -> tuple[Run, list[Run]]:
    """(the baseline, the runs compared with it: a paper's figures last), the options checked first."""
    if not (args.runs and args.baseline and args.out):
        raise UserError("give RUN [RUN ...] --baseline RUN --out FILE.md, or --config RECIPE")
    if Path(args.out).suffix != ".md":
        raise UserError(f"--out {args.out}: give a .md file (the .csv and .png go beside it)")
    if args.resamples < 100:
        raise UserError(f"--resamples {args.resamples}: use at least 100 (1,000 or more for 95% intervals)")
    paths = [args.baseline, *args.runs]
    if args.names and len(args.names) != len(paths):
        raise UserError(f"--names: {len(args.names)} names for {len(paths)} runs (the baseline first)")
    names = args.names or [None] * len(paths)
    baseline, *runs = [load_system(path, name) for path, name in zip(paths, names)]
    if args.paper:
        runs.append(paper_run(args.paper, args.split))
    if len({run.name for run in [baseline, *runs]}) < len(runs) + 1:
        raise UserError("two runs have the same name; give --names")
    return baseline, runs


def write_comparison(args: argparse.Namespace, baseline: Run, runs: list[Run], outputs: list[Path]) -> str:
    """The comparison's table, chart, groups' and general ability's tables written to `outputs`; the markdown."""
    if args.group_column:  # read before any file is written: a missing group column fails first
        labels = group_labels(runs[-1] if runs[-1].references is not None else baseline, args.group_column)
    table = compare(runs, baseline, args.resamples, args.seed)
    if warning := few_seeds(table):
        print(f"warning: {warning}", file=sys.stderr)
    outputs[0].parent.mkdir(parents=True, exist_ok=True)
    write_csv(table, outputs[1])
    plot(table, outputs[2])
    notes = identical_predictions([baseline, *runs])
    more = judge_section([baseline, *runs])
    if args.group_column:
        groups = compare_groups(runs, baseline, labels, args.resamples, args.seed)
        write_csv(groups, outputs[3])
        more = group_markdown(groups, args.group_column, baseline.name) + more
    if args.general:  # make general's two sides, compared question by question
        general = general_comparison(args.general, args.resamples, args.seed)
        write_csv(general, outputs[-1])
        more = more + general_markdown(general, args.resamples, args.seed)
    text = markdown(table, baseline.name, args.resamples, args.seed, notes=notes, more=more)
    with atomic_path(outputs[0]) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return text


def write_csv(table, path: Path) -> None:
    with atomic_path(path) as temporary:
        table.to_csv(temporary, index=False, encoding="utf-8")


def main(argv: list[str] | None = None) -> list[Path]:
    return run(make_parser().parse_args(argv))
