"""Supervised fine-tuning of a causal LM on Arabic question/answer data (any format a recipe names), with answer-only
loss (TRL SFTTrainer).

Usage:

    # one GPU, or CPU for the tiny demo model
    python scripts/sft.py --config recipes/demo.yaml

    # several GPUs with DeepSpeed ZeRO-2
    accelerate launch --config_file accelerate_configs/zero2.yaml scripts/sft.py --config recipes/allam_proverbs.yaml

    # any recipe field can be overridden on the command line
    python scripts/sft.py --config recipes/demo.yaml --num_train_epochs 1 --output_dir /tmp/run

    # show which tokens are masked and which are trained, then exit
    python scripts/sft.py --config recipes/demo.yaml --inspect 3 --inspect_json examples.json

Without --config, the recipe named by $RECIPE (recipes/$RECIPE.yaml) runs.
"""

import arabic_sft  # noqa: F401  (first: silences third-party import-time noise)


# isort: split

import logging
import os
import sys

import datasets
import transformers
from trl import SFTTrainer, get_peft_config, get_quantization_config

from arabic_sft.checkpoints import MANIFEST, clear_previous_run, finished_run, resolve_resume_checkpoint
from arabic_sft.cli import UserError, run_cli
from arabic_sft.configs import parse_recipe
from arabic_sft.data import load_training_splits
from arabic_sft.eval_generation import attach as attach_generation_metrics
from arabic_sft.eval_generation import check_best_metric
from arabic_sft.launch import check_in_process
from arabic_sft.locks import exclusive_output
from arabic_sft.manifest import build_manifest, now, write_json_atomic
from arabic_sft.masks import describe_examples, format_example
from arabic_sft.models import (
    cast_trainable,
    causal_lm_loss_from_logits,
    check_loss_parity,
    check_padding_free,
    get_tokenizer,
    keep_4bit_layers_differentiable,
    model_init_kwargs,
    trainable_dtype,
)
from arabic_sft.preemption import EXIT_STOPPED, SaveAndStopOnSigterm
from arabic_sft.prompts import build_dataset, check_assistant_masks, is_conversational
from arabic_sft.report import plot_loss_curve
from arabic_sft.truncation import apply_truncation_policy


logger = logging.getLogger(__name__)


