#!/usr/bin/env bash
# The README's first command: install what is missing, build, and run the main job —
# package a model in one process, load and run it in another.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
[ -d build ] || meson setup build
meson compile -C build
out=build/quickstart
fxpack=build/tools/fxpack/fxpack
# Process 1: build the reference models in C++ with PyTorch's weights, trace, package.
build/tools/fxpack-quickstart save fixtures/reference "$out"
for model in mlp small_convnet; do
  # Other processes: print the generated code, load and run the package.
  echo; echo "== fxpack code $out/$model.fxpkg"
  "$fxpack" code "$out/$model.fxpkg"
  echo; echo "== fxpack run $out/$model.fxpkg"
  "$fxpack" run "$out/$model.fxpkg" --input "$out/$model.input.npy" --output "$out/$model.output.npy"
done
echo
# The outputs of the other process against what PyTorch computed.
build/tools/fxpack-quickstart check fixtures/reference "$out"
