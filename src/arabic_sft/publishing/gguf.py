"""make export FORMAT=gguf: make export's folder in GGUF for llama.cpp, Ollama and LM Studio, by llama.cpp's own tools
from the pinned llama-cpp-python source package (`make gguf` builds them once), proven by llama.cpp to answer as
make eval did.

The folder (`RunFolder.export_gguf`) holds the model at 16 bits (`model-f16.gguf`, or `model-bf16.gguf` for bf16
weights), the quantized file when asked (`model-q8_0.gguf`), an Ollama `Modelfile` and `gguf_manifest.json`: the run
it came from, the tools and their versions, the files and their sizes, and what llama.cpp answered on the test rows
make eval answered (the share answered identically; for a quantized file also the chrF of its answers against them).
It is written beside and renamed when complete; kept when it is this training's and the same quantization.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from arabic_sft.runs import EXPORT_MANIFEST, GGUF_MANIFEST, RunFolder, manifest_of, not_made_by
from arabic_sft.runtime.errors import UserError, as_given
from arabic_sft.runtime.locks import exclusive_output
from arabic_sft.runtime.manifest import build_manifest, now, read_json, write_json_atomic


LLAMA_CPP_PYTHON = "0.3.36"  # the pinned package whose vendored llama.cpp converts, quantizes and runs (Makefile)
TOOLS_HINT = f"make gguf builds llama.cpp's tools (llama-cpp-python {LLAMA_CPP_PYTHON} from source, once: minutes)"


def converter() -> Path:
    """llama.cpp's own convert_hf_to_gguf.py, from the pinned source package `make gguf` unpacked in the venv."""
    path = Path(sys.prefix) / "llama.cpp" / "convert_hf_to_gguf.py"
    if not path.is_file():
        raise UserError(f"{path}: llama.cpp's converter is not here; {TOOLS_HINT}")
    return path


def quantizations() -> dict[str, int]:
    """The quantizer's types by their llama.cpp names (q8_0, q4_k_m, ...): llama_cpp's LLAMA_FTYPE_MOSTLY_*."""
    try:
        import llama_cpp
    except ImportError:
        raise UserError(f"llama_cpp is not installed; {TOOLS_HINT}") from None
    prefix = "LLAMA_FTYPE_MOSTLY_"
    return {name[len(prefix) :].lower(): value for name, value in vars(llama_cpp).items() if name.startswith(prefix)}


def check_quantization(quant: str | None) -> None:
    """A quantization llama.cpp has (one line naming those it has, before anything is done)."""
    if quant and quant not in (known := quantizations()):
        raise UserError(f"QUANT {quant}: not a llama.cpp quantization (it has: {', '.join(sorted(known))})")


def sixteen_bits(folder: Path) -> str:
    """bf16 for weights stored in bf16 (kept exactly), else f16 (fp32 weights rounded to f16's 10 mantissa bits,
    closer than bf16's 7)."""
    config = read_json(folder / "config.json") or {}
    return "bf16" if (config.get("dtype") or config.get("torch_dtype")) == "bfloat16" else "f16"


def staged_source(export: Path, base: str, revision: str | None, staging: Path) -> Path:
    """The export folder as llama.cpp's converter reads it, in `staging`: its files linked, its added tokens written
    in tokenizer_config.json's `added_tokens_decoder` (transformers 5 keeps them in tokenizer.json only, where the
    converter does not look: control tokens such as chat roles would be split into pieces), and a SentencePiece
    model (`tokenizer.model`, which transformers 5 does not save after training) taken from the base model."""
    source = staging / "source"
    source.mkdir(parents=True)
    for path in export.iterdir():
        if path.is_file():
            (source / path.name).symlink_to(path.resolve())
    tokenizer_json = read_json(export / "tokenizer.json") or {}
    settings = read_json(export / "tokenizer_config.json") or {}
    if tokenizer_json.get("added_tokens") and not settings.get("added_tokens_decoder"):
        settings["added_tokens_decoder"] = {
            str(token["id"]): {key: value for key, value in token.items() if key != "id"}
            for token in tokenizer_json["added_tokens"]
        }
        (source / "tokenizer_config.json").unlink()
        write_json_atomic(source / "tokenizer_config.json", settings)
    model = tokenizer_json.get("model") or {}
    if not (source / "tokenizer.model").exists() and model.get("type") == "BPE" and model.get("byte_fallback"):
        from transformers.utils import cached_file

        found = cached_file(base, "tokenizer.model", revision=revision, _raise_exceptions_for_missing_entries=False)
        if found:
            (source / "tokenizer.model").symlink_to(Path(found).resolve())
    return source


