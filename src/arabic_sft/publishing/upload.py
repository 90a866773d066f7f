"""make publish: a finished run to the Hugging Face Hub in one commit: the model (the adapter, or the adapter merged
into its base through scripts/merge_adapter.py), its card, the recipe, the manifests, the metrics, the comparison and
the predictions. The run's files keep their paths (results/NAME/..., recipes/NAME.yaml), so that the paths the card
names are the same on the Hub as here; the model's own files are at the repository's top level, where
`from_pretrained` finds them.

Only results the card can tie to this training go up (answers generated from this model after it finished, a
comparison holding its current scores): a stale file is left here, as the card leaves it out.
"""

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from arabic_sft import named
from arabic_sft.named import PROJECT_ROOT
from arabic_sft.publishing.card import build_card, comparison, evaluation, general
from arabic_sft.recipe import Recipe
from arabic_sft.runs import (
    CARD,
    LOG_HISTORY,
    MANIFEST,
    MERGE_MANIFEST,
    SIDE_MANIFEST,
    RecipeResults,
    RunFolder,
    TrainedRun,
)
from arabic_sft.runtime.errors import UserError
from arabic_sft.runtime.hub import endpoint_answers
from arabic_sft.runtime.manifest import build_manifest, now, read_json, write_json_atomic
from arabic_sft.training.checkpoints import CHECKPOINT


# A model directory's files that do not go up: checkpoints (the final model is at its top level), TensorBoard's logs,
# the pickled TrainingArguments (the manifest holds them as JSON) and TRL's draft card (replaced by ours).
LEFT_OUT = {"runs", "training_args.bin", CARD}


@dataclass
class Upload:
    """One file of the commit: its path in the repository, and its local file or (the card) its bytes."""

    path_in_repo: str
    source: Path | None = None
    content: bytes | None = None
    what: str = ""

    @property
    def size(self) -> int:
        return len(self.content) if self.content is not None else self.source.stat().st_size


def check_hub_id(hub_id: str | None) -> str:
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not hub_id:
        raise UserError("no Hub repository given: HUB_ID=org/name (scripts/publish.py --hub_id org/name)")
    try:
        validate_repo_id(hub_id)
    except HFValidationError as error:
        raise UserError(f"HUB_ID {hub_id}: not a Hub repository id ({str(error).splitlines()[0]})") from None
    if hub_id.count("/") != 1:
        raise UserError(f"HUB_ID {hub_id}: give the owner too, org/name (your user name or an organization)")
    return hub_id


def check_can_publish(recipe: Recipe, run: TrainedRun, hub_id: str, merged: bool, dry_run: bool) -> str | None:
    """Every refusal, each one line, before anything is merged or sent. Returns the token (None on a dry run)."""
    if not recipe.args.license:
        raise UserError(
            f"{recipe.source}: no license: set `license:` to a Hub license id (apache-2.0, cc-by-4.0, ...) that the "
            "base model's and the data's licenses allow"
        )
    check_hub_id(hub_id)
    if merged and not run.manifest["config"]["model"].get("use_peft"):
        raise UserError(f"MERGED=1: {run.model_dir} holds a full model, not an adapter; publish it without MERGED")
    if dry_run:
        return None
    token = os.environ.get("HF_TOKEN")
    if not token:
        raise UserError(
            "HF_TOKEN is not set: export a write token (https://huggingface.co/settings/tokens) as HF_TOKEN; it is "
            "read from the environment and never written"
        )
    from huggingface_hub import constants

    if constants.is_offline_mode():
        raise UserError("HF_HUB_OFFLINE is set: unset it to publish; nothing was sent")
    if not endpoint_answers():
        raise UserError(f"the Hugging Face Hub ({constants.ENDPOINT}) cannot be reached from here; nothing was sent")
    return token


def merged_model(run: TrainedRun) -> Path:
    """The adapter merged into its base by scripts/merge_adapter.py, in the run's results folder (merged/); a merge
    made from this training is reused."""
    out = RunFolder(run.results).merged
    record = read_json(out / MERGE_MANIFEST) or {}
    settings = (record.get("config") or {}).get("merge") or {}
    if Path(settings.get("adapter_dir") or "/nonexistent").resolve() == run.model_dir.resolve() and record.get(
        "started", ""
    ) >= run.manifest.get("finished", ""):
        print(f"{out}: merged from this training already, reused")
        return out
    model = run.manifest["config"]["model"]
    command = [sys.executable, str(PROJECT_ROOT / "scripts" / "merge_adapter.py"), "--adapter_dir", str(run.model_dir),
               "--out", str(out), "--overwrite"]  # fmt: skip
    if model.get("dtype") in ("bfloat16", "float16", "float32"):
        command += ["--dtype", model["dtype"]]
    if model.get("model_revision"):
        command += ["--revision", model["model_revision"]]
    if run.manifest["config"]["training"].get("trust_remote_code"):
        command.append("--trust_remote_code")
    print("merging:", " ".join(command[1:]))
    result = subprocess.run(command)
    if result.returncode != 0:
        raise UserError(f"merge_adapter.py failed (exit {result.returncode}); nothing was sent")
    return out


