"""Tokenizer and model loading, for local paths and Hub ids alike: what training, generation and merging load."""

import json
import logging
from dataclasses import fields
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import ModelConfig, get_quantization_config

from arabic_sft.runs import MANIFEST
from arabic_sft.runtime.errors import UserError
from arabic_sft.runtime.hub import hub_is_reachable, is_local


logger = logging.getLogger(__name__)


UNPINNED_REVISIONS = {None, "", "main", "master"}


def check_model_source(name: str | None, revision: str | None, trust_remote_code: bool) -> None:
    """Fail fast, before any download, on a missing local model or unpinned remote code."""
    if not name:
        raise UserError("model_name_or_path is not set")
    local = is_local(name)
    if local and not Path(name).expanduser().is_dir():
        raise UserError(f"{name}: no such directory (a local model path; a Hub model id looks like org/name)")
    if trust_remote_code and not local and revision in UNPINNED_REVISIONS:
        raise UserError(
            f"{name}: trust_remote_code runs code from the Hub, so the recipe must pin `model_revision` to a commit "
            f"(find it with: python -c \"import huggingface_hub as h; print(h.model_info('{name}').sha)\")"
        )
    if not local:
        hub_is_reachable()  # once; offline, a model that is not cached fails at once instead of after retries


def get_tokenizer(name: str, revision: str | None = None, trust_remote_code: bool = False):
    """The tokenizer (with its chat template, if any) of a local model directory or a Hub id."""
    check_model_source(name, revision, trust_remote_code)
    try:
        return AutoTokenizer.from_pretrained(name, revision=revision, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as error:
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise UserError(f"{name}: cannot load the tokenizer ({reason})") from None


def context_length(model) -> int | None:
    """The longest sequence the model's positions cover (prompt + new tokens), when its config says."""
    return getattr(model.config, "max_position_embeddings", None)


def load_for_generation(
    model_dir: str | None = None,
    base_id: str | None = None,
    adapter_dir: str | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    device: str | torch.device | None = None,
    device_map: str | None = None,
    load_in_4bit: bool = False,
):
    """(model, tokenizer) ready to generate, on `device` (default: the GPU when there is one): a full model directory
    or Hub id, or a base model plus a LoRA adapter (merged, so that generation pays no adapter cost per token).
    `device_map="auto"` instead spreads a model too large for one GPU over every GPU this process sees.
    `load_in_4bit` loads the base in 4 bits (QLoRA's nf4 with double quantization), its adapter applied unmerged.

    A `model_dir` that holds an adapter is loaded on the base model its adapter_config.json names.
    """
    if adapter_dir is None and model_dir and (Path(model_dir) / "adapter_config.json").is_file():
        adapter_dir = model_dir
        base_id = base_id or adapter_base(model_dir)
    elif adapter_dir is None:
        base_id = model_dir or base_id  # a full model: --checkpoint_dir, or --base_id alone
    if adapter_dir is not None and not Path(adapter_dir).is_dir():
        raise UserError(f"{adapter_dir}: adapter directory not found")
    tokenizer = model_tokenizer(base_id, adapter_dir, revision, trust_remote_code)

    cuda = torch.cuda.is_available()
    dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float32
    if load_in_4bit:
        return load_4bit(base_id, revision, trust_remote_code, dtype, adapter_dir, device), tokenizer
    model = load_model(base_id, revision, trust_remote_code, dtype, adapter_dir, device_map=device_map)
    if device_map is not None:
        return model.eval(), tokenizer
    return model.to(device or ("cuda" if cuda else "cpu")).eval(), tokenizer


def load_4bit(base_id: str, revision, trust_remote_code: bool, dtype, adapter_dir, device) -> torch.nn.Module:
    """The base model in 4 bits (nf4, double quantization, as QLoRA trains; TRL's bitsandbytes config) on `device`,
    with its adapter applied unmerged: merging into 4-bit weights would round the adapter's update away."""
    settings = ModelConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", use_bnb_nested_quant=True, dtype=dtype)
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    placement = {"": device.index or 0} if device.type == "cuda" else {"": "cpu"}
    options = {"revision": revision, "trust_remote_code": trust_remote_code, "dtype": dtype}
    try:
        model = AutoModelForCausalLM.from_pretrained(
            base_id, quantization_config=get_quantization_config(settings), device_map=placement, **options
        )
    except (OSError, ValueError) as error:
        raise UserError(f"{base_id}: cannot load the model in 4 bits ({str(error).strip().splitlines()[0]})") from None
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir))
    return model.eval()


def adapter_base(adapter_dir: str | Path) -> str:
    """The base model id or path an adapter's adapter_config.json names."""
    return json.loads((Path(adapter_dir) / "adapter_config.json").read_text())["base_model_name_or_path"]


def model_tokenizer(base_id: str, adapter_dir: str | Path | None, revision: str | None, trust_remote_code: bool):
    """The tokenizer of a base model (+ adapter): the adapter's own when it has one (sft.py saves it, with the chat
    template it trained on), else the base's. The base is checked (exists, pinned if remote code) either way."""
    if adapter_dir is not None and (Path(adapter_dir) / "tokenizer_config.json").is_file():
        check_model_source(base_id, revision, trust_remote_code)
        return get_tokenizer(str(adapter_dir))
    return get_tokenizer(base_id, revision, trust_remote_code)


def training_quantization(adapter_dir: str | Path):
    """The bitsandbytes config an adapter was trained on (from the run_manifest.json sft.py saves beside it), or
    None for an adapter trained on full-precision weights or without a manifest."""
    manifest = Path(adapter_dir) / MANIFEST
    if not manifest.is_file():
        return None
    settings = json.loads(manifest.read_text(encoding="utf-8"))["config"].get("model", {})
    if not (settings.get("load_in_4bit") or settings.get("load_in_8bit")):
        return None
    names = {item.name for item in fields(ModelConfig)}
    return get_quantization_config(ModelConfig(**{key: value for key, value in settings.items() if key in names}))


def load_model(
    base_id: str,
    revision: str | None,
    trust_remote_code: bool,
    dtype: torch.dtype,
    adapter_dir: str | Path | None = None,
    dequantize: bool = True,
    device_map: str | None = None,
):
    """A base model with, when given, its LoRA adapter merged in.

    An adapter trained on a 4-bit (QLoRA) base is merged into that same base, loaded in 4 bits as in training and
    dequantized, so that the merged weights are the ones the adapter learnt against (`dequantize=False` merges into
    the original full-precision weights instead).
    """
    quantization = training_quantization(adapter_dir) if adapter_dir is not None and dequantize else None
    options = {"revision": revision, "trust_remote_code": trust_remote_code, "dtype": dtype}
    if device_map is not None:
        options["device_map"] = device_map
    if quantization is not None:
        options.update(quantization_config=quantization, device_map={"": 0} if torch.cuda.is_available() else None)
    try:
        model = AutoModelForCausalLM.from_pretrained(base_id, **options)
    except (OSError, ValueError) as error:
        raise UserError(f"{base_id}: cannot load the model ({str(error).strip().splitlines()[0]})") from None
    if quantization is not None:
        logger.info(
            "dequantizing the %s base the adapter was trained on", "4-bit" if quantization.load_in_4bit else "8-bit"
        )
        model = model.dequantize().to(dtype)
    if adapter_dir is not None:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter_dir)).merge_and_unload()
    return model
