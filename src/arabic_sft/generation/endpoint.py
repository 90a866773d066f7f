"""A model behind any OpenAI-compatible endpoint (vLLM, TGI, transformers serve, a hosted API) as a generation backend:
the recipe's prompts (chat messages on /v1/chat/completions; a plain prompt's text on /v1/completions) and decoding,
asked through the `openai` client, whose own retries (with backoff, honouring Retry-After) cover 429, 5xx, lost
connections and timeouts. What this adds: a bounded number of requests in flight, the answers handed over as they
arrive (generation saves each at once: a killed run continues where it stopped), and a stop in one line when the
server keeps failing (exit 75) or refuses the request itself (a wrong key or model name: exit 2). Any answer the
server gives is an answer: an empty one, a refusal or text in another script is recorded, not asked again."""

import os
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

from arabic_sft.generation.settings import without_credentials
from arabic_sft.runtime.errors import Unavailable, UserError


class Endpoint:
    """An OpenAI-compatible server's model; the key is read from the environment variable `key_env` and kept in
    this process only."""

    def __init__(self, url: str, model: str, key_env: str | None = None, concurrency: int = 8,
                 max_failures: int = 3, timeout: float = 120.0, retries: int = 4,
                 token_budget: int | None = None):  # fmt: skip
        from openai import OpenAI

        if key_env and not os.environ.get(key_env):
            raise UserError(f"--endpoint_key_env {key_env}: the environment variable is not set (export it first)")
        self.url, self.model, self.concurrency, self.max_failures = url, model, concurrency, max_failures
        self.client = OpenAI(base_url=url, api_key=os.environ[key_env] if key_env else "no-key", timeout=timeout,
                             max_retries=retries)  # fmt: skip
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0, "requests": 0, "seconds": 0.0}
        self.token_budget = token_budget

    def tokens(self) -> int:
        """The tokens the server reported in this run, prompt and answer."""
        return self.usage["prompt_tokens"] + self.usage["completion_tokens"]

    def spent(self) -> bool:
        """Whether this run's tokens have reached the budget."""
        return self.token_budget is not None and self.tokens() >= self.token_budget

    def ask(self, prompt, decoding: dict) -> str:
        """One answer: `prompt` as chat messages (a list) or a plain prompt's text."""
        options = {"model": self.model, "temperature": decoding["temperature"], "top_p": decoding["top_p"],
                   "max_tokens": decoding["max_new_tokens"]}  # fmt: skip
        started = time.perf_counter()
        if isinstance(prompt, list):
            response = self.client.chat.completions.create(messages=prompt, **options)
            text = response.choices[0].message.content if response.choices else ""
        else:
            response = self.client.completions.create(prompt=prompt, **options)
            text = response.choices[0].text if response.choices else ""
        self.usage["seconds"] += time.perf_counter() - started
        self.usage["requests"] += 1
        if usage := getattr(response, "usage", None):
            self.usage["prompt_tokens"] += usage.prompt_tokens or 0
            self.usage["completion_tokens"] += usage.completion_tokens or 0
        return text or ""

    def failure(self, error: Exception) -> str:
        """What went wrong, in words; a refusal of the request itself (4xx but 408 and 429) stops the run at once."""
        from openai import APIStatusError

        if isinstance(error, APIStatusError):
            said = f"answered {error.status_code} ({str(error.message).splitlines()[0][:200]})"
            if 400 <= error.status_code < 500 and error.status_code not in (408, 429):
                raise UserError(
                    f"{without_credentials(self.url)} {said}: check the model name ({self.model}), the key and the "
                    "URL; nothing more was asked"
                ) from None
            return said
        return f"did not answer ({type(error).__name__})"

    def answers(self, prompts: list, done, decoding: dict, stopping=lambda: False) -> Iterator[tuple[int, str]]:
        """(index, answer) for each prompt not in `done`, as they arrive, `concurrency` requests at a time; a stop
        (`stopping()`) sends nothing more and waits for the answers on their way. After the client's own retries, a
        request that fails is asked again later; `max_failures` failures in a row (or of one row) end the run in one
        line."""
        queue = [index for index in range(len(prompts)) if index not in done]
        failed, streak, last = {}, 0, ""
        with ThreadPoolExecutor(self.concurrency) as pool:
            running = {}
            while queue or running:
                while queue and len(running) < self.concurrency and not stopping() and not self.spent():
                    index = queue.pop(0)
                    running[pool.submit(self.ask, prompts[index], decoding)] = index
                if not running:
                    if queue and self.spent():
                        raise Unavailable(
                            f"the token budget ({self.token_budget:,}) is spent: {self.tokens():,} tokens for "
                            f"{self.usage['requests']} rows; the rows answered are kept: run the same command again "
                            f"(with a new budget) to ask the other {len(queue)}"
                        )
                    return
                finished, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in finished:
                    index = running.pop(future)
                    if future.exception() is None:
                        streak = 0
                        yield index, future.result()
                        continue
                    last = self.failure(future.exception())
                    streak, failed[index] = streak + 1, failed.get(index, 0) + 1
                    if streak >= self.max_failures or failed[index] >= self.max_failures:
                        for other in wait(running).done:  # the answers already on their way are kept
                            if other.exception() is None:
                                yield running[other], other.result()
                        raise Unavailable(
                            f"{without_credentials(self.url)} {last} for {streak} requests in a row, after the "
                            f"client's retries; the rows answered are kept: run the same command again when it "
                            "answers"
                        )
                    queue.append(index)
