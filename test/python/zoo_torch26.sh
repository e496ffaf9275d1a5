#!/usr/bin/env bash
# The zoo test against PyTorch 2.6: the models are traced, packaged and run by PyTorch 2.6 in
# the Debian 13 root (../shared/tools/debian13-torch.sh, which mounts the project directory),
# then checked with this build's fxpack command on this machine.
# usage (from the project root): test/python/zoo_torch26.sh BUILD_DIR [zoo.py check options]
# e.g.   test/python/zoo_torch26.sh build
#        test/python/zoo_torch26.sh build --rewrite-list
# Set DEBIAN13_TORCH to the wrapper's path if the project is not beside shared/.
# Exits 77 (skipped) when the Debian 13 wrapper is not available.
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:?usage: zoo_torch26.sh BUILD_DIR [--rewrite-list]}
shift
wrapper=${DEBIAN13_TORCH:-../shared/tools/debian13-torch.sh}
if [[ ! -f $wrapper ]]; then
  echo "skipped: $wrapper not found (set DEBIAN13_TORCH)"
  exit 77
fi
work="$build/zoo-torch2.6"   # under the project directory: the only place the root can write
rm -rf "$work"
start=$(date +%s)
bash "$wrapper" "python3 test/python/zoo.py make $work ${ZOO_MODELS:+--models $ZOO_MODELS}"
made=$(date +%s)
status=0
/usr/bin/python3 test/python/zoo.py check "$work" --fxpack "$build/tools/fxpack/fxpack" "$@" || status=$?
echo "zoo under PyTorch 2.6: $((made - start)) s in the Debian 13 root, $(($(date +%s) - made)) s for fxpack"
rm -rf "$work"
exit $status
