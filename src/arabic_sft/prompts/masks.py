"""What the trainer really trains on: each example's masked (prompt) and trained (completion) tokens, decoded."""


def describe_examples(trainer, num_examples: int) -> list[dict]:
    """Run the first examples of the trainer's prepared dataset through its own collator and decode the labels.

    Returns, per example, `answer` (the raw answer text from the data), `prompt` (the decoded tokens whose label is
    masked to -100) and `completion` (the decoded tokens that carry a label and so a loss). A mixture's dataset
    (a `source` column): the first `num_examples` of each source, each with its `source`.
    """
    tokenizer = trainer.processing_class
    dataset = trainer.train_dataset
    described = []
    indices = list(range(min(num_examples, len(dataset))))
    if "source" in dataset.column_names:
        by_source: dict[str, list[int]] = {}
        for index, name in enumerate(dataset["source"]):
            by_source.setdefault(name, []).append(index)
        indices = [index for found in by_source.values() for index in found[:num_examples]]
    for index in indices:
        example = dataset[index]
        batch = trainer.data_collator([{"input_ids": example["input_ids"], "labels": example["labels"]}])
        input_ids, labels = batch["input_ids"][0].tolist(), batch["labels"][0].tolist()
        masked = [token for token, label in zip(input_ids, labels) if label == -100]
        trained = [token for token, label in zip(input_ids, labels) if label != -100]
        described.append(
            {
                **({"source": example["source"]} if "source" in example else {}),
                "answer": example.get("answer"),
                "prompt": tokenizer.decode(masked, skip_special_tokens=False),
                "completion": tokenizer.decode(trained, skip_special_tokens=False),
            }
        )
    return described


def format_example(number: int, example: dict) -> str:
    source = f" (source {example['source']})" if "source" in example else ""
    return (
        f"===== example {number}{source} =====\n"
        f"--- masked (prompt, no loss) ---\n{example['prompt']}\n"
        f"--- trained (completion, loss) ---\n{example['completion']}\n"
    )
