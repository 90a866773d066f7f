"""A judge's rubric, which is data: criteria with their integer scales and descriptions, and the prompts (English and
Arabic) that ask a judge model to score one answer, or to choose between two. `recipes/judges/NAME.yaml` holds the
project's; a recipe names one (`judge_rubric: NAME`) or a path to its own file of the same shape."""

import hashlib
import json
import re
from dataclasses import asdict, dataclass

from arabic_sft import named
from arabic_sft.runtime.errors import UserError


LANGUAGES = ("en", "ar")
# The placeholders a rubric's prompts may use; any other brace is text (the JSON examples in the prompts).
PLACEHOLDERS = ("question", "reference", "answer", "answer_a", "answer_b", "criteria", "example", "problem")
PROMPTS = {
    "system": (),
    "user": ("question", "reference", "answer"),
    "pairwise": ("answer_a", "answer_b"),
    "retry": ("problem",),  # after an unusable reply: what was wrong with it, and the request to answer again
}


@dataclass(frozen=True)
class Criterion:
    name: str
    low: int
    high: int
    description: dict[str, str]  # language -> text


@dataclass(frozen=True)
class Rubric:
    name: str
    criteria: tuple[Criterion, ...]
    prompts: dict[str, dict[str, str]]  # language -> {system, user, pairwise}
    source: str

    def digest(self) -> str:
        """sha256 of what the judge is asked (criteria, scales, prompts): a changed rubric is a different judge."""
        payload = {"criteria": [asdict(criterion) for criterion in self.criteria], "prompts": self.prompts}
        return hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()

    def messages(self, language: str, question: str, reference: str, answer: str) -> list[dict[str, str]]:
        """The chat messages that ask the judge to score `answer` on every criterion."""
        return self._messages(language, "user", question=question, reference=reference, answer=answer)

    def pairwise_messages(
        self, language: str, question: str, reference: str, answer_a: str, answer_b: str
    ) -> list[dict[str, str]]:
        """The chat messages that ask the judge which of two answers is better ({"winner": "A" | "B" | "tie"})."""
        return self._messages(
            language, "pairwise", question=question, reference=reference, answer_a=answer_a, answer_b=answer_b
        )

    def retry_messages(
        self, language: str, messages: list[dict[str, str]], reply: str, problem: str
    ) -> list[dict[str, str]]:
        """`messages` followed by the judge's unusable `reply` and a request to answer again, saying what was wrong
        (greedy decoding would give the same reply to the same question)."""
        retry = fill(self.prompts[language]["retry"], problem=problem)
        return [*messages, {"role": "assistant", "content": reply}, {"role": "user", "content": retry}]

    def _messages(self, language: str, kind: str, **values: str) -> list[dict[str, str]]:
        prompts = self.prompts[language]
        criteria = "\n".join(
            f"- {item.name} ({item.low}-{item.high}): {item.description[language]}" for item in self.criteria
        )
        example = json.dumps({item.name: item.high for item in self.criteria})
        user = fill(prompts[kind], criteria=criteria, example=example, **values)
        return [{"role": "system", "content": prompts["system"]}, {"role": "user", "content": user}]


def fill(template: str, **values: str) -> str:
    """`template` with each `{placeholder}` replaced in one pass: braces of other text (JSON) stay as they are, and
    a value that contains `{answer}` is not filled again."""
    return re.sub(
        r"\{(" + "|".join(PLACEHOLDERS) + r")\}",
        lambda match: values.get(match.group(1), match.group(0)),
        template,
    )


def load_rubric(name: str) -> Rubric:
    """The rubric `name` names, checked: every problem is one `UserError` line naming the file and the field."""
    path, values = named.read("judge", name)
    source = str(path)
    criteria = values.get("criteria")
    if not isinstance(criteria, list) or not criteria:
        raise UserError(f"{source}: criteria: a rubric needs at least one criterion (name, scale, description)")
    return Rubric(
        name=str(values.get("name") or path.stem),
        criteria=tuple(_criterion(item, source) for item in criteria),
        prompts=_prompts(values.get("prompts"), source),
        source=source,
    )


def _criterion(item, source: str) -> Criterion:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not item["name"]:
        raise UserError(f"{source}: criteria: each criterion needs a name, got {item!r}")
    name = item["name"]
    scale = item.get("scale")
    if (
        not (isinstance(scale, list) and len(scale) == 2 and all(isinstance(v, int) for v in scale))
        or scale[0] >= scale[1]
    ):
        raise UserError(f"{source}: criterion {name}: scale must be [lowest, highest] integers, got {scale!r}")
    description = item.get("description")
    if not isinstance(description, dict) or set(description) != set(LANGUAGES):
        raise UserError(f"{source}: criterion {name}: description needs an 'en' and an 'ar' text")
    return Criterion(name, scale[0], scale[1], {language: str(description[language]) for language in LANGUAGES})


def _prompts(prompts, source: str) -> dict[str, dict[str, str]]:
    if not isinstance(prompts, dict) or set(prompts) != set(LANGUAGES):
        raise UserError(f"{source}: prompts: needs an 'en' and an 'ar' set of prompts ({', '.join(PROMPTS)})")
    checked = {}
    for language, texts in prompts.items():
        if not isinstance(texts, dict) or set(texts) != set(PROMPTS):
            raise UserError(f"{source}: prompts.{language}: needs exactly {', '.join(PROMPTS)}")
        for kind, needed in PROMPTS.items():
            missing = [name for name in needed if f"{{{name}}}" not in texts[kind]]
            if missing:
                raise UserError(f"{source}: prompts.{language}.{kind}: no {{{'}, {'.join(missing)}}} placeholder")
        checked[language] = {kind: str(text) for kind, text in texts.items()}
    return checked
