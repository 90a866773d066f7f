"""The project's accelerate configs on this CPU machine: DDP (gloo) and DeepSpeed ZeRO-2/3, each with two
processes, train the tiny model like one plain process with the same global batch, and what they save loads with
from_pretrained.

What must change for a CPU is passed as launch overrides (`--num_processes`, `--mixed_precision no`), never a copy of
the config files."""

import json
from pathlib import Path

import pytest
import torch
from helpers import cpu_recipe, launch, run_here, run_script
from transformers import AutoModelForCausalLM


pytestmark = pytest.mark.slow  # make test-fast skips this file


def recipe(path: Path, model: Path, output_dir: Path, batch_size: int) -> Path:
    return cpu_recipe(path, model, output_dir=str(output_dir), num_train_epochs=2,
                      per_device_train_batch_size=batch_size, learning_rate=1e-3, logging_steps=1, seed=0)  # fmt: skip


def losses(output_dir: Path) -> list[float]:
    state = json.loads((output_dir / "trainer_state.json").read_text(encoding="utf-8"))
    return [entry["loss"] for entry in state["log_history"] if "loss" in entry]


def weights(output_dir: Path) -> dict[str, torch.Tensor]:
    return {
        name: value.float() for name, value in AutoModelForCausalLM.from_pretrained(output_dir).state_dict().items()
    }


@pytest.fixture(scope="module")
def single_process(tiny_llama, tmp_path_factory):
    """The reference: one plain process, 4 examples a step (the global batch of every launch below)."""
    work = tmp_path_factory.mktemp("single")
    assert (
        run_here("sft.py", "--config", recipe(work / "r.yaml", tiny_llama, work / "out", batch_size=4)).returncode == 0
    )
    return work / "out"


def assert_same_training(output_dir: Path, reference: Path):
    assert losses(output_dir) == pytest.approx(losses(reference), rel=1e-4)
    trained, expected = weights(output_dir), weights(reference)
    assert trained.keys() == expected.keys()
    for name in expected:
        torch.testing.assert_close(trained[name], expected[name], rtol=1e-4, atol=1e-5, msg=name)


@pytest.mark.parametrize(
    "config, distributed_type",
    # fsdp.yaml is not here: on a CPU, accelerate turns an FSDP launch into plain multi-CPU data parallel.
    [("ddp", "MULTI_CPU"), ("zero2", "DEEPSPEED"), ("zero3", "DEEPSPEED")],
)
def test_two_processes_train_like_one_with_the_same_global_batch(
    config, distributed_type, tiny_llama, single_process, tmp_path
):
    result = launch(config, 2, recipe(tmp_path / "r.yaml", tiny_llama, tmp_path / "out", batch_size=2))
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((tmp_path / "out" / "run_manifest.json").read_text(encoding="utf-8"))
    assert manifest["config"]["launch"] == {
        "num_processes": 2,
        "distributed_type": distributed_type,
        "global_batch_size": 4,
    }
    assert result.stdout.count("{'loss':") == 6  # 12 examples / 4 a step x 2 epochs: both ranks took their half
    assert_same_training(tmp_path / "out", single_process)  # and the saved model loads with from_pretrained


QLORA = [
    "--load_in_4bit",
    "true",
    "--bnb_4bit_quant_type",
    "nf4",
    "--use_bnb_nested_quant",
    "true",
    "--use_peft",
    "true",
    "--lora_target_modules",
    "all-linear",
    "--dtype",
    "float32",
]


def test_qlora_under_zero3_stores_4bit_weights_in_the_dtype_and_trains_like_one_process(
    tiny_llama, tmp_path, script_in_process
):
    single = script_in_process(
        "sft.py", "--config", recipe(tmp_path / "one.yaml", tiny_llama, tmp_path / "one", 4), *QLORA
    )
    assert single.returncode == 0, single.stderr[-3000:]
    sharded = launch("zero3", 2, recipe(tmp_path / "two.yaml", tiny_llama, tmp_path / "two", 2), *QLORA)
    assert sharded.returncode == 0, sharded.stderr[-3000:]
    manifest = json.loads((tmp_path / "two" / "run_manifest.json").read_text(encoding="utf-8"))
    assert manifest["config"]["model"]["bnb_4bit_quant_storage"] == "float32"  # set from dtype for ZeRO-3
    assert (tmp_path / "two" / "adapter_model.safetensors").is_file()
    assert losses(tmp_path / "two") == pytest.approx(losses(tmp_path / "one"), rel=1e-3)
    merged = run_script("merge_adapter.py", "--adapter_dir", tmp_path / "two", "--out", tmp_path / "merged")
    assert merged.returncode == 0, merged.stderr[-3000:]
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "merged").num_parameters() > 0


def test_qlora_under_zero3_stores_4bit_weights_in_the_dtype_returning_a_new_model_config():
    from types import SimpleNamespace

    from trl import ModelConfig

    from arabic_sft.runtime.errors import UserError
    from arabic_sft.training.model import model_loading

    zero3 = SimpleNamespace(
        deepspeed_plugin=SimpleNamespace(zero_stage=3),
        distributed_state=SimpleNamespace(distributed_type="DEEPSPEED"),
        trust_remote_code=False,
    )
    model = ModelConfig(model_name_or_path="m", load_in_4bit=True, dtype="float32")
    kwargs, used = model_loading(model, zero3)
    assert used.bnb_4bit_quant_storage == "float32" and kwargs["device_map"] is None
    assert model.bnb_4bit_quant_storage is None  # the recipe's own config is left as it is
    with pytest.raises(UserError, match="bnb_4bit_quant_storage is uint8 but dtype is float32"):
        model_loading(ModelConfig(model_name_or_path="m", load_in_4bit=True, dtype="float32",
                                  bnb_4bit_quant_storage="uint8"), zero3)  # fmt: skip
