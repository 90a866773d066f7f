"""scripts/merge_adapter.py: a QLoRA adapter trained here (4-bit nf4 + double quant runs on CPU with bitsandbytes) is
merged into its dequantized base, and the standalone model computes what the trained 4-bit model + adapter computed."""

import json
import os

import pandas as pd
import pytest
import torch
from bitsandbytes.functional import dequantize_4bit
from helpers import (
    SAMPLE_FILES,
    assert_one_error_line,
    run_in_this_process,
    train_qlora_adapter,
)
from peft import PeftModel
from peft.tuners.lora import LoraLayer
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

from arabic_sft.runtime.locks import exclusive_output
from arabic_sft.training.model import keep_4bit_layers_differentiable


pytestmark = pytest.mark.slow  # make test-fast skips this file


@pytest.fixture(scope="module")
def qlora_adapter(tiny_llama, tmp_path_factory):
    return train_qlora_adapter(tiny_llama, tmp_path_factory.mktemp("qlora"))


def logits(model, ids):
    with torch.no_grad():
        return model.eval()(torch.tensor([ids])).logits


def trained_4bit_model(tiny_llama, adapter):
    """The 4-bit base + adapter as training computed it (nf4, double quant, fp32 compute)."""
    quantization = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.float32,
    )
    trained = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tiny_llama, quantization_config=quantization), adapter
    )
    assert keep_4bit_layers_differentiable(trained) > 0  # as sft.py trains it, on every CPU (see the function)
    return trained


def test_4bit_layers_stay_differentiable_in_eval_on_a_cpu_with_avx512_bf16(tiny_llama):
    """On a CPU with AVX512-BF16, bitsandbytes repacks a 4-bit layer at its first eval forward and computes it from
    then on in bf16 with an inference kernel, in training too: a run trained differently after its loss-parity check
    on such hosts. Emulated here on any CPU by setting the flag bitsandbytes sets there."""

    def emulated(keep: bool):
        quantization = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.float32
        )
        model = AutoModelForCausalLM.from_pretrained(tiny_llama, quantization_config=quantization).eval()
        layers = [module for module in model.modules() if hasattr(module, "support_avx512bf16_for_cpu")]
        for layer in layers:
            layer.support_avx512bf16_for_cpu = True
        if keep:
            assert keep_4bit_layers_differentiable(model) == len(layers) > 0
        with torch.no_grad():
            try:
                model(torch.tensor([[5, 6, 7]]))
            except Exception:  # without AVX512-BF16 the repacked layer's kernel is missing: the repacking is the point
                assert not keep
        return [getattr(layer.weight.quant_state, "packing_format_for_cpu", False) for layer in layers]

    assert any(emulated(keep=False))  # the emulation reaches bitsandbytes' switch
    assert not any(emulated(keep=True))  # and what sft.py does keeps every layer off it


def test_merged_qlora_model_computes_what_the_trained_4bit_model_did(
    qlora_adapter, tiny_llama, tmp_path, script_in_process
):
    merged = tmp_path / "merged"
    result = script_in_process(
        "merge_adapter.py", "--adapter_dir", qlora_adapter, "--out", merged, "--dtype", "float32"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    from arabic_sft.runtime.manifest import permissions_of_new

    assert merged.stat().st_mode & 0o777 == permissions_of_new(0o777)  # the user's umask, not mkdtemp's 0700
    assert "dequantized from 4-bit" in result.stdout
    assert not (merged / "adapter_config.json").exists() and (merged / "chat_template.jinja").is_file()
    assert json.loads((merged / "merge_manifest.json").read_text())["config"]["merge"]["dequantized_from_4bit"]

    # Exact by construction: each merged weight is, bit for bit, the dequantized 4-bit weight the adapter was trained
    # against plus the adapter's own delta (PEFT's get_delta_weight), both in fp32.
    trained = trained_4bit_model(tiny_llama, qlora_adapter)
    standalone = AutoModelForCausalLM.from_pretrained(merged)
    merged_weights = dict(standalone.named_parameters())
    lora_layers = [(name, module) for name, module in trained.named_modules() if isinstance(module, LoraLayer)]
    assert lora_layers
    for name, layer in lora_layers:
        weight = layer.base_layer.weight
        expected = dequantize_4bit(weight.data, weight.quant_state).float() + layer.get_delta_weight("default")
        assert torch.equal(merged_weights[name.removeprefix("base_model.model.") + ".weight"], expected), name

    # And the logits: x(W + BA)^T against xW^T + (xA^T)B^T, the same sums in another order, both in fp32 on every
    # host (bf16 anywhere would show as ~1e-3). What remains is fp32 rounding, ~1e-6 at these sizes.
    ids = list(range(5, 40))
    expected = logits(trained, ids)
    torch.testing.assert_close(logits(standalone, ids), expected, rtol=1e-4, atol=1e-4)

    # Merging into the original full-precision weights is what --no_dequantize does: not what was trained.
    plain = tmp_path / "plain"
    result = script_in_process(
        "merge_adapter.py", "--adapter_dir", qlora_adapter, "--out", plain, "--dtype", "float32", "--no_dequantize"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (logits(AutoModelForCausalLM.from_pretrained(plain), ids) - expected).abs().max() > 1e-3


def test_generation_from_a_qlora_adapter_uses_the_dequantized_base(qlora_adapter, tmp_path, script_in_process):
    merged = tmp_path / "merged"
    assert (
        script_in_process(
            "merge_adapter.py", "--adapter_dir", qlora_adapter, "--out", merged, "--dtype", "float32"
        ).returncode
        == 0
    )
    outputs = {}
    for name, source in {
        "adapter": ["--checkpoint_dir", qlora_adapter],
        "merged": ["--checkpoint_dir", merged],
    }.items():
        out = tmp_path / f"{name}.csv"
        result = script_in_process(
            "generate.py",
            *source,
            "--test_path",
            SAMPLE_FILES["proverbs"],
            "--out_path",
            out,
            "--max_new_tokens",
            12,
            "--limit",
            4,
            "--task",
            "proverbs",
        )
        assert result.returncode == 0, result.stderr[-3000:]
        outputs[name] = pd.read_csv(out, keep_default_na=False)["Generated_Explanation"].tolist()
    assert outputs["adapter"] == outputs["merged"]


def test_existing_output_is_not_replaced(qlora_adapter, tmp_path, monkeypatch, capsys):
    out = tmp_path / "merged"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = run_in_this_process(monkeypatch, capsys, "merge_adapter.py", "--adapter_dir", qlora_adapter, "--out", out)
    assert_one_error_line(result, str(out), "already exists", "--overwrite")
    assert (out / "keep.txt").read_text() == "mine"


def test_not_an_adapter_directory(tiny_llama, tmp_path, monkeypatch, capsys):
    result = run_in_this_process(
        monkeypatch, capsys, "merge_adapter.py", "--adapter_dir", tiny_llama, "--out", tmp_path / "m"
    )
    assert_one_error_line(result, str(tiny_llama), "adapter_config.json")


def test_a_second_merge_into_the_same_directory_is_refused(tmp_path, monkeypatch, capsys):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    out = tmp_path / "merged"
    with exclusive_output(out):  # another run holds it (this process, through its own open file)
        result = run_in_this_process(monkeypatch, capsys, "merge_adapter.py", "--adapter_dir", adapter, "--out", out)
    assert_one_error_line(result, f"{out}: in use by process {os.getpid()} on ")
    assert not out.exists()
