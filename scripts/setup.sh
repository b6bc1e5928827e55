#!/usr/bin/env bash
# Installs what building and testing Cairn needs on Debian, if it is missing:
# clang + libclang (RocksDB's bindings), a C++ compiler, iptables + iproute2 (the
# fault-injection suite), libnetcdf-dev + pkg-config (NetCDF files), python3 with venv
# (the pyarrow Flight and S3 tests make their own virtual environments from PyPI).
# protoc comes from the protoc-bin-vendored crate.
set -euo pipefail

missing=()
command -v clang >/dev/null 2>&1 || missing+=(clang)
# libclang itself (bindgen loads it), not libclang-cpp, which other packages bring.
if ! ls /usr/lib/llvm-*/lib/libclang.so* /usr/lib/llvm-*/lib/libclang-[0-9]*.so* >/dev/null 2>&1 \
   && ! ls /usr/lib/*-linux-gnu/libclang.so* /usr/lib/*-linux-gnu/libclang-[0-9]*.so* >/dev/null 2>&1; then
  missing+=(libclang-dev)
fi
command -v g++ >/dev/null 2>&1 || missing+=(g++)
command -v make >/dev/null 2>&1 || missing+=(make)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
# The Arrow Flight interoperability test makes a virtual environment with pyarrow.
command -v python3 >/dev/null 2>&1 || missing+=(python3)
python3 -c "import venv, ensurepip" >/dev/null 2>&1 || missing+=(python3-venv)
# NetCDF (the seeds' model output): libnetcdf and its headers for the netcdf crate,
# found through pkg-config / nc-config.
if ! command -v nc-config >/dev/null 2>&1 || ! nc-config --libs >/dev/null 2>&1; then
  missing+=(libnetcdf-dev)
fi
command -v pkg-config >/dev/null 2>&1 || missing+=(pkg-config)
# The disk-full test mounts a small tmpfs.
command -v mount >/dev/null 2>&1 || missing+=(mount)

if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  elif command -v sudo >/dev/null 2>&1; then
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: please install: ${missing[*]} (apt-get install ${missing[*]})" >&2
    exit 1
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo is missing; install Rust 1.88 or newer (https://rustup.rs), then run this again" >&2
  exit 1
fi
