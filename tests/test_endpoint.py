"""A model behind an OpenAI-compatible endpoint is a system: asked the recipe's test rows with the recipe's prompts and
decoding through the `openai` client, its answers saved as they arrive and written as every run's. Proven with real
parts: `transformers serve` of the recipe's base model answers exactly as make baseline did (a chat-format recipe and
a plain-prompt one); a misbehaving server of the tests' own (429 with Retry-After, then 500s, then nothing) gets the
client's retries and then one line (exit 75) with the rows answered kept, and the same command then completes the very
file an uninterrupted run writes; the key is read from the environment and written nowhere."""

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest
from helpers import (
    ROOT,
    SAMPLE_FILES,
    assert_one_error_line,
    cpu_recipe,
    run_script,
    sharp_random_model,
    transformers_serve,
)

from arabic_sft.tiny import mark_random


SECRET = "sk-test-NEVER-WRITTEN-4242"


def generated(path) -> list[str]:
    return pd.read_csv(path, keep_default_na=False).iloc[:, -1].tolist()  # the generated column: the last


def written_anywhere(folder, text: str) -> list[str]:
    return [str(path) for path in folder.rglob("*") if path.is_file() and text.encode() in path.read_bytes()]


@pytest.mark.slow  # a served model
@pytest.mark.parametrize("model_fixture, task", [("tiny_llama", "proverbs"), ("tiny_gpt2", "medical_qa")],
                         ids=["chat", "plain"])  # fmt: skip
def test_the_base_model_served_by_transformers_serve_answers_as_make_baseline_did(request, model_fixture, task,
                                                                                  tmp_path):  # fmt: skip
    base, tokenizer = sharp_random_model(request.getfixturevalue(model_fixture))  # decisive greedy choices
    base.save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    mark_random(tmp_path / "base", model_fixture.removeprefix("tiny_"))
    cpu_recipe(tmp_path / "r.yaml", tmp_path / "base", task, test_file=str(SAMPLE_FILES[task]),
               output_dir="results/r/model")  # fmt: skip
    made = run_script("generate.py", "--config", "r.yaml", "--baseline", "--max_new_tokens", "8", cwd=tmp_path)
    assert made.returncode == 0, made.stderr[-2000:]
    folder = str((tmp_path / "base").resolve())
    with transformers_serve(folder, tmp_path / "server.log") as url:
        asked = run_script("generate.py", "--config", "r.yaml", "--endpoint_url", url, "--endpoint_model", folder,
                           "--endpoint_key_env", "SERVER_KEY", "--max_new_tokens", "8", cwd=tmp_path,
                           env={"SERVER_KEY": SECRET})  # fmt: skip
    assert asked.returncode == 0, asked.stderr[-2000:]
    results = tmp_path / "results" / "r"
    (answers,) = list(results.glob("endpoint-*/predictions_test.csv"))
    assert generated(answers) == generated(results / "baseline-zero-shot" / "predictions_test.csv")
    manifest = json.loads(answers.with_name("predictions_test.manifest.json").read_text(encoding="utf-8"))
    record = manifest["config"]["generation"]
    assert record["endpoint_url"] == url and record["endpoint_key_env"] == "SERVER_KEY"
    assert record["prompt"] == ("chat messages" if task == "proverbs" else "plain text")
    assert record["usage"]["requests"] == 12 and record["usage"]["completion_tokens"] > 0
    assert written_anywhere(tmp_path, SECRET) == []  # the key is in no file the run wrote


