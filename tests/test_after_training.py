"""After training, each way of using the model answers every test row exactly as make eval (and make baseline) wrote,
byte for byte, for a full fine-tune, a LoRA adapter and a plain-prompt model: make export's folder (plain
AutoModelForCausalLM with its own generation_config.json), make serve (transformers serve, the openai client) and make
chat (the Gradio page's API through gradio_client, and the page itself in Debian's chromium)."""

import json
import os

import pandas as pd
import pytest
import torch
from helpers import (
    ROOT,
    SAMPLE_FILES,
    answering_with_a_space,
    assert_one_error_line,
    cpu_recipe,
    preset_spec,
    run_here,
    sample_rows,
    sharp_random_model,
)
from transformers import AutoModelForCausalLM, AutoTokenizer

from arabic_sft.prompts.builder import build_model_prompt, prompt_token_ids
from arabic_sft.tiny import mark_random


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
    base, tokenizer = sharp_random_model(request.getfixturevalue(model))  # its answers are text, not EOS at once
    spec, chat = preset_spec(task), KINDS[name][2]
    last = {prompt_token_ids(tokenizer, build_model_prompt(row, spec, chat))[-1] for row in sample_rows(task)}
    assert len(last) == 1  # every prompt ends in the same token: the model answers it with a space first
    answering_with_a_space(base, last.pop(), tokenizer.convert_tokens_to_ids("Ġ"))
    base.save_pretrained(work / "base")
    tokenizer.save_pretrained(work / "base")
    mark_random(work / "base", model)
    fields = LORA if name == "lora" else {"learning_rate": 2.0e-3}
    if name == "full":  # training rows besides the test rows, for a few-shot baseline's solved examples
        rows = pd.read_csv(SAMPLE_FILES[task])
        extra = rows.assign(**{rows.columns[0]: rows.iloc[:, 0] + " أيضا"})
        pd.concat([rows, extra]).to_csv(work / "train.csv", index=False)
        fields["train_file"] = str(work / "train.csv")
    cpu_recipe(work / f"{name}.yaml", work / "base", task, test_file=str(SAMPLE_FILES[task]),
               output_dir=f"results/{name}/model", max_steps=4, **fields)  # fmt: skip
    steps = [["sft.py", "--config", f"{name}.yaml"],
             ["generate.py", "--config", f"{name}.yaml", "--max_new_tokens", "8"],
             ["generate.py", "--config", f"{name}.yaml", "--baseline", "--max_new_tokens", "8"],
             ["export.py", "--config", f"{name}.yaml"]]  # fmt: skip
    if name == "full":  # a few-shot baseline too: make chat shows it beside the others
        steps.insert(3, ["generate.py", "--config", f"{name}.yaml", "--baseline", "--shots", "2", "--max_new_tokens",
                         "8", "--seed", "3"])  # fmt: skip
    for step in steps:
        assert run_here(*step, cwd=work).returncode == 0, step
    return work, name


def made_by_eval(work, name: str) -> dict[str, list[str]]:
    """Each side's answers as make eval and make baseline wrote them: {folder name: the generated column}."""
    folders = {"base": "baseline-zero-shot", "2-shot": "baseline-2-shot", "tuned": "."}
    answers = {}
    for side, folder in folders.items():
        path = work / "results" / name / folder / "predictions_test.csv"
        if path.is_file():
            answers[side] = pd.read_csv(path, keep_default_na=False).iloc[:, -1].tolist()  # generated: last column
            assert sum(bool(answer.strip()) for answer in answers[side]) > len(answers[side]) / 2, (
                side,
                answers[side],
            )
            assert all(answer[:1].isspace() for answer in answers[side]), (side, answers[side])  # as the model said
    return answers


def test_the_exported_folder_answers_as_make_eval_did(exported):
    work, name = exported
    folder = work / "results" / name / "export"
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()  # plain transformers: no PEFT, no project code
    assert not (folder / "adapter_config.json").exists() and model.generation_config.max_new_tokens == 8
    assert model.generation_config.do_sample is False
    _, task, chat = KINDS[name]
    assert (tokenizer.chat_template is not None) == chat
    spec = preset_spec(task)
    for row, expected in zip(sample_rows(task), made_by_eval(work, name)["tuned"], strict=True):
        ids = torch.tensor([prompt_token_ids(tokenizer, build_model_prompt(row, spec, chat))])
        with torch.no_grad():
            output = model.generate(ids, attention_mask=torch.ones_like(ids))  # its own generation_config
        assert tokenizer.decode(output[0, ids.shape[1] :], skip_special_tokens=True) == expected
    manifest = json.loads((folder / "export_manifest.json").read_text(encoding="utf-8"))
    assert manifest["config"]["export"]["merged"] is (name == "lora")
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "has random weights" in card


