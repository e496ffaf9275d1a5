"""The zoo benchmark's programs run end to end on a small real torch.package archive (a
fixture PyTorch 1.13 saved): bench_zoo with calls (every figure) and with --calls 0 (the load
figures only; it once indexed an empty list of call times and crashed), and
tools/load_spread.py over one process per layout. Figures are checked for presence and sign
only: no timing is asserted.

    python3 test_bench_tools.py BENCH_ZOO LOAD_SPREAD_PY FIXTURE_DIR
"""
import json
import math
import subprocess
import sys


def bench(bench_zoo, fixture, *args):
    r = subprocess.run([bench_zoo, fixture + "/package.pt", fixture + "/input_0.npy", *args],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"bench_zoo {' '.join(args)} exited with {r.returncode}: {r.stdout} {r.stderr}"
    return json.loads(r.stdout)


def check_figures(figures, keys):
    assert sorted(figures) == sorted(keys), f"expected keys {sorted(keys)}, got {figures}"
    for k, v in figures.items():
        assert math.isfinite(v) and v >= 0, f"{k} = {v}"


def main():
    bench_zoo, load_spread, fixture = sys.argv[1:4]
    load_keys = ["load_ms", "load_cpu_ms", "load_faults"]
    check_figures(bench(bench_zoo, fixture, "--loads", "2", "--calls", "2"),
                  load_keys + ["first_ms", "first_cpu_ms", "steady_ms"])
    check_figures(bench(bench_zoo, fixture, "--loads", "2", "--calls", "0"), load_keys)

    zoo, model = fixture.rsplit("/", 1)
    r = subprocess.run([sys.executable, load_spread, bench_zoo, "--zoo", zoo, "--models", model,
                        "--processes", "1", "--loads", "1", "--input", "input_0.npy"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"load_spread.py exited with {r.returncode}: {r.stdout} {r.stderr}"
    for layout in ("[aslr]", "[setarch -R]"):
        assert f"{bench_zoo} {layout}: cpu quartiles" in r.stdout, r.stdout
    print("bench_zoo and load_spread.py: ok")


if __name__ == "__main__":
    main()
