"""Model cards and make publish, offline: the card of a compared full fine-tune (the report's run, compared here) and
of a LoRA adapter, read back through huggingface_hub's loader; every number in them against the run's files; the dry
run's list against the files on disk; each refusal as one line. The upload itself needs the Hub (docs/publishing.md).
"""

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml
from helpers import (
    CPU_TRAINING,
    ROOT,
    SAMPLE_FILES,
    assert_one_error_line,
    run_here,
    run_in_this_process,
    run_script,
    write_recipe,
)


pytestmark = pytest.mark.slow  # make test-fast skips this file


@pytest.fixture(scope="module")
def compared(report):
    """The report's run (a full fine-tune of the tiny Llama, its baseline, judge scores) after make compare, which
    refreshes its card."""
    folder = report[0]
    result = run_script("compare.py", "--config", "medqa.yaml", "--overwrite", cwd=folder)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "refreshed the model card results/medqa/model/README.md" in result.stdout
    return folder


@pytest.fixture(scope="module")
def adapter(tiny_llama, tmp_path_factory):
    """A LoRA adapter trained by sft.py for two steps: its card is written when training finishes."""
    folder = tmp_path_factory.mktemp("adapter")
    sample = str(SAMPLE_FILES["proverbs"])
    recipe = write_recipe(folder / "lora.yaml", model_name_or_path=str(tiny_llama), task="proverbs", train_file=sample,
                          test_file=sample, output_dir="results/lora/model", use_peft=True, lora_r=4, lora_alpha=8,
                          lora_target_modules="all-linear", max_steps=2, per_device_train_batch_size=4,
                          eval_strategy="no", save_strategy="no", license="apache-2.0",
                          data_source="yemeni_proverbs", **CPU_TRAINING)  # fmt: skip
    assert run_here("sft.py", "--config", recipe, cwd=folder).returncode == 0
    return folder


def read_card(path: Path):
    """The card through huggingface_hub's loader, strict (a model-index it cannot parse raises), and its YAML."""
    from huggingface_hub import ModelCard

    text = path.read_text(encoding="utf-8")
    return ModelCard.load(path, ignore_metadata_errors=False), yaml.safe_load(text.split("---\n")[1]), text


def table_rows(text: str, heading: str) -> dict[str, list[str]]:
    """The markdown table after `heading`: {first cell: the other cells}."""
    section = text.split(heading, 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]
    rows = [line.strip("|").split(" | ") for line in section.splitlines() if line.startswith("| ")]
    return {cells[0].strip(): [cell.strip() for cell in cells[1:]] for cells in rows[1:]}


def test_the_card_of_a_compared_run_round_trips_and_its_numbers_are_the_run_s_files(compared):
    from huggingface_hub import ModelCardData

    from arabic_sft.scoring.metrics import METRIC_KEYS
    from arabic_sft.scoring.tables import figure, label

    results = compared / "results" / "medqa"
    card, metadata, text = read_card(results / "model" / "README.md")
    assert ModelCardData(**metadata).to_dict() == metadata  # the metadata round-trips through huggingface_hub
    data = card.data
    assert (data.language, data.license, data.library_name, data.pipeline_tag) == (
        "ar", "apache-2.0", "transformers", "text-generation"
    )  # fmt: skip
    assert data.datasets == ["arabic-sft/medical-qa-sample"] and data.base_model is None  # a local base: no Hub id
    assert {"trl", "sft", "arabic"} <= set(data.tags)
    metrics = json.loads((results / "metrics_test.json").read_text())
    scored = {key: metrics[key] for key in METRIC_KEYS[1:] if isinstance(metrics.get(key), (int, float))}
    assert {result.metric_type: result.metric_value for result in data.eval_results} == scored
    assert {(result.dataset_split, result.dataset_type) for result in data.eval_results} == {
        ("test", "arabic-sft/medical-qa-sample")
    }

    table = pd.read_csv(results / "compare_test.csv")
    cell = {(row.run, row.metric): row for row in table.itertuples()}
    shown = table_rows(text, "## Results")
    ours = table[table["run"] == "medqa"]
    assert set(shown) == {label(metric) for metric in ours["metric"]} and "Judge: correctness" in shown
    for row in ours.itertuples():
        value, baseline, difference, p = shown[label(row.metric)]
        base = cell.get(("baseline-zero-shot", row.metric))  # none where the baseline wrote no Arabic letter
        assert value == figure(row.value, row.ci_low, row.ci_high)
        assert baseline == (figure(base.value, base.ci_low, base.ci_high) if base else "n/a")
        if pd.notna(row.diff):
            assert difference.removesuffix(" ▲").removesuffix(" ▼") == figure(
                row.diff, row.diff_ci_low, row.diff_ci_high
            )
        assert p == ("" if pd.isna(row.p_value) else f"{row.p_value:.3f}")
    assert f"The same {metrics['n']} test examples" in text and f"- {metrics['n']} test examples" in text

    manifest = json.loads((results / "model" / "run_manifest.json").read_text())
    files = table_rows(text, "## Training data")
    for role, path in [("train", SAMPLE_FILES["medical_qa"]), ("validation", SAMPLE_FILES["medical_qa"])]:
        assert files[role] == [
            f"`{path.relative_to(ROOT)}`",  # inside the project: shown relative to it (a card shows no machine path)
            str(manifest["config"]["data"]["examples"][role]),
            f"`{manifest['data_sha256'][str(path)]}`",
        ]
    assert files["test"][1] == str(metrics["n"])
    hyperparameters = table_rows(text, "## Training procedure")
    for section, field in [("training", "learning_rate"), ("training", "num_train_epochs"), ("training", "seed"),
                           ("launch", "global_batch_size"), ("training", "per_device_train_batch_size")]:  # fmt: skip
        assert hyperparameters[field] == [str(manifest["config"][section][field])]
    history = json.loads((results / "model" / "log_history.json").read_text())
    losses = [entry for entry in history if "loss" in entry and "step" in entry]
    assert f"Training loss: {losses[0]['loss']:.4f} (step {losses[0]['step']}) at first" in text
    for fact in (
        manifest["device"],
        manifest["started"],
        manifest["finished"],
        manifest["git_commit"] or "not recorded",
    ):
        assert fact in text
    assert manifest["config"]["recipe"]["prompt_template"] in text
    assert "the prompt's tokens and padding are masked" in text and "`</s>`" in text


