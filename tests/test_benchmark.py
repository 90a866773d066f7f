"""scripts/benchmark.py runs end to end on the tiny model and reports every figure (no timing is asserted here)."""

import json

import pytest
from helpers import SAMPLE_FILES, assert_one_error_line, cpu_recipe, run_script


pytestmark = pytest.mark.slow  # make test-fast skips this file


REQUIRED = [
    "train_tokens_per_s_baseline",
    "train_tokens_per_s",
    "train_speedup",
    "gen_tokens_per_s_baseline",
    "gen_tokens_per_s",
    "gen_speedup",
    "peak_mem_baseline_mb",
    "peak_mem_mb",
]


def bench_recipe(model, tmp_path):
    return cpu_recipe(tmp_path / "r.yaml", model, test_file=str(SAMPLE_FILES["proverbs"]), max_length=256)


def run_benchmark(recipe, out, *options):
    """The harness on a few examples: batches of 4, 6 prompts of 8 new tokens in batches of 3."""
    sizes = ["--batch_size", 4, "--gen_examples", 6, "--gen_batch_size", 3, "--max_new_tokens", 8]
    return run_script("benchmark.py", "--config", recipe, "--out", out, *sizes, *options)


def test_benchmark_qlora_checkpointing_and_generation_with_static_cache_and_a_baseline_subset(tiny_llama, tmp_path):
    from transformers import AutoModelForCausalLM

    recipe = bench_recipe(tiny_llama, tmp_path)
    out = tmp_path / "bench" / "qlora.json"
    qlora = ["--peft", "qlora", "--gradient_checkpointing", "--static_cache", "--baseline_gen_examples", 2]
    result = run_benchmark(recipe, out, "--train_examples", 8, *qlora)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.loads(out.read_text(encoding="utf-8"))
    assert all(isinstance(results[key], float) and results[key] > 0 for key in REQUIRED)
    parameters = AutoModelForCausalLM.from_pretrained(tiny_llama).num_parameters()  # tied embedding: all of them
    assert results["parameters"] == parameters
    assert results["flops_per_token"] == (4 + 2) * parameters  # LoRA on a frozen base, + checkpointing's recompute
    assert results["mfu"] is None  # no GPU peak to divide by on CPU
    baseline, ours = results["parts"]["train_baseline"], results["parts"]["train_ours"]
    assert baseline["steps"] == ours["steps"] == 2 and baseline["tokens"] == ours["tokens"]  # both ways, same data
    assert baseline["padded_tokens"] == 8 * 256  # the seed way pads every example to max_length
    assert "| train_speedup |" in out.with_suffix(".md").read_text(encoding="utf-8")
    assert baseline["trainable_parameters"] == ours["trainable_parameters"] < parameters / 4  # the same adapters
    # PEFT's fp32 adapters (the seed way) against TRL's bf16 adapters on a 4-bit model (adapter_dtype auto)
    assert baseline["trainable_dtypes"] == ["float32"] and ours["trainable_dtypes"] == ["bfloat16"]
    generation = results["parts"]["generate"]
    assert generation["baseline_examples"] == 2 and generation["examples"] == 6
    assert results["gen_baseline_extrapolated"] is True and results["gen_outputs_equal"] is True
    assert 0 < generation["new_tokens"] <= 6 * 8


def test_benchmark_refuses_a_baseline_subset_larger_than_the_prompts(tmp_path, script_in_process):
    options = ["--gen_examples", 4, "--baseline_gen_examples", 5, "--out", tmp_path / "x.json"]
    result = script_in_process("benchmark.py", "--config", "recipes/demo.yaml", *options)
    assert_one_error_line(result, "--baseline_gen_examples must be between 1 and")
    assert not (tmp_path / "x.json").exists()


def test_real_shapes_have_the_real_models_parameter_counts(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from arabic_sft.tiny import SHAPES, build_tiny_model

    # A small custom shape through the same keywords: MLP width, KV heads, vocabulary rows, untied head, dtype.
    out = build_tiny_model(
        "llama",
        ["سؤال وجواب"] * 20,
        tmp_path / "m",
        vocab_size=300,
        hidden_size=64,
        num_layers=2,
        num_heads=4,
        num_kv_heads=4,
        intermediate_size=96,
        model_vocab_size=1000,
        tie_word_embeddings=False,
        dtype=torch.bfloat16,
    )
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.dtype == torch.bfloat16 and model.config.vocab_size == 1000
    assert model.num_parameters() == 2 * 1000 * 64 + 2 * (4 * 64 * 64 + 3 * 64 * 96 + 2 * 64) + 64
    # ALLaM-7B (7.0B parameters, untied) and the Jais-family-256m stand-in, counted without building them.
    counts = {}
    for name, shape in SHAPES.items():
        hidden, layers, mlp, vocab = (
            shape["hidden_size"],
            shape["num_layers"],
            shape["intermediate_size"],
            shape["model_vocab_size"],
        )
        heads = 1 if shape["tie_word_embeddings"] else 2
        counts[name] = heads * vocab * hidden + layers * (4 * hidden * hidden + 3 * hidden * mlp + 2 * hidden) + hidden
    assert round(counts["allam-7b"] / 1e9, 2) == 7.00 and round(counts["jais-256m"] / 1e6) == 292
