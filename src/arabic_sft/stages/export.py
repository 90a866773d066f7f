"""Hand a trained model on as one folder: results/<recipe>/export/ (results/<recipe>/seed-N/export/ for a seed) loads
with plain `AutoModelForCausalLM.from_pretrained` and `AutoTokenizer.from_pretrained`, and answers as `make eval` did.

    arabic-sft export demo                     # make export RECIPE=demo
    python scripts/export.py --config recipes/allam_proverbs_qlora.yaml [--seed N]

It holds the model (a LoRA adapter merged into its base in the training precision, a 4-bit base dequantized first:
the merge step `make publish MERGED=1` uses too, made once per training), the tokenizer and chat template as
trained, `generation_config.json` with the decoding `make eval` generated with (greedy unless it sampled, its
max_new_tokens) and the model card; `export_manifest.json` says where it came from. An export of this training is
kept; one of an earlier training is made again. Written beside the folder and renamed when complete.

GGUF (llama.cpp, Ollama): convert this folder with llama.cpp's own converter (docs/after_training.md).
"""

import argparse
import shutil
from pathlib import Path

from arabic_sft.generation.answering import eval_decoding
from arabic_sft.publishing.card import build_card
from arabic_sft.publishing.upload import merged_model, trained_run
from arabic_sft.runs import CARD, EXPORT_MANIFEST, RunFolder, not_made_by
from arabic_sft.runtime.errors import ScriptParser, run_cli
from arabic_sft.runtime.locks import exclusive_output
from arabic_sft.runtime.manifest import build_manifest, now, read_json, write_json_atomic


# What a model folder holds that a user of the model needs; the rest (checkpoints, logs, the optimizer) stays.
MODEL_FILES = ("*.safetensors", "*.safetensors.index.json", "config.json", "generation_config.json", "tokenizer*",
               "special_tokens_map.json", "chat_template.jinja", "*.model", "vocab.*", "merges.txt")  # fmt: skip


def make_parser() -> argparse.ArgumentParser:
    parser = ScriptParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="the recipe whose trained model is exported")
    parser.add_argument("--seed", type=int, help="of a recipe trained with several seeds: results/<recipe>/seed-N")
    parser.add_argument("--overwrite", action="store_true", help="export again though this training's export exists")
    return parser


def run(args: argparse.Namespace) -> list[Path]:
    """Export as `args` (this stage's command line) say; what it wrote: the folder."""
    return [exported(*trained_run(args.config, args.seed), args.overwrite)]


def exported(recipe, trained, overwrite: bool = False) -> Path:
    """The export folder of the finished training `trained`: kept when it is this training's, else made."""
    started = now()
    folder = RunFolder(trained.results)
    out = folder.export
    record = read_json(out / EXPORT_MANIFEST) or {}
    source = ((record.get("config") or {}).get("export") or {}).get("model_dir")
    if out.is_dir() and not overwrite and source:
        if not (stale := not_made_by(source, record.get("started", ""), trained.model_dir, "exported")):
            print(f"{out} is this training's export already: kept (--overwrite makes it again)")
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
    card = build_card(trained, recipe, merged=peft)
    (staging / CARD).write_text(str(card), encoding="utf-8")
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


def main(argv: list[str] | None = None) -> list[Path]:
    return run(make_parser().parse_args(argv))


if __name__ == "__main__":
    run_cli(main)
