"""Hyperparameter search with Optuna: trials of a recipe taken from one study until the sweep file's number of trials
is reached, each a complete training run; poor trials pruned from their evaluations; the best written as a recipe.

    make sweep SWEEP=demo                       # one worker
    make sweep SWEEP=demo WORKERS=2             # two workers on this machine, one study
    python scripts/sweep.py --sweep recipes/sweeps/demo.yaml
    sbatch scripts/slurm/sweep_array.sbatch     # a Slurm job array: every task a worker of the same study

Writes results/sweeps/NAME/: study.db (the Optuna storage, unless the sweep file names a server), trial-NNNN/ (each
trial's run: model, manifest, trial.json), trials.csv, history.png, importance.png, best.json; and
recipes/NAME_best.yaml, the best trial's recipe (make train RECIPE=NAME_best). A worker killed mid-trial: its trial
is marked failed once its heartbeats stop and run again by a worker. A finished sweep run again does nothing.
"""

import argparse
import dataclasses
from pathlib import Path

from arabic_sft.runtime.errors import ScriptParser


def make_parser() -> argparse.ArgumentParser:
    parser = ScriptParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sweep", required=True, help="recipes/sweeps/NAME.yaml (or NAME)")
    parser.add_argument("--storage", help="an Optuna storage URL (default: the sweep file's, else SQLite in results/)")
    parser.add_argument("--check", action="store_true", help="check the sweep file and exit")
    return parser


def run(args: argparse.Namespace) -> list[Path]:
    """Work on the sweep as `args` (this stage's command line) say; the files written: trials.csv, best.json and the
    best trial's recipe (nothing with --check)."""
    from arabic_sft.sweeps.spec import read_sweep

    sweep = read_sweep(args.sweep)
    if args.storage:
        sweep = dataclasses.replace(sweep, storage=args.storage)
    if args.check:
        print(f"{sweep.path}: {sweep.trials} trials of {sweep.recipe} over {', '.join(p.name for p in sweep.space)}")
        return []
    from arabic_sft.sweeps.run import work

    return work(sweep)


def main(argv: list[str] | None = None) -> list[Path]:
    return run(make_parser().parse_args(argv))
