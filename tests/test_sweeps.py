"""Hyperparameter search (scripts/sweep.py, Optuna): workers sharing one study run exactly the sweep's trials, each a
complete run; the best trial's recipe trains to its recorded objective; a killed worker's trial is run again; a
finished sweep does nothing; bad sweep files stop in one line before anything starts."""

import json
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import yaml
from helpers import CPU_TRAINING, ROOT, SAMPLE_FILES, assert_one_error_line, run_in_this_process, write_recipe


pytestmark = pytest.mark.slow  # make test-fast skips this file


def sweep_folder(work, tiny_llama, name: str, **fields):
    """recipes/tiny.yaml (a tiny Llama on the proverbs sample, evaluated each epoch) and recipes/sweeps/NAME.yaml."""
    (work / "recipes" / "sweeps").mkdir(parents=True, exist_ok=True)
    sample = str(SAMPLE_FILES["proverbs"])
    write_recipe(work / "recipes" / "tiny.yaml", model_name_or_path=str(tiny_llama), task="proverbs",
                 train_file=sample, validation_file=sample, output_dir="results/tiny/model", num_train_epochs=2,
                 per_device_train_batch_size=4, eval_strategy="epoch", save_strategy="no", **CPU_TRAINING)  # fmt: skip
    sweep = {"recipe": "tiny", "objective": "eval_loss", "direction": "minimize", "trials": 4, "pruner": "none",
             "space": {"learning_rate": {"low": 1.0e-4, "high": 1.0e-2, "log": True}}, **fields}  # fmt: skip
    (work / "recipes" / "sweeps" / f"{name}.yaml").write_text(yaml.safe_dump(sweep), encoding="utf-8")
    return work / "recipes" / "sweeps" / f"{name}.yaml"


def worker(work, sweep, workers: int = 1) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, str(ROOT / "scripts" / "sweep.py"), "--sweep", str(sweep)],
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(work),
            "TOKENIZERS_PARALLELISM": "false",
            "HF_HUB_OFFLINE": "1",
            "ARABIC_SFT_SWEEP_WORKERS": str(workers),
        },  # fmt: skip
    )


def trial_states(database) -> list[tuple[int, str]]:
    with sqlite3.connect(database) as db:
        return db.execute("SELECT number, state FROM trials ORDER BY number").fetchall()


def beating(database) -> bool:
    """A trial is running, has drawn its parameters and has sent a heartbeat (Optuna counts a trial stale only once it
    has sent one)."""
    if not database.is_file():
        return False
    with sqlite3.connect(database) as db:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"trials", "trial_heartbeats", "trial_params"} <= tables:
            return False
        query = (
            "SELECT COUNT(*) FROM trials JOIN trial_heartbeats USING (trial_id) JOIN trial_params USING (trial_id) "
            "WHERE state = 'RUNNING'"
        )
        return db.execute(query).fetchone()[0] > 0


@pytest.fixture(scope="module")
def swept(tiny_llama, tmp_path_factory):
    """Two workers started together on one 4-trial sweep."""
    work = tmp_path_factory.mktemp("sweep")
    sweep = sweep_folder(work, tiny_llama, "lr")
    workers = [worker(work, sweep, workers=2) for _ in range(2)]  # as arabic-sft sweep --workers 2 starts them
    for process in workers:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-3000:]
    manifests = list((work / "results" / "sweeps" / "lr").glob("trial-*/model/run_manifest.json"))
    assert len(manifests) >= 4  # workers sharing a terminal draw no training bars (they hid each other's lines)
    assert all(json.loads(path.read_text())["config"]["training"]["disable_tqdm"] is True for path in manifests)
    return work, sweep


def test_two_workers_share_one_study_and_run_exactly_its_trials(swept):
    work, _ = swept
    assert_exactly_the_trials(work / "results" / "sweeps" / "lr")


def assert_exactly_the_trials(folder):
    """The 4-trial sweep "lr": exactly its trials, distinct and complete runs, its results and best recipe written."""
    import optuna

    study = optuna.load_study(study_name="lr", storage=f"sqlite:///{folder / 'study.db'}")
    done = [trial for trial in study.trials if not trial.user_attrs.get("surplus")]
    assert len(done) == 4 and all(trial.state == optuna.trial.TrialState.COMPLETE for trial in done)
    assert len({trial.params["learning_rate"] for trial in done}) == 4  # four distinct trials
    for trial in done:
        record = json.loads((folder / f"trial-{trial.number:04d}" / "trial.json").read_text())
        assert record["value"] == trial.value == min(value for _, value in record["evaluations"])
        assert (folder / f"trial-{trial.number:04d}" / "model" / "run_manifest.json").is_file()  # a complete run
    assert (folder / "trials.csv").is_file() and (folder / "history.png").read_bytes().startswith(b"\x89PNG")
    best = json.loads((folder / "best.json").read_text())
    assert best["value"] == study.best_value and best["recipe"] == "recipes/lr_best.yaml"


