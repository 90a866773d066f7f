"""A generation run: the settings from the command line and the recipe, the rows of a split, batched generation
shared by the processes of a launch (each saving its finished batches), and the predictions CSV written in input
order with its manifest."""

import json
import signal
import sys
import time
from dataclasses import fields, replace
from pathlib import Path

import torch
from accelerate import PartialState
from accelerate.utils import gather_object
from tqdm.auto import tqdm

from arabic_sft.data.columns import prediction_columns
from arabic_sft.data.fewshot import choose_shots, choose_shots_by_source
from arabic_sft.data.mixture import SOURCE
from arabic_sft.data.splits import data_files, has_rows, load_splits
from arabic_sft.generation.batched import deal_batches, iter_generations
from arabic_sft.generation.endpoint import Endpoint
from arabic_sft.generation.settings import GenerateOptions, GenerationSettings
from arabic_sft.models import context_length, get_tokenizer, load_for_generation
from arabic_sft.prompts.builder import build_model_prompt, is_conversational, predictions_table, prompt_token_ids
from arabic_sft.prompts.truncation import count_long_prompts
from arabic_sft.recipe import Recipe, RecipeArguments, fields_in, load_recipe, one_run, read_preset
from arabic_sft.runs import MANIFEST, RecipeResults, manifest_of, untrained
from arabic_sft.runtime.errors import UserError, as_given
from arabic_sft.runtime.locks import exclusive_output
from arabic_sft.runtime.manifest import atomic_path, build_manifest, changed_files, now, write_json_atomic
from arabic_sft.runtime.partial import PartialWriter, partial_path, read_done, remove_partial
from arabic_sft.runtime.stopping import Stopped, StopRequest, die_with_launcher, stopped_by


def data_arguments(args: GenerateOptions, recipe: Recipe | None) -> RecipeArguments:
    """The data and prompt fields: the recipe's (`--config`), replaced by a `--task` preset's and the flags given."""
    changes = read_preset(args.task) if args.task else {}
    flags = ("prompt_template", "chat_format")
    changes.update({key: getattr(args, key) for key in flags if getattr(args, key, None)})
    if getattr(args, "group_column", None) is not None:  # "" : no group column
        changes["group_column"] = args.group_column or None
    if args.test_path:  # a file given on the command line is used whole (a mixture's: by the recipe's prompt fields)
        changes.update({f"{args.split}_file": args.test_path, f"{args.split}_fraction": 0.0, "dataset_name": None})
        changes["datasets"] = None
    try:
        return replace(recipe.args if recipe else RecipeArguments(), **changes)
    except ValueError as error:
        raise UserError(f"{args.config or 'arguments'}: {error}") from None


def check_model_given(args: GenerateOptions) -> None:
    """One way of naming the model, and what it needs."""
    if args.baseline and not args.config:
        raise UserError("--baseline needs --config (the recipe names the base model); without a recipe use --base_id")
    if bool(args.endpoint_url) != bool(args.endpoint_model):
        raise UserError("an endpoint is --endpoint_url and --endpoint_model together")
    if args.endpoint_url and (args.checkpoint_dir or args.base_id or args.adapter_dir or args.baseline):
        raise UserError("--endpoint_url answers instead of a local model: drop --checkpoint_dir/--base_id/--baseline")
    if not (args.config or args.checkpoint_dir or args.base_id or args.endpoint_url):
        raise UserError("give a model: --config, --checkpoint_dir, --base_id [--adapter_dir], or --endpoint_url")


def resolve(args: GenerateOptions) -> tuple[GenerationSettings, RecipeArguments]:
    """(settings, the data fields): what `args` ask, with the recipe's values where they do not say."""
    check_model_given(args)
    recipe = load_recipe(["--config", args.config]) if args.config else None
    local = not args.endpoint_url
    if recipe and local and not (args.checkpoint_dir or args.base_id or args.baseline):
        one_run(recipe, "eval")
    data = data_arguments(args, recipe)
    if (
        recipe
        and local
        and not recipe.fields.output_dir
        and not (args.checkpoint_dir or args.base_id or args.baseline)
    ):
        raise UserError(f"{args.config}: output_dir is not set, so there is no trained model to load")
    if not has_rows(data, args.split):
        raise UserError(
            f"{args.config}: no {args.split} data in the recipe; give --test_path"
            if args.config
            else "--test_path is required without --config"
        )
    out_path = args.out_path
    if recipe and not out_path:
        results = RecipeResults(recipe.name)
        folder = results.baseline(args.shots) if args.baseline else results.tuned
        out_path = str((results.endpoint(args.endpoint_model) if args.endpoint_url else folder)
                       .predictions(args.split))  # fmt: skip
    if not out_path:
        raise UserError("--out_path is required without --config")
    if not local:
        model_dir, prompt_model = None, recipe.model.model_name_or_path if recipe else None
    elif recipe is None:
        model_dir = args.checkpoint_dir
    else:
        trained = recipe.model.model_name_or_path if args.baseline else recipe.fields.output_dir
        model_dir = args.checkpoint_dir or (None if args.base_id else trained)
        if model_dir == recipe.fields.output_dir and not Path(model_dir).is_dir():
            raise untrained(model_dir, recipe.name)
    resolved = {"model_dir", "revision", "trust_remote_code", "split_seed", "out_path"}
    given = {
        item.name: getattr(args, item.name)
        for item in fields(GenerationSettings)
        if item.name not in resolved and getattr(args, item.name, None) is not None
    }
    settings = GenerationSettings(
        **given,
        data={key: getattr(data, key) for key in fields_in("data", "prompt")},
        split_seed=recipe.fields.seed if recipe else 42,
        model_dir=model_dir,
        revision=recipe.model.model_revision if recipe and local else None,
        trust_remote_code=bool(recipe and recipe.fields.trust_remote_code),
        out_path=out_path,
        prompt_model=None if local else prompt_model,
    )
    return settings, data


