"""The reference models of fixtures/reference/ in PyTorch: built with their real weights and
traced with torch.fx, shared by test_torch_roundtrip.py and make_torch_fixtures.py."""
import json
import os

import numpy as np
import torch
import torch.fx

NAMES = ["seed_sin", "seed_relu_add", "mlp", "small_convnet"]


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


def build(name, reference_dir):
    """The traced GraphModule of reference model `name`, weights from reference_dir/<name>/."""
    if name == "seed_sin":  # in eval mode, as all the reference models are
        return torch.fx.symbolic_trace(lambda x: x.sin()).eval()
    model = {"seed_relu_add": ReluAdd, "mlp": MLP, "small_convnet": SmallConvNet}[name]()
    state = {}
    for p in json.load(open(os.path.join(reference_dir, name, "params.json"))):
        state[p["name"]] = load_tensor(os.path.join(reference_dir, name, p["file"]), p["shape"], p["dtype"])
    if state:
        model.load_state_dict(state)
    model.eval()
    return torch.fx.symbolic_trace(model)


def io_of(name, reference_dir):
    """(input, input shape, expected output) of reference model `name`."""
    io = json.load(open(os.path.join(reference_dir, name, "io.json")))
    i, o = io["inputs"][0], io["outputs"][0]
    x = load_tensor(os.path.join(reference_dir, name, "input.bin"), i["shape"], "float32")
    y = load_tensor(os.path.join(reference_dir, name, "output.bin"), o["shape"], "float32")
    return x, i["shape"], y


def readable(gm):
    """gm.print_readable()'s text without printing it (1.13's takes no argument and only prints)."""
    try:
        return gm.print_readable(print_output=False)
    except TypeError:
        import contextlib
        import io as _io
        out = _io.StringIO()
        with contextlib.redirect_stdout(out):
            gm.print_readable()
        return out.getvalue()[:-1]
