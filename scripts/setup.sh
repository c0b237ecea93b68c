#!/usr/bin/env bash
# Installs the Debian 12 packages tern needs. Idempotent: packages already
# present are skipped, so a second run does nothing. Needs root (or sudo).
#   --with-torch   also install python3-torch + python3-numpy, used only to
#                  regenerate the PyTorch golden files (large; optional).
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config   # build
  libgtest-dev libgmock-dev          # tests
  nlohmann-json3-dev                 # configs and golden-file headers
  libtomlplusplus-dev                # swarm run config (TOML), used header-only
  libcli11-dev                       # command line
  zlib1g-dev                         # reading the dictzip demo corpus; checkpoint CRC
  libpcre2-dev                       # tokenizer pre-tokenizer regexes (Unicode classes)
  libsentencepiece-dev               # tokenizer training (tern tokenizer train)
  libsodium-dev                      # BLAKE2b hashes; Ed25519/X25519/ChaChaPoly for the network
  libasio-dev                        # network: standalone asio with C++20 coroutines
  libflatbuffers-dev flatbuffers-compiler  # network: schema'd, verifiable wire messages
  libsqlite3-dev                     # swarm ledger: the coordinator's crash-safe event log
  libcpp-httplib-dev                 # swarm data provider: shards over HTTP range requests
  golang-github-flynn-noise-dev      # Noise protocol test vectors (vectors.txt) for the tests
  libhwy-dev                         # SIMD kernels with run-time dispatch (Google Highway)
  libopenblas-dev                    # fp32 matrix products (LoRA, embeddings, output head)
  dict-gcide                         # demo corpus: GCIDE English dictionary
  clang-format                       # format check
  # aarch64 cross build of the kernel and parity tests, run under qemu (scripts/test_arm.sh)
  g++-aarch64-linux-gnu qemu-user
  libgtest-dev:arm64 libsodium-dev:arm64 libhwy-dev:arm64 libopenblas-dev:arm64
)
if [[ "${1:-}" == "--with-torch" ]]; then
  packages+=(python3-torch python3-numpy)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if [[ ${#missing[@]} -eq 0 ]]; then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

as_root=()
if [[ $(id -u) -ne 0 ]]; then as_root=(sudo); fi
if [[ " ${missing[*]}" == *:arm64* ]] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
  echo "setup: adding the arm64 architecture"
  "${as_root[@]}" dpkg --add-architecture arm64
fi
echo "setup: installing ${missing[*]}"
"${as_root[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