def test_a_card_leaves_out_results_that_are_not_this_training_s(compared, monkeypatch):
    from arabic_sft.publishing.card import build_card
    from arabic_sft.recipe import load_recipe
    from arabic_sft.runs import RecipeResults

    monkeypatch.chdir(compared)
    recipe = load_recipe(["--config", "medqa.yaml"])
    manifest = compared / "results" / "medqa" / "model" / "run_manifest.json"
    kept = manifest.read_text()
    manifest.write_text(json.dumps({**json.loads(kept), "finished": "9999-01-01T00:00:00+00:00"}))  # trained again
    try:
        card = build_card(RecipeResults(recipe.name).trained_run_in("results/medqa/model"), recipe)
    finally:
        manifest.write_text(kept)
    assert card.data.eval_results is None and "model-index" not in str(card)
    assert "Left out: results/medqa/metrics_test.json was not scored from this training's answers" in str(card)
    assert "| ROUGE-L (F1) |" not in str(card)


def test_the_card_of_an_adapter_is_written_when_training_finishes(adapter, monkeypatch):
    from arabic_sft.publishing.card import build_card
    from arabic_sft.recipe import load_recipe
    from arabic_sft.runs import RecipeResults

    card, metadata, text = read_card(adapter / "results" / "lora" / "model" / "README.md")
    assert card.data.library_name == "peft" and "lora" in card.data.tags and "model-index" not in metadata
    assert card.data.license == "apache-2.0" and card.data.datasets is None  # the proverbs are not on the Hub
    assert "Not evaluated yet" in text and "AutoPeftModelForCausalLM" in text
    assert "this adapter cannot be loaded without it" in text  # its base is a local model
    assert "Thmer" in text  # the data's citation, from data/sources/yemeni_proverbs.yaml
    assert "has random weights" in text  # the tiny base (scripts/make_tiny_model.py marks it)
    assert "| train | `data/samples/proverbs.csv` |" in text and str(ROOT) not in text.split("## How to use")[0]
    manifest = json.loads((adapter / "results" / "lora" / "model" / "run_manifest.json").read_text())
    lora = table_rows(text, "## Training procedure")
    assert lora["lora_r"] == ["4"] and lora["lora_alpha"] == ["8"] and lora["max_steps"] == ["2"]
    assert "chat template" in text and manifest["config"]["data"]["chat"] is True

    # the same run with a base on the Hub: base_model names it, and the card links it
    monkeypatch.chdir(adapter)
    recipe = load_recipe(["--config", "lora.yaml"])
    run = RecipeResults(recipe.name).trained_run_in("results/lora/model")
    model = {**run.manifest["config"]["model"], "model_name_or_path": "inceptionai/Jais-family-256m"}
    run.manifest = {**run.manifest, "config": {**run.manifest["config"], "model": model}}
    hub = build_card(run, recipe, hub_id="someone/lora-proverbs", merged=True)
    assert hub.data.base_model == "inceptionai/Jais-family-256m" and hub.data.library_name == "transformers"
    assert "[`inceptionai/Jais-family-256m`](https://huggingface.co/inceptionai/Jais-family-256m)" in str(hub)
    assert 'AutoModelForCausalLM.from_pretrained("someone/lora-proverbs")' in str(hub)


