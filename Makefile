# The front door: every target works from a fresh clone and installs what it needs (`make setup`).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RECIPE ?= demo
ARGS ?=
# Extra `accelerate launch` flags, e.g. LAUNCH_ARGS="--num_processes 4" or, on a CPU, "--num_processes 2 --mixed_precision no".
# make train checks the recipe against this machine and the launch config first (arabic_sft.training.launch), then runs
# `accelerate launch` with one process per GPU of this machine unless LAUNCH_ARGS gives --num_processes.
LAUNCH_ARGS ?=
# make eval: which split, how many examples (empty = all), and extra flags for each script.
SPLIT ?= test
LIMIT ?=
OVERWRITE ?=
GENERATE_ARGS ?=
SCORE_ARGS ?=
JUDGE_ARGS ?=
# The recipe's fields that eval and baseline follow, read once (a recipe loads in seconds): judge_model (the LLM
# judge runs as a step of eval and baseline when the recipe names one; served at judge_url, or run here), and
# bertscore_model / semantic_model (ids or local paths), passed to score.py when the recipe names them.
RECIPE_FIELDS = $(eval RECIPE_FIELDS := $(shell $(PY) -m arabic_sft.recipe recipes/$(RECIPE).yaml judge_model \
	bertscore_model semantic_model seeds 2>/dev/null))$(RECIPE_FIELDS)
recipe_field = $(filter-out None,$(word $(1),$(RECIPE_FIELDS)))
JUDGED = $(call recipe_field,1)
MODEL_METRICS = $(if $(call recipe_field,2),--bertscore_model $(call recipe_field,2)) \
	$(if $(call recipe_field,3),--semantic_model $(call recipe_field,3))
# make train / make eval SEEDS="1 2 3" (default: the recipe's `seeds`): one complete run per seed in
# results/<recipe>/seed-N/ (model/, predictions, metrics); compare and report treat them as one system.
comma := ,
SEEDS ?= $(subst [,,$(subst ],,$(subst $(comma), ,$(filter-out None,$(wordlist 4,99,$(RECIPE_FIELDS))))))
RUNS = $(if $(strip $(SEEDS)),$(foreach seed,$(SEEDS),seed-$(seed)),.)
# make judge PAIRWISE=baseline-zero-shot: the fine-tuned answers against that run's, each pair in both orders.
PAIRWISE ?=
# Generation: one process, or with LAUNCH_ARGS (e.g. "--num_processes 8") one per GPU through accelerate launch.
LAUNCH = $(if $(strip $(LAUNCH_ARGS)),$(VENV)/bin/accelerate launch --config_file accelerate_configs/ddp.yaml --mixed_precision no $(LAUNCH_ARGS),$(PY))
GENERATE = $(LAUNCH) scripts/generate.py
# A local judge (no judge_url) is launched like generation; a served one needs one process.
JUDGE = $(LAUNCH) scripts/judge.py
# make general: lm-evaluation-harness tasks (TASKS="a b", default: the recipe's general_tasks, else the Arabic
# suite), the first LIMIT questions of each; launched like generation (LAUNCH_ARGS: data parallel over GPUs).
TASKS ?=
GENERAL_ARGS ?=
# make sweep SWEEP=NAME: Optuna over recipes/sweeps/NAME.yaml, WORKERS processes on this machine sharing one study.
SWEEP ?= demo
WORKERS ?= 1
# make baseline: the recipe's base model, untrained, zero-shot or with SHOTS=K solved training rows before each prompt.
SHOTS ?= 0
BASELINE = results/$(RECIPE)/baseline-$(if $(filter 0,$(SHOTS)),zero,$(SHOTS))-shot
# make publish RECIPE=<name> HUB_ID=org/name: MERGED=1 the adapter merged into its base, PRIVATE=1, DRY_RUN=1 (list
# only), SEED=N (one seed's run); the token from HF_TOKEN.
HUB_ID ?=
MERGED ?=
PRIVATE ?=
DRY_RUN ?=
SEED ?=
# The launch config: the one the recipe names (`accelerate_config:`), unless ACCELERATE_CONFIG=zero3 says.
ACCELERATE_CONFIG ?=
# Real data: linked from ../shared/data when it is there (this workplace), else downloaded at a pinned commit.
SHARED_DATA ?= ../shared/data
PROVERBS_URL := https://raw.githubusercontent.com/NasserThmer/Yemeni-Proverbs-LLM-Benchmark/c3635bd645bf908efc9e8ebaec1179a859d2df48/data
PROVERBS := Train_data.csv Validation_data.csv Test_data.csv

