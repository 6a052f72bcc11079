#!/usr/bin/env bash
# Installs the Debian packages lorastyle builds against (run as root, or it uses sudo).
# Required: compiler, CMake, libpng, libjpeg-turbo, zlib, stb, cJSON, OpenBLAS, OpenMP (part of gcc).
# Optional (LS_GUI): SDL2 + SDL2_ttf + a font; Xvfb for the viewer's headless test (left out by --minimal).
# --fuzz: also clang with libFuzzer and clang's OpenMP runtime, for the fuzz harnesses (scripts/fuzz.sh).
set -euo pipefail
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
PKGS="build-essential cmake pkg-config libpng-dev libjpeg-dev zlib1g-dev libstb-dev libcjson-dev libopenblas-openmp-dev"
if [ "${1:-}" != "--minimal" ]; then
  PKGS="$PKGS libsdl2-dev libsdl2-ttf-dev fonts-dejavu-core xvfb xauth"
fi
if [ "${1:-}" = "--fuzz" ]; then
  PKGS="$PKGS clang libclang-rt-dev libomp-dev"
fi
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends $missing
fi
echo "install-deps: all packages present"