def convert(source: Path, out: Path, outtype: str) -> None:
    """llama.cpp's converter, in its own process; what it refuses is one line saying what and what to do."""
    command = [sys.executable, str(converter()), str(source), "--outfile", str(out), "--outtype", outtype]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode == 0:
        return
    said = result.stderr
    if "BPE pre-tokenizer was not recognized" in said:
        found = re.search(r"chkhsh:\s+(\w+)", said)
        raise UserError(
            f"{source.parent.parent.name}: llama.cpp's converter does not know this tokenizer: a byte-level BPE "
            f"whose pre-tokenizer (hash {found.group(1) if found else '?'}) is not among those it was taught, as a "
            "vocabulary trained or extended locally is not; a SentencePiece tokenizer (tokenizer.model) converts, "
            "or add the model to llama.cpp's convert_hf_to_gguf_update.py"
        )
    if unknown := re.search(r"Model (\w+) is not supported|Architecture '(\w+)' not supported", said):
        name = unknown.group(1) or unknown.group(2)
        raise UserError(
            f"{name}: an architecture llama.cpp's converter (llama-cpp-python {LLAMA_CPP_PYTHON}) does "
            "not know; make export's folder (FORMAT unset) still loads with transformers"
        )
    last = [line for line in said.splitlines() if line.strip()]
    raise UserError(f"llama.cpp's converter failed: {last[-1] if last else f'exit {result.returncode}'}")


def quantize(source: Path, out: Path, quant: str) -> None:
    """llama.cpp's quantizer, through llama_cpp (a tensor whose shape a type cannot take keeps a fallback type, as
    llama-quantize does)."""
    import logging

    import llama_cpp

    logging.getLogger("llama-cpp-python").setLevel(logging.ERROR)  # llama.cpp's line per tensor: its errors only
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = quantizations()[quant]
    params.nthread = os.cpu_count() or 1
    if llama_cpp.llama_model_quantize(str(source).encode(), str(out).encode(), params) != 0:
        raise UserError(f"llama.cpp's quantizer could not make {quant} of {source.name}")


def llama_cpp_answers(path: Path, prompts: list[list[int]], max_new_tokens: int) -> list[str]:
    """llama.cpp's greedy answers to the tokenized prompts, up to EOS or `max_new_tokens`, as text (special tokens
    left out, as make eval decodes)."""
    from llama_cpp import Llama

    model = Llama(model_path=str(path), n_ctx=0, n_threads=os.cpu_count() or 1, verbose=False, seed=0)
    answers = []
    try:
        for prompt in prompts:
            tokens = []
            for token in model.generate(prompt, top_k=1, temp=0.0, repeat_penalty=1.0, reset=True):
                if token == model.token_eos() or len(tokens) >= max_new_tokens:
                    break
                tokens.append(token)
            answers.append(model.detokenize(tokens).decode("utf-8", errors="replace"))
    finally:
        model.close()
    return answers


def test_prompts(recipe, tokenizer, folder: RunFolder) -> tuple[object, bool, list]:
    """(the recipe's DataSpec, chat or plain, the prompts of the test rows make eval answered, as it built them: all
    of them, or the ones its --limit drew)."""
    from arabic_sft.data.splits import load_splits
    from arabic_sft.generation.run import limited
    from arabic_sft.prompts.builder import build_model_prompt, is_conversational

    splits, spec, _ = load_splits(recipe.args, recipe.fields.seed, wanted=("test",), require_answer=False)
    chat = is_conversational(tokenizer, recipe.args.chat_format, spec)
    asked = (read_json(manifest_of(folder.predictions("test"))) or {}).get("config", {}).get("generation") or {}
    rows = limited(splits["test"].frame, asked.get("limit"), asked.get("seed", 42)).to_dict("records")
    return spec, chat, [build_model_prompt(row, spec, chat) for row in rows]


def agreement(answers: list[str], evaluated: list[str]) -> dict:
    """How far llama.cpp's answers are make eval's: rows answered identically, and chrF against them."""
    from sacrebleu.metrics import CHRF

    same = sum(answer == expected for answer, expected in zip(answers, evaluated, strict=True))
    return {"rows": len(evaluated), "identical": same, "identical_share": same / len(evaluated),
            "chrf": CHRF().corpus_score(answers, [evaluated]).score}  # fmt: skip


