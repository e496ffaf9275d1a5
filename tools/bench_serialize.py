#!/usr/bin/python3
"""fxpack's serialization benchmarks beside ONNX's C++ protobuf, in one run (issue 14).

For each N it runs, as child processes of this script, back to back:

  bench_pickle --min N --format portable-binary N   dumps (repeated), loads (default options)
  bench_package --min N N                           package save, package load (from a file,
                                                    and from a buffer handed over)
  bench_core --min N N                              symbolic_trace, real recompile (of a module
                                                    recompiled before), first recompile (of a
                                                    new module)

and in this process the same Chain(N) graph as an ONNX ModelProto (as
pytorch-anchors/bench_peers.py builds it: Sin, Cos, Relu, Add(t, "one"), Mul(t, "two"), a
name per node), timing SerializeToString and ParseFromString. Every figure is CPU time (user +
system) per node, a median of repeated runs; the children report theirs the same way. It
prints one table with the ratios fxpack / protobuf, the load average, and the peak RSS of the
bench_package child (a trace + save + load of Chain(N)); its last row is each figure at the
largest N over the same at the smallest (flat in N: near 1).

    /usr/bin/python3 tools/bench_serialize.py [--build DIR] [--sizes 1000,10000,100000,1000000]
                                              [--skip-core]

Needs Debian's python3-onnx (the cpp protobuf implementation: `apt-get install python3-onnx`).
--skip-core leaves out bench_core (its real recompile grows superlinearly at 1M nodes).
"""
import argparse
import gc
import os
import re
import statistics
import subprocess
import sys
import time

OPS = ["Sin", "Cos", "Relu", "Add", "Mul"]


def onnx_chain(n):
    from onnx import TensorProto, helper
    nodes = []
    prev = "x"
    for i in range(n):
        k = i % 5
        op = OPS[k]
        out = "y" if i == n - 1 else f"t{i}"
        ins = [prev] if k < 3 else [prev, "one" if k == 3 else "two"]
        nodes.append(helper.make_node(op, ins, [out], name=f"{op.lower()}_{i}"))
        prev = out
    inits = [helper.make_tensor("one", TensorProto.FLOAT, [], [1.0]),
             helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])]
    graph = helper.make_graph(
        nodes, f"chain{n}",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        initializer=inits)
    return helper.make_model(graph, producer_name="bench_serialize",
                             opset_imports=[helper.make_opsetid("", 13)])


def cpu_median_s(fn, reps):
    fn()  # warm-up
    ts = []
    for _ in range(reps):
        gc.collect()
        a = time.process_time()
        fn()
        ts.append(time.process_time() - a)
    return statistics.median(ts)


def protobuf(n):
    import onnx
    from google.protobuf.internal import api_implementation
    if api_implementation.Type() != "cpp":
        sys.exit(f"bench_serialize: protobuf implementation is {api_implementation.Type()!r}, not 'cpp'")
    reps = 11 if n <= 1000 else 5 if n <= 100000 else 3
    m = onnx_chain(n)
    s = m.SerializeToString()

    def parse():
        onnx.ModelProto().ParseFromString(s)

    return {"serialize": cpu_median_s(m.SerializeToString, reps) * 1e6 / n,
            "parse": cpu_median_s(parse, reps) * 1e6 / n, "bytes": len(s) / n}


def rows(text):
    """The cells of each markdown table row of a bench's output."""
    for line in text.splitlines():
        if line.startswith("|") and not line.startswith("|---"):
            yield [c.strip() for c in line.strip("|").split("|")]


def fxpack(build, n, skip_core):
    tools = os.path.join(build, "tools")
    res = {}
    out = subprocess.run([os.path.join(tools, "bench_pickle"), "--min", str(n), "--format", "portable-binary", str(n)],
                         check=True, capture_output=True, text=True).stdout
    for r in rows(out):
        if r[0] == "portable-binary" and r[1] == str(n):
            res["dumps"], res["loads"], res["pickle_bytes"] = float(r[2]), float(r[5]), float(r[7])
    cmd = [os.path.join(tools, "bench_package"), "--min", str(n), str(n)]
    t = subprocess.run(["/usr/bin/time", "-f", "maxrss_kib=%M"] + cmd, check=True, capture_output=True, text=True)
    for r in rows(t.stdout):
        if r[0] == str(n):
            res["save"], res["load"], res["load_buffer"] = float(r[1]), float(r[2]), float(r[3])
    res["peak_mib"] = int(re.search(r"maxrss_kib=(\d+)", t.stderr).group(1)) / 1024
    if not skip_core:
        out = subprocess.run([os.path.join(tools, "bench_core"), "--min", str(n), str(n)],
                             check=True, capture_output=True, text=True).stdout
        for r in rows(out):
            if r[0] == "symbolic_trace":
                res["trace"] = float(r[3])
            elif r[0] == "real recompile":
                res["recompile"] = float(r[3])
            elif r[0] == "first recompile":
                res["first_recompile"] = float(r[3])
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "build"))
    ap.add_argument("--sizes", default="1000,10000,100000,1000000")
    ap.add_argument("--skip-core", action="store_true")
    a = ap.parse_args()
    sizes = sorted(int(v) for v in a.sizes.split(","))
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("| N | dumps | protobuf serialize | dumps/pb | loads | protobuf parse | loads/pb | package save | "
          "package load file | package load buffer | trace | recompile | first recompile | peak RSS MiB (trace+save+load) | "
          "fxpack B/node | pb B/node |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    figures = {}
    for n in sizes:
        f = figures[n] = fxpack(a.build, n, a.skip_core)
        p = protobuf(n)
        fmt = lambda k: f"{f[k]:.3f}" if k in f else "-"
        print(f"| {n} | {fmt('dumps')} | {p['serialize']:.3f} | {f['dumps'] / p['serialize']:.1f}x | {fmt('loads')} | "
              f"{p['parse']:.3f} | {f['loads'] / p['parse']:.1f}x | {fmt('save')} | {fmt('load')} | {fmt('load_buffer')} | {fmt('trace')} | "
              f"{fmt('recompile')} | {fmt('first_recompile')} | {f['peak_mib']:.0f} | {f['pickle_bytes']:.1f} | {p['bytes']:.1f} |", flush=True)
    if len(sizes) > 1:
        # Flat in N: the largest N's per-node figure over the smallest's, from the children's
        # four decimals rather than the table's three.
        big, small = figures[sizes[-1]], figures[sizes[0]]
        ratio = lambda k: f"{big[k] / small[k]:.2f}" if small.get(k) and k in big else "-"
        print(f"| {sizes[-1]} / {sizes[0]} | {ratio('dumps')} | | | {ratio('loads')} | | | {ratio('save')} | "
              f"{ratio('load')} | {ratio('load_buffer')} | {ratio('trace')} | {ratio('recompile')} | "
              f"{ratio('first_recompile')} | | | |")
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print("(µs/node, CPU time; targets: dumps 0.05, loads 0.3, package save 0.1, load 0.35, trace 0.5, "
          "recompile 0.4, peak at 1M 400 MiB)")


if __name__ == "__main__":
    main()
