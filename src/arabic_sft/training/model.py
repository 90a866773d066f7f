"""The model as training sees it: loading arguments (QLoRA under ZeRO-3/FSDP), the dtype of the trained parameters,
4-bit layers kept differentiable on every CPU, and the loss TRL computes checked against the model's own."""

import logging
from dataclasses import replace

import torch
from transformers.loss.loss_utils import ForCausalLMLoss

from arabic_sft.runtime.errors import UserError


logger = logging.getLogger(__name__)


def model_loading(model_args, training_args) -> tuple[dict, object]:
    """(`from_pretrained` arguments, the `ModelConfig` to quantize with) from TRL's `ModelConfig`; SFTTrainer adds
    quantization and the device map.

    QLoRA under ZeRO-3 or FSDP shards the 4-bit weights, which both engines can do only when they are stored in the
    model's float dtype: `bnb_4bit_quant_storage` becomes `dtype` (a different value is refused), and the model is
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
        check_sharded_4bit_storage(model_args)
        model_args = replace(model_args, bnb_4bit_quant_storage=model_args.dtype)
        kwargs["device_map"] = None
    return kwargs, model_args


def check_sharded_4bit_storage(model_args) -> None:
    """4-bit weights that ZeRO-3 or FSDP will shard must be stored in the model's float dtype (`dtype`)."""
    if model_args.dtype in (None, "auto"):
        raise UserError(
            "QLoRA under ZeRO-3/FSDP needs an explicit `dtype` (e.g. bfloat16) to store the 4-bit weights in"
        )
    if model_args.bnb_4bit_quant_storage not in (None, model_args.dtype):
        raise UserError(
            f"bnb_4bit_quant_storage is {model_args.bnb_4bit_quant_storage} but dtype is {model_args.dtype}: "
            "ZeRO-3/FSDP can shard 4-bit weights only when both are the same"
        )


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
    return adapter_torch_dtype(adapter_dtype)


def adapter_torch_dtype(adapter_dtype: str) -> torch.dtype | None:
    """The torch dtype an `adapter_dtype` names; None for 'auto' (the dtype TRL and PEFT chose)."""
    return None if adapter_dtype == "auto" else getattr(torch, adapter_dtype)


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