.PHONY: help setup data demo train eval baseline judge general sweep compare report publish browser bench bench-gpu lint format test clean

help:
	@echo "make setup                    create .venv and install the pinned requirements"
	@echo "make demo                     tiny local model trained on the real proverbs on CPU, then make eval (minutes)"
	@echo "make test                     lint, then the test suite"
	@echo "make lint                     ruff: lint and format check (make format rewrites the files)"
	@echo "make bench                    CPU benchmark, seed way vs ours: results/bench/cpu.{json,md} (minutes)"
	@echo "make bench-gpu                GPU benchmarks on the real models' shapes: results/bench/gpu-* (CUDA GPU)"
	@echo "make data                     fetch the Yemeni proverbs CSVs (sha256-checked) into data/yemeni_proverbs/"
	@echo "make train RECIPE=<name>      train recipes/<name>.yaml with the accelerate config it names"
	@echo "                              (ACCELERATE_CONFIG=<cfg> to override, ARGS='--field value' for overrides,"
	@echo "                              LAUNCH_ARGS='--num_processes 4' for accelerate; SEEDS='1 2 3': one run per"
	@echo "                              seed in results/<name>/seed-N/, which make eval follows)"
	@echo "make eval RECIPE=<name>       generate on the test split, then score: results/<name>/metrics_test.{json,md}"
	@echo "                              (SPLIT=validation, LIMIT=N examples, OVERWRITE=1 to generate again,"
	@echo "                              GENERATE_ARGS='--batch_size 32', SCORE_ARGS='--no_bertscore',"
	@echo "                              LAUNCH_ARGS='--num_processes 8': generation shared by 8 processes/GPUs)"
	@echo "make baseline RECIPE=<name>   the recipe's base model, untrained, generated and scored like eval:"
	@echo "                              results/<name>/baseline-zero-shot/ (SHOTS=K: baseline-K-shot/, K training rows shown)"
	@echo "make judge RECIPE=<name>      an LLM judge (the recipe's judge_model, served at judge_url or run here)"
	@echo "                              scores each answer: results/<name>/judge_test.{json,examples.csv}; a step"
	@echo "                              of eval and baseline when the recipe names a judge (JUDGE_ARGS='--batch_size"
	@echo "                              32'); PAIRWISE=baseline-zero-shot: fine-tuned against that run, both orders"
	@echo "make general RECIPE=<name>    general ability, base against fine-tuned, through lm-evaluation-harness:"
	@echo "                              results/<name>/general/ (TASKS='arabic_sft_mcq aexams', LIMIT=N questions"
	@echo "                              per task, OVERWRITE=1, GENERAL_ARGS='--num_fewshot 5')"
	@echo "make sweep SWEEP=<name>       Optuna over recipes/sweeps/<name>.yaml (WORKERS=2: processes sharing the"
	@echo "                              study): results/sweeps/<name>/, the best as recipes/<name>_best.yaml"
	@echo "make compare RECIPE=<name>    the fine-tuned run against its baselines, with 95% bootstrap intervals and"
	@echo "                              paired p-values: results/<name>/compare_test.{md,csv,png}"
	@echo "make publish RECIPE=<name> HUB_ID=org/name   the trained model, its card, recipe and results to the"
	@echo "                              Hub in one commit (HF_TOKEN; MERGED=1 adapter merged into its base, PRIVATE=1,"
	@echo "                              DRY_RUN=1: list the files and sizes, send nothing); docs/publishing.md"
	@echo "make report RECIPE=<name>     one self-contained page: comparison, plots, groups (group_column), every"
	@echo "                              example with each run's answer, provenance: results/<name>/report.html"

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@

data: setup $(addprefix data/yemeni_proverbs/,$(PROVERBS))

