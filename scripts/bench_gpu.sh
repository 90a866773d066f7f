#!/usr/bin/env bash
# The GPU figures of docs/benchmarks.md, on a machine with a CUDA GPU, from random-weight models of the real shapes:
#
#   bash scripts/bench_gpu.sh                         # every benchmark below, in order
#   bash scripts/bench_gpu.sh allam7b-lora allam7b-generate   # some of them
#
# PYTHON (default python3) must have requirements.txt installed; BENCH_OUT (default results/bench) receives
# gpu-<name>.json/.md and the log of each run. The models are built once under models/ (allam-7b: 13 GB in bf16).
# Every run takes the proverbs data (make data) and recipes/demo.yaml's prompt and max_length (512).
set -euo pipefail
PYTHON=${PYTHON:-python3}
OUT=${BENCH_OUT:-results/bench}
ALL=(jais256m-qlora allam7b-lora allam7b-lora-bf16 allam7b-qlora allam7b-generate)

for name in "${@:-${ALL[@]}}"; do
    [[ " ${ALL[*]} " == *" $name "* ]] || { echo "error: unknown benchmark $name (known: ${ALL[*]})" >&2; exit 1; }
done
for file in Train_data Test_data; do
    [[ -f data/yemeni_proverbs/$file.csv ]] || { echo "error: data/yemeni_proverbs/$file.csv is missing (make data)" >&2; exit 1; }
done
"$PYTHON" -c "import sys
try:
    import torch
except ImportError:
    sys.exit('error: $PYTHON has no torch (set PYTHON to the interpreter with requirements.txt)')
sys.exit(0 if torch.cuda.is_available() else 'error: no CUDA GPU here')"
mkdir -p "$OUT" models

build() {  # build SHAPE: models/SHAPE-shape, once
    [[ -f models/$1-shape/config.json ]] || "$PYTHON" scripts/make_tiny_model.py --config recipes/demo.yaml \
        --shape "$1" --out "models/$1-shape" --vocab_size 8000 --dtype bfloat16 --device cuda
}

bench() {  # bench NAME ARGS...: one benchmark.py run, its log beside its results
    local name=$1; shift
    "$PYTHON" scripts/benchmark.py --config recipes/demo.yaml --out "$OUT/gpu-$name.json" "$@" 2>&1 | tee "$OUT/gpu-$name.log"
}

for name in "${@:-${ALL[@]}}"; do
    case $name in
        jais256m-qlora) build jais-256m; bench "$name" --model models/jais-256m-shape --peft qlora --parts train ;;
        allam7b-lora) build allam-7b; bench "$name" --model models/allam-7b-shape --peft lora --parts train ;;
        allam7b-lora-bf16) build allam-7b; bench "$name" --model models/allam-7b-shape --peft lora --parts train \
            --adapter_dtype bfloat16 ;;
        allam7b-qlora) build allam-7b; bench "$name" --model models/allam-7b-shape --peft qlora --parts train ;;
        allam7b-generate) build allam-7b; bench "$name" --model models/allam-7b-shape --parts generate \
            --max_new_tokens 128 --gen_batch_size 100 --static_cache --baseline_gen_examples 10 ;;
    esac
done
