"""make export FORMAT=gguf, proven by llama.cpp itself (the pinned llama-cpp-python: `make gguf`): its 16-bit file
answers every test row greedy exactly as make eval wrote, from the project's prompt tokens and through llama.cpp's
own chat completion (the chat template embedded in the file), for a chat-format full fine-tune, a LoRA run (merged)
and a plain-prompt model; the Ollama Modelfile's TEMPLATE, rendered by Go's own text/template, is the project's
prompt byte for byte; what llama.cpp cannot take is one line with nothing written. Tiny Llamas with a SentencePiece
tokenizer (as ALLaM has), their weights redrawn large so that greedy choices are decisive (checked: every generated
token wins by a margin far above 16-bit rounding), byte pieces kept out of their answers so that answers are text."""

import json
import shutil
import subprocess

import pandas as pd
import pytest
import torch
from helpers import (
    SAMPLE_FILES,
    assert_one_error_line,
    cpu_recipe,
    preset_spec,
    run_here,
    sample_rows,
    sample_texts,
)

from arabic_sft.prompts.builder import build_model_prompt, prompt_token_ids
from arabic_sft.tiny import build_tiny_model, mark_random


pytestmark = pytest.mark.gguf  # make test-gguf (after make gguf); make test and make test-fast skip them

LORA = {"use_peft": True, "lora_r": 8, "lora_alpha": 32, "lora_target_modules": "all-linear", "dtype": "float32"}
# kind: (task, chat template?, recipe fields)
KINDS = {"chat": ("proverbs", True, {}), "lora": ("proverbs", True, LORA), "plain": ("medical_qa", False, {})}
NEW_TOKENS = 4
# The least a greedy choice must win by, as a share of the largest logit (fp32): the 16-bit file moves these models'
# logits by 0.2% of the largest at most (measured against transformers: 0.015 of 6.7), so a choice that wins by 5%
# is the same choice there, on any CPU.
DECISIVE = 0.05
WORDS = 4  # the word pieces an answer is made of: few, so that a draw with decisive choices is found soon


def margins(model, prompts: list[list[int]]) -> list[float]:
    """How much each greedy choice wins by (top logit minus the next, over the largest), over every prompt's answer."""
    found = []
    for prompt in prompts:
        ids = torch.tensor([prompt])
        with torch.no_grad():
            out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW_TOKENS, do_sample=False,
                                 output_scores=True, return_dict_in_generate=True)  # fmt: skip
        found += [float((top[0] - top[1]) / step[0].abs().max()) for step in out.scores
                  for top in [step[0].topk(2).values]]  # fmt: skip
    return found


