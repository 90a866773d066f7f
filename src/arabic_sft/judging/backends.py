"""Where a judge's answers come from, behind one interface (`Judge.ask`): a Hugging Face chat model run here through
the project's batched generator (`LocalJudge`; under `accelerate launch` each process a share of the rows), or any
OpenAI-compatible chat-completions endpoint (`vllm serve`, TGI, `transformers serve`, a hosted API) through the
`openai` client with bounded concurrency, a timeout and the client's own retries with backoff on rate limits, server
errors and dropped connections (`OpenAICompatibleJudge`). Both decode greedily. Every answer is kept in an
append-only cache as it arrives, keyed by the judge and the conversation, so that a run killed at any point asks
nothing twice when it is run again; SIGTERM or Ctrl-C stops once the answers being made have arrived."""

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path

from tqdm.auto import tqdm

from arabic_sft.runtime.errors import UserError
from arabic_sft.runtime.stopping import Stopped, StopRequest


class AnswerCache:
    """Answers by request key, in JSON Lines files written one flushed line per answer (a line torn by a kill is
    ignored on reading): `path` for the first process of a launch, `path` with `.N` before its suffix for process N.
    Every file is read, so a rerun with any number of processes finds every answer. Hand-written: what is needed is
    a few lines of append and read, not a cache library."""

    def __init__(self, path: Path, process_index: int = 0):
        self.path = path if process_index == 0 else path.with_suffix(f".{process_index}{path.suffix}")
        self.answers: dict[str, str] = {}
        for file in [path, *sorted(path.parent.glob(f"{path.stem}.*{path.suffix}"))]:
            if not file.is_file():
                continue
            for line in file.read_text(encoding="utf-8").splitlines():
                try:
                    entry = json.loads(line)
                    self.answers[entry["key"]] = entry["answer"]
                except (json.JSONDecodeError, KeyError, TypeError):
                    continue
        self.handle = None  # opened at the first answer: a run that gets none writes nothing

    def add(self, key: str, answer: str) -> None:
        self.answers[key] = answer
        if self.handle is None:
            self.handle = open(self.path, "a", encoding="utf-8")
        self.handle.write(json.dumps({"key": key, "answer": answer}, ensure_ascii=False) + "\n")
        self.handle.flush()

    def close(self) -> None:
        if self.handle is not None:
            self.handle.close()


class Judge:
    """What every backend shares: the cache, the key of a request, the progress bar, stopping on a signal. A
    backend says what it is (`identity`) and answers the conversations the cache lacks (`answer_missing`)."""

    process_index, num_processes = 0, 1

    def __init__(self, max_new_tokens: int):
        self.max_new_tokens = max_new_tokens
        self.cache: AnswerCache | None = None
        self.stop: StopRequest | None = None

    @property
    def is_main(self) -> bool:
        return self.process_index == 0

    @property
    def stopping(self) -> bool:
        return self.stop is not None and self.stop.requested

    def identity(self) -> dict:
        raise NotImplementedError

    def answer_missing(
        self, conversations: Sequence[list[dict]], done: set[int], store: Callable[[int, str], None]
    ) -> None:
        """Answer the `conversations` whose index is not in `done` (answered before), calling `store(index, answer)`
        as each answer arrives; stop early (leaving some unanswered) when `self.stopping`."""
        raise NotImplementedError

    def key(self, messages: list[dict]) -> str:
        payload = {"judge": self.identity(), "messages": messages}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def ask(self, conversations: Sequence[list[dict]], description: str = "judging") -> list[str]:
        """The judge's answers to `conversations`, from the cache where it has them, else asked and cached as each
        arrives. Raises `Stopped` when a signal stopped it before every answer arrived."""
        keys = [self.key(messages) for messages in conversations]
        known = self.cache.answers if self.cache is not None else {}
        answers = {index: known[key] for index, key in enumerate(keys) if key in known}
        done = set(answers)
        bar = tqdm(total=len(keys), initial=len(answers), desc=description, disable=not self.is_main)

        def store(index: int, answer: str, cached: bool = True) -> None:
            if index in answers:  # answered before (a batch that was cut by a kill is made again whole)
                return
            answers[index] = answer
            if cached and self.cache is not None:
                self.cache.add(keys[index], answer)
            bar.update(1)

        try:
            if len(done) < len(keys):
                self.answer_missing(conversations, done, store)
        finally:
            bar.close()
        if len(answers) < len(keys):
            if self.stopping:
                raise Stopped(self.stop.signal)
            raise UserError(f"the judge left {len(keys) - len(answers)} of {len(keys)} conversations unanswered")
        return [answers[index] for index in range(len(keys))]