def test_an_export_of_this_training_is_kept_and_an_unknown_seed_is_one_line(exported, script_in_process, monkeypatch):
    work, name = exported
    kept = script_in_process("export.py", "--config", f"{name}.yaml", cwd=work)
    assert kept.returncode == 0 and "is this training's export already: kept (--overwrite makes it" in kept.stdout
    for front, hint in (("make", "OVERWRITE=1"), ("arabic-sft", "--overwrite")):  # the form that works from there
        monkeypatch.setenv("ARABIC_SFT_FRONT", front)
        assert f"kept ({hint} makes it again)" in script_in_process("export.py", "--config", f"{name}.yaml",
                                                                      cwd=work).stdout  # fmt: skip
    monkeypatch.delenv("ARABIC_SFT_FRONT")
    for script in ("export.py", "serve.py", "chat.py"):
        missing = script_in_process(script, "--config", f"{name}.yaml", "--seed", "7", cwd=work)
        assert_one_error_line(missing, "seed-7/model: no finished training")


def test_a_recipe_never_trained_is_one_line(tiny_llama, tmp_path, script_in_process):
    cpu_recipe(tmp_path / "new.yaml", tiny_llama, output_dir="results/new/model")
    for script in ("export.py", "serve.py", "chat.py"):
        result = script_in_process(script, "--config", "new.yaml", cwd=tmp_path)
        assert_one_error_line(result, "results/new/model: no finished training", "make train RECIPE=new")
    assert not (tmp_path / "results" / "new" / "export").exists()


@pytest.mark.slow  # a served model
def test_the_served_model_answers_any_openai_client_as_make_eval_did(exported, script_in_process):
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
    fresh = {**os.environ, "HF_HUB_CACHE": str(work / "no-cache")}  # a machine with no Hugging Face cache
    stage = subprocess.Popen(command, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=fresh)
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
        assert [model.id for model in client.models.list()] == [folder]  # what a client lists first: the served model
        assert f"model name: {folder})" in "".join(printed)  # the name make serve says to send
        tokenizer = AutoTokenizer.from_pretrained(folder)
        for row, expected in zip(sample_rows(task), made_by_eval(work, name)["tuned"], strict=True):
            prompt = build_model_prompt(row, preset_spec(task), chat)
            if chat:
                reply = client.chat.completions.create(model=folder, messages=prompt, temperature=0, max_tokens=8)
                text = reply.choices[0].message.content
            else:
                text = (
                    client.completions.create(model=folder, prompt=prompt, temperature=0, max_tokens=8).choices[0].text
                )
            assert text == expected, (text, expected)
        assert tokenizer.chat_template is not None or not chat
        # make endpoint of the served export (generate.py's endpoint backend): make eval's answers, then the board
        answers = work / "results" / name / "endpoint-export" / "predictions_test.csv"
        asked = script_in_process("generate.py", "--config", f"{name}.yaml", "--endpoint_url",
                                  f"http://127.0.0.1:{port}/v1", "--endpoint_model", folder, "--max_new_tokens", "8",
                                  "--out_path", answers, cwd=work)  # fmt: skip
        assert asked.returncode == 0, asked.stderr[-2000:]
        assert pd.read_csv(answers, keep_default_na=False).iloc[:, -1].tolist() == made_by_eval(work, name)["tuned"]
        for predictions in (answers, work / "results" / name / "baseline-zero-shot" / "predictions_test.csv"):
            quick = ("--no_bertscore", "--no_semantic_similarity", "--overwrite")
            assert script_in_process("score.py", predictions, *quick, cwd=work).returncode == 0
        assert script_in_process("score.py", "--config", f"{name}.yaml", *quick, cwd=work).returncode == 0
        board = script_in_process("board.py", f"{name}.yaml", "--overwrite", cwd=work)
        assert board.returncode == 0, board.stderr
        table = pd.read_csv(work / "results" / name / "board_test.csv").set_index(["system", "metric"])
        served, tuned = table.loc[(f"{name}/endpoint-export", "rougeL")], table.loc[(name, "rougeL")]
        assert served["value"] == tuned["value"] and served["tokens_per_row"] > 0 and served["seconds_per_row"] > 0
        if not chat:  # a plain-prompt model asked through the chat route: refused, and the server keeps serving
            import openai

            with pytest.raises(openai.APIStatusError) as refused:
                client.chat.completions.create(model=folder, messages=[{"role": "user", "content": "س"}], max_tokens=8)
            assert refused.value.status_code >= 400
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
    finally:
        stage.send_signal(signal.SIGINT)  # Ctrl-C: the stage stops its server with it
        err = stage.stderr.read()
        stage.wait(timeout=60)
        reader.join(timeout=60)
    out = "".join(printed)
    assert stage.returncode == 0, err[-3000:]
    assert f"at http://127.0.0.1:{port}/v1" in out and "curl http://127.0.0.1" in out and "stopped the server" in err
    assert ("/v1/chat/completions refuses" in out) is not chat
    from arabic_sft.stages.serve import port_is_free

    assert port_is_free(port)  # the server is gone with the stage: nothing listens on its port


