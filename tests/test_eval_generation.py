"""Generation metrics during training: logged with the eval loss (log history, TensorBoard), answers written per
evaluation, and `metric_for_best_model: eval_rougeL` keeps the checkpoint whose answers score best."""

import json

import pytest
import torch
from helpers import assert_one_error_line
from safetensors.torch import load_file

from arabic_sft.training import eval_generation
from arabic_sft.training.eval_generation import GENERATION_METRICS, fixed_subset, generation_metrics


LOSSES = []


def test_fast_metrics_on_a_small_case():
    results = generation_metrics(["الصبر مفتاح الفرج", ""], ["الصبر مفتاح الفرج", "من جد وجد"])
    assert set(results) == set(GENERATION_METRICS)
    assert results["eval_rougeL"] == pytest.approx(0.5) and results["eval_empty_rate"] == 0.5
    assert results["eval_arabic_ratio"] == 1.0 and 0 < results["eval_chrf"] < 100


def test_the_subset_is_fixed():
    assert fixed_subset(100, 5, seed=1) == fixed_subset(100, 5, seed=1) != fixed_subset(100, 5, seed=2)
    assert fixed_subset(3, 5, seed=1) == [0, 1, 2]


def test_best_checkpoint_by_eval_rougeL_not_eval_loss(
    tiny_llama, make_recipe, tmp_path, monkeypatch, script_in_process
):
    # Crafted: each evaluation's ROUGE-L is made to rise with its eval loss, so the best ROUGE-L is the checkpoint
    # with the worst loss: different from the best-loss checkpoint by construction (the losses are not all equal).
    real_metrics, real_on_evaluate = (
        eval_generation.generation_metrics,
        eval_generation.GenerationMetricsCallback.on_evaluate,
    )

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        LOSSES.append(metrics["eval_loss"])
        return real_on_evaluate(self, args, state, control, metrics=metrics, **kwargs)

    monkeypatch.setattr(eval_generation.GenerationMetricsCallback, "on_evaluate", on_evaluate)
    monkeypatch.setattr(
        eval_generation,
        "generation_metrics",
        lambda predictions, references: {**real_metrics(predictions, references), "eval_rougeL": LOSSES[-1]},
    )
    recipe = make_recipe(
        tiny_llama,
        num_train_epochs=3,
        learning_rate=1e-2,
        eval_strategy="epoch",
        save_strategy="epoch",
        load_best_model_at_end=True,
        metric_for_best_model="eval_rougeL",
        eval_generation_examples=4,
        eval_generation_max_new_tokens=6,
        report_to="tensorboard",
        check_loss_parity=False,
    )
    LOSSES.clear()
    result = script_in_process("sft.py", "--config", recipe)
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "out"
    state = json.loads((out / "trainer_state.json").read_text())
    evaluations = [entry for entry in state["log_history"] if "eval_rougeL" in entry]
    assert len(evaluations) == 3 and all(set(GENERATION_METRICS) <= set(entry) for entry in evaluations)
    assert all(entry["eval_generation_seconds"] > 0 for entry in evaluations)
    losses = [entry["eval_loss"] for entry in state["log_history"] if "eval_loss" in entry]
    steps = [entry["step"] for entry in evaluations]
    best_rouge, best_loss = steps[losses.index(max(losses))], steps[losses.index(min(losses))]
    assert best_rouge != best_loss
    assert state["best_model_checkpoint"].endswith(f"checkpoint-{best_rouge}")
    final = load_file(out / "model.safetensors")
    kept = load_file(out / f"checkpoint-{best_rouge}" / "model.safetensors")
    assert all(torch.equal(final[name], kept[name]) for name in kept)

    generations = (out / "eval_generations" / f"step-{steps[0]}.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(generations) == 4 and {"step", "proverb", "reference", "generated"} <= set(json.loads(generations[0]))

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (run,) = (out / "runs").iterdir()
    events = EventAccumulator(str(run))
    events.Reload()
    assert {"eval/rougeL", "eval/bleu4", "eval/chrf", "eval/loss"} <= set(events.Tags()["scalars"])
    assert [event.step for event in events.Scalars("eval/rougeL")] == steps


def test_a_generation_metric_as_best_model_needs_the_callback(tiny_llama, make_recipe, script_in_process):
    recipe = make_recipe(
        tiny_llama,
        eval_strategy="epoch",
        save_strategy="epoch",
        load_best_model_at_end=True,
        metric_for_best_model="eval_rougeL",
    )
    result = script_in_process("sft.py", "--config", recipe)
    assert_one_error_line(result, "set eval_generation_examples")


@pytest.mark.slow
def test_under_ddp_every_process_generates_a_share_and_all_rows_come_back(tiny_llama, make_recipe, tmp_path):
    from helpers import launch

    recipe = make_recipe(
        tiny_llama,
        num_train_epochs=1,
        per_device_train_batch_size=2,
        eval_strategy="epoch",
        eval_generation_examples=5,
        eval_generation_max_new_tokens=4,
        check_loss_parity=False,
    )
    result = launch("ddp", 2, recipe)
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "out"
    assert json.loads((out / "run_manifest.json").read_text())["config"]["launch"]["num_processes"] == 2
    state = json.loads((out / "trainer_state.json").read_text())
    (evaluation,) = [entry for entry in state["log_history"] if "eval_rougeL" in entry]
    (path,) = (out / "eval_generations").iterdir()
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 5 and len({row["proverb"] for row in rows}) == 5  # rows of both processes, none twice
    assert result.stdout.count("'eval_rougeL'") == 1  # logged once, by the main process
