"""The seed's QLoRA precision (4-bit, fp16 mixed precision) runs: the adapter is kept in fp32, which fp16's gradient
scaler needs (on a GPU, TRL's bf16 adapter stops at the first optimizer step). CPU cannot show the crash itself,
only that the adapter is trained and saved in fp32 under fp16 and left as TRL stores it otherwise."""

import pytest
from safetensors import safe_open

from conftest import run_script

QLORA = ["--load_in_4bit", "true", "--bnb_4bit_quant_type", "nf4", "--use_bnb_nested_quant", "true",
         "--use_peft", "true", "--lora_target_modules", "all-linear", "--max_steps", "2"]


def adapter_dtypes(directory) -> set[str]:
    with safe_open(str(directory / "adapter_model.safetensors"), framework="pt") as handle:
        return {str(handle.get_tensor(name).dtype) for name in handle.keys()}


@pytest.mark.parametrize("precision, expected", [
    (["--fp16", "true", "--dtype", "float16"], {"torch.float32"}),  # the seed's settings: adapter cast to fp32
    (["--dtype", "float32"], {"torch.bfloat16"}),  # no fp16: TRL's QLoRA adapter dtype, untouched
])
def test_qlora_adapter_is_fp32_under_fp16(tiny_llama, make_recipe, tmp_path, precision, expected):
    result = run_script("sft.py", "--config", make_recipe(tiny_llama), *QLORA, *precision)
    assert result.returncode == 0, result.stderr[-3000:]
    assert adapter_dtypes(tmp_path / "out") == expected
    assert ("kept in fp32" in result.stdout + result.stderr) == (expected == {"torch.float32"})