def training_manifest(settings: GenerationSettings) -> dict | None:
    """The run manifest of the trained model generation loads (sft.py writes it beside the model), if any."""
    manifest = Path(settings.model_dir or settings.adapter_dir or "", MANIFEST)
    return json.loads(manifest.read_text(encoding="utf-8")) if manifest.is_file() else None


def data_as_trained(settings: GenerationSettings, data: RecipeArguments) -> None:
    """The data files this generation reads and the training run recorded have the same sha256 as then: a row added
    to a test file after training, or a changed training file behind a fraction split, is refused."""
    paths = data_files(data, ("train", settings.split))
    if changed := changed_files(training_manifest(settings), paths):
        accept = as_given(
            "--accept_changed_data", "GENERATE_ARGS=--accept_changed_data", "--generate_args=--accept_changed_data"
        )
        raise UserError(
            f"{changed[0]}: changed since the training run in {settings.model_dir or settings.adapter_dir} (its "
            f"sha256 differs from the one the run manifest records); pass {accept} to generate on it anyway"
        )


def held_out_as_trained(settings: GenerationSettings, record: dict | None) -> None:
    """A fraction split must hold out the rows the training run held out (its manifest records them)."""
    manifest = training_manifest(settings)
    if record is None or manifest is None:
        return
    trained = manifest["config"].get("data", {}).get("held_out")
    split = settings.split
    if f"{split}_rows" not in record:  # this split comes from a file now (--test_path): no held-out rows to match
        return
    if trained and trained.get(f"{split}_rows") != record.get(f"{split}_rows"):
        raise UserError(
            f"{record['source']}: the {split} rows held out now differ from those the training run in "
            f"{settings.model_dir} held out (the file or the seed changed since training)"
        )


def few_shot(settings: GenerationSettings, splits: dict, answered, spec, conversational: bool, rows=None):
    """(the solved training rows shown before every prompt, their record for the manifest; none without shots):
    `rows` (positions in the training split) as a manifest recorded them, else drawn with the settings' seed among
    those whose inputs are no `answered` row's. A mixture's (rows marked with their source): k rows of each source
    that has rows to answer, by source ({source: rows}); each row is shown its own source's (`shots_of`)."""
    if not settings.shots:
        return [], {}
    train = splits["train"]
    mixed = SOURCE in train.frame.columns and SOURCE in answered.columns
    if rows is None:
        choose = choose_shots_by_source if mixed else choose_shots
        rows = choose(train.frame, answered, spec, settings.shots, settings.seed)
    record = {
        "k": settings.shots,
        "seed": settings.seed,
        "source": train.source,
        "rows": rows,
        "same_for_every_row": not mixed,  # a mixture's: the same for every row of a source
        "rendering": "chat turns" if conversational else "plain text blocks",
    }
    if mixed:
        return {name: [train.frame.iloc[i].to_dict() for i in found] for name, found in rows.items()}, record
    return [train.frame.iloc[i].to_dict() for i in rows], record


def shots_of(examples: list | dict, row: dict) -> list:
    """The solved rows shown before `row`'s prompt: `few_shot`'s, or a mixture's for the row's source."""
    return examples.get(row.get(SOURCE), []) if isinstance(examples, dict) else examples


def count_every_process(bar, out: Path) -> None:
    """Move the main process's bar to the rows every process has saved (their partial files)."""
    bar.update(len(read_done(out)) - bar.n)


