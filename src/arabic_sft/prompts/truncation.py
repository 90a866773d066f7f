"""Truncation made visible: TRL cuts every example to `max_length` from the end, silently, so a long answer loses its
last words and its EOS and the model learns not to stop. Counted here before training, and acted on by policy."""

from dataclasses import dataclass

from datasets import Dataset

from arabic_sft.prompts.builder import prompt_token_ids
from arabic_sft.runtime.errors import UserError


POLICIES = ("warn", "drop", "error")


@dataclass
class TruncationReport:
    split: str
    max_length: int
    examples: int
    over: list[int]  # positions of the examples longer than max_length
    answer_tokens: int  # in every example (answer + EOS)
    answer_tokens_over: int  # in the examples that are too long
    lost: int  # answer tokens cut off
    longest: int = 0  # tokens of the longest example (prompt + answer + EOS)

    def describe(self) -> str:
        if not self.over:
            return (
                f"truncation: 0 of {self.examples} {self.split} examples exceed max_length {self.max_length} tokens "
                f"(the longest: {self.longest})"
            )
        return (
            f"truncation: {len(self.over)} of {self.examples} {self.split} examples exceed max_length "
            f"{self.max_length} "
            f"tokens (prompt + answer + EOS); TRL cuts them from the end, EOS included, so they lose "
            f"{self.lost / max(self.answer_tokens_over, 1):.0%} of their answer tokens "
            f"({self.lost / max(self.answer_tokens, 1):.1%} of all answer tokens); raise max_length, or set "
            "truncation: drop"
        )


def example_lengths(tokenizer, example: dict) -> tuple[int, int]:
    """(tokens of the whole example, tokens of its answer) as TRL tokenizes it for training: the chat template over
    the prompt and completion (or the conversation, whose answer is its last assistant turn), or the plain text with
    EOS appended to the completion."""
    if "messages" in example:
        messages = example["messages"]
        last = max(i for i, turn in enumerate(messages) if turn["role"] == "assistant")
        total = len(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"])
        return total, total - len(prompt_token_ids(tokenizer, messages[:last]))
    prompt = example["prompt"]
    prompt_ids = prompt_token_ids(tokenizer, prompt)
    if isinstance(prompt, list):
        full = tokenizer.apply_chat_template(prompt + example["completion"], tokenize=True, return_dict=True)[
            "input_ids"
        ]
    else:
        full = tokenizer(prompt + example["completion"] + tokenizer.eos_token)["input_ids"]
    return len(full), len(full) - len(prompt_ids)


def count_truncated(tokenizer, dataset: Dataset, max_length: int, split: str) -> TruncationReport:
    over, answer_tokens, answer_tokens_over, lost, longest = [], 0, 0, 0, 0
    for index, example in enumerate(dataset):
        total, answer = example_lengths(tokenizer, example)
        answer_tokens += answer
        longest = max(longest, total)
        if total > max_length:
            over.append(index)
            answer_tokens_over += answer
            lost += min(answer, total - max_length)
    return TruncationReport(split, max_length, len(dataset), over, answer_tokens, answer_tokens_over, lost, longest)


def apply_truncation_policy(
    tokenizer, datasets: dict[str, Dataset], max_length: int | None, policy: str, log=print
) -> dict[str, Dataset]:
    """Count each split's examples longer than `max_length`; 'warn' says how many and what they lose, 'drop' removes
    them (with a count), 'error' stops before any training. Returns the datasets to train on."""
    if max_length is None:
        return datasets
    result = {}
    for split, dataset in datasets.items():
        report = count_truncated(tokenizer, dataset, max_length, split)
        if report.over and policy == "error":
            rows = ", ".join(str(i + 1) for i in report.over[:5])
            raise UserError(
                f"{report.describe().removeprefix('truncation: ').split('; TRL')[0]} (examples {rows}...); "
                "raise max_length, or set truncation: warn or drop"
            )
        if report.over and policy == "drop":
            keep = sorted(set(range(len(dataset))) - set(report.over))
            if not keep:
                raise UserError(f"truncation: drop: every {split} example exceeds max_length {max_length}")
            log(
                f"truncation: dropped {len(report.over)} of {report.examples} {split} examples longer than max_length "
                f"{max_length} tokens (truncation: drop)"
            )
            dataset = dataset.select(keep)
        else:
            log(report.describe())  # none over it is said too: the user sees max_length was checked
        result[split] = dataset
    return result


def count_long_prompts(prompts: list[list[int]], max_new_tokens: int, context: int | None) -> str | None:
    """At generation: a line saying how many prompts leave less than `max_new_tokens` of the model's context."""
    if not context:
        return None
    over = sum(len(prompt) + max_new_tokens > context for prompt in prompts)
    if not over:
        return None
    return (
        f"warning: {over} of {len(prompts)} prompts + max_new_tokens {max_new_tokens} exceed the model's context of "
        f"{context} tokens; their answers may be cut short or fail"
    )