class Misbehaving(BaseHTTPRequestHandler):
    """An OpenAI-compatible chat endpoint of the tests' own whose behaviour the test sets (`server.plan`): each
    request takes the plan's next step ("429", "500", "hang", "hold" or "ok"), the last one repeating; an answer is the
    question's first three words reversed, empty for a question holding "(empty)"."""

    def log_message(self, *args):
        pass

    def do_POST(self):
        server = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with server.lock:
            step = server.plan.pop(0) if len(server.plan) > 1 else server.plan[0]
            server.seen.append((step, time.monotonic(), self.headers.get("Authorization")))
        if step == "hang":
            time.sleep(3)
            return
        if step == "hold":  # until the test releases it: the requests in flight when a run is killed
            server.release.wait(60)
        if step in ("429", "500"):
            self.send_response(int(step))
            self.send_header("Content-Type", "application/json")
            if step == "429":
                self.send_header("Retry-After", "1")
            self.end_headers()
            self.wfile.write(json.dumps({"error": {"message": "busy" if step == "429" else "broken"}}).encode())
            return
        question = body["messages"][-1]["content"]
        answer = "" if "(empty)" in question else " ".join(reversed(question.split()[-3:]))
        choice = {"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}
        reply = {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"], "choices": [choice],
                 "usage": {"prompt_tokens": 10, "completion_tokens": 3, "total_tokens": 13}}  # fmt: skip
        data = json.dumps(reply, ensure_ascii=False).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def misbehaving():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Misbehaving)
    server.daemon_threads = True
    server.plan, server.seen, server.lock, server.release = ["ok"], [], threading.Lock(), threading.Event()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


