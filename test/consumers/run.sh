#!/usr/bin/env bash
# Builds three tiny programs against fxpack the ways a user would and runs each on a
# package PyTorch wrote (fixtures/torch/mlp), comparing with PyTorch's output:
#   pkg_config/        a Makefile using `pkg-config fxpack`        (installed tree)
#   cmake/             find_package(fxpack) → fxpack::fxpack       (installed tree)
#   meson_subproject/  dependency('fxpack', fallback: [...])       (source tree as subproject)
# The installed tree is `meson install --destdir` of BUILD_DIR. Each consumer directory plus
# app.cpp is copied to a scratch folder first, so nothing is written into the source tree.
# usage: test/consumers/run.sh BUILD_DIR      Ends with "N passed, N failed".
set -uo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "${1:?usage: run.sh BUILD_DIR}" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fixture=$src/fixtures/torch/mlp/package.pt
ref=$src/fixtures/reference/mlp
passed=0 failed=0

report() {  # name, status
  if [ "$2" = 0 ]; then echo "consumer $1: ok"; passed=$((passed + 1));
  else echo "consumer $1: FAILED (log: above)"; failed=$((failed + 1)); fi
}
stage() { mkdir -p "$work/$1" && cp -r "$src/test/consumers/$1/." "$work/$1/" && cp "$src/test/consumers/app.cpp" "$work/$1/"; }
run_app() { "$1" "$fixture" "$ref/input.bin" "$ref/output.bin"; }

dest=$work/destdir
if ! meson install -C "$build" --destdir "$dest" --quiet >"$work/install.log" 2>&1; then
  cat "$work/install.log"; echo "meson install failed"
  echo "0 passed, 3 failed"; exit 1
fi
prefix=$dest$(meson introspect "$build" --buildoptions | /usr/bin/python3 -c \
  'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"))')
libdir=$(meson introspect "$build" --buildoptions | /usr/bin/python3 -c \
  'import json,sys; print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "libdir"))')

# pkg-config: the .pc file's prefix is the real one; the sysroot maps it into the destdir.
stage pkg_config
( cd "$work/pkg_config" &&
  PKG_CONFIG_PATH=$prefix/$libdir/pkgconfig PKG_CONFIG_SYSROOT_DIR=$dest make -s &&
  run_app ./consumer_app )
report pkg-config $?

# CMake: the config locates its prefix from where it was found.
stage cmake
( cd "$work/cmake" &&
  cmake -S . -B build -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release >/dev/null &&
  cmake --build build >/dev/null &&
  run_app build/consumer_app )
report cmake $?

# meson subproject: fxpack's own source tree, built inside the consumer's build.
stage meson_subproject
mkdir -p "$work/meson_subproject/subprojects"
ln -s "$src" "$work/meson_subproject/subprojects/fxpack"
( cd "$work/meson_subproject" &&
  meson setup build --force-fallback-for=fxpack >/dev/null &&
  meson compile -C build >/dev/null &&
  run_app build/consumer_app )
report meson-subproject $?

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
