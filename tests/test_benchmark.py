"""scripts/benchmark.py runs end to end on the tiny model and reports every figure (no timing is asserted here)."""

import json

from conftest import CPU_TRAINING, SAMPLE_FILES, run_script, write_recipe

REQUIRED = ["train_tokens_per_s_baseline", "train_tokens_per_s", "train_speedup", "gen_tokens_per_s_baseline",
            "gen_tokens_per_s", "gen_speedup", "peak_mem_baseline_mb", "peak_mem_mb"]


def test_benchmark_harness_runs_on_the_tiny_model(tiny_llama, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", model_name_or_path=str(tiny_llama), task="proverbs",
                          train_file=str(SAMPLE_FILES["proverbs"]), test_file=str(SAMPLE_FILES["proverbs"]),
                          output_dir=str(tmp_path / "unused"), max_length=256, **CPU_TRAINING)
    out = tmp_path / "bench" / "cpu.json"
    result = run_script("benchmark.py", "--config", recipe, "--out", out, "--train_examples", 12, "--batch_size", 4,
                        "--gen_examples", 6, "--gen_batch_size", 3, "--max_new_tokens", 8)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(out.read_text(encoding="utf-8"))
    assert all(isinstance(results[key], float) and results[key] > 0 for key in REQUIRED)
    assert results["gen_outputs_equal"] is True  # batched greedy generation gives the one-by-one outputs
    baseline, ours = results["parts"]["train_baseline"], results["parts"]["train_ours"]
    assert baseline["steps"] == ours["steps"] == 3 and baseline["tokens"] == ours["tokens"]
    assert baseline["padded_tokens"] == 12 * 256  # the seed way pads every example to max_length
    assert results["parts"]["generate"]["new_tokens"] > 0
    assert "| train_speedup |" in out.with_suffix(".md").read_text(encoding="utf-8")
