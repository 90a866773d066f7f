"""What a generation run is asked (`GenerateOptions`: generate.py's command line, or a stage's call), what it is
(`GenerationSettings`: resolved with the recipe, typed) and the part of that a partial run must share to resume."""

from dataclasses import asdict, dataclass, field, fields
from urllib.parse import urlsplit, urlunsplit


def without_credentials(url: str | None) -> str | None:
    """A URL as it may be written down: no user or password, no query (where some services put a key)."""
    if not url:
        return url
    parts = urlsplit(url)
    return urlunsplit(
        (parts.scheme, (parts.hostname or "") + (f":{parts.port}" if parts.port else ""), parts.path, "", "")
    )


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
    endpoint_url: str | None = _resumes(None)  # an OpenAI-compatible server's model instead of a local one
    endpoint_model: str | None = _resumes(None)
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
    endpoint_key_env: str | None = None  # the variable's name only: the key is never written
    prompt_model: str | None = None  # an endpoint run's recipe model, whose tokenizer decides chat_format auto
    concurrency: int = 8
    endpoint_timeout: float = 120.0
    endpoint_retries: int = 4
    max_failures: int = 3
    token_budget: int | None = None  # tokens (prompt and answer, as the server reports them) this run may spend

    def resume_key(self) -> dict:
        key = {item.name: getattr(self, item.name) for item in fields(self) if item.metadata.get("resume")}
        return {**key, "endpoint_url": without_credentials(self.endpoint_url)}  # written down: no credentials

    def record(self) -> dict:
        return {**asdict(self), "endpoint_url": without_credentials(self.endpoint_url)}


def _asked(default=None, help: str = "", **flag):
    """A generate.py flag: default, help, argparse settings (`recipe_field`: typed and documented by the schema)."""
    return field(default=default, metadata={"help": help, **flag})


MODEL = "model (one of)"  # generate.py's --help group of the ways to name the model
ENDPOINT = "an OpenAI-compatible endpoint instead of a local model"


@dataclass(frozen=True)
class GenerateOptions:
    """What a generation is asked: generate.py's flags (stages.generate builds its parser from these fields), or
    what a stage asks for (make chat's sides: the recipe's baseline, its few-shot baselines, a seed's model).
    `generation.run.resolve` fills the rest from the recipe."""

    config: str | None = _asked(help="recipe: generate with its trained output_dir, test_file and prompt", group=MODEL)
    checkpoint_dir: str | None = _asked(help="full model (or adapter) directory", group=MODEL)
    base_id: str | None = _asked(help="base model id or path, with --adapter_dir", group=MODEL)
    adapter_dir: str | None = _asked(help="LoRA adapter directory, merged into --base_id", group=MODEL)
    split: str = _asked(
        "test", "with --config: the recipe's test_file or validation_file", choices=["test", "validation"]
    )
    test_path: str | None = _asked(help="test data, any format sft.py reads (default: the recipe's for --split)")
    out_path: str | None = _asked(help="predictions CSV (default: results/<recipe>/predictions_<split>.csv)")
    task: str | None = _asked(help="a task preset (recipes/tasks/NAME.yaml): its columns and prompt")
    prompt_template: str | None = _asked(recipe_field=True)
    chat_format: str | None = _asked(recipe_field=True)
    group_column: str | None = _asked(recipe_field=True)  # --group_column '': none (a file of new questions)
    baseline: bool = _asked(
        False,
        "with --config: generate with the recipe's base model (model_name_or_path), "
        "untrained; default output results/<recipe>/baseline-<zero|K>-shot/predictions_<split>.csv",
    )
    shots: int = _asked(
        0,
        "few-shot: K solved training rows before each prompt (chat turns, or prompt + answer "
        "blocks), drawn once with --seed and the same for every row, never one whose inputs are an "
        "answered row's",
    )
    max_new_tokens: int = _asked(256)
    temperature: float = _asked(0.0, "0 = greedy")
    top_p: float = _asked(1.0)
    batch_size: int = _asked(16, "prompts per batch; a batch that runs out of memory is generated in halves")
    device_map: str | None = _asked(
        help="spread a model too large for one GPU over this process's GPUs (one process only)", choices=["auto"]
    )
    static_cache: bool = _asked(False, "preallocated KV cache; on a GPU the decoding step is then compiled")
    limit: int | None = _asked(help="generate for N examples, chosen reproducibly with --seed")
    seed: int = _asked(42)
    overwrite: bool = _asked(False, "replace an existing output (and its partial run)")
    accept_changed_data: bool = _asked(
        False, "generate on data files whose sha256 differs from what the training run recorded"
    )
    endpoint_url: str | None = _asked(
        help="an OpenAI-compatible endpoint's base URL (.../v1): its model answers the recipe's prompts (chat "
        "messages; /v1/completions for a plain-prompt recipe) instead of a local model",
        group=ENDPOINT,
    )
    endpoint_model: str | None = _asked(help="the model name the endpoint serves", group=ENDPOINT)
    endpoint_key_env: str | None = _asked(
        help="the environment variable holding the endpoint's API key (read there only, never written)", group=ENDPOINT
    )
    concurrency: int = _asked(8, "requests in flight to the endpoint", group=ENDPOINT)
    endpoint_timeout: float = _asked(120.0, "seconds a request may take before the client asks again", group=ENDPOINT)
    endpoint_retries: int = _asked(
        4, "the client's retries of a request (429, 5xx, timeouts; backoff)", group=ENDPOINT
    )
    max_failures: int = _asked(
        3, "failed requests in a row (after the retries) that stop the run, the rows answered kept", group=ENDPOINT
    )
    token_budget: int | None = _asked(
        None,
        "stop asking once the server has reported this many tokens (prompt and answer) in this run; the rows "
        "answered are kept (exit 75), the same command continues",
        group=ENDPOINT,
    )
