"""Tokenizer and model loading for local paths and Hub ids alike, and the trainer/model loss-parity check."""

import json
import logging
from dataclasses import fields
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
from transformers.loss.loss_utils import ForCausalLMLoss
from trl import ModelConfig, get_quantization_config

from arabic_sft.cli import UserError
from arabic_sft.hub import hub_is_reachable, is_local


logger = logging.getLogger(__name__)

UNPINNED_REVISIONS = {None, "", "main", "master"}


def check_model_source(name: str | None, revision: str | None, trust_remote_code: bool) -> None:
    """Fail fast, before any download, on a missing local model or unpinned remote code."""
    if not name:
        raise UserError("model_name_or_path is not set")
    local = is_local(name)
    if local and not Path(name).expanduser().is_dir():
        raise UserError(f"{name}: model directory not found")
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


def model_init_kwargs(model_args, training_args) -> dict:
    """`from_pretrained` arguments from TRL's `ModelConfig`; SFTTrainer adds quantization and the device map.

    QLoRA under ZeRO-3 or FSDP shards the 4-bit weights, which both engines can do only when they are stored in the
    model's float dtype: `bnb_4bit_quant_storage` is set to `dtype` (a different value is refused), and the model is
    loaded without a device map so that the engine places it.
    """
    kwargs = {
        "revision": model_args.model_revision,
        "trust_remote_code": training_args.trust_remote_code,
        "attn_implementation": model_args.attn_implementation,
        "dtype": model_args.dtype,
    }
    plugin = training_args.deepspeed_plugin
    sharded = (
        plugin is not None and plugin.zero_stage == 3
    ) or training_args.distributed_state.distributed_type == "FSDP"
    if model_args.load_in_4bit and sharded:
        if model_args.dtype in (None, "auto"):
            raise UserError(
                "QLoRA under ZeRO-3/FSDP needs an explicit `dtype` (e.g. bfloat16) to store the 4-bit weights in"
            )
        if model_args.bnb_4bit_quant_storage not in (None, model_args.dtype):
            raise UserError(
                f"bnb_4bit_quant_storage is {model_args.bnb_4bit_quant_storage} but dtype is {model_args.dtype}: "
                "ZeRO-3/FSDP can shard 4-bit weights only when both are the same"
            )
        model_args.bnb_4bit_quant_storage = model_args.dtype
        kwargs["device_map"] = None
    return kwargs


# The `adapter_dtype` choices: None keeps the dtype TRL and PEFT chose.
ADAPTER_DTYPES = {"auto": None, "bfloat16": torch.bfloat16, "float32": torch.float32}


def trainable_dtype(adapter_dtype: str, model_args, training_args) -> torch.dtype | None:
    """The dtype the trainable parameters must have before training, or None to keep what TRL/PEFT chose.

    fp16's gradient scaler unscales fp32 gradients only. TRL stores a quantized model's LoRA adapter in bf16, so the
    seed's QLoRA settings (4-bit, fp16) stop at the first optimizer step on a GPU ("_amp_foreach_non_finite_check_and_
    unscale_cuda" not implemented for 'BFloat16'): under fp16 (without DeepSpeed, which keeps its own fp32 master
    weights) the trainable parameters become fp32. That runs on GPUs without bf16 (T4, V100); `bf16: true` is faster
    where there is bf16. Otherwise `adapter_dtype` asks for bf16 or fp32 LoRA parameters explicitly.
    """
    deepspeed = training_args.deepspeed_plugin is not None
    if adapter_dtype != "auto":
        if not model_args.use_peft:
            raise UserError(
                f"adapter_dtype: {adapter_dtype} is for LoRA (use_peft: true); full fine-tuning trains the "
                "model's own dtype"
            )
        if deepspeed:
            raise UserError(
                f"adapter_dtype: {adapter_dtype} under DeepSpeed: leave it auto (DeepSpeed needs one dtype for all "
                "parameters under ZeRO-3, and keeps fp32 master weights itself)"
            )
    if training_args.fp16 and not deepspeed:
        if adapter_dtype == "bfloat16":
            raise UserError(
                "adapter_dtype: bfloat16 with fp16 mixed precision: fp16's grad scaler needs fp32 parameters "
                "(use bf16: true)"
            )
        return torch.float32
    return ADAPTER_DTYPES[adapter_dtype]


def check_padding_free(training_args) -> None:
    """Padding-free rows (TRL's `padding_free`, or packing with the 'bfd' strategies) isolate their sequences only
    through the mask transformers builds from the restarting position_ids in its own model classes; a remote-code
    model (Jais) builds its own mask and would let the sequences of a row attend to each other."""
    packed = training_args.padding_free or (
        training_args.packing and training_args.packing_strategy in ("bfd", "bfd_split")
    )
    if packed and training_args.trust_remote_code:
        raise UserError(
            "padding_free/packing with a remote-code model: its sequences would attend to each other "
            "(only transformers' own model classes isolate them); use padding_free: false"
        )


