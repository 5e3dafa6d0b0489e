#!/usr/bin/env bash
# Build (once per CPU, compiler and flags) and install llama-cpp-python into PYTHON's environment.
# Usage: scripts/install_llama_cpp.sh [PYTHON]     (default: .venv/bin/python; bootstrap.sh calls it)
#
# llama.cpp is compiled for this CPU (-march=native: AVX2/AVX-512/VNNI kernels where present),
# minus ggml's AMX kernels. Built by GCC 12, their tile configuration (ggml-cpu/amx/mmq.cpp,
# ggml_tile_config_init) is dead-store-eliminated before `ldtilecfg`, so on AMX CPUs (Intel
# Sapphire Rapids and later) the first Q8_0/Q4_K matmul dies with a general protection fault
# (ggml-org/llama.cpp#20824, #26954). AMD and older Intel CPUs have no AMX: there the flags change
# nothing. The AMX path is also not faster for single-sequence decoding (ollama#9203).
#
# pip's wheel cache is keyed by the sdist alone: it would hand back a wheel built with other flags,
# or for another CPU (a -march=native wheel from an AVX-512 machine dies with SIGILL on one
# without). So the wheel is cached here under a key made of the version, the flags and the
# compiler's -march=native feature macros, and pip's own cache is bypassed.
set -euo pipefail
cd "$(dirname "$0")/.."
python="${1:-.venv/bin/python}"
version="$(grep -o '"llama-cpp-python==[^"]*"' pyproject.toml | head -1 | tr -d '"' | cut -d= -f3)"
no_amx="-mno-amx-tile -mno-amx-int8 -mno-amx-bf16"
cmake_args="-DGGML_NATIVE=ON"
cc="${CC:-cc}"
native="$(echo | "$cc" -march=native $no_amx -dM -E -x c - | sort)"
if grep -q "__AMX_INT8__" <<<"$native"; then
  echo "install_llama_cpp: $cc still enables AMX with $no_amx; refusing to build a crashing llama.cpp" >&2
  exit 1
fi
key="$(printf '%s\n' "$version" "$cmake_args" "$no_amx" "$native" | sha256sum | cut -c1-16)"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/medtune/wheels/llama-cpp-python-$version-$key"
if ! compgen -G "$cache/*.whl" >/dev/null; then
  echo "building llama-cpp-python $version for this CPU (a few minutes; cached in $cache)"
  rm -rf "$cache.partial"
  # CFLAGS/CXXFLAGS seed CMAKE_C(XX)_FLAGS; GCC applies an explicit -mno-* whatever its position
  # relative to ggml's -march=native.
  CFLAGS="$no_amx" CXXFLAGS="$no_amx" CMAKE_ARGS="$cmake_args" \
    "$python" -m pip wheel -q --disable-pip-version-check --no-deps --no-cache-dir \
    --no-binary llama-cpp-python "llama-cpp-python==$version" -w "$cache.partial"
  mv "$cache.partial" "$cache"
fi
"$python" -m pip install -q --disable-pip-version-check --no-deps --force-reinstall "$cache"/*.whl