def model_files(folder: Path) -> list[Upload]:
    """A model directory's files, at the repository's top level (subfolders such as eval_generations/ kept)."""
    uploads = []
    for path in sorted(folder.rglob("*")):
        top = path.relative_to(folder).parts[0]
        if not path.is_file() or top in LEFT_OUT or top.startswith(".") or CHECKPOINT.match(top):
            continue
        uploads.append(Upload(path.relative_to(folder).as_posix(), path, what="model"))
    return uploads


def in_repo(path: Path) -> str:
    """A project file's path in the repository: its path here, relative to the project (results/..., recipes/...)."""
    path = Path(os.path.relpath(path.resolve(), Path.cwd()))
    if path.parts and path.parts[0] == "..":
        raise UserError(f"{path}: outside the project, so it has no place in the repository")
    return path.as_posix()


def run_files(run: TrainedRun, recipe: Recipe, split: str) -> list[Upload]:
    """The recipe (and its task preset), and the results the card vouches for: this model's answers, scores, judge
    verdicts; the comparison with its baselines (and their answers and scores); make general's comparison."""
    uploads = []
    if recipe.path and recipe.path.is_file():  # where the card says it is: recipes/NAME.yaml
        uploads.append(Upload(f"recipes/{recipe.name}.yaml", recipe.path, what="recipe"))
    task = recipe.args.task
    if task and not str(task).endswith((".yaml", ".yml")):
        preset = PROJECT_ROOT / named.folder("task") / f"{task}.yaml"
        if preset.is_file():
            uploads.append(Upload(f"recipes/tasks/{task}.yaml", preset, what="task preset"))
    scores, _ = evaluation(run, split)
    if scores is not None:
        uploads += [Upload(in_repo(path), path, what="results") for path in RunFolder(run.results).files(split)]
    compared, _ = comparison(run, split, scores)
    if compared is not None:
        results = RecipeResults(run.recipe)
        uploads += [Upload(in_repo(path), path, what="comparison") for path in results.compare_files(split)]
        for baseline in sorted([results.baseline(), *results.few_shot_baselines()], key=lambda folder: folder.path):
            uploads += [Upload(in_repo(path), path, what="baseline") for path in baseline.files(split)]
        report = results.report
        newest = max(path.stat().st_mtime for path in [RunFolder(run.results).metrics(split), Path(compared["path"])])
        if report.is_file() and report.stat().st_mtime >= newest:  # made from these results
            uploads.append(Upload(in_repo(report), report, what="report"))
    if general(run, split) is not None:
        results = RecipeResults(run.recipe)
        folder = results.general
        paths = [folder / "comparison.md", folder / "comparison.csv"]
        paths.append(results.compare(split).with_suffix(".general.csv"))
        paths += [folder / side / name for side in ("base", "tuned") for name in (SIDE_MANIFEST, "results.json")]
        uploads += [Upload(in_repo(path), path, what="general ability") for path in paths if path.is_file()]
    return uploads


def plan(run: TrainedRun, recipe: Recipe, hub_id: str, split: str, merged_dir: Path | None) -> list[Upload]:
    """Every file of the commit, the card first."""
    card = build_card(run, recipe, split, hub_id=hub_id, merged=merged_dir is not None)
    uploads = [Upload(CARD, content=str(card).encode("utf-8"), what="model card")]
    uploads += model_files(merged_dir or run.model_dir)
    if merged_dir is not None:  # the training's record, beside the merge's own manifest
        uploads += [Upload(f"training/{path.name}", path, what="training record")
                    for path in [run.model_dir / MANIFEST, run.model_dir / LOG_HISTORY,
                                 run.model_dir / "loss.png"] if path.is_file()]  # fmt: skip
    uploads += run_files(run, recipe, split)
    paths = [upload.path_in_repo for upload in uploads]
    if len(set(paths)) != len(paths):
        duplicate = next(path for path in paths if paths.count(path) > 1)
        raise UserError(f"{duplicate}: two files would go to the same path in the repository")
    return uploads