def keep_4bit_layers_differentiable(model) -> int:
    """Keep bitsandbytes' 4-bit layers on the same computation on every CPU: dequantize, then matmul in the compute
    dtype. Returns how many layers were set.

    On a CPU with AVX512-BF16, bitsandbytes repacks a 4-bit layer the first time it runs in eval mode without
    gradients (the loss-parity check, every evaluation) and computes it from then on, in training too, with an
    inference kernel in bf16 that autograd does not go through. A run would then train differently after its first
    evaluation, and differently from a CPU without AVX512-BF16. GPUs never take that path.
    """
    count = 0
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):  # bitsandbytes' Linear4bit
            module.support_avx512bf16_for_cpu = False
            count += 1
    return count


def cast_trainable(model, dtype: torch.dtype | None) -> int:
    """Cast the trainable parameters to `dtype` (before the optimizer is built from them); returns how many were cast.
    DoRA magnitude vectors stay as they are, as TRL leaves them: their updates can be too small for bf16."""
    cast = 0
    for name, parameter in model.named_parameters():
        if (
            dtype is not None
            and parameter.requires_grad
            and parameter.dtype != dtype
            and "lora_magnitude_vector" not in name
        ):
            parameter.data = parameter.data.to(dtype)
            cast += 1
    return cast


def causal_lm_loss_from_logits(outputs, labels, num_items_in_batch=None):
    """The standard next-token loss computed from the model's own logits (for `SFTTrainer(compute_loss_func=...)`).

    TRL's default loss projects hidden states through the LM head itself and never sees logits that a model scales
    in its own forward (Jais does, through its muP output multiplier); this loss uses the logits the model returns.
    """
    logits = outputs["logits"] if isinstance(outputs, dict) else outputs.logits
    return ForCausalLMLoss(logits, labels, vocab_size=logits.shape[-1], num_items_in_batch=num_items_in_batch)


def check_loss_parity(trainer, num_examples: int = 4, rtol: float = 1e-2) -> tuple[float, float] | None:
    """Compare, on one batch of training data, the trainer's loss with the model's own `model(**batch).loss`.

    Raises `UserError` when they differ by more than `rtol`: the trainer would optimise another objective than the
    model defines. Returns both losses, or None under ZeRO-3/FSDP, where the weights are already sharded and a
    forward outside the engine is impossible (the check is the same model code: run it once on one process).
    """
    from transformers.integrations.deepspeed import is_deepspeed_zero3_enabled

    if is_deepspeed_zero3_enabled() or trainer.is_fsdp_enabled:
        logger.warning(
            "loss parity check skipped: weights are sharded (ZeRO-3/FSDP); run once on one process to check"
        )
        return None
    dataset = trainer.train_dataset
    features = [
        {key: dataset[i][key] for key in ("input_ids", "labels")} for i in range(min(num_examples, len(dataset)))
    ]
    batch = trainer._prepare_inputs(trainer.data_collator(features))
    model = trainer.model
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            trainer_loss = trainer.compute_loss(model, dict(batch)).float().item()
            model_loss = model(**batch).loss.float().item()
    finally:
        model.train(was_training)
        # compute_loss records entropy/accuracy for the next eval log; this batch is not part of any eval.
        trainer._metrics["eval"].clear()
    if abs(trainer_loss - model_loss) > rtol * max(abs(model_loss), 1e-8):
        raise UserError(
            f"loss parity check failed: the trainer's loss is {trainer_loss:.4f} but the model's own loss is "
            f"{model_loss:.4f} on the same batch; the model computes its logits in a way TRL's fused loss does not "
            "see (e.g. a logit scale in remote code). Set `loss_from_logits: true` in the recipe"
        )
    logger.info("loss parity check passed: trainer %.4f, model %.4f", trainer_loss, model_loss)
    return trainer_loss, model_loss


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
):
    """(model, tokenizer) ready to generate, on `device` (default: the GPU when there is one): a full model directory
    or Hub id, or a base model plus a LoRA adapter (merged, so that generation pays no adapter cost per token).
    `device_map="auto"` instead spreads a model too large for one GPU over every GPU this process sees.

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
    model = load_model(base_id, revision, trust_remote_code, dtype, adapter_dir, device_map=device_map)
    if device_map is not None:
        return model.eval(), tokenizer
    return model.to(device or ("cuda" if cuda else "cpu")).eval(), tokenizer


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
    manifest = Path(adapter_dir) / "run_manifest.json"
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
