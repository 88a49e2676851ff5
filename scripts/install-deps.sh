#!/usr/bin/env bash
# Installs the Debian packages avx512emu builds and tests with, when missing.
set -euo pipefail
packages=(build-essential cmake ninja-build libzydis-dev libzycore-dev libasmjit-dev
          libgtest-dev libbenchmark-dev libsimde-dev qemu-user xxhash libsimdjson-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "avx512emu: installing ${missing[*]}"
  sudo_cmd=""
  [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi
