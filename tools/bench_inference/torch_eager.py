#!/usr/bin/python3
"""PyTorch eager latency of a torch.package'd fx GraphModule, for bench_inference.

    torch_eager.py PACKAGE.pt INPUT.npy THREADS ITERS   ->  "median_ms <ms> threads <n> torch <version>"

Loads the package as a user would (torch.package.PackageImporter), runs ITERS calls after
3 warm-ups under torch.no_grad() with torch.set_num_threads(THREADS). A model only a newer
PyTorch can load (vit_b_16: only PyTorch 2.x traces it) is timed where it was made, its lines
kept in the model's folder as torch_eager.txt (see bench_inference.cpp)."""
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
print(f"median_ms {statistics.median(ts[3:]):.3f} threads {threads} torch {torch.__version__.split('+')[0]}")
