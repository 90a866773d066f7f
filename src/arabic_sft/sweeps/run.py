"""A sweep worker: trials taken from one Optuna study in a shared storage until the sweep has its trials, each a
complete training run in its own directory, its evaluations reported to Optuna (which prunes poor trials); then the
trials table, Optuna's plots and the best trial as a recipe.

Several workers (processes on one machine, tasks of a Slurm array) share the study through its storage. A trial
whose worker dies stops sending heartbeats (each trial runs through `study.optimize`, which sends them); after the
grace period Optuna marks it failed and queues it again with the same parameters
(`RetryHeartbeatStaleTrialCallback`), and the next free worker runs it.
"""

import json
import os
import sys
import time
import warnings
from pathlib import Path

import yaml
from transformers import TrainerCallback

from arabic_sft.named import read_yaml
from arabic_sft.recipe import load_recipe
from arabic_sft.runs import RecipeResults
from arabic_sft.runtime.errors import UserError
from arabic_sft.runtime.manifest import atomic_path, read_json, write_json_atomic
from arabic_sft.runtime.stopping import Stopped
from arabic_sft.sweeps.spec import Sweep


SURPLUS = "surplus"  # a trial asked for when the sweep already had its trials (two workers at once): not run


class ReportToTrial(TrainerCallback):
    """Each evaluation's objective reported to the trial; training stops early when Optuna prunes it."""

    def __init__(self, trial, objective: str, direction: str):
        self.trial, self.objective, self.direction = trial, objective, direction
        self.values: list[tuple[int, float]] = []
        self.pruned = False

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        if not metrics or self.objective not in metrics:
            return
        value = float(metrics[self.objective])
        self.values.append((state.global_step, value))
        self.trial.report(value, state.global_step)
        if self.trial.should_prune():
            self.pruned = True
            control.should_training_stop = True

    @property
    def best(self) -> float:
        pick = min if self.direction == "minimize" else max
        return pick(value for _, value in self.values)


def open_study(sweep: Sweep):
    """The sweep's study, created by the first worker; workers starting together take turns creating the storage's
    tables (a file lock for SQLite on this machine; on a database server, a second try)."""
    import fcntl

    from sqlalchemy.exc import SQLAlchemyError

    sweep.folder.mkdir(parents=True, exist_ok=True)
    with open(sweep.folder / ".study.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for attempt in range(3):
            try:
                return _open_study(sweep)
            except SQLAlchemyError as error:
                if attempt == 2:
                    reason = str(error).strip().splitlines()[0]
                    raise UserError(f"storage {sweep.storage_url}: cannot be opened ({reason})") from None
                time.sleep(1 + attempt)


def _open_study(sweep: Sweep):
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    storage = RDBStorage(
        sweep.storage_url,
        heartbeat_interval=sweep.heartbeat_interval,
        grace_period=sweep.grace_period,
        heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=sweep.max_retry),
    )
    pruner = (
        optuna.pruners.MedianPruner(n_startup_trials=sweep.pruner_startup_trials)
        if sweep.pruner == "median"
        else optuna.pruners.NopPruner()
    )
    return optuna.create_study(
        study_name=sweep.name,
        storage=storage,
        direction=sweep.direction,
        sampler=optuna.samplers.TPESampler(seed=sweep.sampler_seed),
        pruner=pruner,
        load_if_exists=True,
    )


def counted(study) -> tuple[int, int]:
    """(trials finished, trials finished or running), surplus and failed trials left out. A waiting trial (a failed
    one queued again) is work to take, not taken."""
    from optuna.trial import TrialState

    trials = [trial for trial in study.get_trials(deepcopy=False) if not trial.user_attrs.get(SURPLUS)]
    finished = sum(trial.state in (TrialState.COMPLETE, TrialState.PRUNED) for trial in trials)
    running = sum(trial.state == TrialState.RUNNING for trial in trials)
    return finished, finished + running


def trial_record(trial, params: dict, reporter, started: float) -> dict:
    return {"trial": trial.number, "params": params, "evaluations": reporter.values,
            "seconds": round(time.perf_counter() - started, 3), "objective": reporter.objective}  # fmt: skip


def run_trial(sweep: Sweep, trial) -> float:
    """Train one trial's recipe in trial-NNNN/ and return its objective (the best over its evaluations), or raise
    `TrialPruned`; a trial asked for when the sweep already has its trials (two workers at once) is marked surplus
    and not run."""
    import optuna

    from arabic_sft.publishing.card import write_card_after_training
    from arabic_sft.training.run import train

    if counted_before(trial.study, trial.number) >= sweep.trials:
        trial.set_user_attr(SURPLUS, True)
        raise optuna.TrialPruned("surplus: the sweep already has its trials")
    # The sampler's randomness follows the trial's number: workers seeded alike would draw the same values.
    trial.study.sampler = optuna.samplers.TPESampler(seed=sweep.sampler_seed + trial.number)
    folder = sweep.folder / f"trial-{trial.number:04d}"
    params = {param.name: param.suggest(trial) for param in sweep.space}
    # Several workers on one terminal (arabic-sft sweep --workers N): no progress bars, each trial's lines instead.
    shared = int(os.environ.get("ARABIC_SFT_SWEEP_WORKERS", "1")) > 1 and "disable_tqdm" not in sweep.overrides
    quiet = ["--disable_tqdm", "true"] if shared else []
    recipe = load_recipe([*sweep.recipe_args(params), "--output_dir", str(folder / "model"), *quiet])
    reporter = ReportToTrial(trial, sweep.objective, sweep.direction)
    print(f"trial {trial.number}: {params}", file=sys.stderr, flush=True)
    started = time.perf_counter()
    try:
        train(recipe, callbacks=[reporter], on_finish=write_card_after_training)
    except Stopped as stop:  # stopped by a signal: the trial fails (run again later), the worker stops
        write_json_atomic(folder / "trial.json", {**trial_record(trial, params, reporter, started), "state": "FAIL"})
        raise SystemExit(stop.status) from None  # past Optuna, which would log this as the trial's error
    record = trial_record(trial, params, reporter, started)
    if not reporter.values:
        write_json_atomic(folder / "trial.json", {**record, "state": "FAIL"})
        raise UserError(f"trial {trial.number}: {sweep.objective} was never logged")
    state = "PRUNED" if reporter.pruned else "COMPLETE"
    write_json_atomic(folder / "trial.json", {**record, "state": state, "value": reporter.best})
    print(f"trial {trial.number}: {state.lower()}, {sweep.objective} {reporter.best:.4f}", file=sys.stderr)
    if reporter.pruned:
        raise optuna.TrialPruned(f"{sweep.objective} {reporter.best}")
    return reporter.best