@pytest.mark.machines
def test_sweep_array_sbatch_under_slurm_two_array_tasks_run_exactly_the_sweeps_trials(slurm, tiny_llama, tmp_path):
    """scripts/slurm/sweep_array.sbatch as written for a GPU cluster, two array tasks (the workers) on a local Slurm,
    submitted from a checkout (its .venv and scripts) holding the sweep."""
    from helpers import sbatch, wait_for_job

    sweep_folder(tmp_path, tiny_llama, "lr")
    for name in (".venv", "scripts"):
        (tmp_path / name).symlink_to(ROOT / name)
    job = sbatch(slurm, "sweep_array.sbatch", "lr", cwd=tmp_path,
                 options=["--array=0-1", f"--output={tmp_path}/sweep-%A_%a.out"])  # fmt: skip
    states = wait_for_job(slurm, job)
    logs = "".join(path.read_text() for path in sorted(tmp_path.glob("sweep-*.out")))
    assert states == ["COMPLETED", "COMPLETED"], logs[-3000:]
    assert_exactly_the_trials(tmp_path / "results" / "sweeps" / "lr")


def test_the_best_trials_recipe_trains_to_its_recorded_objective(swept, monkeypatch, capsys):
    work, _ = swept
    best = json.loads((work / "results" / "sweeps" / "lr" / "best.json").read_text())
    result = run_in_this_process(monkeypatch, capsys, "sft.py", "--config", "recipes/lr_best.yaml", cwd=work)
    assert result.returncode == 0, result.stderr[-3000:]
    history = json.loads((work / "results" / "lr_best" / "model" / "trainer_state.json").read_text())["log_history"]
    assert min(entry["eval_loss"] for entry in history if "eval_loss" in entry) == best["value"]


def test_a_finished_sweep_run_again_does_nothing(swept, monkeypatch, capsys):
    work, sweep = swept
    before = trial_states(work / "results" / "sweeps" / "lr" / "study.db")
    result = run_in_this_process(monkeypatch, capsys, "sweep.py", "--sweep", sweep, cwd=work)
    assert result.returncode == 0 and "best trial" in result.stderr
    assert trial_states(work / "results" / "sweeps" / "lr" / "study.db") == before


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")  # retried_trial_number: Optuna 2.8+
def test_a_killed_workers_trial_is_marked_failed_and_run_again(tiny_llama, tmp_path):
    import optuna
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    sweep = sweep_folder(tmp_path, tiny_llama, "kill", trials=1, heartbeat_interval=1, grace_period=2,
                         overrides={"num_train_epochs": 4})  # fmt: skip
    database = tmp_path / "results" / "sweeps" / "kill" / "study.db"
    first = worker(tmp_path, sweep)
    deadline = time.time() + 300
    while not beating(database):
        ended = first.poll() is not None
        assert not ended and time.time() < deadline, (
            f"no trial started: {first.stderr.read()[-3000:] if ended else ''}"
        )
        time.sleep(0.1)
    first.send_signal(signal.SIGKILL)  # mid-trial: no more heartbeats
    first.wait()
    second = worker(tmp_path, sweep)
    _, err = second.communicate(timeout=300)
    assert second.returncode == 0, err[-3000:]
    study = optuna.load_study(study_name="kill", storage=f"sqlite:///{database}")
    killed, again = study.trials
    assert killed.state == optuna.trial.TrialState.FAIL and again.state == optuna.trial.TrialState.COMPLETE
    assert RetryHeartbeatStaleTrialCallback.retried_trial_number(again) == killed.number
    assert again.params == killed.params
    best = yaml.safe_load((tmp_path / "recipes" / "kill_best.yaml").read_text(encoding="utf-8"))
    assert best["num_train_epochs"] == 2 and best["learning_rate"] == again.params["learning_rate"]  # not the trials'
    assert "The trials' own settings are left out" in (tmp_path / "recipes" / "kill_best.yaml").read_text()


@pytest.mark.parametrize(
    "fields, words",
    [
        ({"learning_rat": 0.1}, ["unknown field(s) learning_rat"]),
        ({"space": {}}, ["space: required"]),
        ({"objective": "eval_bleu4"}, ["objective eval_bleu4: never logged"]),
        ({"overrides": {"eval_strategy": "no"}}, ["objective eval_loss: never logged", "does not evaluate"]),
        ({"space": {"lora_rank": {"choices": [8, 16]}}}, ["lora_rank"]),
    ],
)
def test_a_bad_sweep_file_is_one_line_and_starts_nothing(tiny_llama, tmp_path, monkeypatch, capsys, fields, words):
    sweep = sweep_folder(tmp_path, tiny_llama, "bad", **fields)
    result = run_in_this_process(monkeypatch, capsys, "sweep.py", "--sweep", sweep, cwd=tmp_path)
    assert_one_error_line(result, *words)
    assert not (tmp_path / "results").exists()