def human(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""


def listing(uploads: list[Upload]) -> str:
    """The commit's files, one per line: size in bytes, readable size, path in the repository, what it is."""
    width = max(len(f"{upload.size:,}") for upload in uploads)
    lines = [f"{upload.size:>{width},}  {human(upload.size):>9}  {upload.path_in_repo}  ({upload.what})"
             for upload in uploads]  # fmt: skip
    total = sum(upload.size for upload in uploads)
    return "\n".join([*lines, f"{len(uploads)} files, {total:,} bytes ({human(total)})"])


def upload(uploads: list[Upload], hub_id: str, token: str, private: bool, message: str) -> str:
    """Create the repository if needed and send every file in one commit; returns the commit's URL. The card is
    first checked by the Hub's own validator, so that a card the Hub would reject sends nothing."""
    from huggingface_hub import CommitOperationAdd, CommitOperationDelete, HfApi, ModelCard
    from huggingface_hub.errors import HfHubHTTPError

    card = next(item for item in uploads if item.path_in_repo == CARD)
    try:
        ModelCard(card.content.decode("utf-8")).validate()
    except ValueError as error:
        raise UserError(f"the Hub rejects the model card: {str(error).splitlines()[0]}; nothing was sent") from None
    except (HfHubHTTPError, OSError) as error:
        raise UserError(f"the Hub's card validator failed: {str(error).splitlines()[0]}; nothing was sent") from None
    api = HfApi(token=token)
    operations = [
        CommitOperationAdd(path_in_repo=item.path_in_repo, path_or_fileobj=item.content or str(item.source))
        for item in uploads
    ]
    try:
        api.create_repo(hub_id, repo_type="model", private=private, exist_ok=True)
        # The repository becomes exactly this run: a file of an earlier upload that this one lacks (an adapter's
        # config left beside a merged model would make transformers load an adapter) goes; git history keeps it.
        sent = {item.path_in_repo for item in uploads} | {".gitattributes"}
        stale = sorted(set(api.list_repo_files(hub_id, repo_type="model")) - sent)
        if stale:
            print(f"removing {len(stale)} file(s) of an earlier upload that this run lacks: {', '.join(stale)}")
        operations += [CommitOperationDelete(path_in_repo=path) for path in stale]
        commit = api.create_commit(hub_id, operations=operations, commit_message=message, repo_type="model")
    except (HfHubHTTPError, OSError) as error:  # a token without write access, a name taken, the network gone
        raise UserError(f"the Hub refused the upload to {hub_id}: {str(error).splitlines()[0]}") from None
    return commit.commit_url


def record(run: TrainedRun, hub_id: str, url: str, uploads: list[Upload], settings: dict, started: str) -> Path:
    """results/NAME/published.json: where the run went, with which files (the token is not among the settings)."""
    path = RunFolder(run.results).published
    files = [{"path": item.path_in_repo, "bytes": item.size} for item in uploads]
    write_json_atomic(path, {**build_manifest({"publish": settings}, [], started), "hub_id": hub_id, "commit": url,
                             "files": files})  # fmt: skip
    return path


def publish(
    recipe: Recipe,
    run: TrainedRun,
    hub_id: str,
    split: str,
    seed: int | None,
    merged: bool,
    private: bool,
    dry_run: bool,
) -> list[Path]:
    """Publish the recipe's finished training `run` (its seed `seed`'s) as the stage's command line says."""
    started = now()
    token = check_can_publish(recipe, run, hub_id, merged, dry_run)
    merged_dir = merged_model(run) if merged else None
    uploads = plan(run, recipe, hub_id, split, merged_dir)
    visibility = "private" if private else "public"
    if dry_run:
        print(f"dry run: would upload to {hub_id} ({visibility}) in one commit, from {run.model_dir}:")
        print(listing(uploads))
        print("nothing was sent (without DRY_RUN=1, make publish sends exactly these files)")
        return [merged_dir] if merged_dir else []
    print(f"uploading to {hub_id} ({visibility}) in one commit:")
    print(listing(uploads))
    message = f"{run.display}: {'merged model' if merged else 'model'}, card, recipe, results (arabic-sft)"
    url = upload(uploads, hub_id, token, private, message)
    settings = {"recipe": str(recipe.path), "hub_id": hub_id, "split": split, "seed": seed, "merged": merged,
                "private": private, "model_dir": str(run.model_dir)}  # fmt: skip
    path = record(run, hub_id, url, uploads, settings, started)
    print(f"published {run.display} to https://huggingface.co/{hub_id} ({url}); what was sent: {path}")
    return [path, *([merged_dir] if merged_dir else [])]
