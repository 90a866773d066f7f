"""Batched generation: length-sorted, left-padded batches, results returned in input order."""

from collections.abc import Iterator, Sequence

import torch
from tqdm.auto import tqdm


def _batches(order: list[int], size: int) -> Iterator[list[int]]:
    for start in range(0, len(order), size):
        yield order[start : start + size]


@torch.no_grad()
def generate_texts(
    model,
    tokenizer,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int = 256,
    batch_size: int = 8,
    temperature: float = 0.0,
    top_p: float = 1.0,
    progress: bool = False,
) -> list[str]:
    """Generate a completion for each tokenized prompt; returns only the new text, stripped, in input order.

    Prompts are sorted by length so that each batch pads little, and left-padded so that every row's new tokens
    start at the same column. Greedy when `temperature` is 0, else sampling (seed it with `transformers.set_seed`).
    Each row stops at the tokenizer's EOS.
    """
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    sampling = temperature > 0
    options = {"do_sample": sampling, "temperature": temperature, "top_p": top_p} if sampling else {"do_sample": False}
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]), reverse=True)
    results: list[str | None] = [None] * len(prompts)
    bar = tqdm(total=len(prompts), unit="ex", desc="generating", disable=not progress)
    for batch in _batches(order, batch_size):
        width = max(len(prompts[i]) for i in batch)
        input_ids = torch.tensor([[pad_id] * (width - len(prompts[i])) + list(prompts[i]) for i in batch])
        attention_mask = torch.tensor([[0] * (width - len(prompts[i])) + [1] * len(prompts[i]) for i in batch])
        output = model.generate(
            input_ids=input_ids.to(model.device),
            attention_mask=attention_mask.to(model.device),
            max_new_tokens=max_new_tokens,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=pad_id,
            **options,
        )
        texts = tokenizer.batch_decode(output[:, width:], skip_special_tokens=True)
        for index, text in zip(batch, texts):
            results[index] = text.strip()
        bar.update(len(batch))
    bar.close()
    return results
