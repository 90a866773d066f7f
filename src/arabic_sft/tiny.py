"""Tiny random-weight models with a locally trained tokenizer, to run every recipe path offline.

`llama` stands in for ALLaM (a Llama, with a chat template); `gpt2` for Jais (GPT-style c_attn/c_proj/c_fc
modules, no chat template); `jais2` is transformers' native Jais-2 (`Jais2ForCausalLM`: q/k/v/o_proj, an MLP of
up_proj/down_proj with no gate_proj, LayerNorm, biases) with a Jais-style chat template of its own. All load through
the same `AutoModelForCausalLM`/`AutoTokenizer` code as Hub ids.
"""

import json
from collections.abc import Iterable
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    GenerationConfig,
    GPT2Config,
    GPT2LMHeadModel,
    Jais2Config,
    Jais2ForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from arabic_sft.runs import RANDOM_WEIGHTS


SPECIAL_TOKENS = {"bos_token": "<s>", "eos_token": "</s>", "pad_token": "<pad>", "unk_token": "<unk>"}
ROLE_TOKENS = ["<|system|>", "<|user|>", "<|assistant|>"]

# Each turn opens with its role token; the assistant's turn closes with EOS and nothing after it, so the trained
# tokens of a completion are exactly the answer followed by EOS. `{% generation %}` marks the assistant's tokens for
# TRL's assistant-only loss on `messages` data (it renders nothing).
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|assistant|>\n' }}{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}"
    "{% else %}{{ '<|' + message['role'] + '|>\n' + message['content'] + '\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\n' }}{% endif %}"
)

# The tiny Jais-2's template, in the style of Jais chat prompts ([|Human|] / [|AI|] turns); written here.
JAIS2_ROLE_TOKENS = ["[|System|]", "[|Human|]", "[|AI|]"]
JAIS2_CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '[|AI|]\n' }}{% generation %}{{ message['content'] + eos_token }}{% endgeneration %}"
    "{% elif message['role'] == 'system' %}{{ '[|System|]\n' + message['content'] + '\n' }}"
    "{% else %}{{ '[|Human|]\n' + message['content'] + '\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '[|AI|]\n' }}{% endif %}"
)

ARCHITECTURES = ("llama", "gpt2", "jais2")

# Random-weight Llamas of the real models' shapes, for speed and memory figures (benchmark.py on a GPU). ALLaM-7B is
# a Llama; Jais-family-256m (GPT-style, ALiBi, SwiGLU; config.json of inceptionai/Jais-family-256m) is stood in for by
# a Llama of its width, depth, heads, MLP width and vocabulary. The tokenizer stays the locally trained one: the
# embedding and LM head have the real vocabulary's rows, of which the tokenizer uses the first ones.
SHAPES = {
    "allam-7b": {"hidden_size": 4096, "num_layers": 32, "num_heads": 32, "num_kv_heads": 32,
                 "intermediate_size": 11008, "model_vocab_size": 64000, "tie_word_embeddings": False,
                 "max_positions": 4096},
    "jais-256m": {"hidden_size": 1088, "num_layers": 14, "num_heads": 17, "num_kv_heads": 17,
                  "intermediate_size": 2912, "model_vocab_size": 84992, "tie_word_embeddings": True,
                  "max_positions": 2048},
}  # fmt: skip


def train_tokenizer(
    texts: Iterable[str],
    vocab_size: int = 2000,
    chat_template: str | None = CHAT_TEMPLATE,
    role_tokens: list[str] = ROLE_TOKENS,
):
    """A byte-level BPE tokenizer trained on `texts` (lossless on any Unicode, Arabic included), with `chat_template`
    (None: no template) whose role markers are the special `role_tokens`."""
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS.values()) + role_tokens,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, **SPECIAL_TOKENS)
    tokenizer.add_special_tokens({"additional_special_tokens": role_tokens})
    if chat_template:
        tokenizer.chat_template = chat_template
    return tokenizer


def train_sentencepiece(
    texts: Iterable[str], vocab_size: int, chat_template: str | None, role_tokens: list[str], out_dir: Path
):
    """A SentencePiece BPE tokenizer trained on `texts`, as Llama-family models (ALLaM among them) have: its
    `tokenizer.model` written in `out_dir` (what llama.cpp's converter reads), byte fallback so that any Unicode
    survives, `role_tokens` as pieces of their own; loaded back as transformers' Llama tokenizer with
    `chat_template`."""
    import io

    import sentencepiece
    from transformers import AutoTokenizer

    texts = list(texts)
    model = io.BytesIO()
    ids = {"unk": 0, "bos": 1, "eos": 2, "pad": 3}
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(texts), model_writer=model, vocab_size=max(vocab_size, 400), model_type="bpe",
        byte_fallback=True, character_coverage=1.0, hard_vocab_limit=False, user_defined_symbols=role_tokens,
        **{f"{name}_id": number for name, number in ids.items()},
        **{f"{name}_piece": SPECIAL_TOKENS[f"{name}_token"] for name in ids}, minloglevel=2,
    )  # fmt: skip
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "tokenizer.model").write_bytes(model.getvalue())
    settings = {
        "tokenizer_class": "LlamaTokenizer",
        "legacy": False,
        "add_bos_token": True,
        "add_prefix_space": False,
        **SPECIAL_TOKENS,
    }
    (out_dir / "tokenizer_config.json").write_text(json.dumps(settings), encoding="utf-8")
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    tokenizer.add_special_tokens({"additional_special_tokens": role_tokens})  # their own ids: control tokens
    tokenizer.chat_template = chat_template
    return tokenizer


