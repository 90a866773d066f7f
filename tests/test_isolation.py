"""The training batches isolate their sequences: a batch padded by the trainer's own collator gives every sequence
exactly the loss it has alone, so batching (and grouping by length) changes the speed, not what is learnt.

The recipes pad each batch to its longest sequence (on the right). TRL's `padding_free: true` puts a batch's sequences
in one row instead; transformers then builds a per-sequence mask from the restarting position_ids (for its own model
classes, and only without a KV cache, which SFTTrainer turns off): the second test proves that the trainer's loss on
such a row is the loss of its sequences run alone."""

import pytest
import torch
import torch.nn.functional as F
from helpers import make_trainer, sharp_random_model


def sequence_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the positions that carry a label."""
    return F.cross_entropy(logits[:-1], labels[1:], ignore_index=-100)


@pytest.mark.parametrize("model_fixture", ["tiny_llama", "tiny_gpt2"])
def test_a_padded_batch_gives_each_sequence_its_own_loss(request, model_fixture, tmp_path):
    model, tokenizer = sharp_random_model(request.getfixturevalue(model_fixture))
    trainer = make_trainer(model, tokenizer, tmp_path)
    features = [{key: trainer.train_dataset[i][key] for key in ("input_ids", "labels")} for i in range(6)]
    batch = trainer.data_collator(features)
    lengths = [len(feature["input_ids"]) for feature in features]
    assert len(set(lengths)) > 1 and (batch["attention_mask"] == 0).any()  # the batch really is padded

    with torch.no_grad():
        batched = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        for row, feature in enumerate(features):
            alone = model(input_ids=torch.tensor([feature["input_ids"]])).logits[0]
            labels = torch.tensor(feature["labels"])
            # Right padding: the sequence's tokens are the first len(...) positions of its row.
            together = sequence_loss(batched[row, : len(labels)], labels)
            torch.testing.assert_close(together, sequence_loss(alone, labels), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("model_fixture", ["tiny_llama", "tiny_gpt2"])
def test_a_padding_free_row_gives_the_loss_of_its_sequences_alone(request, model_fixture, tmp_path):
    model, tokenizer = sharp_random_model(request.getfixturevalue(model_fixture))
    trainer = make_trainer(model, tokenizer, tmp_path, config={"padding_free": True, "max_length": None})
    features = [{key: trainer.train_dataset[i][key] for key in ("input_ids", "labels")} for i in range(6)]
    batch = trainer.data_collator(features)
    assert batch["input_ids"].shape == (1, sum(len(f["input_ids"]) for f in features))  # one row, no padding

    with torch.no_grad():
        packed = trainer.compute_loss(model, dict(batch))  # the trainer's own forward on the packed row
        total, count = torch.tensor(0.0), 0
        for feature in features:
            logits = model(input_ids=torch.tensor([feature["input_ids"]])).logits[0]
            labels = torch.tensor(feature["labels"])
            total += F.cross_entropy(logits[:-1], labels[1:], ignore_index=-100, reduction="sum")
            count += int((labels[1:] != -100).sum())
    torch.testing.assert_close(packed, total / count, rtol=1e-4, atol=1e-5)
