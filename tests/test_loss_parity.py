"""The loss-parity check stops a run whose model scales its logits where TRL's fused loss cannot see it."""

import pytest
from helpers import make_trainer
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaForCausalLM

from arabic_sft.runtime.errors import UserError
from arabic_sft.training.model import causal_lm_loss_from_logits, check_loss_parity


class ScaledLogitsLlama(LlamaForCausalLM):
    """Multiplies its logits by 3 in its own forward, as Jais's remote code does with its muP output scale."""

    def forward(self, *args, labels=None, **kwargs):
        outputs = super().forward(*args, **kwargs)
        outputs.logits = outputs.logits * 3.0
        if labels is not None:
            outputs.loss = self.loss_function(outputs.logits, labels, vocab_size=self.config.vocab_size)
        return outputs


@pytest.mark.parametrize("model_fixture", ["tiny_llama", "tiny_gpt2"])
def test_parity_check_passes_on_a_standard_model(request, model_fixture, tmp_path):
    path = request.getfixturevalue(model_fixture)
    trainer = make_trainer(AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path), tmp_path)
    trainer_loss, model_loss = check_loss_parity(trainer)
    assert trainer_loss == pytest.approx(model_loss, rel=1e-4)


def test_parity_check_fires_on_logits_scaled_inside_the_model(tiny_llama, tmp_path):
    trainer = make_trainer(
        ScaledLogitsLlama.from_pretrained(tiny_llama), AutoTokenizer.from_pretrained(tiny_llama), tmp_path
    )
    with pytest.raises(UserError, match="loss parity check failed"):
        check_loss_parity(trainer)


def test_loss_from_logits_trains_on_the_models_own_loss(tiny_llama, tmp_path):
    model = ScaledLogitsLlama.from_pretrained(tiny_llama)
    trainer = make_trainer(
        model, AutoTokenizer.from_pretrained(tiny_llama), tmp_path, compute_loss_func=causal_lm_loss_from_logits
    )
    trainer_loss, model_loss = check_loss_parity(trainer)
    assert trainer_loss == pytest.approx(model_loss, rel=1e-4)