@pytest.mark.slow  # four runs against a server that waits on purpose
def test_a_failing_endpoint_is_retried_then_stops_in_one_line_and_the_same_command_completes_the_same_file(
    misbehaving, tiny_llama, tmp_path, script_in_process, monkeypatch
):
    rows = pd.read_csv(SAMPLE_FILES["proverbs"])
    rows.iloc[3, 0] = rows.iloc[3, 0] + " (empty)"  # its answer: nothing, recorded as the answer
    rows.to_csv(tmp_path / "test.csv", index=False)
    cpu_recipe(tmp_path / "r.yaml", tiny_llama, test_file=str(tmp_path / "test.csv"), output_dir="results/r/model")
    url = f"http://127.0.0.1:{misbehaving.server_address[1]}/v1"

    monkeypatch.setenv("SERVER_KEY", SECRET)

    def ask(out: str) -> subprocess.CompletedProcess:  # in this process: the stage's exit status and its lines
        return script_in_process("generate.py", "--config", "r.yaml", "--endpoint_url", url, "--endpoint_model",
                                 "judge-7b", "--endpoint_key_env", "SERVER_KEY", "--concurrency", "1",
                                 "--endpoint_retries", "1", "--endpoint_timeout", "1", "--max_failures", "2",
                                 "--out_path", out, cwd=tmp_path)  # fmt: skip

    misbehaving.plan = ["429", *["ok"] * 5, "500"]  # busy once, five answers, then broken
    stopped = ask("cut.csv")
    errors = [line for line in stopped.stderr.splitlines() if line.startswith("error: ")]
    assert stopped.returncode == 75 and len(errors) == 1 and "Traceback" not in stopped.stderr, stopped.stderr[-2000:]
    assert "answered 500" in errors[0] and "run the same command again" in errors[0] and SECRET not in errors[0]
    steps = [step for step, _, _ in misbehaving.seen]
    assert steps[:2] == ["429", "ok"] and misbehaving.seen[1][1] - misbehaving.seen[0][1] >= 1  # Retry-After: 1 s
    assert steps.count("500") == 4  # two requests failed, each asked twice (one retry): then the run stopped
    assert all(auth == f"Bearer {SECRET}" for _, _, auth in misbehaving.seen)  # the key reaches the server only

    misbehaving.plan = ["hang"]  # nothing at all: the client gives up after its timeout, twice, then the run stops
    hung = ask("cut.csv")
    assert hung.returncode == 75 and "did not answer (APITimeoutError)" in hung.stderr

    misbehaving.plan = ["ok"]
    again = ask("cut.csv")  # the same command: the rows answered are not asked again
    assert again.returncode == 0, again.stderr[-2000:]
    asked_again = len(misbehaving.seen) - len(steps) - 4  # the hung run's four requests aside
    assert asked_again == 12 - 5
    whole = ask("whole.csv")  # an uninterrupted run
    assert whole.returncode == 0
    assert (tmp_path / "cut.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()
    assert generated(tmp_path / "whole.csv")[3] == ""  # an empty answer is an answer
    assert written_anywhere(tmp_path, SECRET) == []


@pytest.mark.slow  # three runs of generate.py
def test_an_endpoint_run_killed_mid_run_then_run_again_writes_the_file_an_uninterrupted_run_writes(
    misbehaving, tiny_llama, tmp_path, script_in_process, monkeypatch
):
    from arabic_sft.runtime.partial import read_done

    cpu_recipe(tmp_path / "r.yaml", tiny_llama, test_file=str(SAMPLE_FILES["proverbs"]), output_dir="results/r/model")
    url = f"http://127.0.0.1:{misbehaving.server_address[1]}/v1"
    command = [str(ROOT / "scripts" / "generate.py"), "--config", "r.yaml", "--endpoint_url", url,
               "--endpoint_model", "m", "--concurrency", "2"]  # fmt: skip
    misbehaving.plan = [*["ok"] * 5, "hold"]  # five answers, then the server holds every request
    process = subprocess.Popen([sys.executable, *command, "--out_path", "cut.csv"], cwd=tmp_path,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    deadline = time.monotonic() + 240
    while len(read_done(tmp_path / "cut.csv")) < 5:  # the five answers saved, two requests held
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()[-2000:]
        time.sleep(0.1)
    process.kill()  # SIGKILL: no handler runs, the saved rows are all that is left
    process.wait(timeout=60)
    assert not (tmp_path / "cut.csv").exists()
    misbehaving.plan = ["ok"]
    misbehaving.release.set()
    monkeypatch.setenv("KEY", "rerun")
    again = script_in_process(
        "generate.py", *command[1:], "--out_path", "cut.csv", "--endpoint_key_env", "KEY", cwd=tmp_path
    )
    assert again.returncode == 0, again.stderr[-2000:]
    rerun = [step for step, _, key in misbehaving.seen if key == "Bearer rerun"]  # the killed run's aside
    assert len(rerun) == 12 - 5  # the rows saved were not asked again
    whole = script_in_process(
        "generate.py", *command[1:], "--out_path", "whole.csv", cwd=tmp_path
    )  # in this process: quicker
    assert whole.returncode == 0, whole.stderr[-2000:]
    assert (tmp_path / "cut.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()


@pytest.mark.slow  # two runs of generate.py
def test_a_token_budget_stops_the_run_with_the_rows_answered_kept_and_the_same_command_continues(
    misbehaving, tiny_llama, tmp_path, script_in_process
):
    cpu_recipe(tmp_path / "r.yaml", tiny_llama, test_file=str(SAMPLE_FILES["proverbs"]), output_dir="results/r/model")
    url = f"http://127.0.0.1:{misbehaving.server_address[1]}/v1"
    flags = ["--config", "r.yaml", "--endpoint_url", url, "--endpoint_model", "m", "--concurrency", "1"]
    spent = script_in_process("generate.py", *flags, "--token_budget", "40", "--out_path", "cut.csv", cwd=tmp_path)
    # 13 tokens a request (the server's usage): 13, 26, 39, then 52 >= 40: four rows asked, then the stop
    assert spent.returncode == 75 and "the token budget (40) is spent: 52 tokens for 4 rows" in spent.stderr
    assert "to ask the other 8" in spent.stderr and len(misbehaving.seen) == 4
    again = script_in_process("generate.py", *flags, "--out_path", "cut.csv", cwd=tmp_path)  # no budget: the rest
    assert again.returncode == 0 and len(misbehaving.seen) == 12
    whole = script_in_process("generate.py", *flags, "--out_path", "whole.csv", cwd=tmp_path)
    assert whole.returncode == 0
    assert (tmp_path / "cut.csv").read_bytes() == (tmp_path / "whole.csv").read_bytes()


def test_a_failing_endpoint_stops_with_exit_75(misbehaving, tiny_llama, tmp_path):
    cpu_recipe(tmp_path / "r.yaml", tiny_llama, test_file=str(SAMPLE_FILES["proverbs"]), output_dir="results/r/model")
    misbehaving.plan = ["500"]
    url = f"http://127.0.0.1:{misbehaving.server_address[1]}/v1"
    flags = ["--endpoint_retries", "0", "--max_failures", "2", "--concurrency", "1"]
    result = run_script("generate.py", "--config", "r.yaml", "--endpoint_url", url, "--endpoint_model", "m", *flags,
                        cwd=tmp_path)  # fmt: skip
    assert result.returncode == 75 and result.stderr.count("error: ") == 1 and "Traceback" not in result.stderr


def test_the_console_program_runs_an_endpoint_as_a_system(tmp_path):
    from helpers import write_recipe

    (tmp_path / "recipes").mkdir()
    write_recipe(tmp_path / "recipes" / "r.yaml", model_name_or_path="org/m", task="proverbs",
                 test_file=str(SAMPLE_FILES["proverbs"]), output_dir="results/r/model")  # fmt: skip
    shown = subprocess.run([sys.executable, "-m", "arabic_sft", "--show", "endpoint", "r", "--url",
                            "https://api.example.com/v1", "--model", "gpt-4o", "--key_env", "OPENAI_API_KEY",
                            "--limit", "5"], cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    ask, score = shown.stdout.splitlines()
    assert "--endpoint_url https://api.example.com/v1 --endpoint_model gpt-4o" in ask
    assert "--out_path results/r/endpoint-gpt-4o/predictions_test.csv" in ask and "--limit 5" in ask
    assert score.endswith("score.py results/r/endpoint-gpt-4o/predictions_test.csv --split test --overwrite")
    assert ROOT.is_dir()


def test_a_recipe_lists_its_endpoints_and_make_endpoint_asks_one_by_name_or_every_one(tmp_path):
    from helpers import write_recipe

    (tmp_path / "recipes").mkdir()
    listed = {"gpt4o": {"url": "https://api.example.com/v1", "model": "gpt-4o", "key_env": "OPENAI_API_KEY"},
              "local": {"url": "http://127.0.0.1:8000/v1", "model": "org/m", "concurrency": 2}}  # fmt: skip
    write_recipe(tmp_path / "recipes" / "r.yaml", model_name_or_path="org/m", task="proverbs", endpoints=listed,
                 test_file=str(SAMPLE_FILES["proverbs"]), output_dir="results/r/model")  # fmt: skip

    def show(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "arabic_sft", "--show", "endpoint", "r", *args], cwd=tmp_path,
                              capture_output=True, text=True)  # fmt: skip

    every = show().stdout.splitlines()
    assert (
        len(every) == 4 and "--endpoint_model gpt-4o" in every[0] and "--endpoint_key_env OPENAI_API_KEY" in every[0]
    )
    assert "--out_path results/r/endpoint-local/predictions_test.csv" in every[2] and "--concurrency 2" in every[2]
    (one, _) = show("--name", "local", "--concurrency", "4").stdout.splitlines()
    assert "--endpoint_url http://127.0.0.1:8000/v1 --endpoint_model org/m" in one and "--concurrency 4" in one
    assert_one_error_line(show("--name", "other"), "no endpoint named other (it lists: gpt4o, local)")
    assert_one_error_line(show("--url", "http://127.0.0.1:8000/v1"), "--url and --model together")
    write_recipe(tmp_path / "recipes" / "r.yaml", model_name_or_path="org/m", task="proverbs",
                 endpoints={"x": {"url": "http://127.0.0.1:8000/v1"}})  # fmt: skip
    assert_one_error_line(show(), "endpoints: x: give a mapping with url and model")


def test_a_url_is_written_down_without_its_credentials():
    from arabic_sft.generation.settings import GenerationSettings, without_credentials

    assert without_credentials(f"https://me:{SECRET}@api.example.com:8443/v1?key={SECRET}") == (
        "https://api.example.com:8443/v1"
    )
    settings = GenerationSettings(endpoint_url=f"https://me:{SECRET}@api.example.com/v1", endpoint_model="m")
    assert SECRET not in json.dumps(settings.record()) + json.dumps(settings.resume_key())
