"""Load time across processes: runs `bench_zoo PACKAGE INPUT --loads L --calls 0` in N separate
processes, with address-space randomisation (ASLR) and without it (`setarch -R`), each
binary given and each layout taking turns so that they share the machine's state, and prints
every process's median load (wall and CPU ms, sorted), the quartiles and how many processes
were slow (CPU time above 1.3x the fastest process of the same binary and model).

    /usr/bin/python3 tools/load_spread.py build/tools/bench_zoo [OTHER_BENCH_ZOO ...]
        --zoo /tmp/zoo7 --models efficientnet_b0,densenet121 [--processes 30] [--loads 20] [--fifo]

Several binaries (a baseline build and a changed one) are measured in the same run. --fifo
runs each process under `chrt -f 1` (needs root): a real-time process is not time-shared with
the machine's other processes on its core, so its loads show what the load itself costs;
without it, on a shared machine, a load that is preempted pays for refilling the caches the
other process evicted (CPU time) and for the wait (wall time). The load average is printed at
the start and the end. The zoo directory is test/python/zoo.py's: MODEL/package.pt and
MODEL/input.npy (--input names another file: the loads never read it).
"""
import argparse
import json
import os
import subprocess
import sys


def run(cmd):
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def quartiles(v):
    s = sorted(v)
    return s[len(s) // 4], s[len(s) // 2], s[(3 * len(s)) // 4]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("bench", nargs="+", help="bench_zoo binaries")
    ap.add_argument("--zoo", required=True, help="directory made by test/python/zoo.py make()")
    ap.add_argument("--models", required=True, help="comma-separated model names")
    ap.add_argument("--processes", type=int, default=30)
    ap.add_argument("--loads", type=int, default=20)
    ap.add_argument("--fifo", action="store_true", help="run each process under chrt -f 1")
    ap.add_argument("--input", default="input.npy", help="the input's file name in each model's directory")
    args = ap.parse_args()
    layouts = {"aslr": [], "setarch -R": ["setarch", "-R"]}
    prefix = ["chrt", "-f", "1"] if args.fifo else []
    print(f"load average at start: {os.getloadavg()[0]:.2f}; {args.processes} processes per binary and layout, "
          f"median of {args.loads} loads each{', chrt -f 1' if args.fifo else ''}")
    for model in args.models.split(","):
        package = os.path.join(args.zoo, model, "package.pt")
        npy = os.path.join(args.zoo, model, args.input)
        results = {(b, l): [] for b in args.bench for l in layouts}
        for _ in range(args.processes):
            for b in args.bench:
                for l, wrap in layouts.items():
                    r = run(prefix + wrap + [b, package, npy, "--loads", str(args.loads), "--calls", "0"])
                    if "error" in r:
                        sys.exit(f"{b} {model}: {r['error']}")
                    results[(b, l)].append((r["load_cpu_ms"], r["load_ms"], r["load_faults"]))
        print(f"\n{model}")
        for b in args.bench:
            fastest = min(c for l in layouts for c, _, _ in results[(b, l)])
            for l in layouts:
                cpu = [c for c, _, _ in results[(b, l)]]
                wall = [w for _, w, _ in results[(b, l)]]
                slow = sum(c > 1.3 * fastest for c in cpu)
                q = quartiles(cpu)
                print(f"  {b} [{l}]: cpu quartiles {q[0]:.2f} / {q[1]:.2f} / {q[2]:.2f} ms, "
                      f"slow (> 1.3x {fastest:.2f}) {slow}/{len(cpu)}, faults max {max(f for _, _, f in results[(b, l)]):.0f}")
                print("    cpu  " + " ".join(f"{c:.2f}" for c in sorted(cpu)))
                print("    wall " + " ".join(f"{w:.2f}" for w in sorted(wall)))
    print(f"\nload average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
