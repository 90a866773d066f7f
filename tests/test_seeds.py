"""Repeated runs: `make train` / `make eval` with the recipe's `seeds` train and score one complete run per seed, and
`make compare` treats them as one system (make train runs here as a user runs it; eval, baseline and compare through
the console program's stages in this process) with the seeds' variance in its intervals (the two-level bootstrap itself
is checked on constructed cases in test_compare.py)."""

import json
import os
import subprocess

import pandas as pd
import pytest
from helpers import ROOT, SAMPLE_FILES, cpu_recipe, run_in_this_process, stages_in_process


pytestmark = pytest.mark.slow  # make test-fast skips this file


def make(work, *targets: str) -> subprocess.CompletedProcess:
    """The project's Makefile run in `work` (its recipes/ and results/), with the repository's scripts and venv."""
    result = subprocess.run(
        ["make", "--no-print-directory", "-f", str(ROOT / "Makefile"), *targets],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"},
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    return result


@pytest.fixture(scope="module")
def seeded(tiny_llama, tmp_path_factory):
    work = tmp_path_factory.mktemp("seeds")
    for name in (".venv", "scripts", "accelerate_configs", "requirements.txt", "pyproject.toml"):
        (work / name).symlink_to(ROOT / name)
    sample = str(SAMPLE_FILES["proverbs"])
    (work / "recipes").mkdir()
    cpu_recipe(work / "recipes" / "tiny.yaml", tiny_llama, test_file=sample, output_dir="results/tiny/model",
               num_train_epochs=2, learning_rate=2.0e-3, seeds=[1, 2])  # fmt: skip
    make(work, "train", "RECIPE=tiny")  # the front door for real: a process per seed, each through the launcher
    # eval, baseline and compare (make's one line each): the console program's stages, their scripts in this process
    quick = ["--generate_args=--max_new_tokens 8", "--score_args=--no_bertscore --no_semantic_similarity"]
    with pytest.MonkeyPatch.context() as monkeypatch:
        stage = stages_in_process(monkeypatch, None, work)
        stage("eval", "tiny", *quick)
        stage("baseline", "tiny", *quick)
        stage("compare", "tiny")
    return work / "results" / "tiny"


def test_each_seed_is_a_complete_run_of_its_own(seeded):
    manifests, weights = {}, {}
    for seed in (1, 2):
        run = seeded / f"seed-{seed}"
        manifests[seed] = json.loads((run / "model" / "run_manifest.json").read_text(encoding="utf-8"))
        assert manifests[seed]["config"]["training"]["seed"] == seed
        assert (run / "metrics_test.json").is_file() and (run / "metrics_test.examples.csv").is_file()
        assert len(pd.read_csv(run / "predictions_test.csv")) == len(pd.read_csv(SAMPLE_FILES["proverbs"]))
        weights[seed] = (run / "model" / "model.safetensors").read_bytes()
    assert weights[1] != weights[2]  # two seeds, two models (the batches came in another order)
    assert not (seeded / "model").exists() and not (seeded / "predictions_test.csv").exists()


def test_compare_treats_the_seeds_as_one_system(seeded):
    table = pd.read_csv(seeded / "compare_test.csv")
    system = table[table["run"] == "tiny (seeds 1, 2)"].set_index("metric")
    per_seed = [json.loads((seeded / f"seed-{seed}" / "metrics_test.json").read_text())["rougeL"] for seed in (1, 2)]
    assert system.loc["rougeL", "value"] == pytest.approx(sum(per_seed) / 2, abs=1e-12)
    assert system.loc["rougeL", "seeds"] == 2
    assert system.loc["rougeL", "seed_sd"] == pytest.approx(abs(per_seed[0] - per_seed[1]) / 2**0.5, abs=1e-12)
    assert "seed_share" in system  # its value: test_compare.py's constructed cases (tiny models score ~0 everywhere)
    text = (seeded / "compare_test.md").read_text(encoding="utf-8")
    assert "## Training seeds" in text and "| tiny (seeds 1, 2) | ROUGE-L (F1) | 2 |" in text
    assert "Few seeds: 2." in text and "Train 5 or more seeds" in text  # 2 seeds: an interval that means little


def test_the_report_shows_the_seeds_as_one_system_with_their_spread(seeded, monkeypatch, capsys):
    work = seeded.parent.parent
    result = run_in_this_process(monkeypatch, capsys, "report.py", "--config", "recipes/tiny.yaml", cwd=work)
    assert result.returncode == 0, result.stderr[-3000:]
    html = (seeded / "report.html").read_text(encoding="utf-8")
    assert "tiny (seeds 1, 2)" in html and '<pre id="seeds">' in html and "SD across seeds" in html


def test_each_seed_s_model_card_holds_its_own_scores_and_the_system_s_comparison(seeded, monkeypatch, capsys):
    from huggingface_hub import ModelCard

    from arabic_sft.scoring.tables import figure

    table = pd.read_csv(seeded / "compare_test.csv")
    rougeL = table[(table["run"] == "tiny (seeds 1, 2)") & (table["metric"] == "rougeL")].iloc[0]
    for seed in (1, 2):
        card = ModelCard.load(seeded / f"seed-{seed}" / "model" / "README.md", ignore_metadata_errors=False)
        metrics = json.loads((seeded / f"seed-{seed}" / "metrics_test.json").read_text())
        scores = {result.metric_type: result.metric_value for result in card.data.eval_results}
        assert scores["rougeL"] == metrics["rougeL"] and scores["bleu4"] == metrics["bleu4"]
        assert f"# tiny (seed {seed})" in card.text and "| Metric | tiny (seeds 1, 2) |" in card.text
        assert f"| ROUGE-L (F1) | {figure(rougeL.value, rougeL.ci_low, rougeL.ci_high)} |" in card.text
    work = seeded.parent.parent
    result = run_in_this_process(monkeypatch, capsys, "publish.py", "--config", "recipes/tiny.yaml", "--hub_id",
                                 "me/tiny", "--dry_run", cwd=work)  # fmt: skip
    assert result.returncode == 2 and "one finished training per seed (1, 2): say which, SEED=N" in result.stderr