def test_a_port_in_use_is_one_line(exported, script_in_process):
    import socket

    work, name = exported
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        for script in ("serve.py", "chat.py"):
            result = script_in_process(script, "--config", f"{name}.yaml", "--port", port, cwd=work)
            assert_one_error_line(result, f"port {port} is in use on 127.0.0.1")


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def chat_page(exported, monkeypatch):
    """(the page's URL, its Answerer): make chat's page for this training, launched in this process on 127.0.0.1."""
    from arabic_sft.recipe import load_recipe
    from arabic_sft.recipe.check import trained_model_of
    from arabic_sft.stages import chat

    work, name = exported
    monkeypatch.chdir(work)
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    recipe = load_recipe(["--config", f"{name}.yaml"])
    answering = chat.answerer(f"{name}.yaml", recipe, trained_model_of(f"{name}.yaml"))
    page = chat.build_page(recipe, answering)
    port = free_port()
    page.queue(default_concurrency_limit=1)
    page.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, ssr_mode=False)
    try:
        yield f"http://127.0.0.1:{port}/", answering
    finally:
        page.close()


def test_the_chat_page_s_api_answers_each_side_as_make_eval_and_make_baseline_did(exported, chat_page):
    from gradio_client import Client

    work, name = exported
    url, answering = chat_page
    _, task, _ = KINDS[name]
    expected = made_by_eval(work, name)
    sides = ["base", *(["2-shot"] if name == "full" else []), "tuned"]
    assert [side.label for side in answering.sides] == [
        "base model (zero-shot)",
        *(["base model (2-shot)"] if name == "full" else []),
        "fine-tuned",
    ]
    client = Client(url, verbose=False)
    spec = preset_spec(task)
    keys = {"base": "base", "2-shot": "base_2_shot", "tuned": "tuned"}
    for number, row in enumerate(sample_rows(task)):
        answers = client.predict(*[row[field] for field in spec.inputs], api_name="/answer")  # the page's button
        assert list(answers) == [expected[side][number] for side in sides], number
        named = client.predict(fields={field: row[field] for field in spec.inputs}, api_name="/answers")  # a script's
        assert named == {keys[side]: expected[side][number] for side in sides}, number


@pytest.fixture(scope="module")
def browser():
    import shutil

    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        pytest.fail("chromium and chromedriver are missing: make browser installs them (make test does)")
    from arabic_sft.reporting.browser import headless_chromium

    driver = headless_chromium(width=1300, height=1000, logs=True)
    yield driver
    driver.quit()


def wait_for(condition, what: str, seconds: float = 120):
    import time

    deadline = time.time() + seconds
    while not (value := condition()):
        assert time.time() < deadline, f"waited {seconds} s for {what}"
        time.sleep(0.2)
    return value


# Gradio's progress overlays all hidden: no event is running.
IDLE = "return [...document.querySelectorAll('[data-testid=status-tracker]')].every(e => e.classList.contains('hide'))"


def side_texts(driver, count: int) -> list[str]:
    from selenium.webdriver.common.by import By

    return [driver.find_element(By.CSS_SELECTOR, f"#side-{n} textarea").get_attribute("value") for n in range(count)]


