"""One owner of a run's files (arabic_sft.runs), and the console program over the stages (arabic_sft.cli): what
each stage runs, for one run and for a recipe trained with several seeds, without running it (--show)."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, SAMPLE_FILES, assert_one_error_line, cpu_recipe

from arabic_sft.runs import RecipeResults, RunFolder, beside, seed_number, split_of


def test_a_recipe_s_results_are_laid_out_in_one_place(tmp_path):
    results = RecipeResults("demo", root=tmp_path)
    assert results.tuned.predictions("test") == tmp_path / "demo" / "predictions_test.csv"
    assert results.seed(3).model == tmp_path / "demo" / "seed-3" / "model"
    assert (
        results.baseline(0).metrics("validation")
        == tmp_path / "demo" / "baseline-zero-shot" / "metrics_validation.json"
    )
    assert results.baseline(5).path.name == "baseline-5-shot"
    assert results.compare("test").name == "compare_test.md" and results.general_side("tuned").parent.name == "general"
    for seed in (10, 2):
        results.seed(seed).path.mkdir(parents=True)
    (tmp_path / "demo" / "baseline-3-shot").mkdir()
    assert results.seeds() == [2, 10]  # in number order, not name order
    assert results.few_shot_baselines() == [RunFolder(tmp_path / "demo" / "baseline-3-shot")]


def test_what_stages_write_beside_predictions_is_named_one_way():
    assert beside("r/predictions_test.csv", "judge").as_posix() == "r/judge_test.json"
    assert beside("r/answers.csv", "metrics").as_posix() == "r/answers.metrics.json"
    assert split_of("r/predictions_validation.csv") == "validation" and split_of("r/mine.csv") == "test"
    assert seed_number(Path("seed-7")) == 7


def test_no_module_but_runs_spells_a_run_s_file_names():
    spelled = re.compile(
        r"""["'](?:results/|run_manifest\.json|log_history\.json|predictions_(?!csv)|metrics_|judge_\{|pairwise_\{|"""
        r"""\.manifest\.json|\.examples\.csv|(?:export_|merge_|gguf_)?manifest\.json|export-gguf|loss_sum\.json|trainer_state\.json|"""
        r"""data_check(?:_pairs)?\.|report\.html["']|published\.json|bench/)"""
    )
    names = ("results/", "run_manifest.json", "log_history.json", "predictions_test", "metrics_test", "judge_{split}",
             ".manifest.json", ".examples.csv", "export_manifest.json", "merge_manifest.json", "manifest.json",
             "gguf_manifest.json", "export-gguf",
             "loss_sum.json", "trainer_state.json", "data_check.json", "data_check_pairs.csv", "report.html",
             "published.json", "bench/cpu.json")  # fmt: skip
    assert all(spelled.search(f'x = "{name}"') for name in names)  # every name runs.py owns is looked for
    offenders = []
    for path in [*(ROOT / "src" / "arabic_sft").rglob("*.py"), *(ROOT / "scripts").glob("*.py")]:
        if path.name == "runs.py":
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#")[0]
            if spelled.search(code) and not code.strip().startswith(("help=", '"', "'")):
                offenders.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert offenders == []


def show(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "arabic_sft", "--show", *args], cwd=cwd, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def seeded_recipe(tmp_path) -> Path:
    (tmp_path / "recipes").mkdir()
    sample = str(SAMPLE_FILES["proverbs"])
    return cpu_recipe(tmp_path / "recipes" / "tiny.yaml", "tiny", test_file=sample, output_dir="results/tiny/model",
                      seeds=[1, 2])  # fmt: skip


def test_every_entry_point_follows_the_recipe_s_seeds(seeded_recipe):
    work = seeded_recipe.parent.parent
    trained = show("train", "tiny", "--num_train_epochs", "1", cwd=work)
    assert trained.returncode == 0, trained.stderr
    lines = trained.stdout.splitlines()
    assert len(lines) == 2
    for seed, line in zip((1, 2), lines):
        assert f"--seed {seed} --output_dir results/tiny/seed-{seed}/model --num_train_epochs 1" in line
    evaluated = show("eval", "tiny", "--score_args=--no_bertscore", cwd=work).stdout.splitlines()
    assert [line.split()[1].rsplit("/", 1)[-1] for line in evaluated] == ["generate.py", "score.py"] * 2
    assert (
        "--checkpoint_dir results/tiny/seed-2/model --out_path results/tiny/seed-2/predictions_test.csv"
        in evaluated[2]
    )
    assert evaluated[3].endswith("results/tiny/seed-2/predictions_test.csv --split test --overwrite --no_bertscore")
    assert len(show("train", "tiny", "--seeds", "5", cwd=work).stdout.splitlines()) == 1  # --seeds wins


def test_sft_py_alone_refuses_a_recipe_with_seeds_in_one_line(seeded_recipe, script_in_process):
    result = script_in_process("sft.py", "--config", seeded_recipe)
    assert_one_error_line(result, "seeds [1, 2]", "arabic-sft train")