def wait_for_all(state: PartialState, out: Path, bar, generated: int) -> list[int]:
    """Wait until every process has finished its share, the main process's bar counting their rows meanwhile; the
    number of rows each process generated in this run."""
    if state.num_processes == 1:
        return [generated]
    import torch.distributed as dist

    waiting = dist.barrier(async_op=True)
    while not waiting.is_completed():
        if state.is_main_process:
            count_every_process(bar, out)
        time.sleep(0.2)
    if state.is_main_process:
        count_every_process(bar, out)
    return gather_object([generated])


def run(args: GenerateOptions) -> list[Path]:
    """Generate as the command line says: one process alone, or under `accelerate launch` each process a share of
    the rows. Returns the files written (the main process's: the predictions and their manifest); raises `Stopped`
    (128 + the signal) when SIGTERM or Ctrl-C stopped it (the same command continues)."""
    started = now()
    settings, data = resolve(args)
    if not args.accept_changed_data:
        data_as_trained(settings, data)
    die_with_launcher()
    state = PartialState(cpu=not torch.cuda.is_available())  # CPU processes: gloo
    if settings.device_map and state.num_processes > 1:
        raise UserError("--device_map splits one model over the GPUs of one process: launch one process")
    with exclusive_output(settings.out_path, enabled=state.is_main_process):  # one generation per output file
        return generate(settings, data, args.overwrite, started, state, group_given=args.group_column is not None)


def rows_to_answer(settings: GenerationSettings, data: RecipeArguments, say: bool, group_given: bool) -> tuple:
    """(the splits read, their DataSpec, the held-out record, the split answered, its rows: `--limit` of them)."""
    wanted = (settings.split, "train") if settings.shots else (settings.split,)
    keep = (data.group_column,) if data.group_column else ()  # carried into the predictions for per-group results
    splits, spec, record = load_splits(
        data, settings.split_seed, wanted=wanted, require_answer=False, keep=keep, keep_if_present=not group_given
    )  # the recipe's group column is carried where the file has it: a file of new questions needs none
    held_out_as_trained(settings, record)
    split = splits[settings.split]
    fields = {alias.lower() for accepted in spec.accepted.values() for alias in accepted}
    if keep and keep[0] not in split.carried and keep[0].lower() not in fields and say:
        print(f"note: {split.source} has no column '{keep[0]}' (group_column): the answers carry no groups",
              file=sys.stderr)  # fmt: skip
    if settings.limit is not None and not 0 < settings.limit <= len(split.frame):
        raise UserError(f"--limit {settings.limit}: {split.source} has {len(split.frame)} rows")
    return splits, spec, record, split, limited(split.frame, settings.limit, settings.seed)


def limited(frame, limit: int | None, seed: int):
    """The rows a generation with `--limit` answers: `limit` of them drawn with `seed`, in file order."""
    if limit is None:
        return frame
    return frame.sample(n=limit, random_state=seed).sort_index().reset_index(drop=True)


def generate(
    settings: GenerationSettings, data: RecipeArguments, overwrite: bool, started: str, state, group_given=False
) -> list[Path]:
    out = Path(settings.out_path)
    if out.exists() and not overwrite:
        raise UserError(f"{out}: already exists (pass --overwrite to replace it)")
    if overwrite and state.is_main_process:
        remove_partial(out)
    splits, spec, record, split, frame = rows_to_answer(settings, data, state.is_main_process, group_given)
    state.wait_for_everyone()  # --overwrite's removal is done before anyone reads
    key = settings.resume_key()
    done = read_done(out, key)
    if settings.endpoint_url:
        return ask_endpoint(settings, data, out, started, done, (splits, spec, record, split, frame))
    model, tokenizer = load_for_generation(
        settings.model_dir,
        settings.base_id,
        settings.adapter_dir,
        settings.revision,
        settings.trust_remote_code,
        device=None if settings.device_map else state.device,
        device_map=settings.device_map,
    )
    conversational = is_conversational(tokenizer, data.chat_format, spec)
    rows = frame.to_dict("records")
    examples, shots = few_shot(settings, splits, frame, spec, conversational)
    prompts = [prompt_token_ids(tokenizer, build_model_prompt(row, spec, conversational, shots_of(examples, row)))
               for row in rows]  # fmt: skip
    if warning := count_long_prompts(prompts, settings.max_new_tokens, context_length(model)):
        print(warning, file=sys.stderr)

    out.parent.mkdir(parents=True, exist_ok=True)
    mine = deal_batches(prompts, settings.batch_size, done, state)  # the batches not finished yet: this one's share
    # SIGTERM, Ctrl-C: the batch being generated is finished and saved, then the run stops
    stop = StopRequest("stopping when this batch is generated and saved", say=state.is_main_process)
    writer, generated = PartialWriter(out, state.process_index, key), 0
    bar = tqdm(total=len(rows), initial=len(done), unit="ex", desc="generating", disable=not state.is_main_process)
    try:
        for batch in iter_generations(
            model,
            tokenizer,
            prompts,
            settings.max_new_tokens,
            settings.batch_size,
            settings.temperature,
            settings.top_p,
            settings.seed,
            skip=done,
            static_cache=settings.static_cache,
            take=mine,
        ):
            writer.write(batch)
            generated += len(batch)
            if state.num_processes > 1:
                count_every_process(bar, out)
            else:
                bar.update(len(batch))
            if stop.requested:
                break
    finally:
        stop.close()
    writer.close()
    counts = wait_for_all(state, out, bar, generated)  # rows each process generated in this run
    bar.close()
    if not state.is_main_process:
        return []
    done = every_row_or_stop(out, key, len(rows), stop)

    record_of_run = {**settings.record(), "num_processes": state.num_processes, "rows_per_process": counts}
    return write_predictions(out, data, spec, split, rows, done, started,
                             {"generation": record_of_run, "held_out": record, "shots": shots or None})  # fmt: skip