def decisive_text_model(path, prompts: list[list[int]]):
    """(model, tokenizer): a tiny SentencePiece Llama whose weights are redrawn large and whose LM head (untied from
    the embedding) says only a few word pieces, the first draw (seed 0, 1, ...) whose every greedy choice on `prompts`
    wins by DECISIVE: answers that are text, and that a 16-bit file gives exactly, on any CPU."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    pieces = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    words = [number for number, piece in enumerate(pieces) if piece.startswith("\u2581") and len(piece) > 2][:WORDS]
    for seed in range(100):
        model = AutoModelForCausalLM.from_pretrained(path).eval()
        model.config.tie_word_embeddings = False
        model.lm_head.weight = torch.nn.Parameter(model.lm_head.weight.detach().clone())
        torch.manual_seed(seed)
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.normal_(0.0, 0.5)
            head = model.lm_head.weight
            kept = head[words].clone()
            head.zero_()
            head[words] = kept
        if min(margins(model, prompts)) > DECISIVE:
            return model, tokenizer
    raise AssertionError("no draw of the first 100 is decisive")


@pytest.fixture(scope="module", params=list(KINDS))
def gguf_run(request, tmp_path_factory):
    """(work folder, kind): a tiny training (one small step: the decisive weights stay), make eval's answers, then
    make export FORMAT=gguf QUANT=q8_0."""
    kind = request.param
    task, chat, fields = KINDS[kind]
    work = tmp_path_factory.mktemp(f"gguf-{kind}")
    build_tiny_model("llama", sample_texts(task), work / "tiny", vocab_size=600, tokenizer="sentencepiece", chat=chat)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(work / "tiny")
    prompts = [
        prompt_token_ids(tokenizer, build_model_prompt(row, preset_spec(task), chat)) for row in sample_rows(task)
    ]
    model, tokenizer = decisive_text_model(work / "tiny", prompts)
    model.save_pretrained(work / "base")
    tokenizer.save_pretrained(work / "base")
    shutil.copy(work / "tiny" / "tokenizer.model", work / "base")
    mark_random(work / "base", "llama")
    cpu_recipe(work / f"{kind}.yaml", work / "base", task, test_file=str(SAMPLE_FILES[task]),
               output_dir=f"results/{kind}/model", max_steps=1, learning_rate=1e-6, **fields)  # fmt: skip
    for step in (["sft.py", "--config", f"{kind}.yaml"],
                 ["generate.py", "--config", f"{kind}.yaml", "--max_new_tokens", str(NEW_TOKENS)],
                 ["export.py", "--config", f"{kind}.yaml", "--format", "gguf", "--quant", "q8_0"]):  # fmt: skip
        assert run_here(*step, cwd=work).returncode == 0, step
    return work, kind


def evaluated(work, kind) -> list[str]:
    return pd.read_csv(work / "results" / kind / "predictions_test.csv", keep_default_na=False).iloc[:, -1].tolist()


def test_the_models_choices_are_decisive_and_their_answers_text(gguf_run):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    work, kind = gguf_run
    task, chat, _ = KINDS[kind]
    folder = work / "results" / kind / "export"  # as trained (one tiny step) and exported
    model, tokenizer = AutoModelForCausalLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
    prompts = [
        prompt_token_ids(tokenizer, build_model_prompt(row, preset_spec(task), chat)) for row in sample_rows(task)
    ]
    assert min(margins(model, prompts)) > DECISIVE
    answers = evaluated(work, kind)
    assert all(answer.strip() for answer in answers) and len(set(answers)) > len(answers) / 2, answers


def test_llama_cpp_answers_every_test_row_as_make_eval_did(gguf_run):
    work, kind = gguf_run
    out = work / "results" / kind / "export-gguf"
    manifest = json.loads((out / "gguf_manifest.json").read_text(encoding="utf-8"))
    assert sorted(path.name for path in out.iterdir()) == ["Modelfile", "gguf_manifest.json", "model-f16.gguf",
                                                           "model-q8_0.gguf"]  # fmt: skip
    assert (
        manifest["config"]["gguf"]["outtype"] == "f16" and manifest["config"]["gguf"]["llama_cpp_python"] == "0.3.36"
    )
    sixteen = manifest["verified"]["model-f16.gguf"]
    assert sixteen["rows"] == len(evaluated(work, kind)) == 12 and sixteen["identical"] == 12
    quantized = manifest["verified"]["model-q8_0.gguf"]  # a tiny random model's answers move under 8 bits: recorded
    assert 0 <= quantized["identical"] <= 12 and 0 <= quantized["chrf"] <= 100
    assert manifest["files"]["model-q8_0.gguf"] < manifest["files"]["model-f16.gguf"]
    # the same through llama_cpp here, from the project's prompt tokens
    from transformers import AutoTokenizer

    from arabic_sft.publishing.gguf import llama_cpp_answers

    task, chat, _ = KINDS[kind]
    tokenizer = AutoTokenizer.from_pretrained(work / "results" / kind / "export")
    prompts = [
        prompt_token_ids(tokenizer, build_model_prompt(row, preset_spec(task), chat)) for row in sample_rows(task)
    ]
    assert llama_cpp_answers(out / "model-f16.gguf", prompts, NEW_TOKENS) == evaluated(work, kind)


def test_the_file_embeds_the_trained_template_and_tokens_and_its_own_chat_completion_answers_as_make_eval_did(
    gguf_run,
):
    from llama_cpp import Llama
    from transformers import AutoTokenizer

    work, kind = gguf_run
    task, chat, _ = KINDS[kind]
    tokenizer = AutoTokenizer.from_pretrained(work / "results" / kind / "export")
    model = Llama(model_path=str(work / "results" / kind / "export-gguf" / "model-f16.gguf"), n_ctx=1024,
                  verbose=False)  # fmt: skip
    try:
        metadata = model.metadata
        assert int(metadata["tokenizer.ggml.bos_token_id"]) == tokenizer.bos_token_id
        assert int(metadata["tokenizer.ggml.eos_token_id"]) == tokenizer.eos_token_id
        assert metadata["tokenizer.ggml.add_bos_token"] == "true"
        assert metadata.get("tokenizer.chat_template") == tokenizer.chat_template
        if not chat:
            return
        for row, expected in zip(sample_rows(task), evaluated(work, kind), strict=True):
            messages = build_model_prompt(row, preset_spec(task), True)
            reply = model.create_chat_completion(messages=messages, temperature=0, max_tokens=NEW_TOKENS,
                                                 repeat_penalty=1.0)  # fmt: skip
            assert reply["choices"][0]["message"]["content"] == expected
    finally:
        model.close()


GO_RENDER = """package main

import (
	"encoding/json"
	"os"
	"strings"
	"text/template"
)

type Message struct {
	Role    string
	Content string
}

type Data struct {
	Messages []Message
	Prompt   string
	System   string
}

