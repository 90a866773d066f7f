"""Where a judge's answers come from: any OpenAI-compatible chat-completions endpoint (`vllm serve`, TGI,
`transformers serve`, a hosted API), through the `openai` client, with bounded concurrency, a timeout and the
client's own retries with backoff on rate limits, server errors and dropped connections. Every answer is kept in an
append-only cache as it arrives, keyed by the judge, the conversation and the attempt, so that a run killed at any
point asks nothing twice when it is run again."""

import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm.auto import tqdm

from arabic_sft.runtime.errors import UserError


class AnswerCache:
    """Answers by request key, in a JSON Lines file written one flushed line per answer (a line torn by a kill is
    ignored on reading). Hand-written: what is needed is a few lines of append and read, not a cache library."""

    def __init__(self, path: Path):
        self.path = path
        self.answers: dict[str, str] = {}
        if path.is_file():
            for line in path.read_text(encoding="utf-8").splitlines():
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


class OpenAICompatibleJudge:
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

        if api_key_env and not os.environ.get(api_key_env):
            raise UserError(f"judge_api_key_env: the environment variable {api_key_env} is not set (export it first)")
        key = os.environ[api_key_env] if api_key_env else "no-key"
        self.url, self.model, self.max_new_tokens, self.concurrency = url, model, max_new_tokens, concurrency
        self.client = OpenAI(base_url=url, api_key=key, timeout=timeout, max_retries=retries)
        self.cache: AnswerCache | None = None

    def identity(self) -> dict:
        """What the judge is, for the cache key and the manifest (the key is not part of it)."""
        return {"backend": "openai-compatible", "url": self.url, "model": self.model, "temperature": 0.0,
                "max_new_tokens": self.max_new_tokens}  # fmt: skip

    def key(self, messages: list[dict], attempt: int) -> str:
        payload = {"judge": self.identity(), "messages": messages, "attempt": attempt}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

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

    def ask(self, conversations: Sequence[list[dict]], attempt: int = 0, description: str = "judging") -> list[str]:
        """The judge's answers to `conversations`, from the cache where it has them, else asked (at most
        `concurrency` at once) and cached as each arrives."""
        keys = [self.key(messages, attempt) for messages in conversations]
        cache = self.cache
        missing = [index for index, key in enumerate(keys) if cache is None or key not in cache.answers]
        answers = {index: cache.answers[key] for index, key in enumerate(keys) if cache and key in cache.answers}
        pool = ThreadPoolExecutor(self.concurrency)
        bar = tqdm(total=len(keys), initial=len(answers), desc=description)
        try:
            for index, answer in zip(missing, pool.map(lambda i: self._ask(conversations[i]), missing), strict=True):
                answers[index] = answer
                if cache is not None:
                    cache.add(keys[index], answer)
                bar.update(1)
        finally:  # an error or a Ctrl-C: the requests not sent yet are dropped, not sent on shutdown
            pool.shutdown(wait=True, cancel_futures=True)
            bar.close()
        return [answers[index] for index in range(len(keys))]