data/yemeni_proverbs/%.csv: data/yemeni_proverbs.sha256
	@mkdir -p $(@D)
	@if [ -f "$(SHARED_DATA)/yemeni_proverbs/$*.csv" ]; then \
		ln -sf "$(abspath $(SHARED_DATA))/yemeni_proverbs/$*.csv" "$@.part"; \
	else \
		echo "downloading $*.csv"; curl -fsSL "$(PROVERBS_URL)/$*.csv" -o "$@.part"; \
	fi
	@expected=$$(awk '$$2 == "$*.csv" {print $$1}' $<); actual=$$(sha256sum < "$@.part" | cut -d' ' -f1); \
	if [ "$$expected" != "$$actual" ]; then rm -f "$@.part"; echo "error: $*.csv: sha256 $$actual, expected $$expected" >&2; exit 1; fi
	@mv -f "$@.part" "$@"

demo: setup data
	$(PY) scripts/make_tiny_model.py --config recipes/demo.yaml --vocab_size 4000 --hidden_size 128 --num_layers 4
	$(MAKE) --no-print-directory train RECIPE=demo
	$(MAKE) --no-print-directory eval RECIPE=demo
	$(MAKE) --no-print-directory baseline RECIPE=demo
	$(MAKE) --no-print-directory general RECIPE=demo OVERWRITE=1
	$(MAKE) --no-print-directory compare RECIPE=demo
	$(MAKE) --no-print-directory report RECIPE=demo
	@echo "demo done: model, run_manifest.json and loss.png in results/demo/model; predictions, metrics, baseline and compare_test.md in results/demo; the report: results/demo/report.html (report.png: how it looks)"

TRAIN = $(PY) -m arabic_sft.training.launch $(strip $(if $(ACCELERATE_CONFIG),--config_file \
	accelerate_configs/$(ACCELERATE_CONFIG).yaml) $(LAUNCH_ARGS)) scripts/sft.py --config recipes/$(RECIPE).yaml

train: setup
	@test -f recipes/$(RECIPE).yaml || { echo "error: recipes/$(RECIPE).yaml not found (see recipes/)" >&2; exit 2; }
	$(if $(strip $(SEEDS)),$(foreach seed,$(SEEDS),$(TRAIN) --seed $(seed) \
		--output_dir results/$(RECIPE)/seed-$(seed)/model $(ARGS) &&) true,$(TRAIN) $(ARGS))

# Generation resumes a killed run; existing predictions are scored as they are unless OVERWRITE=1. Metrics are
# always recomputed from the predictions (they record the settings that produced them).
# With SEEDS, each seed's run in turn (results/<recipe>/seed-N/).
eval: setup
	@test -f recipes/$(RECIPE).yaml || { echo "error: recipes/$(RECIPE).yaml not found (see recipes/)" >&2; exit 2; }
	@set -e; for run in $(RUNS); do \
		dir=results/$(RECIPE); [ "$$run" = . ] || dir=$$dir/$$run; predictions=$$dir/predictions_$(SPLIT).csv; \
		model=$$([ "$$run" = . ] || echo "--checkpoint_dir $$dir/model --out_path $$predictions"); \
		if [ -f "$$predictions" ] && [ -z "$(OVERWRITE)" ]; then \
			echo "$$predictions exists: scoring it as it is (OVERWRITE=1 generates it again)"; \
		else \
			(set -x; $(GENERATE) --config recipes/$(RECIPE).yaml $$model --split $(SPLIT) \
				$(if $(LIMIT),--limit $(LIMIT)) $(if $(OVERWRITE),--overwrite) $(GENERATE_ARGS)); \
		fi; \
		scored=$$([ "$$run" = . ] && echo "--config recipes/$(RECIPE).yaml" || echo "$$predictions"); \
		(set -x; $(PY) scripts/score.py $$scored --split $(SPLIT) --overwrite $(MODEL_METRICS) $(SCORE_ARGS)); \
		$(if $(JUDGED),(set -x; $(JUDGE) $$predictions --config recipes/$(RECIPE).yaml --overwrite $(JUDGE_ARGS));) \
	done

baseline: setup
	@test -f recipes/$(RECIPE).yaml || { echo "error: recipes/$(RECIPE).yaml not found (see recipes/)" >&2; exit 2; }
	@if [ -f "$(BASELINE)/predictions_$(SPLIT).csv" ] && [ -z "$(OVERWRITE)" ]; then \
		echo "$(BASELINE)/predictions_$(SPLIT).csv exists: scoring it as it is (OVERWRITE=1 generates it again)"; \
	else \
		$(GENERATE) --config recipes/$(RECIPE).yaml --baseline --shots $(SHOTS) --split $(SPLIT) \
			$(if $(LIMIT),--limit $(LIMIT)) $(if $(OVERWRITE),--overwrite) $(GENERATE_ARGS); \
	fi
	$(PY) scripts/score.py $(BASELINE)/predictions_$(SPLIT).csv --split $(SPLIT) --overwrite $(MODEL_METRICS) \
		$(SCORE_ARGS)
	$(if $(JUDGED),$(JUDGE) $(BASELINE)/predictions_$(SPLIT).csv --config recipes/$(RECIPE).yaml \
		--overwrite $(JUDGE_ARGS))