def listed(output: str) -> dict[str, int]:
    """The dry run's list: {path in the repository: bytes}."""
    found = re.findall(r"^ *([\d,]+) +[\d.]+ [KMG]?B +(\S+) +\([a-z ]+\)$", output, re.M)
    return {path: int(size.replace(",", "")) for size, path in found}


def test_the_dry_run_lists_exactly_the_files_it_would_send_with_their_sizes(compared, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)  # a dry run needs none
    result = run_in_this_process(
        monkeypatch, capsys, "publish.py", "--config", "medqa.yaml", "--hub_id", "me/medqa", "--dry_run", cwd=compared
    )
    assert result.returncode == 0, result.stderr
    files = listed(result.stdout)
    model = compared / "results" / "medqa" / "model"
    expected = {path.relative_to(model).as_posix(): path for path in model.rglob("*") if path.is_file()
                and path.relative_to(model).parts[0] not in ("runs", "training_args.bin", "README.md")
                and not path.relative_to(model).parts[0].startswith(("checkpoint-", "."))}  # fmt: skip
    results = compared / "results" / "medqa"
    run_files = ["metrics_test.json", "metrics_test.md", "metrics_test.examples.csv", "predictions_test.csv",
                 "predictions_test.manifest.json", "judge_test.json", "judge_test.examples.csv"]  # fmt: skip
    for folder in (results, results / "baseline-zero-shot"):
        expected |= {(folder / name).relative_to(compared).as_posix(): folder / name for name in run_files}
    expected |= {f"results/medqa/compare_test.{ext}": results / f"compare_test.{ext}" for ext in ("md", "csv", "png")}
    expected |= {"results/medqa/compare_test.groups.csv": results / "compare_test.groups.csv"}
    expected |= {"recipes/medqa.yaml": compared / "medqa.yaml"}
    expected |= {"recipes/tasks/medical_qa.yaml": ROOT / "recipes" / "tasks" / "medical_qa.yaml"}
    # the report was made before this comparison: left out
    assert set(files) == set(expected) | {"README.md"}
    assert all(files[path] == source.stat().st_size for path, source in expected.items())
    assert f"{len(files)} files, {sum(files.values()):,} bytes" in result.stdout
    assert "nothing was sent" in result.stdout and not (results / "published.json").exists()


def test_merged_dry_run_merges_the_adapter_through_merge_adapter_py_and_lists_the_model(adapter, monkeypatch, capsys):
    result = run_in_this_process(monkeypatch, capsys, "publish.py", "--config", "lora.yaml", "--hub_id", "me/lora",
                                 "--merged", "--dry_run", cwd=adapter)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    files = listed(result.stdout)
    assert "model.safetensors" in files and "adapter_model.safetensors" not in files
    assert {"training/run_manifest.json", "merge_manifest.json", "README.md", "recipes/lora.yaml"} <= set(files)
    merged = adapter / "results" / "lora" / "merged"
    assert files["model.safetensors"] == (merged / "model.safetensors").stat().st_size


def test_publish_refuses_in_one_line_before_sending_anything(compared, monkeypatch, capsys):
    from huggingface_hub import constants

    def publish(recipe, *args):
        return run_in_this_process(monkeypatch, capsys, "publish.py", "--config", recipe, *args, cwd=compared)

    fields = yaml.safe_load((compared / "medqa.yaml").read_text())
    unlicensed = write_recipe(compared / "unlicensed.yaml", **{**fields, "license": None})
    untrained = write_recipe(compared / "untrained.yaml", **{**fields, "output_dir": "results/untrained/model"})
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert_one_error_line(publish(untrained, "--hub_id", "me/x"), "no finished training", "make train")
    assert_one_error_line(publish(unlicensed, "--hub_id", "me/x"), "no license", "license:")
    assert_one_error_line(publish("medqa.yaml"), "no Hub repository given", "HUB_ID=org/name")
    assert_one_error_line(publish("medqa.yaml", "--hub_id", "medqa"), "give the owner too")
    assert_one_error_line(publish("medqa.yaml", "--hub_id", "me/x", "--merged"), "a full model, not an adapter")
    assert_one_error_line(publish("medqa.yaml", "--hub_id", "me/x"), "HF_TOKEN is not set")
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    result = publish("medqa.yaml", "--hub_id", "me/x")
    assert_one_error_line(result, "HF_HUB_OFFLINE is set")  # as the helper runs scripts
    assert "hf_not_a_real_token" not in result.stdout + result.stderr
    # online but nothing answers: the check itself (the helper above runs scripts offline)
    from arabic_sft.publishing.upload import check_can_publish
    from arabic_sft.recipe import load_recipe
    from arabic_sft.recipe.check import trained_model_of
    from arabic_sft.runtime.errors import UserError

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    recipe = load_recipe(["--config", "medqa.yaml"])
    with pytest.raises(UserError, match=r"^the Hugging Face Hub \(http://127.0.0.1:9\) cannot be reached"):
        check_can_publish(recipe, trained_model_of(recipe.path), "me/x", merged=False, dry_run=False)
    assert not (compared / "results" / "medqa" / "published.json").exists()