func main() {
	source, _ := os.ReadFile(os.Args[1])
	tmpl := template.Must(template.New("Modelfile").Parse(string(source)))
	var inputs []Data
	if err := json.NewDecoder(os.Stdin).Decode(&inputs); err != nil {
		panic(err)
	}
	var outputs []string
	for _, input := range inputs {
		var text strings.Builder
		if err := tmpl.Execute(&text, input); err != nil {
			panic(err)
		}
		outputs = append(outputs, text.String())
	}
	json.NewEncoder(os.Stdout).Encode(outputs)
}
"""


def go_render(template: str, inputs: list[dict], folder) -> list[str]:
    """`template` rendered for each of `inputs` ({Messages, Prompt, System}) by Go's own text/template."""
    if shutil.which("go") is None:
        pytest.fail("go is missing: make golang installs Debian's golang-go (make test-gguf does)")
    (folder / "render.go").write_text(GO_RENDER, encoding="utf-8")
    (folder / "template.txt").write_text(template, encoding="utf-8")
    result = subprocess.run(["go", "run", "render.go", "template.txt"], cwd=folder, input=json.dumps(inputs),
                            capture_output=True, text=True, check=True)  # fmt: skip
    return json.loads(result.stdout)


def test_the_ollama_modelfile_renders_the_project_s_prompt_with_go_s_own_template_engine(gguf_run, tmp_path):
    import re

    from transformers import AutoTokenizer

    work, kind = gguf_run
    task, chat, _ = KINDS[kind]
    text = (work / "results" / kind / "export-gguf" / "Modelfile").read_text(encoding="utf-8")
    template = re.search(r'^TEMPLATE """(.*?)"""$', text, re.S | re.M).group(1)
    assert text.startswith("FROM ./model-q8_0.gguf\n")
    assert 'PARAMETER stop "</s>"' in text and "PARAMETER temperature 0\n" in text
    assert f"PARAMETER num_predict {NEW_TOKENS}\n" in text
    tokenizer = AutoTokenizer.from_pretrained(work / "results" / kind / "export")
    spec, rows = preset_spec(task), sample_rows(task)
    if chat:  # Ollama's .Messages; it adds BOS itself (the file's add_bos_token), so the template starts after it
        conversations = [build_model_prompt(row, spec, True) for row in rows]
        conversations.append([{"role": "system", "content": "أجب بإيجاز."}, *conversations[0]])
        inputs = [{"Messages": [{"Role": m["role"], "Content": m["content"]} for m in messages]}
                  for messages in conversations]  # fmt: skip
        expected = [tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
                    .removeprefix(tokenizer.bos_token) for messages in conversations]  # fmt: skip
    else:  # one input field is Ollama's .Prompt; with several (SHEFAA's question and category), the whole prompt
        expected = [build_model_prompt(row, spec, False) for row in rows]
        fields = list(spec.inputs)
        inputs = [{"Prompt": row[fields[0]] if len(fields) == 1 else prompt} for row, prompt in zip(rows, expected)]
    assert go_render(template, inputs, tmp_path) == expected


def test_what_llama_cpp_cannot_take_is_one_line_with_nothing_written(
    gguf_run, tiny_llama, tmp_path, script_in_process
):
    work, kind = gguf_run
    if kind != "chat":
        pytest.skip("once")
    before = sorted(path.name for path in (work / "results" / kind).iterdir())
    for args, words in ((["--format", "gguf", "--quant", "q3_xyz"], ["QUANT q3_xyz", "q8_0"]),
                        (["--quant", "q8_0"], ["give --format gguf"])):  # fmt: skip
        assert_one_error_line(script_in_process("export.py", "--config", f"{kind}.yaml", *args, cwd=work), *words)
    assert sorted(path.name for path in (work / "results" / kind).iterdir()) == before
    kept = script_in_process("export.py", "--config", f"{kind}.yaml", "--format", "gguf", "--quant", "q8_0", cwd=work)
    assert kept.returncode == 0 and "is this training's GGUF already: kept" in kept.stdout
    # a byte-level BPE trained here (the tests' tiny Llama): llama.cpp's converter knows no hash for its pre-tokenizer
    cpu_recipe(tmp_path / "bpe.yaml", tiny_llama, output_dir="results/bpe/model", max_steps=1)
    assert run_here("sft.py", "--config", "bpe.yaml", cwd=tmp_path).returncode == 0
    refused = script_in_process("export.py", "--config", "bpe.yaml", "--format", "gguf", cwd=tmp_path)
    assert_one_error_line(refused, "does not know this tokenizer", "SentencePiece")
    written = sorted(path.name for path in (tmp_path / "results" / "bpe").iterdir() if "gguf" in path.name)
    assert written == []  # no GGUF folder, nothing half-written beside it


def test_an_architecture_the_converter_does_not_know_is_one_line(gguf_run, tmp_path):
    from arabic_sft.publishing.gguf import convert
    from arabic_sft.runtime.errors import UserError

    work, kind = gguf_run
    if kind != "chat":
        pytest.skip("once")
    source = tmp_path / "source"
    shutil.copytree(work / "results" / kind / "export", source)
    config = json.loads((source / "config.json").read_text(encoding="utf-8"))
    (source / "config.json").write_text(json.dumps({**config, "architectures": ["TinyNewForCausalLM"]}), "utf-8")
    with pytest.raises(UserError, match="TinyNewForCausalLM: an architecture llama.cpp's converter"):
        convert(source, tmp_path / "model.gguf", "f16")
    assert not (tmp_path / "model.gguf").exists()
