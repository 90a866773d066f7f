# The front door: the users' verbs, each one line over the console program `arabic-sft` (src/arabic_sft/cli.py),
# which owns the orchestration (seeds, eval's stages, the demo). Every target installs what it needs (`make setup`).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
CLI := ARABIC_SFT_FRONT=make $(PY) -m arabic_sft
RECIPE ?=
# Recipe field overrides for make train (ARGS='--num_train_epochs 1'); accelerate flags (LAUNCH_ARGS='--num_processes 4')
ARGS ?=
LAUNCH_ARGS ?=
ACCELERATE_CONFIG ?=
SEEDS ?=
SPLIT ?= test
LIMIT ?=
PORT ?=
OVERWRITE ?=
GENERATE_ARGS ?=
SCORE_ARGS ?=
JUDGE_ARGS ?=
PAIRWISE ?=
SHOTS ?= 0
TASKS ?=
GENERAL_ARGS ?=
SWEEP ?= demo
WORKERS ?= 1
HUB_ID ?=
MERGED ?=
SEED ?=
FORMAT ?=
QUANT ?=
# Real data: linked from ../shared/data when it is there (SHARED_DATA=), else downloaded at a pinned commit.
export SHARED_DATA ?= ../shared/data
opt = $(if $(strip $(2)),$(1)="$(strip $(2))")
EVAL_OPTS = --split $(SPLIT) $(call opt,--limit,$(LIMIT)) $(if $(OVERWRITE),--overwrite) \
	$(call opt,--launch_args,$(LAUNCH_ARGS)) $(call opt,--generate_args,$(GENERATE_ARGS)) \
	$(call opt,--score_args,$(SCORE_ARGS)) $(call opt,--judge_args,$(JUDGE_ARGS))

.PHONY: help setup data demo train eval baseline endpoint judge general sweep compare board report publish export serve chat data-check browser slurm golang \
	gguf bench bench-gpu lint format test test-fast test-machines test-gguf clean
help:
	@echo "make setup | demo | data | gguf | test | test-fast | test-machines | test-gguf | lint | format | bench | bench-gpu | clean"
	@echo "make data-check | train RECIPE=<name> [SEEDS='1 2 3'] [ARGS='--field value'] [ACCELERATE_CONFIG=zero2] [LAUNCH_ARGS=...]"
	@echo "make eval | baseline [SHOTS=K] | endpoint [URL= MODEL=] [NAME= KEY_ENV= CONCURRENCY= TOKENS=] | judge [PAIRWISE=run] | general [TASKS=...] | compare | report RECIPE=<name>"
	@echo "make board RECIPE=<name> (or RECIPES='a b': the first's test rows) [METRIC=chrf EACH_SEED=1]: every system, ranked"
	@echo "     (SPLIT=validation, LIMIT=N, OVERWRITE=1, GENERATE_ARGS=, SCORE_ARGS=, JUDGE_ARGS=, GENERAL_ARGS=)"
	@echo "make sweep SWEEP=<name> [WORKERS=2]; make publish RECIPE=<name> HUB_ID=org/name [MERGED=1 PRIVATE=1 DRY_RUN=1 SEED=N]"
	@echo "make chat | serve [PORT=] | export [FORMAT=gguf QUANT=q8_0] RECIPE=<name> [SEED=N]; make clean: .venv and models/"
	@echo "Each is 'arabic-sft STAGE RECIPE ...' (.venv/bin/python -m arabic_sft --help); SHARED_DATA= where the real data is."
setup: $(VENV)/.installed
$(VENV)/.installed: requirements.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e .
	@touch $@
data: setup
	$(CLI) data
demo: setup
	$(CLI) demo
train: setup
	$(CLI) train $(RECIPE) $(call opt,--accelerate_config,$(ACCELERATE_CONFIG)) $(call opt,--launch_args,$(LAUNCH_ARGS)) $(if $(strip $(SEEDS)),--seeds $(SEEDS)) $(ARGS)
eval: setup
	$(CLI) eval $(RECIPE) $(EVAL_OPTS) $(if $(strip $(SEEDS)),--seeds $(SEEDS))
baseline: setup
	$(CLI) baseline $(RECIPE) --shots $(SHOTS) $(EVAL_OPTS)
