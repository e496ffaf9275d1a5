#!/usr/bin/env bash
# Installs what fxpack needs to build and test on Debian 12 (as root, or with sudo).
# Safe to re-run: apt skips what is already there.
set -euo pipefail
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO=sudo; fi
packages=(g++ meson ninja-build pkg-config cmake libcereal-dev libzip-dev
          libboost-serialization-dev doctest-dev libeigen3-dev zlib1g-dev rapidjson-dev libdnnl-dev python3-yaml)
if [ "${FXPACK_SANITIZE:-0}" = 1 ]; then packages+=(clang-14 libclang-rt-14-dev); fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
