"""Generation metrics during training: at each evaluation, answers are generated for a fixed subset of validation rows
(the project's batched generator, the training prompt builder) and scored with the fast metrics, beside the eval loss.
`metric_for_best_model: eval_rougeL` then keeps the checkpoint whose answers score best, not the one with the lowest
loss."""

import json
import time
from pathlib import Path

import numpy as np
from accelerate.utils import gather_object
from transformers import TrainerCallback

from arabic_sft.generation.batched import generate_texts
from arabic_sft.runtime.manifest import atomic_path
from arabic_sft.scoring import metrics as scores


GENERATION_METRICS = ("eval_bleu4", "eval_rougeL", "eval_chrf", "eval_arabic_ratio", "eval_empty_rate")


def fixed_subset(num_rows: int, size: int, seed: int) -> list[int]:
    """The same `size` validation rows at every evaluation (and on a rerun): a seeded sample, in file order."""
    if size >= num_rows:
        return list(range(num_rows))
    return sorted(int(i) for i in np.random.RandomState(seed).choice(num_rows, size=size, replace=False))


def generation_metrics(predictions: list[str], references: list[str]) -> dict[str, float]:
    """The fast metrics (no embedding model): BLEU-4, ROUGE-L (Arabic-aware tokens), chrF++ (corpus, 0-100), the
    Arabic share of letters and the share of empty answers."""
    per_example = scores.text_scores(predictions, references)
    summary = scores.summarize(per_example)
    corpus, _ = scores.corpus_scores(predictions, references)
    return {
        "eval_bleu4": summary["bleu4"],
        "eval_rougeL": summary["rougeL"],
        "eval_chrf": corpus["chrf"],
        "eval_arabic_ratio": summary["arabic_ratio"] if summary["arabic_ratio"] is not None else 0.0,
        "eval_empty_rate": summary["empty_rate"],
    }


class GenerationMetricsCallback(TrainerCallback):
    """Adds the generation metrics to each evaluation's metrics (so that `metric_for_best_model` can use them) and
    logs them (log history, TensorBoard) with the seconds the generation took; writes the answers of each evaluation
    to `output_dir/eval_generations/step-N.jsonl`. Every process generates a disjoint share of the rows (DDP, ZeRO-2);
    the answers are gathered on every process, so all of them compute the same metrics."""

    def __init__(
        self,
        trainer,
        prompts: list[list[int]],
        references: list[str],
        inputs: list[dict],
        max_new_tokens: int,
        batch_size: int,
    ):
        self.trainer, self.prompts, self.references, self.inputs = trainer, prompts, references, inputs
        self.max_new_tokens, self.batch_size = max_new_tokens, batch_size

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        started = time.perf_counter()
        accelerator = self.trainer.accelerator
        model = accelerator.unwrap_model(self.trainer.model)
        was_training = model.training
        model.eval()
        share = list(range(accelerator.process_index, len(self.prompts), accelerator.num_processes))
        texts = generate_texts(
            model,
            self.trainer.processing_class,
            [self.prompts[i] for i in share],
            max_new_tokens=self.max_new_tokens,
            batch_size=self.batch_size,
        )
        if was_training:
            model.train()
        generated = dict(
            gather_object(list(zip(share, texts))) if accelerator.num_processes > 1 else zip(share, texts)
        )
        predictions = [generated[i] for i in range(len(self.prompts))]
        results = generation_metrics(predictions, self.references)
        results["eval_generation_seconds"] = round(time.perf_counter() - started, 3)
        if metrics is not None:
            metrics.update(results)  # the dict the trainer then reads metric_for_best_model from
        self.trainer.log(results)
        if state.is_world_process_zero:
            path = Path(args.output_dir) / "eval_generations" / f"step-{state.global_step}.jsonl"
            path.parent.mkdir(parents=True, exist_ok=True)
            lines = [
                json.dumps(
                    {"step": state.global_step, **row, "reference": reference, "generated": prediction},
                    ensure_ascii=False,
                )
                for row, reference, prediction in zip(self.inputs, self.references, predictions)
            ]
            with atomic_path(path) as temporary:
                temporary.write_text("\n".join(lines) + "\n", encoding="utf-8")


def check_best_metric(metric: str | None, examples: int) -> None:
    """`metric_for_best_model: eval_rougeL` (or another generation metric) needs the callback on."""
    from arabic_sft.runtime.errors import UserError

    name = metric if metric is None or metric.startswith("eval_") else f"eval_{metric}"
    if name in GENERATION_METRICS and not examples:
        raise UserError(
            f"metric_for_best_model {metric} is a generation metric: set eval_generation_examples (e.g. 32)"
        )


def attach(
    trainer,
    frame,
    spec,
    conversational: bool,
    examples: int,
    max_new_tokens: int,
    batch_size: int,
    seed: int,
    log=print,
) -> GenerationMetricsCallback | None:
    """Add the callback to `trainer` for `examples` rows of the validation `frame`; None (with one line saying why)
    when it cannot run: no evaluation, or parameters sharded across processes (ZeRO-3, FSDP), where generation
    would need every rank in each forward."""
    from arabic_sft.prompts.builder import build_model_prompt, prompt_token_ids, reference_answer
    from arabic_sft.runtime.errors import UserError

    if not examples:
        return None
    args = trainer.args
    reason = None
    if frame is None or args.eval_strategy == "no":
        reason = "the run has no evaluation (validation data and eval_strategy)"
    elif trainer.is_fsdp_enabled or (
        trainer.is_deepspeed_enabled and trainer.accelerator.state.deepspeed_plugin.zero_stage == 3
    ):
        reason = "parameters are sharded across processes (ZeRO-3/FSDP), so one process cannot generate alone"
    if reason:
        if args.metric_for_best_model in GENERATION_METRICS:
            raise UserError(
                f"metric_for_best_model {args.metric_for_best_model}: generation metrics are off: {reason}"
            )
        log(f"eval_generation_examples {examples}: off, {reason}")
        return None
    rows = frame.iloc[fixed_subset(len(frame), examples, seed)].to_dict("records")
    tokenizer = trainer.processing_class
    prompts = [prompt_token_ids(tokenizer, build_model_prompt(row, spec, conversational)) for row in rows]
    inputs = [{name: row[name] for name in spec.inputs} for row in rows]
    callback = GenerationMetricsCallback(
        trainer, prompts, [reference_answer(row, spec) for row in rows], inputs, max_new_tokens, batch_size
    )
    trainer.add_callback(callback)
    return callback
