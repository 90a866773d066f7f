"""The training batches isolate their sequences: a batch padded by the trainer's own collator gives every sequence
exactly the loss it has alone, so batching (and grouping by length) changes the speed, not what is learnt.

The recipes pad each batch to its longest sequence (on the right) rather than packing sequences into one row, so no
sequence can attend to another; packing or padding-free batches would need this test against a per-sequence mask."""

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM, AutoTokenizer

from test_loss_parity import make_trainer


def sequence_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy over the positions that carry a label."""
    return F.cross_entropy(logits[:-1], labels[1:], ignore_index=-100)


@pytest.mark.parametrize("model_fixture", ["tiny_llama", "tiny_gpt2"])
def test_a_padded_batch_gives_each_sequence_its_own_loss(request, model_fixture, tmp_path):
    path = request.getfixturevalue(model_fixture)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    torch.manual_seed(0)
    with torch.no_grad():  # larger random weights: sharper logits, so a leak would show
        for parameter in model.parameters():
            parameter.normal_(0.0, 0.5)
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
