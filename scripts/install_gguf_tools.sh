#!/usr/bin/env bash
# llama.cpp's own tools for make export FORMAT=gguf, from the pinned llama-cpp-python source package (it vendors
# llama.cpp), never fetched at run time: its runtime and quantizer (the llama_cpp package, built from source once: pip
# keeps the wheel), its converter (convert_hf_to_gguf.py, unpacked as <venv>/llama.cpp) and its gguf library.
#
#   bash scripts/install_gguf_tools.sh .venv/bin/python      # make gguf
#
# The build compiles the library only (no tools, examples or tests), for any x86-64 CPU (GGML_NATIVE=OFF: a wheel
# built on one machine runs on another): 3 min 31 s on this project's 2 cores; 12 s again from pip's wheel cache.
set -euo pipefail
PY=${1:-.venv/bin/python}
VERSION=0.3.36
VENV=$("$PY" -c 'import sys; print(sys.prefix)')
DONE="$VENV/llama.cpp/.llama-cpp-python-$VERSION"
if [ -f "$DONE" ] && "$PY" -c "import llama_cpp, gguf" 2>/dev/null; then
	exit 0
fi
echo "building llama-cpp-python $VERSION from source (once; pip keeps the wheel)"
export CMAKE_ARGS="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
-DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF"
CMAKE_BUILD_PARALLEL_LEVEL=$(nproc)
export CMAKE_BUILD_PARALLEL_LEVEL
PIP=("$PY" -m pip -q --disable-pip-version-check)
"${PIP[@]}" install --no-binary llama-cpp-python "llama-cpp-python==$VERSION"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"${PIP[@]}" download --no-deps --no-binary :all: "llama-cpp-python==$VERSION" -d "$work"
tar -xzf "$work/llama_cpp_python-$VERSION.tar.gz" -C "$work"
rm -rf "$VENV/llama.cpp"
mv "$work/llama_cpp_python-$VERSION/vendor/llama.cpp" "$VENV/llama.cpp"
"${PIP[@]}" install --no-deps "$VENV/llama.cpp/gguf-py"
touch "$DONE"