def every_row_or_stop(out: Path, key: dict, count: int, stop: StopRequest) -> dict[int, str]:
    """The answers of all `count` rows; after a stop with rows missing, one line and `Stopped` (they are saved)."""
    done = read_done(out, key)
    if len(done) < count:
        if not stop.requested:
            raise UserError(f"{out}: {count - len(done)} rows are missing after generation")
        saved = partial_path(out)
        print(f"stopped by {stopped_by(stop.signal)} after {len(done)} of {count} rows (saved in {saved}); the same "
              "command continues", file=sys.stderr)  # fmt: skip
        raise Stopped(stop.signal or signal.SIGTERM)
    return done


def write_predictions(out: Path, data, spec, split, rows: list, done: dict, started: str, configs: dict) -> list[Path]:
    """The predictions CSV in input order, written whole, then its manifest (`configs`); the partial run removed."""
    names = prediction_columns(spec, split.names)
    predictions = predictions_table(rows, spec, names, [done[i] for i in range(len(rows))], split.carried)
    with atomic_path(out) as temporary:
        predictions.to_csv(temporary, index=False, encoding="utf-8")
    remove_partial(out)
    files = data_files(data, ("train", configs["generation"]["split"]))
    write_json_atomic(manifest_of(out), build_manifest(configs, files, started))
    print(f"wrote {len(predictions)} predictions to {out}")
    return [out, manifest_of(out)]


def endpoint_chat(model: str | None, chat_format: str, spec) -> bool:
    """Whether an endpoint is sent chat messages: as make eval decides for the recipe's model (chat_format, and for
    `auto` its tokenizer's chat template); `auto` without that tokenizer here (a hosted model's recipe): chat."""
    if chat_format != "auto" and spec.kind != "messages":
        return chat_format == "chat"
    try:
        tokenizer = get_tokenizer(model) if model else None
    except UserError:
        tokenizer = None
    return True if tokenizer is None else is_conversational(tokenizer, chat_format, spec)


def ask_endpoint(settings: GenerationSettings, data, out: Path, started: str, done: dict, read: tuple) -> list[Path]:
    """Generation by an OpenAI-compatible endpoint's model (`generation.endpoint`): the recipe's prompts (chat
    messages unless the recipe's chat_format is plain), each answer saved as it arrives; SIGTERM or Ctrl-C sends
    nothing more, keeps the answers on their way and stops (the same command continues)."""
    splits, spec, record, split, frame = read
    endpoint = Endpoint(settings.endpoint_url, settings.endpoint_model, settings.endpoint_key_env,
                        settings.concurrency, settings.max_failures, settings.endpoint_timeout,
                        settings.endpoint_retries, settings.token_budget)  # fmt: skip
    chat = endpoint_chat(settings.prompt_model, data.chat_format, spec)
    rows = frame.to_dict("records")
    examples, shots = few_shot(settings, splits, frame, spec, chat)
    prompts = [build_model_prompt(row, spec, chat, shots_of(examples, row)) for row in rows]
    decoding = {
        "temperature": settings.temperature,
        "top_p": settings.top_p,
        "max_new_tokens": settings.max_new_tokens,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    stop = StopRequest("stopping once the answers on their way have arrived")
    writer = PartialWriter(out, 0, settings.resume_key())
    bar = tqdm(total=len(rows), initial=len(done), unit="ex", desc=f"asking {endpoint.model}")
    try:
        for index, text in endpoint.answers(prompts, done, decoding, lambda: stop.requested):
            writer.write([(index, text)])
            bar.update(1)
    finally:
        stop.close()
        writer.close()
        bar.close()
    done = every_row_or_stop(out, settings.resume_key(), len(rows), stop)
    asked = {**settings.record(), "prompt": "chat messages" if chat else "plain text", "usage": endpoint.usage}
    return write_predictions(out, data, spec, split, rows, done, started,
                             {"generation": asked, "held_out": record, "shots": shots or None})  # fmt: skip
