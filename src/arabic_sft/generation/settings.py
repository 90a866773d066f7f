"""What a generation run is asked (`GenerateOptions`: generate.py's command line, or a stage's call), what it is
(`GenerationSettings`: resolved with the recipe, typed) and the part of that a partial run must share to resume."""

from dataclasses import asdict, dataclass, field, fields


def _resumes(default=None):
    """A setting the rows or their text depend on: a partial run resumes only when it is the same."""
    return field(default=default, metadata={"resume": True})


@dataclass(frozen=True)
class GenerationSettings:
    """Every setting of a generation run (recorded in its manifest); `resume_key()` is what decides the rows and
    their text, so that a rerun continues a partial run only when that is the same."""

    # Which rows
    split: str = _resumes("test")
    data: dict = _resumes(None)  # the recipe's data and prompt fields (arabic_sft.recipe, groups data and prompt)
    split_seed: int = _resumes(42)  # the seed of a fraction split
    limit: int | None = _resumes(None)
    # Which model
    model_dir: str | None = _resumes(None)
    base_id: str | None = _resumes(None)
    adapter_dir: str | None = _resumes(None)
    revision: str | None = _resumes(None)
    trust_remote_code: bool = _resumes(False)
    baseline: bool = _resumes(False)
    # Which prompts and which text
    shots: int = _resumes(0)
    seed: int = _resumes(42)
    max_new_tokens: int = _resumes(256)
    temperature: float = _resumes(0.0)
    top_p: float = _resumes(1.0)
    batch_size: int = _resumes(16)  # sampling is seeded per batch
    # How and where: the same rows and text either way
    out_path: str | None = None
    device_map: str | None = None
    static_cache: bool = False

    def resume_key(self) -> dict:
        return {item.name: getattr(self, item.name) for item in fields(self) if item.metadata.get("resume")}

    def record(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class GenerateOptions:
    """What a generation is asked: generate.py's flags (scripts/generate.py --help says each), or what a stage asks
    for (make chat's sides: the recipe's baseline, its few-shot baselines, a seed's model). `generation.run.resolve`
    fills the rest from the recipe."""

    config: str | None = None
    checkpoint_dir: str | None = None
    base_id: str | None = None
    adapter_dir: str | None = None
    split: str = "test"
    test_path: str | None = None
    out_path: str | None = None
    task: str | None = None
    prompt_template: str | None = None
    chat_format: str | None = None
    group_column: str | None = None
    baseline: bool = False
    shots: int = 0
    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    batch_size: int = 16
    device_map: str | None = None
    static_cache: bool = False
    limit: int | None = None
    seed: int = 42
    overwrite: bool = False
    accept_changed_data: bool = False
