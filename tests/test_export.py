"""make export: one folder that loads with plain AutoModelForCausalLM / AutoTokenizer and, with its own
generation_config.json (no decoding argument given), answers every test row exactly as make eval wrote, byte for byte:
for a full fine-tune and for a LoRA adapter (merged into its base)."""

import json

import pandas as pd
import pytest
import torch
from helpers import ROOT, SAMPLE_FILES, assert_one_error_line, cpu_recipe, preset_spec, run_here, sample_rows
from transformers import AutoModelForCausalLM, AutoTokenizer

from arabic_sft.prompts.builder import build_model_prompt, prompt_token_ids


LORA = {"use_peft": True, "lora_r": 8, "lora_alpha": 32, "lora_target_modules": "all-linear", "dtype": "float32",
        "learning_rate": 5.0e-3}  # fmt: skip


# (model fixture, task, chat template?): the chat-format demo model, and a plain-prompt one (SHEFAA's Jais base).
KINDS = {"full": ("tiny_llama", "proverbs", True), "lora": ("tiny_llama", "proverbs", True),
         "plain": ("tiny_gpt2", "medical_qa", False)}  # fmt: skip


@pytest.fixture(scope="module", params=list(KINDS))
def exported(request, tmp_path_factory):
    """(folder, recipe name): a tiny training, make eval's answers (8 new tokens), then make export's folder."""
    work = tmp_path_factory.mktemp(f"export-{request.param}")
    name = request.param
    model, task, _ = KINDS[name]
    fields = LORA if name == "lora" else {"learning_rate": 2.0e-3}
    cpu_recipe(work / f"{name}.yaml", request.getfixturevalue(model), task, test_file=str(SAMPLE_FILES[task]),
               output_dir=f"results/{name}/model", max_steps=4, **fields)  # fmt: skip
    for step in (["sft.py", "--config", f"{name}.yaml"],
                 ["generate.py", "--config", f"{name}.yaml", "--max_new_tokens", "8"],
                 ["export.py", "--config", f"{name}.yaml"]):  # fmt: skip
        assert run_here(*step, cwd=work).returncode == 0, step
    return work, name


def test_the_exported_folder_answers_as_make_eval_did(exported):
    work, name = exported
    folder = work / "results" / name / "export"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()  # plain transformers: no PEFT, no project code
    assert not (folder / "adapter_config.json").exists() and model.generation_config.max_new_tokens == 8
    assert model.generation_config.do_sample is False
    _, task, chat = KINDS[name]
    assert (tokenizer.chat_template is not None) == chat
    answers = pd.read_csv(work / "results" / name / "predictions_test.csv", keep_default_na=False)
    spec = preset_spec(task)
    for row, expected in zip(sample_rows(task), answers.iloc[:, -1], strict=True):  # the generated column is last
        ids = torch.tensor([prompt_token_ids(tokenizer, build_model_prompt(row, spec, chat))])
        with torch.no_grad():
            output = model.generate(ids, attention_mask=torch.ones_like(ids))  # its own generation_config
        assert tokenizer.decode(output[0, ids.shape[1] :], skip_special_tokens=True).strip() == expected
    manifest = json.loads((folder / "export_manifest.json").read_text(encoding="utf-8"))
    assert manifest["config"]["export"]["merged"] is (name == "lora")
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "has random weights" in card


def test_an_export_of_this_training_is_kept_and_an_unknown_seed_is_one_line(exported, script_in_process):
    work, name = exported
    kept = script_in_process("export.py", "--config", f"{name}.yaml", cwd=work)
    assert kept.returncode == 0 and "is this training's export already: kept" in kept.stdout
    missing = script_in_process("export.py", "--config", f"{name}.yaml", "--seed", "7", cwd=work)
    assert_one_error_line(missing, "seed-7/model: no finished training")


def test_a_recipe_never_trained_is_one_line(tiny_llama, tmp_path, script_in_process):
    cpu_recipe(tmp_path / "new.yaml", tiny_llama, output_dir="results/new/model")
    result = script_in_process("export.py", "--config", "new.yaml", cwd=tmp_path)
    assert_one_error_line(result, "results/new/model: no finished training", "make train RECIPE=new")
    assert not (tmp_path / "results" / "new" / "export").exists()


@pytest.mark.slow  # a served model
def test_the_served_model_answers_any_openai_client_as_make_eval_did(exported):
    import signal
    import socket
    import subprocess
    import sys
    import threading
    import time
    import urllib.request

    from openai import OpenAI

    work, name = exported
    _, task, chat = KINDS[name]
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = [sys.executable, str(ROOT / "scripts" / "serve.py"), "--config", f"{name}.yaml", "--port", str(port)]
    stage = subprocess.Popen(command, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    printed = []
    reader = threading.Thread(target=lambda: printed.extend(stage.stdout), daemon=True)  # its lines as they come
    reader.start()
    try:
        deadline = time.time() + 240
        while not any(line.startswith("serving ") for line in printed):  # as a user waits for its address
            assert stage.poll() is None and time.time() < deadline, stage.stderr.read()[-3000:]
            time.sleep(0.2)
        urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
        folder = str((work / "results" / name / "export").resolve())
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="none")
        tokenizer = AutoTokenizer.from_pretrained(folder)
        answers = pd.read_csv(work / "results" / name / "predictions_test.csv", keep_default_na=False)
        for row, expected in zip(sample_rows(task), answers.iloc[:, -1], strict=True):
            prompt = build_model_prompt(row, preset_spec(task), chat)
            if chat:
                reply = client.chat.completions.create(model=folder, messages=prompt, temperature=0, max_tokens=8)
                text = reply.choices[0].message.content
            else:
                text = (
                    client.completions.create(model=folder, prompt=prompt, temperature=0, max_tokens=8).choices[0].text
                )
            assert text.strip() == expected, (text, expected)
        assert tokenizer.chat_template is not None or not chat
    finally:
        stage.send_signal(signal.SIGINT)  # Ctrl-C: the stage stops its server with it
        err = stage.stderr.read()
        stage.wait(timeout=60)
        reader.join(timeout=60)
    out = "".join(printed)
    assert stage.returncode == 0, err[-3000:]
    assert f"at http://127.0.0.1:{port}/v1" in out and "curl http://127.0.0.1" in out and "stopped the server" in err
    from arabic_sft.stages.serve import port_is_free

    assert port_is_free(port)  # the server is gone with the stage: nothing listens on its port


def test_a_port_in_use_is_one_line(exported, script_in_process):
    import socket

    work, name = exported
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = script_in_process("serve.py", "--config", f"{name}.yaml", "--port", port, cwd=work)
    assert_one_error_line(result, f"port {port} is in use on 127.0.0.1")
