"""The structured-output format that `fxpack run --output-dir DIR` writes and that the
fixtures under fixtures/torch_models/ use for PyTorch's outputs: `outputs.json` describing
the structure, plus one .npy file per tensor (`output_0.npy`, `output_1.npy`, ... in
depth-first order). docs/cli.md describes it; this module writes it from PyTorch values and
reads it back into NumPy values for comparison.

outputs.json: {"format": "fxpack-outputs", "version": 1, "output": NODE}, where NODE is one of
  {"tensor": "output_0.npy", "dtype": "float32", "shape": [2, 3]}   (bfloat16: the .npy holds float32)
  {"tuple": [NODE, ...]}   {"list": [NODE, ...]}   {"dict": [["key", NODE], ...]}
  {"int": 3}   {"float": 0.5 | "inf" | "-inf" | "nan"}   {"bool": true}   {"none": null}   {"str": "s"}
"""
import json
import math
import os

import numpy as np

FORMAT, VERSION = "fxpack-outputs", 1


def _dtype_name(t):
    return str(t.dtype).replace("torch.", "")


def write_outputs(value, directory):
    """Writes a PyTorch value (tensors, tuples, lists, str-keyed dicts, scalars) to DIR."""
    import torch
    os.makedirs(directory, exist_ok=True)
    count = [0]

    def node(v):
        if isinstance(v, torch.Tensor):
            name = f"output_{count[0]}.npy"
            count[0] += 1
            t = v.detach().contiguous()
            array = (t.float() if t.dtype == torch.bfloat16 else t).numpy()
            np.save(os.path.join(directory, name), array)
            return {"tensor": name, "dtype": _dtype_name(t), "shape": list(t.shape)}
        if isinstance(v, bool):
            return {"bool": v}
        if isinstance(v, int):
            return {"int": v}
        if isinstance(v, float):
            return {"float": v if math.isfinite(v) else repr(v)}
        if v is None:
            return {"none": None}
        if isinstance(v, str):
            return {"str": v}
        if isinstance(v, tuple):  # also torch.Size, namedtuples and torch.return_types
            return {"tuple": [node(x) for x in v]}
        if isinstance(v, list):
            return {"list": [node(x) for x in v]}
        if isinstance(v, dict):
            for k in v:
                if not isinstance(k, str):
                    raise TypeError(f"dict key {k!r} is not a string")
            return {"dict": [[k, node(x)] for k, x in v.items()]}
        raise TypeError(f"cannot describe an output of type {type(v).__name__}")

    doc = {"format": FORMAT, "version": VERSION, "output": node(value)}
    with open(os.path.join(directory, "outputs.json"), "w") as f:
        json.dump(doc, f)
        f.write("\n")
    return doc


def read_outputs(directory):
    """The description with each tensor node's "array" loaded (a NumPy array)."""
    with open(os.path.join(directory, "outputs.json")) as f:
        doc = json.load(f)
    if doc.get("format") != FORMAT or doc.get("version") != VERSION:
        raise ValueError(f"{directory}/outputs.json: not {FORMAT} version {VERSION}")

    def load(n):
        if "tensor" in n:
            n["array"] = np.load(os.path.join(directory, n["tensor"]))
        for key in ("tuple", "list"):
            for x in n.get(key, []):
                load(x)
        for _, x in n.get("dict", []):
            load(x)
        return n

    return load(doc["output"])


def compare(expected, actual, rtol=1e-4, atol=1e-5, where="output"):
    """Compares two described values (as read_outputs gives); returns the first difference
    as a message naming where it is, or None. Structure and dtypes must match exactly; float
    values within rtol/atol (nan equal to nan); everything else exactly."""
    ek, ak = _kind(expected), _kind(actual)
    if ek != ak:
        article = lambda k: ("an " if k == "int" else "a ") + k  # noqa: E731
        return f"{where}: expected {article(ek)}, got {article(ak)}"
    if ek in ("tuple", "list"):
        e, a = expected[ek], actual[ak]
        if len(e) != len(a):
            return f"{where}: expected a {ek} of {len(e)} items, got {len(a)}"
        for i, (x, y) in enumerate(zip(e, a)):
            d = compare(x, y, rtol, atol, f"{where}[{i}]")
            if d:
                return d
        return None
    if ek == "dict":
        e, a = expected["dict"], actual["dict"]
        if [k for k, _ in e] != [k for k, _ in a]:
            return f"{where}: expected keys {[k for k, _ in e]}, got {[k for k, _ in a]}"
        for (k, x), (_, y) in zip(e, a):
            d = compare(x, y, rtol, atol, f"{where}[{k!r}]")
            if d:
                return d
        return None
    if ek == "tensor":
        if expected["dtype"] != actual["dtype"]:
            return f"{where}: expected dtype {expected['dtype']}, got {actual['dtype']}"
        if list(expected["shape"]) != list(actual["shape"]):
            return f"{where}: expected shape {expected['shape']}, got {actual['shape']}"
        e, a = expected["array"], actual["array"]
        if e.dtype.kind == "f":
            ok = np.isclose(a.astype(np.float64), e.astype(np.float64), rtol=rtol, atol=atol, equal_nan=True)
        else:
            ok = a == e
        if not np.all(ok):
            i = tuple(int(v) for v in np.argwhere(~ok)[0])
            return (f"{where}: {int((~ok).sum())} of {ok.size} values differ; first at {list(i)}: "
                    f"expected {e[i]!r}, got {a[i]!r}")
        return None
    if ek == "float":
        e, a = float(expected["float"]), float(actual["float"])
        if not (math.isclose(a, e, rel_tol=rtol, abs_tol=atol) or (math.isnan(a) and math.isnan(e)) or a == e):
            return f"{where}: expected {e!r}, got {a!r}"
        return None
    if expected[ek] != actual[ak]:
        return f"{where}: expected {expected[ek]!r}, got {actual[ak]!r}"
    return None


def _kind(n):
    for k in ("tensor", "tuple", "list", "dict", "int", "float", "bool", "none", "str"):
        if k in n:
            return k
    raise ValueError(f"not an output description: {n!r}")
