"""The dtype of trained LoRA parameters. The seed's QLoRA precision (4-bit, fp16 mixed precision) runs: the adapter is
kept in fp32, which fp16's gradient scaler needs (on a GPU, TRL's bf16 adapter stops at the first optimizer step; CPU
cannot show the crash itself, only that the adapter is trained and saved in fp32 under fp16 and left as TRL stores
it otherwise). `adapter_dtype: bfloat16` trains bf16 adapters on a bf16 base; combinations that cannot work stop."""

import pytest
from helpers import assert_one_error_line
from safetensors import safe_open


pytestmark = pytest.mark.slow  # make test-fast skips this file


LORA = ["--use_peft", "true", "--lora_target_modules", "all-linear", "--max_steps", "2"]
QLORA = ["--load_in_4bit", "true", "--bnb_4bit_quant_type", "nf4", "--use_bnb_nested_quant", "true", *LORA]


def adapter_dtypes(directory) -> set[str]:
    with safe_open(str(directory / "adapter_model.safetensors"), framework="pt") as handle:
        return {str(handle.get_tensor(name).dtype).removeprefix("torch.") for name in handle.keys()}


@pytest.mark.parametrize(
    "settings, expected, logged",
    [
        (
            [*QLORA, "--fp16", "true", "--dtype", "float16"],
            "float32",
            True,
        ),  # the seed's settings: adapter cast to fp32
        ([*QLORA, "--dtype", "float32"], "bfloat16", False),  # no fp16: TRL's QLoRA adapter dtype, untouched
        ([*LORA, "--dtype", "bfloat16", "--adapter_dtype", "bfloat16"], "bfloat16", True),  # asked for: bf16 adapters
        ([*LORA, "--dtype", "bfloat16"], "float32", False),  # auto: PEFT's fp32 adapters on a bf16 base
    ],
)
def test_trained_adapter_dtype(tiny_llama, make_recipe, tmp_path, settings, expected, logged, script_in_process):
    result = script_in_process("sft.py", "--config", make_recipe(tiny_llama), *settings)
    assert result.returncode == 0, result.stderr[-3000:]
    assert adapter_dtypes(tmp_path / "out") == {expected}
    assert (f"trainable parameter tensors kept in {expected}" in result.stdout + result.stderr) == logged


@pytest.mark.parametrize(
    "settings, message",
    [
        ([*LORA, "--fp16", "true", "--adapter_dtype", "bfloat16"], "fp16's grad scaler needs fp32 parameters"),
        (["--adapter_dtype", "bfloat16"], "adapter_dtype: bfloat16 is for LoRA (use_peft: true)"),
    ],
)
def test_adapter_dtype_that_cannot_work_is_refused_in_one_line(
    tiny_llama, make_recipe, settings, message, script_in_process
):
    result = script_in_process("sft.py", "--config", make_recipe(tiny_llama), *settings)
    assert_one_error_line(result, message)
