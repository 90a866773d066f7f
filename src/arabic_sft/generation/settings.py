"""What a generation run is: its settings, typed, and the part of them a partial run must share to be resumed."""

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
