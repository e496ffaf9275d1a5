"""The torchvision zoo against fxpack's command, in another process.

Builds the torchvision classification models that torch.fx traces under the PyTorch at hand
(random weights, no downloads, BatchNorm statistics made non-trivial as
../shared/pytorch-anchors/inference/make_models.py does, eval mode), saves each with
torch.package as a user would, and checks with the `fxpack` command:
  - `fxpack code PACKAGE` is byte-identical to PyTorch's gm.code;
  - `fxpack run PACKAGE --input x.npy --output-dir D` gives PyTorch's output within
    rtol 1e-4 / atol 1e-5 — or, where float32 rounding alone puts PyTorch's own result
    farther than that from the exact one, is as close to the exact result as PyTorch is.

Why the second rule: a deep network with random weights amplifies float32 rounding. For
resnet50 PyTorch's own float32 logits differ from its float64 ones in 184 of 1000 at rtol
1e-4 / atol 1e-5, and its 2-thread result from its 1-thread one in 67, so no other order of
float32 operations can be held to that tolerance against PyTorch's float32 output. `make`
also runs the model in float64 (the exact result, as far as it matters here); when fxpack
misses PyTorch's float32 output, it passes if every floating output's largest error
against the float64 result is at most twice PyTorch's float32 one (two float32
computations that sum in different orders have errors of the same size; twice allows for
that and for nothing more). The table shows both errors for such models.
A per-model table is printed. test/python/zoo_not_yet_supported.txt lists the models fxpack
does not pass yet ("<dialect>/<model>: first error"), enforced both ways like the fixture
list: an unlisted failure fails, and so does a listed model that passes.

    zoo.py run   --fxpack FXPACK [--workdir DIR] [--models m1,m2] [--size N] [--rewrite-list]
    zoo.py make  DIR [--models ...] [--size N]          # PyTorch side only (e.g. in the 2.6 root)
    zoo.py check DIR --fxpack FXPACK [--rewrite-list]   # fxpack side only (needs numpy, not torch)

`make` + `check` is how test/python/zoo_torch26.sh runs the zoo against PyTorch 2.6: the models
are made inside the Debian 13 root, fxpack runs on this machine. Without PyTorch and
torchvision, `run` exits 77 (a skip for meson) saying why.
"""
import argparse
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from fxpack_outputs import compare, read_outputs  # noqa: E402

# fxpack's largest error against the float64 result may be this many times PyTorch's float32 one.
EXACT_ERROR_FACTOR = 2.0

MODELS = ["resnet18", "resnet50", "mobilenet_v2", "mobilenet_v3_small", "squeezenet1_0", "shufflenet_v2_x0_5",
          "densenet121", "googlenet", "mnasnet0_5", "efficientnet_b0", "regnet_y_400mf", "convnext_tiny",
          "swin_t", "vit_b_16"]
LIST = os.path.join(HERE, "zoo_not_yet_supported.txt")
# 64x64 keeps the test quick; every model here accepts it (vit_b_16 is built for it).
DEFAULT_SIZE = 64
FXPACK_TIMEOUT = 600


def build_model(name, size):
    """A torchvision classifier with random weights, non-trivial BatchNorm statistics, eval mode."""
    import torch
    import torchvision
    torch.manual_seed(0)
    kwargs = {"weights": None}
    if name.startswith("vit_"):
        kwargs["image_size"] = size
    if name == "googlenet":
        kwargs.update(aux_logits=False, init_weights=True)
    m = getattr(torchvision.models, name)(**kwargs)
    bns = [mod for mod in m.modules() if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm)]
    if bns:
        with torch.no_grad():
            for mod in bns:
                mod.momentum = None  # cumulative average: the statistics of the three batches
            m.train()
            g = torch.Generator().manual_seed(1)
            for _ in range(3):
                m(torch.randn(2, 3, size, size, generator=g))
    return m.eval()


