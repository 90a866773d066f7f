"""Fixtures: tiny local models built from the project's own samples (built once per session), a CPU recipe
writer, a script runner in this process, a long generation to interrupt. Helpers live in helpers.py."""

import subprocess
from pathlib import Path

import pandas as pd
import pytest
from helpers import (
    ATTACK,
    CPU_TRAINING,
    EXACT,
    OPTIONS,
    ROOT,
    SAMPLE_FILES,
    ScriptedJudge,
    build_tiny_bert,
    cpu_recipe,
    generate_command,
    run_here,
    run_in_this_process,
    sample_rows,
    sample_texts,
    write_recipe,
)

from arabic_sft.tiny import build_tiny_model


def repository_entries() -> set[str]:
    """What a test could leave in the repository: its top-level entries (hidden ones too) and those in results/."""
    results = ROOT / "results"
    return {path.name for path in ROOT.iterdir()} | (
        {str(path.relative_to(ROOT)) for path in results.rglob("*")} if results.is_dir() else set()
    )


@pytest.fixture(scope="session", autouse=True)
def tests_write_only_under_temporary_directories():
    before = repository_entries()
    yield
    assert repository_entries() - before == set(), "the suite left these in the repository"


@pytest.fixture(scope="session")
def slurm():
    """A real Slurm cluster of two nodes on this host (Debian's slurm-wlm and munge: `make slurm`), started by the
    project's own scripts/slurm/local_cluster.py in a folder of its own and stopped by its daemons' process ids at
    the end: the environment that points sbatch, squeue and scontrol at it."""
    import shutil
    import sys
    import tempfile

    import psutil

    folder = Path(tempfile.mkdtemp(prefix="arabic-sft-slurm-"))  # not under pytest's 0700 folders: munged checks
    script = ROOT / "scripts" / "slurm" / "local_cluster.py"
    started = subprocess.run([sys.executable, str(script), "start", str(folder), "--nodes", "2"], capture_output=True,
                             text=True)  # fmt: skip
    assert started.returncode == 0, started.stdout + started.stderr
    daemons = [int(path.read_text().split()[0]) for path in [*folder.glob("*.pid"), folder / "munge" / "munged.pid"]]
    assert len(daemons) == 4  # munged, slurmctld, two slurmd
    yield {"SLURM_CONF": str(folder / "slurm.conf")}
    stopped = subprocess.run([sys.executable, str(script), "stop", str(folder)], capture_output=True, text=True)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    running = [pid for pid in daemons if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    assert running == [], f"daemons left running: {running}"
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory) -> Path:
    """A tiny Llama with a chat template (stands in for ALLaM), tokenizer trained on the proverbs sample."""
    return build_tiny_model("llama", sample_texts("proverbs"), tmp_path_factory.mktemp("tiny-llama"), vocab_size=600)


@pytest.fixture(scope="session")
def tiny_gpt2(tmp_path_factory) -> Path:
    """A tiny GPT-2 without chat template (stands in for Jais), tokenizer trained on the medical QA sample."""
    return build_tiny_model("gpt2", sample_texts("medical_qa"), tmp_path_factory.mktemp("tiny-gpt2"), vocab_size=600)