judge: setup
	@test -f recipes/$(RECIPE).yaml || { echo "error: recipes/$(RECIPE).yaml not found (see recipes/)" >&2; exit 2; }
	$(JUDGE) --config recipes/$(RECIPE).yaml --split $(SPLIT) --overwrite \
		$(if $(PAIRWISE),--against results/$(RECIPE)/$(PAIRWISE)/predictions_$(SPLIT).csv) $(JUDGE_ARGS)

general: setup
	@test -f recipes/$(RECIPE).yaml || { echo "error: recipes/$(RECIPE).yaml not found (see recipes/)" >&2; exit 2; }
	$(LAUNCH) scripts/general.py --config recipes/$(RECIPE).yaml $(if $(TASKS),--tasks $(TASKS)) \
		$(if $(LIMIT),--limit $(LIMIT)) $(if $(OVERWRITE),--overwrite) $(GENERAL_ARGS)

sweep: setup
	@test -f recipes/sweeps/$(SWEEP).yaml || { echo "error: recipes/sweeps/$(SWEEP).yaml not found" >&2; exit 2; }
	$(PY) scripts/sweep.py --sweep recipes/sweeps/$(SWEEP).yaml --check
	@pids=; for worker in $$(seq $(WORKERS)); do $(PY) scripts/sweep.py --sweep recipes/sweeps/$(SWEEP).yaml & \
		pids="$$pids $$!"; done; status=0; for pid in $$pids; do wait $$pid || status=$$?; done; exit $$status

compare: setup
	$(PY) scripts/compare.py --config recipes/$(RECIPE).yaml --split $(SPLIT) --overwrite

# With chromium and chromedriver on the machine (make browser), also report.png: the page as a browser shows it.
report: setup
	$(PY) scripts/report.py --config recipes/$(RECIPE).yaml --split $(SPLIT) --overwrite \
		$(if $(shell command -v chromium >/dev/null && command -v chromedriver),--screenshot)

publish: setup
	@test -f recipes/$(RECIPE).yaml || { echo "error: recipes/$(RECIPE).yaml not found (see recipes/)" >&2; exit 2; }
	$(PY) scripts/publish.py --config recipes/$(RECIPE).yaml $(if $(HUB_ID),--hub_id $(HUB_ID)) $(if $(MERGED),--merged) \
		$(if $(PRIVATE),--private) $(if $(DRY_RUN),--dry_run) $(if $(SEED),--seed $(SEED)) --split $(SPLIT)

# A few-million-parameter Llama, so that compute (not Python overhead) dominates the CPU timings.
bench: setup data
	$(PY) scripts/make_tiny_model.py --config recipes/demo.yaml --out models/bench-llama \
		--vocab_size 4000 --hidden_size 256 --num_layers 4 --num_heads 4
	$(PY) scripts/benchmark.py --config recipes/demo.yaml --model models/bench-llama --out results/bench/cpu.json

# The GPU figures (random-weight ALLaM-7B / Jais-256m shapes; needs a CUDA GPU): results/bench/gpu-*.{json,md,log}.
bench-gpu: setup data
	PYTHON=$(PY) bash scripts/bench_gpu.sh

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# The report's browser test needs Debian's chromium and its WebDriver: installed here when missing (CI runs as root;
# elsewhere, `sudo apt-get install chromium chromium-driver`).
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || { \
		echo "installing chromium and chromium-driver (the report's browser test)"; \
		$(if $(filter 0,$(shell id -u)),,sudo) apt-get update -q && \
		$(if $(filter 0,$(shell id -u)),,sudo) apt-get install -y -q --no-install-recommends chromium chromium-driver; }

test: lint browser
	$(PY) -m pytest tests

clean:
	rm -rf $(VENV) models results/*/ .pytest_cache