def work(sweep: Sweep, poll: float = 2.0) -> list[Path]:
    """Take trials until the sweep has its number of them finished; wait for those others run; then write the
    results (returned: the files written). A finished sweep run again runs nothing and writes its results again."""
    import optuna
    from optuna.storages import fail_stale_trials

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = open_study(sweep)
    while True:
        fail_stale_trials(study)  # a dead worker's trial: failed, and queued again with its parameters
        finished, taken = counted(study)
        if finished >= sweep.trials:
            break
        if taken >= sweep.trials:  # the rest are running elsewhere: wait for them (or for their heartbeats to stop)
            time.sleep(poll)
            continue
        study.optimize(lambda trial: run_trial(sweep, trial), n_trials=1)  # heartbeats while it runs
    return write_results(sweep, study)


def counted_before(study, number: int) -> int:
    """Trials numbered below `number` that count toward the sweep (finished, running or waiting)."""
    from optuna.trial import TrialState

    states = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
    return sum(
        trial.number < number and trial.state in states and not trial.user_attrs.get(SURPLUS)
        for trial in study.get_trials(deepcopy=False)
    )


def write_results(sweep: Sweep, study) -> list[Path]:
    """trials.csv, Optuna's history and parameter-importance plots, and the best trial as a recipe
    (recipes/<sweep>_best.yaml: the sweep's recipe with the best parameters, without the settings that only made
    the trials short) that make train trains."""
    from optuna.trial import TrialState

    folder = sweep.folder
    table = study.trials_dataframe()
    with atomic_path(folder / "trials.csv") as temporary:
        table.to_csv(temporary, index=False)
    plots(study, folder)
    complete = [trial for trial in study.trials if trial.state == TrialState.COMPLETE]
    if not complete:
        raise UserError(f"{sweep.path}: no trial completed (every one failed or was pruned); see {folder}")
    best = study.best_trial
    name = f"{sweep.name}_best"
    values = {key: value for key, value in read_yaml(sweep.recipe).items()}
    values.update(best.params)  # the trials' own settings (sweep.overrides: fewer epochs, no checkpoints) left out
    values["output_dir"] = str(RecipeResults(name).model)
    header = (
        f"# The best trial ({best.number}) of the sweep {sweep.path}: {sweep.objective} {best.value:.6g} "
        f"({sweep.direction}), in {folder / f'trial-{best.number:04d}'}.\n"
        + (f"# The trials' own settings are left out: {json.dumps(sweep.overrides, ensure_ascii=False)}.\n"
           if sweep.overrides else "")
        + f"# make train RECIPE={name}\n"
    )  # fmt: skip
    recipe = Path("recipes") / f"{name}.yaml"
    with atomic_path(recipe) as temporary:
        temporary.write_text(header + yaml.safe_dump(values, allow_unicode=True, sort_keys=False), encoding="utf-8")
    summary = {"best_trial": best.number, "value": best.value, "params": best.params, "recipe": str(recipe),
               "trials": len(table), "objective": sweep.objective, "direction": sweep.direction}  # fmt: skip
    if read_json(folder / "best.json") == summary:  # written already (by another worker of the sweep, or before)
        print(f"sweep {sweep.name}: finished; best trial {best.number} (in {folder / 'best.json'})", file=sys.stderr)
        return [folder / "trials.csv", folder / "best.json", recipe]
    write_json_atomic(folder / "best.json", summary)
    print(
        f"sweep {sweep.name}: best trial {best.number}, {sweep.objective} {best.value:.4f} with {best.params}; "
        f"wrote {recipe} (make train RECIPE={name}), {folder / 'trials.csv'} and the plots",
        file=sys.stderr,
    )
    return [folder / "trials.csv", folder / "best.json", recipe]


def plots(study, folder: Path) -> None:
    """Optuna's optimization history and parameter importances (its matplotlib backend), as PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as optuna_plots

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        for name, draw in (("history", optuna_plots.plot_optimization_history),
                           ("importance", optuna_plots.plot_param_importances)):  # fmt: skip
            try:
                axes = draw(study)
            except (ValueError, RuntimeError):  # importances need 2 completed trials that differ
                continue
            with atomic_path(folder / f"{name}.png") as temporary:
                axes.figure.savefig(temporary, format="png", dpi=120, bbox_inches="tight")
            plt.close(axes.figure)
