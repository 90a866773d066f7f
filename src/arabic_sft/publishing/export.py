"""make export's folder (stages/export.py says what it holds), made once per training, written beside and renamed when
complete; make serve serves it."""

import shutil
from pathlib import Path

from arabic_sft.generation.answering import eval_decoding
from arabic_sft.publishing.card import write_card
from arabic_sft.publishing.upload import merged_model
from arabic_sft.runs import EXPORT_MANIFEST, RunFolder, not_made_by
from arabic_sft.runtime.errors import as_given
from arabic_sft.runtime.locks import exclusive_output
from arabic_sft.runtime.manifest import build_manifest, now, read_json, write_json_atomic


# What a model folder holds that a user of the model needs; the rest (checkpoints, logs, the optimizer) stays.
MODEL_FILES = ("*.safetensors", "*.safetensors.index.json", "config.json", "generation_config.json", "tokenizer*",
               "special_tokens_map.json", "chat_template.jinja", "*.model", "vocab.*", "merges.txt")  # fmt: skip


def exported(recipe, trained, overwrite: bool = False) -> Path:
    """The export folder of the finished training `trained`: kept when it is this training's, else made."""
    started = now()
    folder = RunFolder(trained.results)
    out = folder.export
    record = read_json(out / EXPORT_MANIFEST) or {}
    source = ((record.get("config") or {}).get("export") or {}).get("model_dir")
    if out.is_dir() and not overwrite and source:
        if not (stale := not_made_by(source, record.get("started", ""), trained.model_dir, "exported")):
            again = as_given("--overwrite", "OVERWRITE=1")
            print(f"{out} is this training's export already: kept ({again} makes it again)")
            return out
        print(f"{out}: {stale}: exporting again")
    with exclusive_output(out):
        return export(recipe, trained, folder, out, started)


def export(recipe, trained, folder: RunFolder, out: Path, started: str) -> Path:
    from transformers import GenerationConfig

    peft = (trained.model_dir / "adapter_config.json").is_file()
    weights = merged_model(trained) if peft else trained.model_dir
    staging = out.with_name(f".{out.name}.writing")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    for directory in dict.fromkeys([weights, trained.model_dir]):  # the weights, then the tokenizer as trained
        for pattern in MODEL_FILES:
            for path in directory.glob(pattern):
                if path.is_file() and not (directory != weights and path.suffix == ".safetensors"):
                    shutil.copy2(path, staging / path.name)
    decoding = eval_decoding(folder)
    generation = GenerationConfig.from_pretrained(staging)
    greedy = not decoding["temperature"]
    generation.update(do_sample=not greedy, max_new_tokens=decoding["max_new_tokens"],
                      temperature=None if greedy else decoding["temperature"],
                      top_p=None if greedy else decoding["top_p"])  # fmt: skip
    generation.save_pretrained(staging)
    write_card(trained, recipe, folder=staging, merged=peft)
    settings = {"model_dir": str(trained.model_dir), "weights": str(weights), "merged": peft, "decoding": decoding}
    write_json_atomic(staging / EXPORT_MANIFEST, build_manifest({"export": settings}, [], started))
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    size = sum(path.stat().st_size for path in out.iterdir() if path.is_file())
    print(
        f"wrote {out} ({size / 2**20:.1f} MiB; {'the adapter merged into its base, ' if peft else ''}tokenizer, "
        f"generation_config.json: {'greedy' if greedy else 'sampling'}, max_new_tokens {decoding['max_new_tokens']}); "
        f'load it with AutoModelForCausalLM.from_pretrained("{out}")'
    )
    return out
