"""An Ollama Modelfile for make export FORMAT=gguf: `FROM` the file, a `TEMPLATE` that renders exactly the prompt the
project's prompt builder makes, one `PARAMETER stop` per token that ends a trained answer, and make eval's decoding.

Ollama renders Go templates (`.Messages` with `.Role` and `.Content`; `.Prompt`) and adds BOS itself, as the GGUF
says (`tokenizer.ggml.add_bos_token`). A chat template is turned into Go by rendering it around markers: the text
before and after each role's content, and the generation prompt, which holds for the templates that concatenate
turns (each turn's text depends on its role and content only); one that does not is refused in one line. A plain
prompt (a base model's, such as SHEFAA's) with one input field becomes that prompt with `{{ .Prompt }}` in the field's
place. tests/test_gguf.py renders the TEMPLATE with Go's own text/template and compares it with the project's prompt.
"""

from arabic_sft.runtime.errors import UserError


MARKS = ("\u2063A\u2063", "\u2063B\u2063", "\u2063C\u2063")  # invisible separators around a letter: in no template


def turn_pieces(tokenizer) -> dict[str, str]:
    """{bos, user_before, user_after, assistant_before, assistant_after, generation[, system_before, system_after]}:
    the chat template's text around each role's content, found by rendering it around markers."""
    a, b, c = MARKS

    def render(messages: list[dict], generation: bool) -> str:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation)

    bos = tokenizer.bos_token or ""
    start, user_after = render([{"role": "user", "content": a}], False).split(a)
    bos = bos if start.startswith(bos) else ""
    pieces = {"bos": bos, "user_before": start[len(bos) :], "user_after": user_after}
    text = render([{"role": "user", "content": a}, {"role": "assistant", "content": b},
                   {"role": "user", "content": c}], True)  # fmt: skip
    _, rest = text.split(a)
    user_then_assistant, rest = rest.split(b)
    assistant_then_user, generation = rest.split(c)
    pieces["assistant_before"] = user_then_assistant.removeprefix(user_after)
    pieces["assistant_after"] = assistant_then_user.removesuffix(pieces["user_before"])
    pieces["generation"] = generation.removeprefix(user_after)
    try:
        system = render([{"role": "system", "content": c}, {"role": "user", "content": a}], False)
    except Exception:  # a template without system turns (jinja2's TemplateError, or its own raise_exception)
        return pieces
    before, after = system.split(c)
    pieces["system_before"] = before.removeprefix(bos)
    pieces["system_after"] = after.split(a)[0].removesuffix(pieces["user_before"])
    return pieces


def go_chat_template(pieces: dict[str, str]) -> str:
    """The Go template (Ollama's TEMPLATE) that renders a conversation as the chat template does, without BOS."""
    roles = [role for role in ("system", "user", "assistant") if f"{role}_before" in pieces]
    branches = "".join(
        f'{{{{ {"if" if number == 0 else "else if"} eq .Role "{role}" }}}}{pieces[f"{role}_before"]}{{{{ .Content }}}}'
        f"{pieces[f'{role}_after']}"
        for number, role in enumerate(roles)
    )
    return f"{{{{ range .Messages }}}}{branches}{{{{ end }}}}{{{{ end }}}}{pieces['generation']}"


def rendered_as_go(pieces: dict[str, str], messages: list[dict]) -> str:
    """What `go_chat_template(pieces)` renders for `messages` (its logic, here), to check it before writing it."""
    text = "".join(pieces[f"{m['role']}_before"] + m["content"] + pieces[f"{m['role']}_after"] for m in messages)
    return text + pieces["generation"]


def plain_template(spec) -> str:
    """A plain prompt's Go template: the recipe's prompt with `{{ .Prompt }}` for its one input field (with several,
    the whole prompt is `.Prompt`: send it as the recipe renders it)."""
    from arabic_sft.prompts.builder import build_model_prompt

    fields = list(spec.inputs)
    if len(fields) != 1:
        return "{{ .Prompt }}"
    before, after = build_model_prompt({fields[0]: MARKS[0]}, spec, False).split(MARKS[0])
    return f"{before}{{{{ .Prompt }}}}{after}"


def modelfile(model_file: str, tokenizer, spec, chat: bool, decoding: dict, check: list) -> str:
    """The Modelfile's text; `check`: test rows' prompts (messages for a chat recipe) the TEMPLATE must render as
    the prompt builder does (one line when it cannot)."""
    stops = [tokenizer.eos_token]
    if chat:
        pieces = turn_pieces(tokenizer)
        for messages in check:
            expected = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            if pieces["bos"] + rendered_as_go(pieces, messages) != expected:
                raise UserError(
                    "this chat template does not render each turn from its role and content alone: no Modelfile "
                    "TEMPLATE holds it (the GGUF file embeds it: llama.cpp and LM Studio use it)"
                )
        texts = list(pieces.values())
        template = go_chat_template(pieces)
        ending = pieces["assistant_after"].strip()
        stops += [ending] if ending and ending not in stops and ending in tokenizer.all_special_tokens else []
    else:
        template = plain_template(spec)
        texts = template.split("{{ .Prompt }}")
    if any("{{" in text or "}}" in text or '"""' in text for text in texts):
        raise UserError('the prompt holds "{{", "}}" or \'"""\': a Modelfile TEMPLATE cannot hold it as text')
    greedy = not decoding.get("temperature")
    lines = [f"FROM ./{model_file}", f'TEMPLATE """{template}"""', *(f'PARAMETER stop "{stop}"' for stop in stops),
             f"PARAMETER temperature {0 if greedy else decoding['temperature']}",
             *([] if greedy else [f"PARAMETER top_p {decoding['top_p']}"]),
             f"PARAMETER num_predict {decoding.get('max_new_tokens', 256)}"]  # fmt: skip
    return "\n".join(lines) + "\n"