def make(directory, models, size):
    """Traces and packages each model into DIR/<model>/ with its input, output and code;
    DIR/zoo.json records the PyTorch version and which models traced."""
    import numpy as np
    import torch
    import torch.fx
    from torch.package import PackageExporter
    from fxpack_outputs import write_outputs
    os.makedirs(directory, exist_ok=True)
    torch.set_num_threads(1)
    dialect = ".".join(torch.__version__.split(".")[:2])
    summary = {"torch": torch.__version__, "dialect": dialect, "size": size, "models": {}}
    for name in models:
        d = os.path.join(directory, name)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        t0 = time.perf_counter()
        m = build_model(name, size)
        try:
            gm = torch.fx.symbolic_trace(m)
        except Exception as e:  # recorded: this PyTorch cannot trace the model
            summary["models"][name] = {"traced": False, "error": f"{type(e).__name__}: {e}".splitlines()[0][:200]}
            print(f"{name}: torch {torch.__version__} cannot trace it: {summary['models'][name]['error']}", flush=True)
            continue
        with PackageExporter(os.path.join(d, "package.pt")) as e:
            e.extern("torchvision.**")
            e.save_pickle("model", "model.pkl", gm)
        torch.manual_seed(0)
        x = torch.randn(1, 3, size, size)
        with torch.no_grad():
            y = gm(x)
        np.save(os.path.join(d, "input.npy"), x.numpy())
        write_outputs(y, os.path.join(d, "expected"))
        with torch.no_grad():  # the float64 result, for the float32-rounding rule (module docstring)
            write_outputs(copy.deepcopy(gm).double()(x.double()), os.path.join(d, "exact"))
        with open(os.path.join(d, "code.py"), "w") as f:
            f.write(gm.code)
        summary["models"][name] = {"traced": True, "make_seconds": round(time.perf_counter() - t0, 2)}
        print(f"{name}: made in {time.perf_counter() - t0:.1f} s", flush=True)
    with open(os.path.join(directory, "zoo.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return summary


def first_line(text):
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return (lines[0] if lines else "(no message)")[:240]


def float_arrays(value):
    """The floating tensors of a value as read_outputs describes it, in order."""
    if "tensor" in value:
        return [value["array"]] if value["array"].dtype.kind == "f" else []
    for kind in ("tuple", "list"):
        if kind in value:
            return [a for item in value[kind] for a in float_arrays(item)]
    if "dict" in value:
        return [a for _, item in value["dict"] for a in float_arrays(item)]
    return []


def max_error(arrays, exact):
    import numpy as np
    return max((float(np.max(np.abs(a.astype(np.float64) - e.astype(np.float64)))) if a.size else 0.0
                for a, e in zip(arrays, exact)), default=0.0)


def exact_rule(d, expected, actual):
    """For outputs that miss PyTorch's float32 ones only in value: "" and a note when fxpack is as
    close to the float64 result as PyTorch's float32 output is, else None."""
    exact_dir = os.path.join(d, "exact")
    if not os.path.isdir(exact_dir) or compare(expected, actual, rtol=0.0, atol=float("inf")):
        return None  # no float64 result, or structure, dtype or shape differ
    exact = float_arrays(read_outputs(exact_dir))
    torch_error = max_error(float_arrays(expected), exact)
    fxpack_error = max_error(float_arrays(actual), exact)
    if fxpack_error > EXACT_ERROR_FACTOR * torch_error:
        return None
    return (f"float32 rounding: max |error| against float64 {fxpack_error:.2g} (PyTorch float32's: "
            f"{torch_error:.2g})")


def check_model(d, fxpack):
    """fxpack's verdict on one packaged model: ("", note) when code and outputs match, else
    (the first error, "")."""
    package = os.path.join(d, "package.pt")
    p = subprocess.run([fxpack, "code", package], capture_output=True, text=True, timeout=FXPACK_TIMEOUT)
    if p.returncode != 0:
        return first_line(p.stderr), ""  # "fxpack code: ..."
    with open(os.path.join(d, "code.py")) as f:
        expected = f.read()
    if p.stdout != expected:
        e, a = expected.splitlines(), p.stdout.splitlines()
        i = next((i for i, (x, y) in enumerate(zip(e, a)) if x != y), min(len(e), len(a)))
        return (f"code: differs from gm.code at line {i + 1}: expected {e[i] if i < len(e) else '<end>'!r}, "
                f"got {a[i] if i < len(a) else '<end>'!r}"), ""
    out = os.path.join(d, "fxpack")
    shutil.rmtree(out, ignore_errors=True)
    p = subprocess.run([fxpack, "run", package, "--input", os.path.join(d, "input.npy"), "--output-dir", out],
                       capture_output=True, text=True, timeout=FXPACK_TIMEOUT)
    if p.returncode != 0:
        return first_line(p.stderr), ""  # "fxpack run: ..."
    expected, actual = read_outputs(os.path.join(d, "expected")), read_outputs(out)
    diff = compare(expected, actual)
    if not diff:
        return "", ""
    note = exact_rule(d, expected, actual)
    if note is not None:
        return "", note
    return f"outputs: {diff}", ""


def read_list():
    listed = {}
    if os.path.exists(LIST):
        with open(LIST) as f:
            for line in f:
                if line.strip() and not line.startswith("#"):
                    key, _, reason = line.rstrip("\n").partition(": ")
                    listed[key] = reason
    return listed


def write_list(listed):
    with open(LIST, "w") as f:
        f.write("# Zoo models (test/python/zoo.py) that fxpack does not pass yet: \"<dialect>/<model>: first error\".\n"
                "# Enforced both ways by the zoo test; rewrite the lines of one PyTorch version with\n"
                "#   zoo.py run --fxpack build/tools/fxpack/fxpack --rewrite-list   (1.13)\n"
                "#   test/python/zoo_torch26.sh build --rewrite-list                (2.6)\n")
        for key in sorted(listed):
            f.write(f"{key}: {listed[key]}\n")


def check(directory, fxpack, rewrite):
    with open(os.path.join(directory, "zoo.json")) as f:
        summary = json.load(f)
    dialect = summary["dialect"]
    listed = read_list()
    rows, bad, current = [], [], {}
    for name, info in summary["models"].items():
        key = f"{dialect}/{name}"
        if not info["traced"]:
            rows.append((name, "not traced by PyTorch", "", info["error"]))
            if key in listed:
                bad.append(f"{key} is listed, but PyTorch {summary['torch']} cannot trace it: remove it from the list")
            continue
        t0 = time.perf_counter()
        reason, note = check_model(os.path.join(directory, name), fxpack)
        seconds = f"{time.perf_counter() - t0:.1f}"
        if reason:
            current[key] = reason
        if not reason and key in listed:
            rows.append((name, "PASS (listed!)", seconds, note))
            bad.append(f"{key} passes now: remove it from {os.path.relpath(LIST)}")
        elif not reason:
            rows.append((name, "pass", seconds, note))
        elif key in listed:
            rows.append((name, "not yet supported", seconds, reason))
        else:
            rows.append((name, "FAIL", seconds, reason))
            bad.append(f"{key} fails: {reason} (fix it, or list it in {os.path.relpath(LIST)})")
    for key in listed:
        model = key.partition("/")[2]
        if key.startswith(dialect + "/") and model not in summary["models"] and model not in MODELS:
            bad.append(f"{key} is listed but is not a zoo model: remove it from the list")

    print(f"\nzoo against fxpack, PyTorch {summary['torch']}, input 1x3x{summary['size']}x{summary['size']}:")
    widths = [max(len(r[i]) for r in rows + [("model", "result", "fxpack s", "")]) for i in range(3)]
    print(f"{'model':<{widths[0]}}  {'result':<{widths[1]}}  {'fxpack s':>{widths[2]}}  first error or note")
    for r in rows:
        print(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:>{widths[2]}}  {r[3]}")
    npass = sum(1 for r in rows if r[1] == "pass")
    ntraced = sum(1 for r in rows if r[1] != "not traced by PyTorch")
    print(f"{npass} of {ntraced} traced models pass; {len(rows) - ntraced} not traced by this PyTorch")

    if rewrite:
        kept = {k: v for k, v in listed.items() if not k.startswith(dialect + "/")}
        kept.update(current)
        write_list(kept)
        print(f"rewrote {LIST}: {len(current)} {dialect} models listed")
        bad = []
    for b in bad:
        print("FAILED:", b)
    # The summary line CI sums: a model is counted as passed when fxpack's result agrees with the list.
    print(f"{len(rows) - len(bad)} passed, {len(bad)} failed")
    return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description="torchvision zoo against fxpack")
    ap.add_argument("mode", choices=["run", "make", "check"])
    ap.add_argument("directory", nargs="?")
    ap.add_argument("--fxpack")
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--size", type=int, default=DEFAULT_SIZE)
    ap.add_argument("--rewrite-list", action="store_true")
    ap.add_argument("--workdir", help="keep the packages here (run mode; default: a temporary directory)")
    args = ap.parse_args()
    models = [m for m in args.models.split(",") if m]
    if args.mode in ("run", "make"):
        try:
            import torch  # noqa: F401
            import torchvision  # noqa: F401
        except ImportError as e:
            print(f"skipped: PyTorch and torchvision are needed ({e}); apt-get install python3-torch python3-torchvision")
            return 77
    if args.mode == "make":
        make(args.directory, models, args.size)
        return 0
    if not args.fxpack:
        ap.error("--fxpack is needed")
    if args.mode == "check":
        return check(args.directory, args.fxpack, args.rewrite_list)
    tmp = None
    directory = args.workdir
    if not directory:
        tmp = tempfile.mkdtemp(prefix="fxpack-zoo-")
        directory = tmp
    try:
        t0 = time.perf_counter()
        make(directory, models, args.size)
        print(f"PyTorch side: {time.perf_counter() - t0:.1f} s", flush=True)
        return check(directory, args.fxpack, args.rewrite_list)
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
