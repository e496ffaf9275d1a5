#!/usr/bin/python3
"""PyTorch eager latency of a torch.package'd fx GraphModule, for bench_inference.

    torch_eager.py PACKAGE.pt INPUT.npy THREADS ITERS   ->  "median_ms <ms>"

Loads the package as a user would (torch.package.PackageImporter), runs ITERS calls after
3 warm-ups under torch.no_grad() with torch.set_num_threads(THREADS)."""
import statistics, sys, time
import numpy as np, torch
from torch.package import PackageImporter

path, inp, threads, iters = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
model = PackageImporter(path).load_pickle("model", "model.pkl")
x = torch.from_numpy(np.load(inp))
ts = []
with torch.no_grad():
    for i in range(iters + 3):
        a = time.perf_counter(); model(x); ts.append((time.perf_counter() - a) * 1e3)
print(f"median_ms {statistics.median(ts[3:]):.3f}")