def exported_gguf(recipe, trained, export: Path, quant: str | None, overwrite: bool = False) -> Path:
    """The GGUF folder of the finished training `trained` (from its make export folder `export`): kept when it is
    this training's with the same quantization, else made."""
    check_quantization(quant)
    started = now()
    folder = RunFolder(trained.results)
    out = folder.export_gguf
    record = read_json(out / GGUF_MANIFEST) or {}
    settings = (record.get("config") or {}).get("gguf") or {}
    if out.is_dir() and not overwrite and settings.get("model_dir") and settings.get("quant") == quant:
        if not (stale := not_made_by(settings["model_dir"], record.get("started", ""), trained.model_dir, "made")):
            again = as_given("--overwrite", "OVERWRITE=1")
            print(f"{out} is this training's GGUF already: kept ({again} makes it again)")
            return out
        print(f"{out}: {stale}: converting again")
    with exclusive_output(out):
        return make_gguf(recipe, trained, folder, export, out, quant, started)


def make_gguf(recipe, trained, folder: RunFolder, export: Path, out: Path, quant: str | None, started: str) -> Path:
    from transformers import AutoTokenizer

    from arabic_sft.publishing.ollama import modelfile

    staging = out.with_name(f".{out.name}.writing")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        model = trained.manifest.get("config", {}).get("model", {})
        source = staged_source(export, model.get("model_name_or_path"), model.get("model_revision"), staging)
        outtype = sixteen_bits(export)
        files = {outtype: staging / f"model-{outtype}.gguf"}
        convert(source, files[outtype], outtype)
        if quant:
            files[quant] = staging / f"model-{quant}.gguf"
            quantize(files[outtype], files[quant], quant)
        shutil.rmtree(source)
        tokenizer = AutoTokenizer.from_pretrained(export)
        decoding = (read_json(export / EXPORT_MANIFEST) or {}).get("config", {}).get("export", {}).get("decoding", {})
        spec, chat, prompts = test_prompts(recipe, tokenizer, folder)
        served = files[quant] if quant else files[outtype]
        text = modelfile(served.name, tokenizer, spec, chat, decoding, prompts if chat else [])
        (staging / "Modelfile").write_text(text, encoding="utf-8")
        verified = verify(folder, tokenizer, files, decoding, prompts)
        settings = {"model_dir": str(trained.model_dir), "export": str(export), "quant": quant, "outtype": outtype,
                    "llama_cpp_python": LLAMA_CPP_PYTHON, "converter": str(converter()),
                    "decoding": decoding}  # fmt: skip
        sizes = {path.name: path.stat().st_size for path in files.values()}
        record = {**build_manifest({"gguf": settings}, [], started), "files": sizes, "verified": verified}
        write_json_atomic(staging / GGUF_MANIFEST, record)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)  # nothing half-written is left
        raise
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    said = ", ".join(f"{name} {size / 2**20:.1f} MiB" for name, size in sizes.items())
    print(f"wrote {out}: {said}, Modelfile (ollama create NAME -f {out / 'Modelfile'})")
    for name, figures in verified.items():
        if isinstance(figures, dict):
            print(f"  {name}: llama.cpp answered {figures['identical']} of {figures['rows']} test rows as make eval "
                  f"did (chrF {figures['chrf']:.1f})")  # fmt: skip
        else:
            print(f"  {name}: {figures}")
    return out


def verify(folder: RunFolder, tokenizer, files: dict[str, Path], decoding: dict, prompts: list) -> dict:
    """{file: its agreement with make eval's answers on the test rows it answered} (greedy decoding only), or why
    there is none."""
    import pandas as pd

    from arabic_sft.prompts.builder import prompt_token_ids

    predictions = folder.predictions("test")
    if decoding.get("temperature"):
        return {"all": "make eval sampled (temperature > 0): its answers are not compared"}
    if not predictions.is_file():
        return {"all": f"not compared: no {predictions} yet (make eval first)"}
    evaluated = pd.read_csv(predictions, keep_default_na=False).iloc[:, -1].tolist()  # generated: the last column
    if len(evaluated) != len(prompts):
        return {"all": f"not compared: {predictions} answers {len(evaluated)} rows, the recipe's test split has "
                       f"{len(prompts)} (made from another file?)"}  # fmt: skip
    tokens = [prompt_token_ids(tokenizer, prompt) for prompt in prompts]
    return {path.name: agreement(llama_cpp_answers(path, tokens, decoding["max_new_tokens"]), evaluated)
            for path in files.values()}  # fmt: skip