def test_the_makefile_targets_are_one_line_aliases_of_the_program():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert len(makefile.splitlines()) <= 120
    for target in ("train", "eval", "baseline", "judge", "general", "sweep", "compare", "report", "publish", "demo"):
        recipe = re.search(rf"^{target}:.*\n\t(.*)\n(?!\t)", makefile, re.MULTILINE)
        assert recipe and recipe.group(1).startswith(f"$(CLI) {target}"), target
    assert not re.search(r"\bfor \S+ in\b|; done|\$\$!", makefile)  # no shell loops: orchestration is Python


def test_a_bad_stage_argument_is_one_line(seeded_recipe):
    result = show("eval", "tiny", "--limit", "0", cwd=seeded_recipe.parent.parent)
    assert_one_error_line(result, "--limit 0")
    result = show("eval", "no_such_recipe")
    assert_one_error_line(result, "recipes/no_such_recipe.yaml not found")


def answered(folder: Path, model: Path, started: str) -> None:
    """A predictions CSV in `folder` with the generation manifest of answers made by `model` at `started`."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "predictions_test.csv").write_text("Proverb,Reference_Explanation,Generated_Explanation\n", "utf-8")
    manifest = {"started": started, "config": {"generation": {"model_dir": str(model)}}}
    (folder / "predictions_test.manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def trained(model: Path, finished: str) -> None:
    model.mkdir(parents=True, exist_ok=True)
    (model / "run_manifest.json").write_text(json.dumps({"finished": finished}), encoding="utf-8")


def test_answers_of_an_earlier_training_are_generated_again_not_scored(seeded_recipe):
    work = seeded_recipe.parent.parent
    for seed in (1, 2):
        trained(work / f"results/tiny/seed-{seed}/model", "2026-12-02T10:00:00")
    answered(work / "results/tiny/seed-1", Path("results/tiny/seed-1/model"), "2026-12-02T11:00:00")  # after
    answered(work / "results/tiny/seed-2", Path("results/tiny/seed-2/model"), "2026-12-02T09:00:00")  # before
    result = show("eval", "tiny", cwd=work)
    assert "results/tiny/seed-1/predictions_test.csv exists: scoring it as it is" in result.stderr
    assert (
        "results/tiny/seed-2/predictions_test.csv: generated at 2026-12-02T09:00:00, before the training"
        in result.stderr
    )
    commands = [line for line in result.stdout.splitlines() if "generate.py" in line]
    assert len(commands) == 1 and "seed-2" in commands[0] and commands[0].endswith("--overwrite")
    answered(work / "results/tiny/seed-1", Path("elsewhere/model"), "2026-12-02T11:00:00")  # another model's
    assert "seed-1/predictions_test.csv: generated by elsewhere/model" in show("eval", "tiny", cwd=work).stderr
    assert RunFolder(work / "results/tiny/seed-2").stale_answers("test", work / "results/tiny/seed-2/model")
    assert RunFolder(work / "results/none").stale_answers("test", work / "x") is None  # no answers: nothing stale


@pytest.mark.parametrize("script", ["generate.py", "score.py", "judge.py"])
def test_a_stage_of_one_model_refuses_a_recipe_with_seeds_in_one_line(seeded_recipe, script, script_in_process):
    result = script_in_process(script, "--config", seeded_recipe)
    assert_one_error_line(result, "seeds [1, 2]", "results/tiny/seed-N/", "arabic-sft")


def test_the_demo_is_the_stages_in_order(tmp_path):
    lines = show("demo", cwd=tmp_path).stdout.splitlines()  # where nothing was generated yet
    scripts = [line.split()[1].rsplit("/", 1)[-1] if " -m " not in line else "sft.py" for line in lines[:-1]]
    assert scripts == ["make_tiny_model.py", "sft.py", "generate.py", "score.py", "generate.py", "score.py",
                       "general.py", "compare.py", "report.py"]  # fmt: skip
    assert lines[-1].startswith("demo done: ")


def evaluated_side(results: RecipeResults, side: str, model_args: dict, started: str) -> None:
    """make general's side folder with the manifest of an evaluation of `model_args` at `started`."""
    results.general_side(side).mkdir(parents=True, exist_ok=True)
    manifest = {"started": started, "config": {"general": {"model_args": model_args}}}
    (results.general_side(side) / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")


def test_general_ability_of_an_earlier_training_or_another_model_is_not_this_model_s(tmp_path):
    results = RecipeResults("tiny", root=tmp_path)
    model = results.model
    trained(model, "2026-12-02T10:00:00")
    evaluated_side(results, "base", {"pretrained": "org/base"}, "2026-12-02T09:00:00")  # the base: no training
    evaluated_side(results, "tuned", {"pretrained": "org/base", "peft": str(model)}, "2026-12-02T11:00:00")
    assert results.current_general("org/base", model)
    trained(model, "2026-12-02T12:00:00")  # trained again since
    assert "before the training" in results.stale_general("tuned", model)
    assert not results.current_general("org/base", model)
    assert results.stale_general("tuned", results.seed(1).model).startswith("evaluated by")  # a seed's model: not it
    assert results.stale_general("base", "org/other") == "evaluated by org/base, not org/other"
    assert RecipeResults("none", root=tmp_path).stale_general("tuned", model) is None  # not evaluated: nothing stale


def test_the_checkpoint_folder_prefix_is_transformers_own():
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

    from arabic_sft.training import checkpoints

    assert checkpoints.PREFIX_CHECKPOINT_DIR == PREFIX_CHECKPOINT_DIR
