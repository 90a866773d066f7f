"""Batched generation: length-sorted, left-padded batches, results returned in input order."""

import logging
from collections.abc import Collection, Iterator, Sequence

import torch
from transformers import set_seed


logger = logging.getLogger(__name__)


def length_sorted_batches(prompts: Sequence[Sequence[int]], batch_size: int) -> list[list[int]]:
    """Indices of `prompts`, longest first, cut into batches, so that each batch pads little.

    The batches depend only on the prompts, so a resumed run forms the same batches as an uninterrupted one.
    """
    order = sorted(range(len(prompts)), key=lambda i: (-len(prompts[i]), i))
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def deal_batches(prompts: Sequence[Sequence[int]], batch_size: int, done: Collection[int], state) -> set[int]:
    """The numbers of the `length_sorted_batches` this process makes: those with a row not in `done`, dealt out to
    the processes in turn (`state`: accelerate's `PartialState`), each process a disjoint share. Every process
    decides from the `done` it read, so all must read before any writes: this waits for every process (after their
    reads, before their writes) and returns."""
    pending = [
        number
        for number, batch in enumerate(length_sorted_batches(prompts, batch_size))
        if not all(index in done for index in batch)
    ]
    state.wait_for_everyone()
    return set(pending[state.process_index :: state.num_processes])


def decoding_options(tokenizer, max_new_tokens: int, temperature: float, top_p: float) -> dict:
    """`generate`'s decoding arguments: greedy when `temperature` is 0, else sampling; up to EOS or max_new_tokens."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    sampling = temperature > 0
    options = {"do_sample": True, "temperature": temperature, "top_p": top_p} if sampling else {"do_sample": False}
    options.update(max_new_tokens=max_new_tokens, eos_token_id=tokenizer.eos_token_id, pad_token_id=pad_id)
    return options


def new_text(tokenizer, new_ids) -> str:
    """The answer in a row of new token ids: decoded without special tokens (EOS, padding), and nothing else done to
    it, whitespace included: the text every runtime gives (transformers serve, llama.cpp, an endpoint), so that each
    path answers the same; scoring strips it (`scoring.predictions`)."""
    return tokenizer.decode(new_ids, skip_special_tokens=True)


def new_token_counts(rows: list[list[int]], eos_token_id: int | None) -> list[int]:
    """Each row's number of new tokens, up to and including its first EOS."""
    return [row.index(eos_token_id) + 1 if eos_token_id in row else len(row) for row in rows]


@torch.no_grad()
def iter_generations(
    model,
    tokenizer,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int = 256,
    batch_size: int = 8,
    temperature: float = 0.0,
    top_p: float = 1.0,
    seed: int = 0,
    skip: Collection[int] = (),
    static_cache: bool = False,
    token_counts: dict[int, int] | None = None,
    take: Collection[int] | None = None,
) -> Iterator[list[tuple[int, str]]]:
    """Generate for each tokenized prompt, yielding `(index, text)` pairs one batch at a time.

    Left padding puts every row's new tokens in the same columns; only the new text is returned, stripped, up to the
    tokenizer's EOS. Greedy when `temperature` is 0, else sampling seeded per batch (`seed` + the batch's number),
    so that a resumed run samples what an uninterrupted one would. Batches whose indices are all in `skip` (done in
    an earlier run) are not generated again.

    `static_cache` preallocates the KV cache (transformers' static cache) instead of growing it token by token; on a
    GPU, transformers then compiles the decoding step with `torch.compile` (first batch slow, later ones fast). The
    longest batch comes first, so its cache size serves every later batch without a recompile.

    `token_counts`, if given, receives each prompt's number of new tokens (up to and including EOS), for benchmarks.
    `take`, if given, names the batches (by number in `length_sorted_batches`) this process generates: the others are
    another process's share. Batch numbers are global, so sampling seeds do not depend on the number of processes.
    """
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    sampling = temperature > 0
    options = decoding_options(tokenizer, max_new_tokens, temperature, top_p)
    if static_cache:
        options["cache_implementation"] = "static"

    def generate(batch: list[int]) -> list[tuple[int, str]]:
        # A batch that does not fit in memory is generated in halves: --batch_size can be the largest that might fit.
        width = max(len(prompts[i]) for i in batch)
        input_ids = torch.tensor([[pad_id] * (width - len(prompts[i])) + list(prompts[i]) for i in batch])
        attention_mask = torch.tensor([[0] * (width - len(prompts[i])) + [1] * len(prompts[i]) for i in batch])
        try:
            output = model.generate(
                input_ids=input_ids.to(model.device), attention_mask=attention_mask.to(model.device), **options
            )
        except torch.OutOfMemoryError:
            if len(batch) == 1:
                raise
            del input_ids, attention_mask
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            logger.warning("out of memory with a batch of %d prompts; generating it in halves", len(batch))
            half = len(batch) // 2
            return generate(batch[:half]) + generate(batch[half:])
        texts = [new_text(tokenizer, row) for row in output[:, width:]]
        if token_counts is not None:
            token_counts.update(zip(batch, new_token_counts(output[:, width:].tolist(), tokenizer.eos_token_id)))
        return list(zip(batch, texts))

    for number, batch in enumerate(length_sorted_batches(prompts, batch_size)):
        if all(index in skip for index in batch) or (take is not None and number not in take):
            continue
        if sampling:
            set_seed(seed + number)
        yield generate(batch)


def generate_texts(model, tokenizer, prompts: Sequence[Sequence[int]], **options) -> list[str]:
    """All generations of `iter_generations`, in the order of `prompts`."""
    results: list[str] = [""] * len(prompts)
    for batch in iter_generations(model, tokenizer, prompts, **options):
        for index, text in batch:
            results[index] = text
    return results


def stream_generation(
    model, tokenizer, prompt: Sequence[int], max_new_tokens: int = 256, temperature: float = 0.0, top_p: float = 1.0,
    seed: int = 0,
) -> Iterator[str]:  # fmt: skip
    """The answer to one tokenized prompt as it is generated: the text so far after each new piece, and last the
    answer exactly as `generate_texts` gives it for this prompt alone (the same decoding and decode). Sampling is
    seeded with `seed` (a batch-0 seed of `iter_generations`). Closing the iterator early stops the generation.
    """
    from threading import Event, Thread

    from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

    class Closed(StoppingCriteria):  # the reader went away (a closed page): stop generating for it
        def __call__(self, input_ids, scores, **kwargs):
            return torch.full((input_ids.shape[0],), closed.is_set(), dtype=torch.bool, device=input_ids.device)

    closed, result = Event(), {}
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    input_ids = torch.tensor([list(prompt)], device=model.device)
    options = decoding_options(tokenizer, max_new_tokens, temperature, top_p)
    if temperature > 0:
        set_seed(seed)

    def generate():
        try:
            with torch.no_grad():
                result["output"] = model.generate(
                    input_ids=input_ids, attention_mask=torch.ones_like(input_ids), streamer=streamer,
                    stopping_criteria=StoppingCriteriaList([Closed()]), **options,
                )  # fmt: skip
        except BaseException as error:  # raised again in the reader's thread
            result["error"] = error
            streamer.end()

    worker = Thread(target=generate, daemon=True)
    worker.start()
    text = ""
    try:
        for piece in streamer:
            text += piece
            yield text
    finally:
        closed.set()
        worker.join()
    if "error" in result:
        raise result["error"]
    yield new_text(tokenizer, result["output"][0, input_ids.shape[1] :])