@pytest.fixture(scope="session")
def tiny_bert(tmp_path_factory) -> Path:
    """A tiny random BERT encoder (WordPiece trained on both samples): BERTScore and semantic similarity offline."""
    texts = sample_texts("proverbs") + sample_texts("medical_qa")
    return build_tiny_bert(texts, tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture
def make_recipe(tmp_path):
    """Write a CPU recipe for a task's sample data and a tiny model; keyword arguments override its fields."""

    def make(model: Path, task: str = "proverbs", **overrides) -> Path:
        fields = {"validation_file": str(SAMPLE_FILES[task]), **overrides}
        return cpu_recipe(tmp_path / "recipe.yaml", model, task, **fields)

    return make


@pytest.fixture
def script_in_process(monkeypatch, capsys):
    """`run_in_this_process` with this test's monkeypatch and capsys: script_in_process("score.py", ...)."""
    return lambda script, *args, **options: run_in_this_process(monkeypatch, capsys, script, *args, **options)


@pytest.fixture(scope="session")
def long_generation(tiny_llama, tmp_path_factory):
    """(test file of 48 rows, its uninterrupted predictions CSV): long enough to interrupt."""
    work = tmp_path_factory.mktemp("long-generation")
    test_path = work / "test.csv"
    pd.concat([pd.DataFrame(sample_rows("proverbs"))] * 4, ignore_index=True).to_csv(test_path, index=False)
    reference = work / "reference.csv"
    subprocess.run(
        generate_command(tiny_llama, test_path, reference, *OPTIONS), cwd=ROOT, check=True, capture_output=True
    )
    return test_path, reference


def write_source(path: Path) -> Path:
    """A data source for the model card, with a Hub id (the card's `datasets`)."""
    return write_recipe(path, title="Medical QA sample (arabic-sft)", url="https://example.org/medical-qa",
                        license="apache-2.0", hub_id="arabic-sft/medical-qa-sample",
                        citation="@misc{medqa, title = {Medical QA sample}}")  # fmt: skip


@pytest.fixture(scope="session")
def report(tiny_llama, tmp_path_factory):
    """(folder, the report's path, the fine-tuned and baseline per-example scores): a tiny model trained for a few
    steps, its answers and its untrained base's answers scored, one answer replaced by markup and three by their
    reference (so that the rows improve by different amounts), scored again, then the report."""
    folder = tmp_path_factory.mktemp("report")
    sample = str(SAMPLE_FILES["medical_qa"])
    fields = {"model_name_or_path": str(tiny_llama), "task": "medical_qa", "train_file": sample,
              "validation_file": sample, "test_file": sample, "output_dir": "results/medqa/model",
              "num_train_epochs": 2, "learning_rate": 2.0e-3, "per_device_train_batch_size": 4,
              "eval_strategy": "epoch", "save_strategy": "no", "eval_generation_examples": 4,
              "eval_generation_max_new_tokens": 8, "group_column": "category", "license": "apache-2.0",
              "data_source": str(write_source(folder / "source.yaml")), **CPU_TRAINING}  # fmt: skip
    recipe = write_recipe(folder / "medqa.yaml", **fields)
    quick = ["--no_bertscore", "--no_semantic_similarity", "--overwrite"]
    for step in (
        ["sft.py", "--config", recipe],
        ["generate.py", "--config", recipe, "--max_new_tokens", "12"],
        ["generate.py", "--config", recipe, "--baseline", "--max_new_tokens", "12"],
        ["score.py", "results/medqa/baseline-zero-shot/predictions_test.csv", *quick],
    ):
        assert run_here(*step, cwd=folder).returncode == 0, step  # in this process: seconds, not a Python start each
    predictions = folder / "results" / "medqa" / "predictions_test.csv"
    frame = pd.read_csv(predictions)
    frame.loc[0, "Generated_Answer"] = ATTACK
    frame.loc[EXACT, "Generated_Answer"] = frame.loc[EXACT, "Reference_Answer"]
    frame.to_csv(predictions, index=False)
    assert run_here("score.py", "--config", recipe, *quick, cwd=folder).returncode == 0
    from arabic_sft.judging.rubric import load_rubric
    from arabic_sft.judging.run import judge_file

    rubric = load_rubric("qa_reference")
    judge_file(predictions, rubric, ScriptedJudge([5 if i in EXACT else 1 for i in range(len(frame))]), "en", False)
    baseline = folder / "results" / "medqa" / "baseline-zero-shot" / "predictions_test.csv"
    judge_file(baseline, rubric, ScriptedJudge([2] * len(frame)), "en", False)
    assert run_here("board.py", recipe, cwd=folder).returncode == 0  # the report shows it
    assert run_here("report.py", "--config", recipe, "--screenshot", cwd=folder).returncode == 0
    tuned = pd.read_csv(folder / "results" / "medqa" / "metrics_test.examples.csv")
    base = pd.read_csv(folder / "results" / "medqa" / "baseline-zero-shot" / "metrics_test.examples.csv")
    return folder, folder / "results" / "medqa" / "report.html", tuned, base
