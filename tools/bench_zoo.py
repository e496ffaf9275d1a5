"""Zoo benchmark: per torchvision model, package load time, first call and steady-state latency
for fxpack (build/tools/bench_zoo, in its own process) next to PyTorch's
`PackageImporter(path).load_pickle(...)` and eager forward of the same GraphModule, measured in
the same run on the same archive and input, with the ratios PyTorch / fxpack (above 1: fxpack
is faster), and `ready` = load + first call, the time until the first result. The load
average is printed at the start and the end (the machine may be shared).

    /usr/bin/python3 tools/bench_zoo.py build/tools/bench_zoo [--models m1,m2] [--size 224] [--threads 1]

The models are built as the zoo test builds them (test/python/zoo.py: random weights,
non-trivial BatchNorm statistics, eval mode). Both sides run with --threads threads
(torch.set_num_threads; FXPACK_NUM_THREADS for fxpack). Medians of 5 loads and 10 calls.
Freeing a loaded module is not timed on either side: PyTorch's GraphModule is in a reference
cycle (its graph's owning module), so the garbage collector frees it, here between loads;
fxpack's is freed between loads too. `load cpu` is the loads' median process CPU time (user + sys): on a shared machine a
load that is preempted waits for the CPU, which wall time counts and CPU time does not.
"""
import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "python"))

import zoo  # noqa: E402

LOADS, CALLS = 5, 10


def median_ms(fn, reps):
    fn()  # warm-up
    times = []
    for _ in range(reps):
        a = time.perf_counter()
        fn()
        times.append((time.perf_counter() - a) * 1e3)
    return statistics.median(times)


def median_load_ms(load, reps):
    """Medians of wall and process CPU time of `reps` loads (after a warm-up); each result is
    collected after its load is timed."""
    load()
    wall, cpu = [], []
    for _ in range(reps):
        gc.collect()
        c, a = time.process_time(), time.perf_counter()
        m = load()
        wall.append((time.perf_counter() - a) * 1e3)
        cpu.append((time.process_time() - c) * 1e3)
        del m
    gc.collect()
    return statistics.median(wall), statistics.median(cpu)


def torch_side(d):
    import numpy as np
    import torch
    from torch.package import PackageImporter
    path = os.path.join(d, "package.pt")
    x = torch.from_numpy(np.load(os.path.join(d, "input.npy")))
    load = lambda: PackageImporter(path).load_pickle("model", "model.pkl")  # noqa: E731
    load_ms, load_cpu_ms = median_load_ms(load, LOADS)
    gm = load()
    with torch.no_grad():
        a = time.perf_counter()
        gm(x)
        first_ms = (time.perf_counter() - a) * 1e3
        steady_ms = median_ms(lambda: gm(x), CALLS)
    return {"load_ms": load_ms, "load_cpu_ms": load_cpu_ms, "first_ms": first_ms, "steady_ms": steady_ms}


def main():
    ap = argparse.ArgumentParser(description="zoo benchmark: fxpack next to PyTorch")
    ap.add_argument("bench_zoo", help="path of the bench_zoo program (build/tools/bench_zoo)")
    ap.add_argument("--models", default=",".join(zoo.MODELS))
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    if not os.access(args.bench_zoo, os.X_OK):
        ap.error(f"{args.bench_zoo} is not an executable program (build it: meson compile -C build tools/bench_zoo)")
    import torch
    torch.set_num_threads(args.threads)
    env = dict(os.environ, FXPACK_NUM_THREADS=str(args.threads))
    with tempfile.TemporaryDirectory(prefix="fxpack-bench-zoo-") as tmp:
        summary = zoo.make(tmp, [m for m in args.models.split(",") if m], args.size)
        torch.set_num_threads(args.threads)
        print(f"\nPyTorch {torch.__version__}, input 1x3x{args.size}x{args.size}, {args.threads} thread(s); "
              f"ms, medians of {LOADS} loads / {CALLS} calls; ratio = PyTorch / fxpack")
        print("load = PackageImporter + load_pickle (fxpack: a LazyGraphModule whose first call generates its code "
              "and plan; PyTorch: a GraphModule whose code was generated and exec'd); ready = load + first call")
        print("load average at start: %.2f %.2f %.2f" % os.getloadavg())
        head = (f"{'model':<20} {'load fx':>9} {'load pt':>9} {'ratio':>7}  {'cpu fx':>9} {'cpu pt':>9} {'ratio':>7}  "
                f"{'first fx':>9} {'first pt':>9} "
                f"{'ratio':>7}  {'ready fx':>9} {'ready pt':>9} {'ratio':>7}  {'steady fx':>9} {'steady pt':>9} {'ratio':>7}")
        print(head)
        print("-" * len(head))
        for name, info in summary["models"].items():
            if not info["traced"]:
                print(f"{name:<20} not traced by this PyTorch")
                continue
            d = os.path.join(tmp, name)
            pt = torch_side(d)
            p = subprocess.run([args.bench_zoo, os.path.join(d, "package.pt"), os.path.join(d, "input.npy"),
                                "--loads", str(LOADS), "--calls", str(CALLS)],
                               capture_output=True, text=True, env=env)
            try:
                fx = json.loads(p.stdout)
            except ValueError:
                fx = {"error": (p.stderr or p.stdout).strip()[:200]}
            if "error" in fx:
                print(f"{name:<20} {'-':>9} {pt['load_ms']:9.2f} {'':>7}  {'-':>9} {pt['load_cpu_ms']:9.2f} {'':>7}  "
                      f"{'-':>9} {pt['first_ms']:9.2f} {'':>7}  "
                      f"{'-':>9} {pt['steady_ms']:9.2f}   fxpack: {fx['error']}")
                continue
            for side in (fx, pt):
                side["ready_ms"] = side["load_ms"] + side["first_ms"]
            cells = []
            for k in ("load_ms", "load_cpu_ms", "first_ms", "ready_ms", "steady_ms"):
                cells.append(f"{fx[k]:9.2f} {pt[k]:9.2f} {pt[k] / fx[k]:6.2f}x")
            print(f"{name:<20} " + "  ".join(cells))
        print("load average at end: %.2f %.2f %.2f" % os.getloadavg())
    return 0


if __name__ == "__main__":
    sys.exit(main())