@pytest.mark.slow  # the browser, a served page
@pytest.mark.parametrize("exported", ["full"], indirect=True)
def test_make_chat_in_a_browser_shows_both_answers_right_to_left_fetches_nothing_outside_and_stops_on_ctrl_c(
    exported, browser, tmp_path
):
    import os
    import signal
    import subprocess
    import sys
    import threading

    from selenium.webdriver.common.by import By

    from arabic_sft.stages.serve import port_is_free

    work, name = exported
    port = free_port()
    command = [sys.executable, str(ROOT / "scripts" / "chat.py"), "--config", f"{name}.yaml", "--port", str(port)]
    stage = subprocess.Popen(command, cwd=work, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, "HF_HUB_OFFLINE": "1"})  # fmt: skip
    printed = []
    reader = threading.Thread(target=lambda: printed.extend(stage.stdout), daemon=True)
    reader.start()
    try:
        started = lambda: any(line.startswith("chat with ") for line in printed) or stage.poll() is not None  # noqa: E731
        wait_for(started, "the page")
        assert stage.poll() is None, stage.stderr.read()[-3000:]
        browser.get_log("performance")  # only this page's requests from here on
        browser.get(f"http://127.0.0.1:{port}/")
        field = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#field-proverb textarea"), "the field")[0]
        assert browser.execute_script("return getComputedStyle(arguments[0]).direction", field) == "rtl"
        expected = made_by_eval(work, name)
        row = sample_rows("proverbs")[0]
        field.send_keys(row["proverb"])
        browser.find_element(By.ID, "ask").click()
        wanted = [expected[side][0] for side in ("base", "2-shot", "tuned")]
        wait_for(lambda: side_texts(browser, 3) == wanted, "the three answers as make eval wrote them")
        wait_for(lambda: browser.execute_script(IDLE), "the page to finish answering")
        answer = browser.find_element(By.CSS_SELECTOR, "#side-2 textarea")
        assert browser.execute_script("return getComputedStyle(arguments[0]).direction", answer) == "rtl"
        header = "".join(browser.find_element(By.TAG_NAME, "body").text.split())  # code spans are blocks
        assert "fine-tuned:results/full/model;chattemplate;greedy,upto8newtokens" in header
        assert "basemodel(2-shot):" in header and "2solvedtrainingrowsfirst" in header
        browser.save_screenshot(os.environ.get("ARABIC_SFT_CHAT_SCREENSHOT") or str(tmp_path / "chat.png"))
        requested = [
            json.loads(entry["message"])["message"]["params"]["request"]["url"]
            for entry in browser.get_log("performance")
            if json.loads(entry["message"])["message"]["method"] == "Network.requestWillBeSent"
        ]
        outside = [url for url in requested if not url.startswith((f"http://127.0.0.1:{port}/", "data:", "blob:"))]
        assert requested and outside == []
        assert [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"] == []
    finally:
        stage.send_signal(signal.SIGINT)  # Ctrl-C
        err = stage.stderr.read()
        stage.wait(timeout=60)
        reader.join(timeout=60)
    assert stage.returncode == 0, err[-3000:]
    assert "stopped the chat page (SIGINT)" in err and port_is_free(port)


@pytest.mark.slow  # the browser
@pytest.mark.parametrize("exported", ["full"], indirect=True)
def test_a_picked_row_fills_the_fields_and_an_answer_holding_html_is_shown_as_text(exported, chat_page, browser):
    from selenium.webdriver.common.by import By

    url, answering = chat_page
    markup = "<b id='bold'>x</b><img src=x onerror=\"document.title='ran'\">"
    answering.sides[-1].stream = lambda row, spec: iter([markup])  # what a model could write
    browser.get(url)
    picker = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#row input"), "the row picker")[0]
    picker.click()
    wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#row li[role=option]"), "the rows")[1].click()
    values, reference = answering.fields_of(1)
    field = browser.find_element(By.CSS_SELECTOR, "#field-proverb textarea")
    wait_for(lambda: field.get_attribute("value") == values[0], "the picked row's input")
    shown = browser.find_element(By.CSS_SELECTOR, "#reference textarea")
    wait_for(lambda: shown.get_attribute("value") == reference, "the picked row's reference")
    browser.find_element(By.ID, "ask").click()
    wait_for(lambda: side_texts(browser, 3)[-1] == markup, "the answer")
    assert browser.find_elements(By.ID, "bold") == [] and browser.title != "ran"
