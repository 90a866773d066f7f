"""Serve a trained model to any OpenAI client on 127.0.0.1, through `transformers serve`, answering as make eval did.

    arabic-sft serve demo --port 8000          # make serve RECIPE=demo [PORT=8000] [SEED=N]

It serves make export's folder (an adapter merged once per training; the tokenizer, chat template and make eval's
decoding as trained), prints the base URL, the model name to send and one `curl` line that asks the first test row,
and runs until Ctrl-C or SIGTERM, which stop the server with it. A chat-format recipe answers on
`/v1/chat/completions` with the messages the project's prompt builder makes; a plain-prompt recipe (no chat template)
on `/v1/completions` with the rendered prompt. A request with the row's prompt, temperature 0 and make eval's
max_new_tokens (`max_tokens`) gets exactly the answer make eval wrote. `GET /v1/models` lists that model, by the
name to send (transformers serve alone lists the Hugging Face cache: `arabic_sft.publishing.serving`).

On a GPU with vLLM installed, `vllm serve results/<recipe>/export` serves the same folder (docs/after_training.md).
"""

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from arabic_sft.runtime.errors import ScriptParser, UserError
from arabic_sft.runtime.ports import check_port, port_is_free  # noqa: F401 (port_is_free: the tests' probe)
from arabic_sft.runtime.stopping import StopRequest


def make_parser() -> argparse.ArgumentParser:
    parser = ScriptParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", required=True, help="the recipe whose trained model is served")
    return add_options(parser)


def add_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """This stage's options but --config (the console program takes them from here)."""
    parser.add_argument("--seed", type=int, help="of a recipe trained with several seeds: results/<recipe>/seed-N")
    parser.add_argument("--port", type=int, default=8000, help="on 127.0.0.1 (default 8000)")
    parser.add_argument("--startup_timeout", type=float, default=300, help="seconds to wait for the server")
    return parser


def first_request(recipe, folder: Path, decoding: dict) -> tuple[str, dict]:
    """(the route, the body) that asks the recipe's first test row as make eval asked it."""
    from transformers import AutoTokenizer

    from arabic_sft.data.splits import load_splits
    from arabic_sft.prompts.builder import build_model_prompt, is_conversational

    tokenizer = AutoTokenizer.from_pretrained(folder)
    splits, spec, _ = load_splits(recipe.args, recipe.fields.seed, wanted=("test",), require_answer=False)
    if "test" not in splits:
        raise UserError(f"{recipe.source}: no test data: the curl line asks its first row")
    chat = is_conversational(tokenizer, recipe.args.chat_format, spec)
    prompt = build_model_prompt(splits["test"].frame.iloc[0].to_dict(), spec, chat)
    body = {"model": str(folder), "temperature": 0, "max_tokens": decoding["max_new_tokens"]}
    if chat:
        return "/chat/completions", {**body, "messages": prompt}
    return "/completions", {**body, "prompt": prompt}


def run(args: argparse.Namespace) -> list[Path]:
    """Serve as `args` (this stage's command line) say, until stopped; writes nothing but make export's folder."""
    from arabic_sft.recipe.check import trained_model_of

    check_port(args.port)  # a port in use, a recipe never trained: one line, before the imports below
    trained = trained_model_of(args.config, args.seed)
    from arabic_sft.generation.answering import eval_decoding
    from arabic_sft.publishing.export import exported
    from arabic_sft.recipe import load_recipe
    from arabic_sft.runs import RunFolder

    recipe = load_recipe(["--config", args.config])
    folder = exported(recipe, trained).resolve()
    decoding = eval_decoding(RunFolder(trained.results))
    route, body = first_request(recipe, folder, decoding)
    import torch

    command = [sys.executable, "-m", "arabic_sft.publishing.serving", str(folder), "--host", "127.0.0.1",
               "--port", str(args.port), "--device", "cuda" if torch.cuda.is_available() else "cpu"]  # fmt: skip
    print(f"+ {shlex.join(command)}", file=sys.stderr, flush=True)
    server = subprocess.Popen(command, env={**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")})
    stop = StopRequest("stopping the server")
    try:
        url = f"http://127.0.0.1:{args.port}/v1"
        wait_until_answering(server, args.port, args.startup_timeout, stop)
        if not stop.requested:
            curl = shlex.join(["curl", f"{url}{route}", "-H", "Content-Type: application/json", "-d",
                               json.dumps(body, ensure_ascii=False)])  # fmt: skip
            print(f"serving {trained.display} at {url} (OpenAI-compatible; model name: {folder})", flush=True)
            print(f"the first test row, as make eval asked it ({route}):\n{curl}", flush=True)
            if route == "/completions":
                print("a plain-prompt model (no chat template): /v1/chat/completions refuses its requests", flush=True)
            print("Ctrl-C stops the server", flush=True)
        while not stop.requested and server.poll() is None:
            time.sleep(0.2)
    finally:
        stop.close()
        end_server(server)
    if stop.requested:
        print(f"stopped the server ({signal.Signals(stop.signal).name})", file=sys.stderr)
        return []
    raise UserError(f"transformers serve stopped (exit {server.returncode})")


def wait_until_answering(server: subprocess.Popen, port: int, timeout: float, stop: StopRequest) -> None:
    """Until the server answers /health (or a stop is requested); one line when it exits or is silent `timeout` s."""
    started = time.monotonic()
    while not stop.requested:
        if server.poll() is not None:
            raise UserError(f"transformers serve stopped (exit {server.returncode}) before it answered")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            return
        except OSError:
            if time.monotonic() - started > timeout:
                raise UserError(f"transformers serve did not answer within {timeout:.0f} s") from None
            time.sleep(0.5)


def end_server(server: subprocess.Popen) -> None:
    """Terminate the server, killed when it has not exited 30 s later."""
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def main(argv: list[str] | None = None) -> list[Path]:
    return run(make_parser().parse_args(argv))
