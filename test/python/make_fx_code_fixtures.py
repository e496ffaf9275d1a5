#!/usr/bin/python3
"""Regenerates fixtures/fx_code/<version>/: the source torch.fx generates, as torch.package
stores it (fx-generated/_0.py: the import block, then gm.code), for graphs that show what
differs between PyTorch versions and what fx prints beyond the reference models: annotations,
defaults, *args, wrapped functions, globals outside torch, in-place and typed nodes, name
clashes, unused values, and torchvision models (resnet18, googlenet, efficientnet_b0, swin_t,
vit_b_16). <case>.py is that module; for graphs with stack traces in their meta,
<case>.readable.txt is gm.print_readable()'s text. A case this PyTorch cannot trace is left
out (printed). <version> is the running PyTorch's major.minor.

Run from the project root (PYTHONHASHSEED fixes 1.13's import order, a set's):
    PYTHONHASHSEED=0 /usr/bin/python3 test/python/make_fx_code_fixtures.py
    bash ../shared/tools/debian13-torch.sh 'PYTHONHASHSEED=0 python3 test/python/make_fx_code_fixtures.py'
"""
import io
import math
import operator
import os
import sys
import zipfile
from typing import Dict, List, Optional, Tuple

import torch
import torch.fx
from torch.package import PackageExporter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_models  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fixtures", "fx_code")


class Unused(torch.nn.Module):
    def forward(self, x):
        y = x * 3.0  # noqa: F841 - a value nothing uses
        torch._assert(x.dim() == 2, "need 2 dims")
        return x + 1


class Annotated(torch.nn.Module):
    def forward(self, x: torch.Tensor, b: Optional[torch.Tensor] = None, n: int = 3, s: str = "a'b",
                f: float = 1e-05, t: Tuple[int, ...] = (1, 2), l: List[float] = [1.0],
                d: torch.device = torch.device("cpu")) -> Tuple[torch.Tensor, int]:
        return (x + n, n)


def stack_traces():
    gm = torch.fx.symbolic_trace(Unused())
    nodes = list(gm.graph.nodes)
    nodes[1].meta["stack_trace"] = '  File "model.py", line 12, in forward\n    y = x * 3.0\n'
    two_frames = ('context line one\n  File "a.py", line 3, in outer\n    inner()\n'
                  '  File "b.py", line 7, in inner\n    x.dim()\n')
    nodes[2].meta["stack_trace"] = two_frames
    nodes[3].meta["stack_trace"] = two_frames
    nodes[5].meta["stack_trace"] = "no file line here"
    gm.recompile()
    return gm


def manual():
    g = torch.fx.Graph()
    x = g.placeholder("x", type_expr=torch.Tensor)
    a = g.call_function(operator.add, (x, 1), type_expr=torch.Tensor)
    c = g.create_node("call_function", torch.relu, (a,), name="math_sqrt")
    n = g.call_function(operator.not_, (c,))
    s = g.call_function(math.sqrt, (n,))
    s.meta["is_wrapped"] = True
    ia = g.call_function(operator.iadd, (x, s))
    mk = g.call_function(operator.mul, (ia, 2), {"extra": 1})
    el = g.call_function(operator.getitem, (mk, (Ellipsis, slice(None, 2, None), None)))
    dt = g.call_method("to", (el,), {"dtype": torch.float16, "device": torch.device("cpu")})
    lst = g.call_function(torch.cat, ([dt, dt],), {"dim": -1}, type_expr=List[torch.Tensor])
    g.output((lst, {"k": x}), type_expr=Tuple[torch.Tensor, Dict[str, torch.Tensor]])
    return torch.fx.GraphModule(torch.nn.Module(), g)


def naming():
    g = torch.fx.Graph()
    x = g.placeholder("x")
    r = g.create_node("call_function", torch.relu, (x,), name="relu_5")
    for _ in range(3):
        r = g.call_function(torch.relu, (r,))
    g.output(r)
    return torch.fx.GraphModule(torch.nn.Module(), g)


def varargs(*args):
    return args[0] + args[1]


def torchvision_model(name):
    def build():
        import torchvision
        torch.manual_seed(0)
        return torch.fx.symbolic_trace(getattr(torchvision.models, name)(weights=None).eval())
    return build


CASES = {
    "unused": lambda: torch.fx.symbolic_trace(Unused()),
    "stack_traces": stack_traces,
    "annotated": lambda: torch.fx.symbolic_trace(Annotated(), concrete_args={"b": None}),
    "manual": manual,
    "naming": naming,
    "varargs": lambda: torch.fx.symbolic_trace(varargs),
    "resnet18": torchvision_model("resnet18"),
    "googlenet": torchvision_model("googlenet"),
    "efficientnet_b0": torchvision_model("efficientnet_b0"),
    "swin_t": torchvision_model("swin_t"),
    "vit_b_16": torchvision_model("vit_b_16"),
}


def main():
    version = ".".join(torch.__version__.split(".")[:2])
    out = os.path.join(FIXTURES, version)
    os.makedirs(out, exist_ok=True)
    for name, make in CASES.items():
        try:
            gm = make()
        except Exception as e:  # noqa: BLE001 - report and go on
            print(f"{name}: not traced by PyTorch {torch.__version__}: {type(e).__name__}: {str(e)[:120]}")
            continue
        buf = io.BytesIO()
        with PackageExporter(buf) as exporter:
            exporter.extern(["torchvision.**", "math", "_operator"])
            exporter.save_pickle("model", "model.pkl", gm)
        source = zipfile.ZipFile(io.BytesIO(buf.getvalue())).read("archive/fx-generated/_0.py").decode()
        assert source.endswith(gm.code)
        with open(os.path.join(out, name + ".py"), "w") as f:
            f.write(source)
        if name == "stack_traces":
            with open(os.path.join(out, name + ".readable.txt"), "w") as f:
                f.write(reference_models.readable(gm))
        print(f"{name}: {len(source)} bytes")


if __name__ == "__main__":
    main()
