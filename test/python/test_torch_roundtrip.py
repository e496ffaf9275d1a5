"""Round trip through real PyTorch, both directions, every reference model.

(a) PyTorch builds each reference model (weights from fixtures/reference/<model>/params),
    traces it with torch.fx and saves it with torch.package; fxpack loads that archive in
    another process, runs it, and its output must equal PyTorch's.
(b) fxpack traces the same model in C++ and writes a torch.package archive; PyTorch's own
    PackageImporter loads it into a working GraphModule whose output must equal fxpack's
    reference output.

Usage: python3 test_torch_roundtrip.py <torch_roundtrip_child> <fixtures dir>
Prints "N passed, N failed" and exits non-zero on any failure.
"""
import json
import os
import subprocess
import sys
import tempfile

try:
    import numpy as np
    import torch
    import torch.fx
    from torch.package import PackageExporter, PackageImporter
except ImportError as e:  # meson counts exit status 77 as "skipped"
    print(f"skipped: PyTorch is not installed ({e}); apt-get install python3-torch")
    sys.exit(77)

CHILD, FIXTURES = sys.argv[1], sys.argv[2]
REF = os.path.join(FIXTURES, "reference")


class ReluAdd(torch.nn.Module):
    def forward(self, x):
        return torch.relu(x + 3.0)


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = torch.nn.Linear(4, 8)
        self.relu = torch.nn.ReLU()
        self.fc2 = torch.nn.Linear(8, 3)

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(x)))


class SmallConvNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = torch.nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = torch.nn.BatchNorm2d(8)
        self.relu = torch.nn.ReLU(inplace=True)
        self.maxpool = torch.nn.MaxPool2d(3, 2, 1)
        self.conv2 = torch.nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn2 = torch.nn.BatchNorm2d(8)
        self.avgpool = torch.nn.AdaptiveAvgPool2d((1, 1))
        self.fc = torch.nn.Linear(8, 10)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out = self.bn2(self.conv2(x))
        out += x
        out = self.relu(out)
        out = torch.flatten(self.avgpool(out), 1)
        return self.fc(out)


def load_tensor(path, shape, dtype):
    np_dtype = {"float32": np.float32, "int64": np.int64}[dtype]
    return torch.from_numpy(np.fromfile(path, dtype=np_dtype).reshape(shape).copy())


def build(name):
    if name == "seed_sin":
        return torch.fx.symbolic_trace(lambda x: x.sin())
    model = {"seed_relu_add": ReluAdd, "mlp": MLP, "small_convnet": SmallConvNet}[name]()
    state = {}
    for p in json.load(open(os.path.join(REF, name, "params.json"))):
        state[p["name"]] = load_tensor(os.path.join(REF, name, p["file"]), p["shape"], p["dtype"])
    if state:
        model.load_state_dict(state)
    model.eval()
    return torch.fx.symbolic_trace(model)


def io_of(name):
    io = json.load(open(os.path.join(REF, name, "io.json")))
    i, o = io["inputs"][0], io["outputs"][0]
    x = load_tensor(os.path.join(REF, name, "input.bin"), i["shape"], "float32")
    y = load_tensor(os.path.join(REF, name, "output.bin"), o["shape"], "float32")
    return x, i["shape"], y


def main():
    passed = failed = 0
    tmp = tempfile.mkdtemp(prefix="fxpack_torch_")
    for name in ["seed_sin", "seed_relu_add", "mlp", "small_convnet"]:
        x, shape, expected = io_of(name)
        # (a) PyTorch writes, fxpack reads and runs
        try:
            gm = build(name)
            with torch.no_grad():
                ours = gm(x)
            path = os.path.join(tmp, name + "_torch.pt")
            with PackageExporter(path) as pe:
                pe.save_pickle("model", "model.pkl", gm)
            out = os.path.join(tmp, name + "_fxpack.bin")
            subprocess.run([CHILD, "run", path, os.path.join(REF, name, "input.bin"),
                            ",".join(map(str, shape)), out], check=True)
            got = torch.from_numpy(np.fromfile(out, dtype=np.float32).reshape(ours.shape))
            assert torch.allclose(got, ours, rtol=1e-5, atol=1e-6), (got - ours).abs().max()
            print(f"ok   torch.package -> fxpack: {name}")
            passed += 1
        except Exception as e:  # noqa: BLE001 - report every model
            print(f"FAIL torch.package -> fxpack: {name}: {e}")
            failed += 1
        # (b) fxpack writes, PyTorch reads and runs
        try:
            path = os.path.join(tmp, name + "_fxpack.pt")
            subprocess.run([CHILD, "export", name, path], check=True)
            loaded = PackageImporter(path).load_pickle("model", "model.pkl")
            assert isinstance(loaded, torch.fx.GraphModule)
            with torch.no_grad():
                got = loaded(x)
            assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6), (got - expected).abs().max()
            print(f"ok   fxpack -> torch.package: {name}")
            passed += 1
        except Exception as e:  # noqa: BLE001
            print(f"FAIL fxpack -> torch.package: {name}: {e}")
            failed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
