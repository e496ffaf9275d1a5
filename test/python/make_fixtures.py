"""Regenerates fixtures/torch_models/<dialect>/<family>/<case>/ from real PyTorch, for every
case in fixture_models.py. Run it with each PyTorch whose output fxpack must reproduce:

    /usr/bin/python3 test/python/make_fixtures.py                                  # 1.13
    bash ../shared/tools/debian13-torch.sh 'python3 test/python/make_fixtures.py'  # 2.6

(from the project root; `--only FAMILY[/CASE]` limits it, `--out DIR` writes elsewhere).

Each case directory holds:
  case.json      family, case, the PyTorch version, the inputs (file, dtype, shape), and
                 whether it traced; a case PyTorch cannot trace or run has "traced": false
                 (or "ran": false) and the error, and nothing else
  package.pt     torch.package of the GraphModule, as a user saves it (torchvision externed)
  code.py        gm.code
  graph.txt      the node table (opcode, name, target, args, kwargs) as fx's print_tabular
  input_N.npy    the inputs, in placeholder order
  outputs.json, output_N.npy   PyTorch's outputs (fxpack_outputs.py describes the format)

Regenerating gives the same files except package.pt, whose pickle holds the id() of the
module (torch.package's persistent id for reduce_package); everything else is reproducible
(the script re-runs itself with PYTHONHASHSEED=0, since torch.package orders imports by set
iteration). Use --only to regenerate just the cases you changed.

Before writing, the package is loaded back with PyTorch's PackageImporter and run: a case is
only committed if PyTorch itself reproduces its output from the archive. Where PyTorch's
reloaded module prints different code (2.x re-traces on load and drops unused attribute
nodes), that text is kept as reloaded_code.py and case.json says "reloaded_code_differs".
"""
import argparse
import json
import os
import shutil
import sys
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.fx  # noqa: E402
from torch.fx.node import _get_qualified_name  # noqa: E402
from torch.package import PackageExporter, PackageImporter  # noqa: E402

import fixture_models  # noqa: E402
from fxpack_outputs import compare, read_outputs, write_outputs  # noqa: E402


def dialect():
    major, minor = torch.__version__.split(".")[:2]
    return f"{major}.{minor}"


def first_line(e):
    text = f"{type(e).__name__}: {e}".strip()
    return text.splitlines()[0][:300]


def node_table(gm):
    """fx's Graph.print_tabular() without the tabulate package: the same columns and cells,
    except that call_function targets are their qualified names (not reprs with addresses)."""
    rows = [["opcode", "name", "target", "args", "kwargs"]]
    target = lambda n: _get_qualified_name(n.target) if n.op == "call_function" else str(n.target)  # noqa: E731
    rows += [[n.op, n.name, target(n), str(n.args), str(n.kwargs)] for n in gm.graph.nodes]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    lines = [fmt(rows[0]), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows[1:]]
    return "\n".join(lines) + "\n"


def save_package(path, gm):
    with PackageExporter(path) as e:
        e.extern(["torchvision.**", "fixture_models"], allow_empty=True)
        e.save_pickle("model", "model.pkl", gm)


def run(model, inputs):
    with torch.no_grad():
        return model(*inputs)


def finish_early(d, info, **fields):
    info.update(fields)
    with open(os.path.join(d, "case.json"), "w") as f:
        json.dump(info, f, indent=1)
        f.write("\n")
    return info


def make_case(c, out):
    d = os.path.join(out, c.family, c.name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    info = {"family": c.family, "case": c.name, "torch": torch.__version__, "dialect": dialect()}
    if c.note:
        info["note"] = c.note
    inputs = c.make_inputs()
    try:
        model = c.build()
    except Exception as e:  # e.g. a torchvision block whose constructor differs in this version
        return finish_early(d, info, traced=False, error="cannot build the model: " + first_line(e))
    info["inputs"] = [{"file": f"input_{i}.npy", "dtype": str(x.dtype).replace("torch.", ""),
                       "shape": list(x.shape)} for i, x in enumerate(inputs)]

    def finish(**fields):
        return finish_early(d, info, **fields)

    try:
        gm = torch.fx.symbolic_trace(model)
    except Exception as e:  # recorded, not dropped: this PyTorch cannot trace the case
        return finish(traced=False, error=first_line(e))
    try:
        expected = run(gm, inputs)
    except Exception as e:
        return finish(traced=True, ran=False, error=first_line(e))
    save_package(os.path.join(d, "package.pt"), gm)
    with open(os.path.join(d, "code.py"), "w") as f:
        f.write(gm.code)
    with open(os.path.join(d, "graph.txt"), "w") as f:
        f.write(node_table(gm))
    for i, x in enumerate(inputs):
        np.save(os.path.join(d, f"input_{i}.npy"), x.numpy())
    write_outputs(expected, d)

    # PyTorch itself must reproduce the output from the archive.
    loaded = PackageImporter(os.path.join(d, "package.pt")).load_pickle("model", "model.pkl")
    check_dir = os.path.join(d, ".check")
    write_outputs(run(loaded, inputs), check_dir)
    diff = compare(read_outputs(d), read_outputs(check_dir), rtol=0, atol=0)
    shutil.rmtree(check_dir)
    if diff:
        raise RuntimeError(f"{c.family}/{c.name}: PyTorch's own reload differs: {diff}")
    if loaded.code != gm.code:
        # PyTorch 2.x re-traces the archive's code when it loads it, which drops an unused
        # attribute node (e.g. the `input.shape` of an f-string assert message). code.py stays
        # gm.code, which is what the archive holds; the reloaded text is kept beside it.
        with open(os.path.join(d, "reloaded_code.py"), "w") as f:
            f.write(loaded.code)
        print(f"{c.family}/{c.name}: PyTorch's own reload prints different code (reloaded_code.py)")
        return finish(traced=True, ran=True, reloaded_code_differs=True)
    return finish(traced=True, ran=True)


def main():
    if os.environ.get("PYTHONHASHSEED") != "0":  # torch.package orders imports by set iteration
        os.execve(sys.executable, [sys.executable] + sys.argv, dict(os.environ, PYTHONHASHSEED="0"))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    root = os.path.dirname(os.path.dirname(HERE))
    ap.add_argument("--out", default=os.path.join(root, "fixtures", "torch_models"))
    ap.add_argument("--only", action="append", default=[], help="FAMILY or FAMILY/CASE (repeatable)")
    args = ap.parse_args()
    out = os.path.join(args.out, dialect())
    selected = [c for c in fixture_models.CASES
                if not args.only or any(s in (c.family, f"{c.family}/{c.name}") for s in args.only)]
    if not args.only:
        shutil.rmtree(out, ignore_errors=True)  # cases that were removed disappear too
    torch.set_num_threads(1)  # deterministic reductions
    counts = {"ok": 0, "not traced": 0, "not run": 0}
    for c in selected:
        try:
            info = make_case(c, out)
        except Exception:
            traceback.print_exc()
            print(f"FAILED to make {c.family}/{c.name}", file=sys.stderr)
            return 1
        if not info["traced"]:
            counts["not traced"] += 1
            print(f"{c.family}/{c.name}: not traced: {info['error']}")
        elif not info["ran"]:
            counts["not run"] += 1
            print(f"{c.family}/{c.name}: did not run: {info['error']}")
        else:
            counts["ok"] += 1
    print(f"torch {torch.__version__} -> {out}: {len(selected)} cases, " +
          ", ".join(f"{v} {k}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
