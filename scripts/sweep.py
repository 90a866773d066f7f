"""Hyperparameter search with Optuna: trials of a recipe taken from one study until the sweep file's number of trials
is reached, each a complete training run; poor trials pruned from their evaluations; the best written as a recipe.

    make sweep SWEEP=demo                       # one worker
    make sweep SWEEP=demo WORKERS=2             # two workers on this machine, one study
    python scripts/sweep.py --sweep recipes/sweeps/demo.yaml
    sbatch scripts/slurm/sweep_array.sbatch     # a Slurm job array: every task a worker of the same study

The stage is `arabic_sft.stages.sweep` (its --help says what it writes); this file is its command line.
"""

from arabic_sft.runtime.errors import run_cli
from arabic_sft.stages.sweep import main


if __name__ == "__main__":
    run_cli(main)