class OpenAICompatibleJudge(Judge):
    """A judge behind an OpenAI-compatible endpoint, greedy (temperature 0). `api_key_env` names the environment
    variable that holds the key (never written anywhere); without it, servers that need no key get a placeholder."""

    def __init__(
        self,
        url: str,
        model: str,
        api_key_env: str | None = None,
        max_new_tokens: int = 256,
        concurrency: int = 8,
        timeout: float = 120.0,
        retries: int = 4,
    ):
        from openai import OpenAI

        super().__init__(max_new_tokens)
        if api_key_env and not os.environ.get(api_key_env):
            raise UserError(f"judge_api_key_env: the environment variable {api_key_env} is not set (export it first)")
        key = os.environ[api_key_env] if api_key_env else "no-key"
        self.url, self.model, self.concurrency = url, model, concurrency
        self.client = OpenAI(base_url=url, api_key=key, timeout=timeout, max_retries=retries)

    def identity(self) -> dict:
        """What the judge is, for the cache key and the manifest (the key is not part of it)."""
        return {"backend": "openai-compatible", "url": self.url, "model": self.model, "temperature": 0.0,
                "max_new_tokens": self.max_new_tokens}  # fmt: skip

    def _ask(self, messages: list[dict]) -> str:
        from openai import APIConnectionError, APIStatusError, APITimeoutError

        try:
            response = self.client.chat.completions.create(
                model=self.model, messages=messages, temperature=0.0, max_tokens=self.max_new_tokens
            )
        except (APIConnectionError, APITimeoutError) as error:
            raise UserError(f"judge_url {self.url}: cannot reach the server ({type(error).__name__})") from None
        except APIStatusError as error:
            raise UserError(
                f"judge_url {self.url}: the server answered {error.status_code} ({error.message})"
            ) from None
        return response.choices[0].message.content or ""

    def answer_missing(self, conversations, done, store) -> None:
        """At most `concurrency` requests in flight; an error or a stop drops the requests not sent yet, and the
        answers already on their way are waited for and kept."""
        pool = ThreadPoolExecutor(self.concurrency)
        futures = {
            pool.submit(self._ask, messages): index
            for index, messages in enumerate(conversations)
            if index not in done
        }
        try:
            for future in as_completed(futures):
                if future.cancelled():
                    continue
                store(futures[future], future.result())
                if self.stopping:
                    for pending in futures:
                        pending.cancel()
        finally:
            pool.shutdown(wait=True, cancel_futures=True)


class LocalJudge(Judge):
    """A Hugging Face chat model (an id or a path; with a LoRA adapter; in 4 bits if asked) judging here, greedy,
    through the project's batched generator. Under `accelerate launch` every process loads the model and generates
    its share of the batches (its own cache file); the answers are then shared, so every process holds them all."""

    def __init__(
        self,
        model: str,
        adapter: str | None = None,
        revision: str | None = None,
        load_in_4bit: bool = False,
        trust_remote_code: bool = False,
        max_new_tokens: int = 256,
        batch_size: int = 16,
    ):
        import torch
        from accelerate import PartialState

        from arabic_sft.models import load_for_generation

        super().__init__(max_new_tokens)
        self.state = PartialState(cpu=not torch.cuda.is_available())  # CPU processes: gloo
        self.process_index, self.num_processes = self.state.process_index, self.state.num_processes
        self.model_name, self.adapter, self.revision = model, adapter, revision
        self.load_in_4bit, self.batch_size = load_in_4bit, batch_size
        self.model, self.tokenizer = load_for_generation(
            model, adapter_dir=adapter, revision=revision, trust_remote_code=trust_remote_code,
            device=self.state.device, load_in_4bit=load_in_4bit,
        )  # fmt: skip
        if not self.tokenizer.chat_template:
            raise UserError(f"judge_model {model}: its tokenizer has no chat template; a judge must be a chat model")

    def identity(self) -> dict:
        return {"backend": "local", "model": self.model_name, "revision": self.revision, "adapter": self.adapter,
                "load_in_4bit": self.load_in_4bit, "temperature": 0.0,
                "max_new_tokens": self.max_new_tokens}  # fmt: skip

    def answer_missing(self, conversations, done, store) -> None:
        """Batches of every conversation in the generator's order (longest prompts first), those answered before
        skipped and the rest dealt to the processes in turn: a batch is the same whichever process makes it and
        whenever, so the answers depend neither on the number of processes nor on where a killed run stopped."""
        import sys

        from accelerate.utils import gather_object

        from arabic_sft.generation.batched import deal_batches, iter_generations
        from arabic_sft.models import context_length
        from arabic_sft.prompts.builder import prompt_token_ids
        from arabic_sft.prompts.truncation import count_long_prompts

        prompts = [prompt_token_ids(self.tokenizer, messages) for messages in conversations]
        warning = count_long_prompts(prompts, self.max_new_tokens, context_length(self.model))
        if warning and self.is_main:
            print(warning, file=sys.stderr)
        mine, made = deal_batches(prompts, self.batch_size, done, self.state), []  # `done`: the cache read by all
        options = {"max_new_tokens": self.max_new_tokens, "batch_size": self.batch_size, "skip": done, "take": mine}
        for batch in iter_generations(self.model, self.tokenizer, prompts, **options):
            for index, answer in batch:
                store(index, answer)
                made.append((index, answer))
            if self.stopping:
                break
        if self.num_processes == 1:
            return
        shares = gather_object([(self.process_index, made, self.stop.signal if self.stopping else None)])
        for index, answers, signum in shares:
            if index != self.process_index:
                for index, answer in answers:
                    store(index, answer, cached=False)  # in that process's cache file
            if signum is not None and self.stop is not None and not self.stop.requested:
                self.stop.signal = signum  # one process stopped: all stop, with what every process made