def main(recipe_args, training_args, model_args):
    started = now()
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s", handlers=[logging.StreamHandler(sys.stdout)]
    )
    log_level = training_args.get_process_log_level()
    logger.setLevel(log_level)
    datasets.utils.logging.set_verbosity(log_level)
    # TRL's eight dataset-preparation bars per run; one line below says what was prepared
    datasets.disable_progress_bars()
    transformers.utils.logging.set_verbosity(log_level)
    main_process = training_args.process_index == 0
    say = print if main_process else (lambda line: None)  # lines every process would print: once
    logging.getLogger("arabic_sft").setLevel(log_level if main_process else logging.ERROR)  # data warnings: once
    output_dir = training_args.output_dir

    # A finished run is left as it is; only an unfinished one resumes (or one asked to start again).
    if not recipe_args.inspect and not recipe_args.overwrite_output_dir and (finished := finished_run(output_dir)):
        if main_process:
            print(
                f"{output_dir}: this run finished ({finished}); nothing to do. To train again from scratch pass "
                "--overwrite_output_dir true, or choose another --output_dir"
            )
        return
    if recipe_args.overwrite_output_dir and training_args.resume_from_checkpoint:
        raise UserError("overwrite_output_dir and resume_from_checkpoint: give one of them")
    check_best_metric(training_args.metric_for_best_model, recipe_args.eval_generation_examples)

    # Data and prompt first: bad input fails in seconds, before any model is downloaded or loaded.
    splits, spec, held_out = load_training_splits(recipe_args, training_args.seed)
    tokenizer = get_tokenizer(
        model_args.model_name_or_path, model_args.model_revision, training_args.trust_remote_code
    )
    conversational = is_conversational(tokenizer, recipe_args.chat_format, spec)
    if spec.kind == "messages":  # every assistant turn is trained, the rest masked
        training_args.assistant_only_loss = check_assistant_masks(tokenizer)
    dataset = {name: build_dataset(frame, spec, conversational) for name, frame in splits.items()}
    dataset = apply_truncation_policy(
        tokenizer,
        dataset,
        None if training_args.packing else training_args.max_length,
        recipe_args.truncation,
        log=say,
    )

    training_args.model_init_kwargs = model_init_kwargs(model_args, training_args)
    dtype = trainable_dtype(recipe_args.adapter_dtype, model_args, training_args)  # checked before the model loads
    check_padding_free(training_args)
    trainer = SFTTrainer(
        model=model_args.model_name_or_path,
        args=training_args,
        train_dataset=dataset["train"],
        eval_dataset=dataset.get("validation") if training_args.eval_strategy != "no" else None,
        processing_class=tokenizer,
        compute_loss_func=causal_lm_loss_from_logits if recipe_args.loss_from_logits else None,
        quantization_config=get_quantization_config(model_args),
        peft_config=get_peft_config(model_args),
    )

    keep_4bit_layers_differentiable(trainer.model)
    attach_generation_metrics(
        trainer,
        splits.get("validation"),
        spec,
        conversational,
        recipe_args.eval_generation_examples,
        recipe_args.eval_generation_max_new_tokens,
        recipe_args.eval_generation_batch_size,
        training_args.seed,
        log=say,
    )
    if main_process:
        sizes = ", ".join(f"{len(examples)} {name}" for name, examples in dataset.items())
        print(f"data: {sizes} examples, {'chat' if conversational else 'plain'} prompts, tokenized")
    if cast := cast_trainable(trainer.model, dtype):
        reason = (
            "fp16's grad scaler needs fp32; `bf16: true` is faster where the GPU has bf16"
            if training_args.fp16
            else "adapter_dtype"
        )
        logger.warning(
            "%d trainable parameter tensors kept in %s (%s)", cast, str(dtype).removeprefix("torch."), reason
        )

    if recipe_args.inspect:
        examples = describe_examples(trainer, recipe_args.inspect)
        for number, example in enumerate(examples, 1):
            print(format_example(number, example))
        if recipe_args.inspect_json:
            write_json_atomic(recipe_args.inspect_json, examples)
            print(f"wrote {len(examples)} examples to {recipe_args.inspect_json}")
        return

    if recipe_args.check_loss_parity and (losses := check_loss_parity(trainer)) and main_process:
        print(
            "loss parity check passed: the trainer's loss {:.4f} = the model's own {:.4f} on one batch".format(*losses)
        )

    if recipe_args.overwrite_output_dir:
        checkpoint = None
        if main_process and (removed := clear_previous_run(output_dir)):
            print(f"{output_dir}: removed the previous run's {', '.join(removed)} (overwrite_output_dir)")
        trainer.accelerator.wait_for_everyone()
    else:
        checkpoint = resolve_resume_checkpoint(training_args.resume_from_checkpoint, output_dir)
    if checkpoint is not None and main_process:
        print(f"resuming from {checkpoint}")
    stop = SaveAndStopOnSigterm(trainer.accelerator)
    trainer.add_callback(stop)
    result = trainer.train(resume_from_checkpoint=checkpoint)
    if stop.stopped_at is not None:
        if main_process:
            print(
                f"stopped by SIGTERM after step {stop.stopped_at}: {output_dir}/checkpoint-{stop.stopped_at} saved; "
                "the same command resumes from it",
                file=sys.stderr,
            )
        sys.exit(EXIT_STOPPED)
    trainer.log_metrics("train", result.metrics)
    trainer.save_metrics("train", result.metrics)
    trainer.save_state()

    # Generation stops at the tokenizer's EOS, the token every training completion ends with.
    trainer.model.generation_config.eos_token_id = tokenizer.eos_token_id
    trainer.save_model(output_dir)
    if main_process:
        launch = {
            "num_processes": trainer.accelerator.num_processes,
            "distributed_type": trainer.accelerator.distributed_type.value,
            "global_batch_size": training_args.per_device_train_batch_size
            * trainer.accelerator.num_processes
            * training_args.gradient_accumulation_steps,
        }
        data = {
            "kind": spec.kind,
            "examples": {name: len(examples) for name, examples in dataset.items()},
            "held_out": held_out,
        }  # the rows generation uses for a fraction split
        configs = {
            "recipe": recipe_args,
            "model": model_args,
            "training": training_args,
            "launch": launch,
            "data": data,
        }
        files = [recipe_args.train_file, recipe_args.validation_file, recipe_args.test_file]
        plot_loss_curve(trainer.state.log_history, os.path.join(output_dir, "loss.png"))
        # Last: the manifest marks the run finished (a rerun then changes nothing).
        write_json_atomic(os.path.join(output_dir, MANIFEST), build_manifest(configs, files, started))
        print(f"saved the trained {'adapter' if model_args.use_peft else 'model'} to {output_dir}")
    trainer.accelerator.wait_for_everyone()


def cli():
    check_in_process()  # what SFTConfig would refuse in every process of a launch, said once
    recipe_args, training_args, model_args = parse_recipe()
    # One training per output_dir: the main process holds its lock for the whole run (--inspect writes nothing there).
    with exclusive_output(
        training_args.output_dir, enabled=training_args.process_index == 0 and not recipe_args.inspect
    ):
        main(recipe_args, training_args, model_args)


if __name__ == "__main__":
    run_cli(cli)