def construct(model_class, config, dtype: torch.dtype, device: str):
    """The model with its random weights created in `dtype` on `device` (a 7B model never exists in fp32)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            return model_class(config)
    finally:
        torch.set_default_dtype(previous)


def build_tiny_model(
    arch: str,
    texts: Iterable[str],
    out_dir: str | Path,
    vocab_size: int = 2000,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    max_positions: int = 1024,
    seed: int = 0,
    intermediate_size: int | None = None,
    num_kv_heads: int | None = None,
    model_vocab_size: int | None = None,
    tie_word_embeddings: bool = True,
    dtype: torch.dtype = torch.float32,
    device: str = "cpu",
    tokenizer: str = "bpe",
    chat: bool | None = None,
) -> Path:
    """Build and save a random-weight `arch` model and its tokenizer trained on `texts`; returns the directory.

    Defaults make a tiny model (MLP width 2 x hidden, half as many KV heads as heads, embedding rows = tokenizer
    size); the keyword arguments give any other shape (SHAPES). `device="cuda"` initializes large models quickly.
    `tokenizer`: "bpe" (byte-level, trained by `tokenizers`) or "sentencepiece" (a Llama's `tokenizer.model`, which
    llama.cpp converts); `chat`: with a chat template (default: the Llama and Jais-2 have one, the GPT-2 has none).
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r} (known: {', '.join(ARCHITECTURES)})")
    torch.manual_seed(seed)
    template, roles = (JAIS2_CHAT_TEMPLATE, JAIS2_ROLE_TOKENS) if arch == "jais2" else (CHAT_TEMPLATE, ROLE_TOKENS)
    template = template if (arch != "gpt2" if chat is None else chat) else None
    if tokenizer == "sentencepiece":
        tokenizer = train_sentencepiece(texts, vocab_size, template, roles, Path(out_dir))
    else:
        tokenizer = train_tokenizer(texts, vocab_size, template, roles)
    if model_vocab_size is not None and model_vocab_size < len(tokenizer):
        raise ValueError(
            f"model_vocab_size {model_vocab_size} is smaller than the tokenizer's {len(tokenizer)} tokens"
        )
    ids = {name: tokenizer.convert_tokens_to_ids(token) for name, token in SPECIAL_TOKENS.items()}
    tokens = {
        "vocab_size": model_vocab_size or len(tokenizer),
        "bos_token_id": ids["bos_token"],
        "eos_token_id": ids["eos_token"],
        "pad_token_id": ids["pad_token"],
    }
    shape = {
        "hidden_size": hidden_size,
        "num_hidden_layers": num_layers,
        "num_attention_heads": num_heads,
        "max_position_embeddings": max_positions,
    }
    if arch == "llama":
        config = LlamaConfig(
            **tokens,
            **shape,
            intermediate_size=intermediate_size or 2 * hidden_size,
            num_key_value_heads=num_kv_heads or max(1, num_heads // 2),
            tie_word_embeddings=tie_word_embeddings,
        )
        model = construct(LlamaForCausalLM, config, dtype, device)
    elif arch == "jais2":  # Jais-2: MLP 4 x hidden (up/down, relu^2), as many KV heads as heads, untied LM head
        config = Jais2Config(
            **tokens,
            **shape,
            intermediate_size=intermediate_size or 4 * hidden_size,
            num_key_value_heads=num_kv_heads or num_heads,
            head_dim=hidden_size // num_heads,
            tie_word_embeddings=False,
        )
        model = construct(Jais2ForCausalLM, config, dtype, device)
    else:
        config = GPT2Config(
            **tokens, n_embd=hidden_size, n_layer=num_layers, n_head=num_heads, n_positions=max_positions
        )
        model = construct(GPT2LMHeadModel, config, dtype, device)
    model.generation_config = GenerationConfig(
        bos_token_id=ids["bos_token"], eos_token_id=ids["eos_token"], pad_token_id=ids["pad_token"]
    )
    out_dir = Path(out_dir)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    mark_random(out_dir, arch)
    return out_dir


def mark_random(out_dir: Path, arch: str) -> None:
    record = {"random_weights": True, "arch": arch, "built_by": "arabic-sft scripts/make_tiny_model.py",
              "note": "random initial weights: to run the flow without a download, not for its answers"}  # fmt: skip
    (Path(out_dir) / RANDOM_WEIGHTS).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
