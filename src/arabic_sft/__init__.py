"""Recipes to fine-tune Arabic LLMs on question/answer data with TRL, and score them honestly.

Importing the package (the scripts do it before any third-party import) silences third-party messages that every
command printed and that say nothing about the user's run.
"""

import logging
import sys
import warnings


__version__ = "0.1.0"


class _DropMessages(logging.Filter):
    def __init__(self, *starts: str):
        super().__init__()
        self.starts = starts

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.starts)


def _silence_third_party_noise() -> None:
    # bitsandbytes, on CPUs with AVX512-BF16, looks for an optional Hub kernel package at import and warns without it;
    # the project never uses that path (models.keep_4bit_layers_differentiable).
    logging.getLogger("bitsandbytes.backends.cpu.ops").addFilter(_DropMessages("Failed to load CPU gemm_4bit_forward"))
    # DeepSpeed says so at import on every machine without a GPU, whether DeepSpeed is used or not.
    logging.getLogger("DeepSpeed").addFilter(_DropMessages("Setting accelerator to CPU"))
    # TRL's SFTConfig sets transformers' deprecated `gradient_checkpointing` alias itself, so transformers warns on
    # every run, whatever the recipe says.
    warnings.filterwarnings("ignore", message="`gradient_checkpointing` is deprecated", category=FutureWarning)
    # DeepSpeed and accelerate call torch.distributed functions that torch has renamed.
    warnings.filterwarnings("ignore", message=r"`torch\.distributed\.\w+` is deprecated", category=FutureWarning)


class _OneLine(logging.Handler):
    """The project's own warnings in the format of every other message line: `warning: ...` on stderr (whatever
    sys.stderr is when the line is written)."""

    def emit(self, record: logging.LogRecord) -> None:
        print(f"{record.levelname.lower()}: {record.getMessage()}", file=sys.stderr)


def _one_format_for_our_messages() -> None:
    package = logging.getLogger(__name__)
    package.addHandler(_OneLine())
    package.propagate = False  # not again in a library's log format (timestamps) when a script configures logging


_silence_third_party_noise()
_one_format_for_our_messages()