def test_a_tracker_that_is_not_installed_is_refused_before_the_model_loads(
    tmp_path, make_recipe, tiny_llama, monkeypatch, capsys
):
    recipe = make_recipe(tiny_llama, report_to="wandb")
    result = run_in_this_process(monkeypatch, capsys, "sft.py", "--config", recipe, cwd=tmp_path)
    assert_one_error_line(result, "report_to: wandb is not installed here", "pip install wandb")


def test_the_upload_sends_one_commit_of_exactly_the_dry_run_s_files(compared, monkeypatch, capsys):
    """The Hub cannot be reached from here: huggingface_hub's HfApi and the card validator are replaced by autospecs
    (every call must match their real signatures), and the commit they receive is checked."""
    from unittest import mock

    import huggingface_hub

    from arabic_sft.publishing import upload
    from arabic_sft.publishing.card import CARD
    from arabic_sft.recipe import load_recipe
    from arabic_sft.recipe.check import trained_model_of

    api = mock.create_autospec(huggingface_hub.HfApi, instance=True)
    api.list_repo_files.return_value = [".gitattributes", "README.md", "adapter_config.json"]  # an earlier upload
    api.create_commit.return_value.commit_url = "https://huggingface.co/me/medqa/commit/0123abc"
    monkeypatch.setattr(huggingface_hub, "HfApi", mock.create_autospec(huggingface_hub.HfApi, return_value=api))
    validate = mock.create_autospec(huggingface_hub.ModelCard.validate)
    monkeypatch.setattr(huggingface_hub.ModelCard, "validate", validate)
    monkeypatch.setattr(upload, "endpoint_answers", lambda: True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_TOKEN", "hf_not_a_real_token")
    monkeypatch.chdir(compared)
    recipe = load_recipe(["--config", "medqa.yaml"])
    upload.publish(recipe, trained_model_of(recipe.path), "me/medqa", "test", None, merged=False, private=True,
                   dry_run=False)  # fmt: skip

    huggingface_hub.HfApi.assert_called_once_with(token="hf_not_a_real_token")
    validate.assert_called_once()  # the Hub's validator saw the card before anything was sent
    api.create_repo.assert_called_once_with("me/medqa", repo_type="model", private=True, exist_ok=True)
    api.create_commit.assert_called_once()
    operations = api.create_commit.call_args.kwargs["operations"]
    added = {op.path_in_repo: op for op in operations if isinstance(op, huggingface_hub.CommitOperationAdd)}
    deleted = [op.path_in_repo for op in operations if isinstance(op, huggingface_hub.CommitOperationDelete)]
    planned = upload.plan(trained_model_of(recipe.path), recipe, "me/medqa", "test", None)
    assert set(added) == {item.path_in_repo for item in planned} and deleted == ["adapter_config.json"]
    with added[CARD].as_file() as handle:
        card = handle.read().decode("utf-8")
    assert 'from_pretrained("me/medqa")' in card
    record = (compared / "results" / "medqa" / "published.json").read_text()
    assert json.loads(record)["commit"] == "https://huggingface.co/me/medqa/commit/0123abc"
    assert "hf_not_a_real_token" not in record + capsys.readouterr().out
    (compared / "results" / "medqa" / "published.json").unlink()  # the other tests see no published run


def test_every_recipe_names_a_data_source_that_exists():
    from arabic_sft.named import data_source
    from arabic_sft.recipe import load_recipe

    names = "allam_proverbs allam_proverbs_qlora demo example_own_data jais2_proverbs_qlora jais_shefaa".split()
    recipes = [ROOT / "recipes" / f"{name}.yaml" for name in names]  # the project's (not a user's own recipes)
    sources = {path.stem: data_source(load_recipe(["--config", str(path)]).args.data_source) for path in recipes}
    assert all(source and source["title"] for source in sources.values()), sources
    assert sources["demo"]["license"] == "cc-by-4.0" and sources["jais_shefaa"]["license"] is None