judge: setup
	$(CLI) judge $(RECIPE) --split $(SPLIT) $(call opt,--limit,$(LIMIT)) $(call opt,--pairwise,$(PAIRWISE)) $(call opt,--launch_args,$(LAUNCH_ARGS)) $(call opt,--judge_args,$(JUDGE_ARGS))
general: setup
	$(CLI) general $(RECIPE) $(if $(TASKS),--tasks $(TASKS)) $(call opt,--limit,$(LIMIT)) $(if $(OVERWRITE),--overwrite) $(call opt,--launch_args,$(LAUNCH_ARGS)) $(call opt,--general_args,$(GENERAL_ARGS))
sweep: setup
	$(CLI) sweep $(SWEEP) --workers $(WORKERS)
compare: setup
	$(CLI) compare $(RECIPE) --split $(SPLIT)
board: setup
	$(CLI) board $(or $(strip $(RECIPES)),$(RECIPE)) --split $(SPLIT) $(call opt,--metric,$(METRIC)) $(if $(EACH_SEED),--each_seed)
report: setup
	$(CLI) report $(RECIPE) --split $(SPLIT)
publish: setup
	$(CLI) publish $(RECIPE) --split $(SPLIT) $(call opt,--hub_id,$(HUB_ID)) $(if $(MERGED),--merged) $(if $(PRIVATE),--private) $(if $(DRY_RUN),--dry_run) $(call opt,--seed,$(SEED))
endpoint: setup
	$(CLI) endpoint $(RECIPE) $(call opt,--url,$(URL)) $(call opt,--model,$(MODEL)) $(call opt,--name,$(NAME)) $(call opt,--key_env,$(KEY_ENV)) $(call opt,--concurrency,$(CONCURRENCY)) $(call opt,--token_budget,$(TOKENS)) $(EVAL_OPTS)
export: setup
	$(CLI) export $(RECIPE) $(call opt,--seed,$(SEED)) $(if $(OVERWRITE),--overwrite) $(call opt,--format,$(FORMAT)) $(call opt,--quant,$(QUANT))
serve: setup
	$(CLI) serve $(RECIPE) $(call opt,--seed,$(SEED)) $(call opt,--port,$(PORT))
chat: setup
	$(CLI) chat $(RECIPE) $(call opt,--seed,$(SEED)) $(call opt,--port,$(PORT))
data-check: setup
	$(CLI) data-check $(RECIPE)
bench: setup data browser
	$(CLI) bench
# The GPU figures (random-weight ALLaM-7B / Jais-256m shapes; needs a CUDA GPU): results/bench/gpu-*.{json,md,log}.
bench-gpu: setup data
	PYTHON=$(PY) bash scripts/bench_gpu.sh
# llama.cpp's converter, quantizer and runtime from the pinned llama-cpp-python source (built once: minutes)
gguf: setup
	bash scripts/install_gguf_tools.sh $(PY)
lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
format: setup
	$(VENV)/bin/ruff check --fix . && $(VENV)/bin/ruff format .
# Debian packages for tests, installed when missing (CI runs as root): the browser's, Slurm's (local_cluster.py), Go's
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
browser slurm golang: DEBS = $(if $(filter slurm,$@),slurm-wlm munge,$(if $(filter golang,$@),golang-go,chromium chromium-driver))
browser slurm golang:
	@which $(if $(filter slurm,$@),sbatch slurmctld slurmd munged,$(if $(filter golang,$@),go,chromium chromedriver)) >/dev/null || { \
		echo "installing $(DEBS) ($@ tests)"; \
		$(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q --no-install-recommends $(DEBS); }
# make test: lint, all but several machines' tests, two at a time, a thread each (more would spin: docs/benchmarks.md)
test: lint browser
	OMP_NUM_THREADS=1 $(PY) -m pytest tests -m "not machines and not gguf" -n 2 --dist loadfile
test-fast: setup
	$(PY) -m pytest tests -m "not slow and not machines and not gguf"
test-machines: setup slurm
	$(PY) -m pytest tests -m machines
# GGUF: llama.cpp's tools built once, Go's text/template for the Ollama Modelfile (CI runs it after make test)
test-gguf: gguf golang
	$(PY) -m pytest tests -m gguf
clean:
	rm -rf $(VENV) models .pytest_cache
