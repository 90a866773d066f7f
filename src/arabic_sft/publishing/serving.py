"""`transformers serve` as make serve runs it, with one change: GET /v1/models lists the model it serves.

    python -m arabic_sft.publishing.serving FOLDER [transformers serve's options]

transformers serve answers /v1/models from the Hugging Face cache (`ModelManager.get_gen_models`): a 500 on a machine
without one, and never the folder it serves. OpenAI clients and chat front-ends list the models first, so the list is
the served model, named as requests name it; everything else is transformers serve's own (its command line, routes,
generation). No library offers this: transformers serve has no option for it.
"""

import os
import sys


def listed(model: str) -> list[dict]:
    """/v1/models' entries: the served model, as the OpenAI API lists one."""
    return [{"id": model, "object": "model", "created": int(os.path.getmtime(model)), "owned_by": "arabic-sft"}]


def main() -> None:
    from transformers.cli.serving.model_manager import ModelManager
    from transformers.cli.transformers import main as transformers_cli

    model = sys.argv[1]
    ModelManager.get_gen_models = staticmethod(lambda cache_dir=None: listed(model))
    sys.argv = ["transformers", "serve", *sys.argv[1:]]
    transformers_cli()


if __name__ == "__main__":
    main()
