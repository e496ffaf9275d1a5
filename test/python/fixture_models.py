"""Small torch.fx corner-case models, one per case, grouped in families: the yardstick of what
fxpack must load and run exactly as PyTorch does.

Each case is a `torch.nn.Module` (or a plain function) that `torch.fx.symbolic_trace` can
trace, plus the inputs to run it on. `make_fixtures.py` traces every case under the PyTorch at
hand, saves it with torch.package as a user would, and records the generated code, a node
table, the inputs and PyTorch's outputs under fixtures/torch_models/<dialect>/<family>/<case>/.

Cases are small on purpose: tiny shapes, one idea each. Weights are random (the seed is
derived from the case's name, so regenerating gives the same bytes), BatchNorm running
statistics and norm affine parameters are made non-trivial, and every model is in eval mode.

Adding a case: write a function or Module and register it with `case(...)` (or
`fn_case(...)`) in the family it belongs to; inputs are given as specs (F32(2, 3), I64(4,
hi=10), BOOL(2, 3), ...) so they are generated from the case's seed too.
"""
import math
import zlib
from typing import Dict, List, NamedTuple, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

try:  # torchvision's fx-wrapped function and the module that calls it
    from torchvision.ops import StochasticDepth, stochastic_depth
except ImportError:  # pragma: no cover - the family is then recorded as not traceable
    StochasticDepth = stochastic_depth = None


# --- input specs -------------------------------------------------------------------------

class Spec:
    """How to make one input tensor from a generator."""

    def __init__(self, shape, make):
        self.shape, self._make = tuple(shape), make

    def make(self, g):
        return self._make(self.shape, g)


def F32(*shape):
    return Spec(shape, lambda s, g: torch.randn(s, generator=g))


def F64(*shape):
    return Spec(shape, lambda s, g: torch.randn(s, generator=g, dtype=torch.float64))


def POS(*shape):
    """Positive float32 (for log, sqrt, pow with fractional exponents)."""
    return Spec(shape, lambda s, g: torch.rand(s, generator=g) * 2 + 0.25)


def I64(*shape, lo=0, hi=10):
    return Spec(shape, lambda s, g: torch.randint(lo, hi, s, generator=g, dtype=torch.int64))


def I32(*shape, lo=-5, hi=10):
    return Spec(shape, lambda s, g: torch.randint(lo, hi, s, generator=g, dtype=torch.int32))


def U8(*shape):
    return Spec(shape, lambda s, g: torch.randint(0, 256, s, generator=g, dtype=torch.uint8))


def BOOL(*shape):
    return Spec(shape, lambda s, g: torch.rand(s, generator=g) > 0.5)


def RAW(value):
    """A fixed tensor (e.g. one holding nan and inf)."""
    return Spec(value.shape, lambda s, g: value.clone())


# --- registry ----------------------------------------------------------------------------

class Case:
    def __init__(self, family, name, make, inputs, note=""):
        self.family, self.name, self.make, self.inputs, self.note = family, name, make, inputs, note

    @property
    def seed(self):
        return zlib.crc32(f"{self.family}/{self.name}".encode())

    def build(self):
        """The eval-mode module (or function) with its random weights, made from the seed."""
        torch.manual_seed(self.seed)
        m = self.make()
        if isinstance(m, nn.Module):
            make_norms_nontrivial(m, self.seed)
            m.eval()
        return m

    def make_inputs(self):
        g = torch.Generator().manual_seed(self.seed + 1)
        return tuple(spec.make(g) for spec in self.inputs)


CASES = []


def case(family, name, *inputs, note=""):
    """Registers a Module class (constructed without arguments) or a zero-argument factory."""
    def register(make):
        CASES.append(Case(family, name, make, inputs, note))
        return make
    return register


def fn_case(family, name, fn, *inputs, note=""):
    """Registers a plain function, traced as fx traces functions (root: an empty Module)."""
    CASES.append(Case(family, name, lambda: fn, inputs, note))


def leaf_case(family, name, module_factory, *inputs, note=""):
    """Registers a model whose only work is calling one leaf module: `self.m(x)`."""
    CASES.append(Case(family, name, lambda: CallLeaf(module_factory()), inputs, note))


def make_norms_nontrivial(m, seed):
    g = torch.Generator().manual_seed(seed + 2)
    with torch.no_grad():
        for mod in m.modules():
            if isinstance(mod, nn.modules.batchnorm._BatchNorm) and mod.track_running_stats:
                mod.running_mean.copy_(torch.randn(mod.running_mean.shape, generator=g) * 0.5)
                mod.running_var.copy_(torch.rand(mod.running_var.shape, generator=g) + 0.5)
            if isinstance(mod, (nn.modules.batchnorm._BatchNorm, nn.LayerNorm, nn.GroupNorm)):
                if getattr(mod, "weight", None) is not None:
                    mod.weight.copy_(torch.rand(mod.weight.shape, generator=g) + 0.5)
                if getattr(mod, "bias", None) is not None:
                    mod.bias.copy_(torch.randn(mod.bias.shape, generator=g) * 0.1)


class CallLeaf(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        return self.m(x)


class WithParams(nn.Module):
    """A function of the inputs and of named parameters (get_attr nodes)."""

    def __init__(self, fn, **shapes):
        super().__init__()
        self.fn = fn
        for name, shape in shapes.items():
            self.register_parameter(name, nn.Parameter(torch.randn(shape)))

    def forward(self, x):
        return self.fn(self, x)


def params_case(family, name, fn, inputs, **shapes):
    CASES.append(Case(family, name, lambda: WithParams(fn, **shapes), inputs))


# --- elementwise: unary ------------------------------------------------------------------

UNARY = {
    "abs": lambda x: torch.abs(x),
    "abs_method": lambda x: x.abs(),
    "neg": lambda x: torch.neg(x),
    "exp": lambda x: torch.exp(x),
    "exp_method": lambda x: x.exp(),
    "sin": lambda x: torch.sin(x),
    "cos": lambda x: x.cos(),
    "tanh": lambda x: torch.tanh(x),
    "tanh_functional": lambda x: F.tanh(x),
    "sigmoid": lambda x: torch.sigmoid(x),
    "sigmoid_functional": lambda x: F.sigmoid(x),
    "relu": lambda x: torch.relu(x),
    "relu_functional": lambda x: F.relu(x),
    "relu_method": lambda x: x.relu(),
    "relu_functional_inplace": lambda x: F.relu(x, inplace=True),
    "relu6": lambda x: F.relu6(x),
    "hardtanh": lambda x: F.hardtanh(x, -0.5, 0.75),
    "gelu": lambda x: F.gelu(x),
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "silu": lambda x: F.silu(x),
    "hardswish": lambda x: F.hardswish(x),
    "hardsigmoid": lambda x: F.hardsigmoid(x),
    "leaky_relu": lambda x: F.leaky_relu(x),
    "leaky_relu_slope": lambda x: F.leaky_relu(x, 0.2),
    "elu": lambda x: F.elu(x),
    "elu_alpha": lambda x: F.elu(x, alpha=0.5),
    "erf": lambda x: torch.erf(x),
    "floor": lambda x: torch.floor(x * 3),
    "ceil": lambda x: (x * 3).ceil(),
    "round": lambda x: torch.round(x * 3),
    "round_half_even": lambda x: torch.round(x * 2 - 0.5),
    "reciprocal": lambda x: torch.reciprocal(x),
    "clamp_both": lambda x: torch.clamp(x, -0.5, 0.5),
    "clamp_min": lambda x: x.clamp(min=0.1),
    "clamp_max": lambda x: torch.clamp(x, max=0.2),
    "clip": lambda x: torch.clip(x, -1.0, 1.0),
    "softplus": lambda x: F.softplus(x),
    "sign": lambda x: torch.sign(x),
    "square": lambda x: torch.square(x),
    "relu_method_inplace": lambda x: x.clone().relu_(),
    "sigmoid_method_inplace": lambda x: (x * 1).sigmoid_(),
    "clamp_method_inplace": lambda x: x.clone().clamp_(-0.5, 0.5),
    "hardswish_functional_inplace": lambda x: F.hardswish(x * 1, inplace=True),
    "hardsigmoid_functional_inplace": lambda x: F.hardsigmoid(x + 0, inplace=True),
    "silu_functional_inplace": lambda x: F.silu(x.clone(), inplace=True),
    "relu6_functional_inplace": lambda x: F.relu6(x * 4, inplace=True),
}
for _name, _fn in UNARY.items():
    fn_case("elementwise_unary", _name, _fn, F32(2, 5))

POSITIVE_UNARY = {
    "log": lambda x: torch.log(x),
    "log_method": lambda x: x.log(),
    "log1p": lambda x: torch.log1p(x),
    "sqrt": lambda x: torch.sqrt(x),
    "rsqrt": lambda x: torch.rsqrt(x),
    "log2": lambda x: torch.log2(x),
}
for _name, _fn in POSITIVE_UNARY.items():
    fn_case("elementwise_unary", _name, _fn, POS(2, 5))

_SPECIAL = torch.tensor([[0.0, -1.5, float("nan"), float("inf")], [float("-inf"), 2.0, -0.0, float("nan")]])
fn_case("elementwise_unary", "isnan", lambda x: torch.isnan(x), RAW(_SPECIAL))
fn_case("elementwise_unary", "isinf", lambda x: torch.isinf(x), RAW(_SPECIAL))
fn_case("elementwise_unary", "isfinite", lambda x: torch.isfinite(x), RAW(_SPECIAL))
fn_case("elementwise_unary", "nan_to_num", lambda x: torch.nan_to_num(x, nan=0.0, posinf=1.0, neginf=-1.0),
        RAW(_SPECIAL))
fn_case("elementwise_unary", "logical_not", lambda x: torch.logical_not(x), BOOL(2, 4))
fn_case("elementwise_unary", "logical_not_float", lambda x: torch.logical_not(x), RAW(_SPECIAL))
fn_case("elementwise_unary", "abs_int64", lambda x: torch.abs(x), I64(2, 4, lo=-9))
fn_case("elementwise_unary", "neg_int32", lambda x: torch.neg(x), I32(2, 4))
fn_case("elementwise_unary", "exp_float64", lambda x: torch.exp(x), F64(2, 4))
fn_case("elementwise_unary", "sqrt_int64_promotes", lambda x: torch.sqrt(x), I64(2, 4))
fn_case("elementwise_unary", "sigmoid_0d", lambda x: torch.sigmoid(x), F32())
fn_case("elementwise_unary", "relu_empty", lambda x: torch.relu(x), F32(0, 3))
fn_case("elementwise_unary", "bitwise_not_int", lambda x: torch.bitwise_not(x), I64(2, 4, lo=-9))
fn_case("elementwise_unary", "bitwise_not_bool", lambda x: torch.bitwise_not(x), BOOL(2, 4))

# --- elementwise: binary -----------------------------------------------------------------

BINARY = {
    "add": lambda x, y: torch.add(x, y),
    "add_alpha": lambda x, y: torch.add(x, y, alpha=2),
    "add_method_alpha": lambda x, y: x.add(y, alpha=0.5),
    "sub": lambda x, y: torch.sub(x, y),
    "sub_alpha": lambda x, y: torch.sub(x, y, alpha=3),
    "mul": lambda x, y: torch.mul(x, y),
    "mul_method": lambda x, y: x.mul(y),
    "div": lambda x, y: torch.div(x, y),
    "div_trunc": lambda x, y: torch.div(x * 4, y, rounding_mode="trunc"),
    "div_floor": lambda x, y: torch.div(x * 4, y, rounding_mode="floor"),
    "div_method_floor": lambda x, y: (x * 4).div(y, rounding_mode="floor"),
    "true_divide": lambda x, y: torch.true_divide(x, y),
    "floor_divide": lambda x, y: torch.floor_divide(x * 4, y),
    "remainder": lambda x, y: torch.remainder(x * 4, y),
    "fmod": lambda x, y: torch.fmod(x * 4, y),
    "pow": lambda x, y: torch.pow(x.abs() + 0.5, y),
    "maximum": lambda x, y: torch.maximum(x, y),
    "minimum": lambda x, y: torch.minimum(x, y),
    "max_binary": lambda x, y: torch.max(x, y),
    "min_binary": lambda x, y: torch.min(x, y),
    "eq": lambda x, y: torch.eq(x, y),
    "ne": lambda x, y: x.ne(y),
    "lt": lambda x, y: torch.lt(x, y),
    "le": lambda x, y: torch.le(x, y),
    "gt": lambda x, y: x.gt(y),
    "ge": lambda x, y: torch.ge(x, y),
    "atan2": lambda x, y: torch.atan2(x, y),
    "where": lambda x, y: torch.where(x > y, x, y),
    "where_scalar": lambda x, y: torch.where(x > 0, x, 0.0),
    "where_both_scalars": lambda x, y: torch.where(x > y, 1.0, -1.0),
    "add_inplace_method": lambda x, y: x.clone().add_(y),
    "mul_inplace_method": lambda x, y: x.clone().mul_(y),
    "sub_inplace_alpha": lambda x, y: x.clone().sub_(y, alpha=2),
    "div_inplace": lambda x, y: x.clone().div_(y),
    "clamp_tensor_bounds": lambda x, y: torch.clamp(x, min=y - 1, max=y + 1),
    "lerp": lambda x, y: torch.lerp(x, y, 0.25),
}
for _name, _fn in BINARY.items():
    fn_case("elementwise_binary", _name, _fn, F32(3, 4), F32(3, 4))

BROADCAST = {
    "row": (F32(3, 4), F32(4)),
    "column": (F32(3, 4), F32(3, 1)),
    "outer": (F32(3, 1), F32(1, 4)),
    "rank3": (F32(2, 3, 4), F32(3, 1)),
    "zero_dim": (F32(3, 4), F32()),
    "empty": (F32(0, 4), F32(4)),
}
for _name, _inputs in BROADCAST.items():
    fn_case("elementwise_binary", "broadcast_add_" + _name, lambda x, y: x + y, *_inputs)
fn_case("elementwise_binary", "broadcast_where", lambda c, x, y: torch.where(c, x, y),
        BOOL(3, 1), F32(1, 4), F32(3, 4))

fn_case("elementwise_binary", "masked_fill", lambda x, m: x.masked_fill(m, -1.0), F32(3, 4), BOOL(3, 4))
fn_case("elementwise_binary", "masked_fill_broadcast", lambda x, m: x.masked_fill(m, float("-inf")),
        F32(2, 3, 4), BOOL(1, 4))
fn_case("elementwise_binary", "masked_fill_torch", lambda x, m: torch.masked_fill(x, m, 0.5),
        F32(3, 4), BOOL(3, 4))
fn_case("elementwise_binary", "masked_fill_inplace", lambda x, m: x.clone().masked_fill_(m, 2.0),
        F32(3, 4), BOOL(3, 4))
fn_case("elementwise_binary", "logical_and", lambda x, y: torch.logical_and(x, y), BOOL(3, 4), BOOL(3, 4))
fn_case("elementwise_binary", "logical_or", lambda x, y: torch.logical_or(x, y), BOOL(3, 4), BOOL(3, 4))
fn_case("elementwise_binary", "logical_xor", lambda x, y: torch.logical_xor(x, y), BOOL(3, 4), BOOL(3, 4))
fn_case("elementwise_binary", "logical_and_float", lambda x, y: torch.logical_and(x, y),
        RAW(torch.tensor([0.0, 1.0, -2.0, 0.0])), RAW(torch.tensor([0.0, 0.0, 3.0, 1.0])))
fn_case("elementwise_binary", "bitwise_and_int", lambda x, y: torch.bitwise_and(x, y), I64(3, 4), I64(3, 4))
fn_case("elementwise_binary", "bitwise_or_int", lambda x, y: torch.bitwise_or(x, y), I64(3, 4), I64(3, 4))
fn_case("elementwise_binary", "bitwise_xor_int", lambda x, y: torch.bitwise_xor(x, y), I64(3, 4), I64(3, 4))
fn_case("elementwise_binary", "bitwise_and_bool", lambda x, y: torch.bitwise_and(x, y), BOOL(3, 4), BOOL(3, 4))
fn_case("elementwise_binary", "floor_divide_int", lambda x, y: torch.floor_divide(x, y),
        I64(3, 4, lo=-9), I64(3, 4, lo=1))
fn_case("elementwise_binary", "remainder_int_negative", lambda x, y: torch.remainder(x, y),
        I64(3, 4, lo=-9), I64(3, 4, lo=1))
fn_case("elementwise_binary", "div_int_true", lambda x, y: torch.div(x, y), I64(3, 4), I64(3, 4, lo=1))
fn_case("elementwise_binary", "div_int_trunc", lambda x, y: torch.div(x, y, rounding_mode="trunc"),
        I64(3, 4, lo=-9), I64(3, 4, lo=1))
fn_case("elementwise_binary", "pow_int", lambda x, y: torch.pow(x, y), I64(3, 4, lo=-3, hi=4), I64(3, 4, hi=4))
fn_case("elementwise_binary", "maximum_int", lambda x, y: torch.maximum(x, y), I64(3, 4), I64(3, 4))
fn_case("elementwise_binary", "eq_int", lambda x, y: x == y, I64(3, 4, hi=3), I64(3, 4, hi=3))

# dtype promotion: what PyTorch's result_type gives
PROMOTION = {
    "int64_plus_float32": (lambda x, y: x + y, (I64(3, 4), F32(3, 4))),
    "int64_plus_python_float": (lambda x, y: x + 1.5, (I64(3, 4), F32(1))),
    "int64_times_python_int": (lambda x, y: x * 3, (I64(3, 4), F32(1))),
    "bool_plus_python_int": (lambda x, y: x + 1, (BOOL(3, 4), F32(1))),
    "bool_plus_bool": (lambda x, y: x + y, (BOOL(3, 4), BOOL(3, 4))),
    "bool_times_float": (lambda x, y: x * y, (BOOL(3, 4), F32(3, 4))),
    "int32_plus_int64": (lambda x, y: x + y, (I32(3, 4), I64(3, 4))),
    "int32_plus_python_int": (lambda x, y: x + 7, (I32(3, 4), F32(1))),
    "int32_plus_float32": (lambda x, y: x + y, (I32(3, 4), F32(3, 4))),
    "uint8_plus_int64": (lambda x, y: x + y, (U8(3, 4), I64(3, 4))),
    "uint8_plus_python_int_wraps": (lambda x, y: x + 200, (U8(3, 4), F32(1))),
    "uint8_times_float": (lambda x, y: x * y, (U8(3, 4), F32(3, 4))),
    "float32_plus_float64": (lambda x, y: x + y, (F32(3, 4), F64(3, 4))),
    "float32_plus_float64_0d": (lambda x, y: x + y, (F32(3, 4), F64())),
    "int64_plus_float64_0d": (lambda x, y: x + y, (I64(3, 4), F64())),
    "int64_true_div_python_int": (lambda x, y: x / 2, (I64(3, 4), F32(1))),
    "int64_floordiv_python_int": (lambda x, y: x // 2, (I64(3, 4, lo=-9), F32(1))),
    "bool_compare_float": (lambda x, y: (x > 0) == (y > 0), (F32(3, 4), F32(3, 4))),
    "float64_mul_python_float": (lambda x, y: x * 0.1, (F64(3, 4), F32(1))),
}
for _name, (_fn, _inputs) in PROMOTION.items():
    fn_case("promotion", _name, _fn, *_inputs)

# --- every Python operator fx records ----------------------------------------------------

OPERATORS = {
    "add": lambda x, y: x + y,
    "sub": lambda x, y: x - y,
    "mul": lambda x, y: x * y,
    "truediv": lambda x, y: x / y,
    "floordiv": lambda x, y: (x * 4) // y,
    "mod": lambda x, y: (x * 4) % y,
    "pow": lambda x, y: x.abs() ** y,
    "matmul": lambda x, y: x @ y.t(),
    "neg": lambda x, y: -x,
    "pos": lambda x, y: +x,
    "lt": lambda x, y: x < y,
    "le": lambda x, y: x <= y,
    "gt": lambda x, y: x > y,
    "ge": lambda x, y: x >= y,
    "eq": lambda x, y: x == y,
    "ne": lambda x, y: x != y,
    "and_bool": lambda x, y: (x > 0) & (y > 0),
    "or_bool": lambda x, y: (x > 0) | (y > 0),
    "xor_bool": lambda x, y: (x > 0) ^ (y > 0),
    "invert_bool": lambda x, y: ~(x > y),
    "radd": lambda x, y: 2 + x,
    "rsub": lambda x, y: 2 - x,
    "rmul": lambda x, y: 2.5 * x,
    "rtruediv": lambda x, y: 1 / x,
    "rfloordiv": lambda x, y: 7 // (x.abs() + 1),
    "rmod": lambda x, y: 5.0 % (x.abs() + 1),
    "rpow": lambda x, y: 2 ** x,
    "sub_scalar": lambda x, y: x - 1,
    "pow_scalar": lambda x, y: x ** 2,
    "pow_fractional": lambda x, y: x.abs() ** 0.5,
    "truediv_scalar": lambda x, y: x / 3,
    "chain": lambda x, y: (x + y) * (x - y) / 2 - 1,
    "iadd": lambda x, y: _iadd(x, y),
    "getitem_int": lambda x, y: x[1],
    "getitem_negative": lambda x, y: x[-1],
}


def _split_unpacked(x):
    a, b = x.split(2, dim=2)  # unpacking a Proxy: 1.13 on Python 3.11 cannot
    return a - b


def _max_unpacked(x):
    values, indices = torch.max(x, 1)  # unpacking a Proxy: 1.13 on Python 3.11 cannot
    return values * indices


def _iadd(x, y):
    z = x * 1
    z += y
    return z


for _name, _fn in OPERATORS.items():
    fn_case("operators", _name, _fn, F32(3, 4), F32(3, 4))
fn_case("operators", "and_int", lambda x, y: x & y, I64(3, 4), I64(3, 4))
fn_case("operators", "or_int", lambda x, y: x | y, I64(3, 4), I64(3, 4))
fn_case("operators", "xor_int", lambda x, y: x ^ y, I64(3, 4), I64(3, 4))
fn_case("operators", "invert_int", lambda x: ~x, I64(3, 4, lo=-5))
fn_case("operators", "lshift_int", lambda x: x << 2, I64(3, 4))
fn_case("operators", "rshift_int", lambda x: x >> 1, I64(3, 4))
fn_case("operators", "matmul_batched", lambda x, y: x @ y, F32(2, 3, 4), F32(2, 4, 5))
fn_case("operators", "matmul_vector", lambda x, y: x @ y, F32(3, 4), F32(4))

# int arithmetic on sizes: fx records getattr/size/getitem and the int operators
SIZES = {
    "shape_floordiv": lambda x: x.view(x.shape[0] // 2, -1),
    "size_mul": lambda x: x.reshape(x.size(0) // 2, x.size(1) * 2, -1),
    "size_add": lambda x: torch.zeros(x.size(-1) + 1),
    "shape_sub": lambda x: x[: x.shape[0] - 1],
    "dim_minus_one": lambda x: x.transpose(x.dim() - 1, 0),
    "numel_div": lambda x: x.view(-1, x.numel() // x.shape[0]),
    "shape_mod": lambda x: x * (x.shape[0] % 4),
    "shape_pow": lambda x: x * x.shape[1] ** 2,
    "shape_truediv": lambda x: x * (x.shape[0] / 4),
    "size_neg": lambda x: x.sum(-x.dim() + 1),
    "shape_slice": lambda x: x.new_zeros(x.shape[1:]),
    "size_tuple_unpack": lambda x: x.view(x.size(0), x.size(1) * x.size(2)),
    "reshape_from_shape": lambda x: x.reshape(x.shape[0], x.shape[1] * x.shape[2]),
    "view_minus_one_last": lambda x: x.view(-1, x.size(-1)),
    "float_scale_from_size": lambda x: x / x.size(-1) ** 0.5,
    "int_output": lambda x: x.shape[0] * x.shape[1],
    "size_output": lambda x: x.size(),
    "shape_output": lambda x: x.shape,
    "bool_output": lambda x: x.shape[0] == 4,
    "size_compare_lt": lambda x: x.size(1) < 5,
    "float_output": lambda x: x.shape[2] / 2,
}
for _name, _fn in SIZES.items():
    fn_case("sizes", _name, _fn, F32(4, 3, 2))

# --- reductions ----------------------------------------------------------------------------

REDUCE = {
    "sum": lambda x: torch.sum(x),
    "sum_dim": lambda x: x.sum(1),
    "sum_dims_keepdim": lambda x: torch.sum(x, (0, 2), keepdim=True),
    "sum_dtype": lambda x: torch.sum(x, dim=1, dtype=torch.float64),
    "sum_negative_dim": lambda x: x.sum(dim=-1),
    "mean": lambda x: torch.mean(x),
    "mean_dim": lambda x: x.mean(dim=1),
    "mean_dims_keepdim": lambda x: x.mean((-2, -1), keepdim=True),
    "std": lambda x: torch.std(x),
    "std_dim": lambda x: x.std(dim=1),
    "std_unbiased_false": lambda x: torch.std(x, dim=2, unbiased=False),
    "std_keepdim": lambda x: x.std(-1, keepdim=True),
    "var": lambda x: torch.var(x),
    "var_dim_unbiased_false": lambda x: x.var(dim=1, unbiased=False),
    "amax": lambda x: torch.amax(x, dim=1),
    "amax_keepdim": lambda x: x.amax(dim=(1, 2), keepdim=True),
    "amin": lambda x: torch.amin(x, dim=-1),
    "max_full": lambda x: torch.max(x),
    "min_full": lambda x: x.min(),
    "max_dim": lambda x: torch.max(x, 1),
    "max_dim_keepdim": lambda x: torch.max(x, dim=2, keepdim=True),
    "max_dim_values": lambda x: torch.max(x, 1).values,
    "max_dim_indices": lambda x: x.max(dim=1).indices,
    "max_dim_getitem": lambda x: torch.max(x, 1)[0],
    "min_dim": lambda x: torch.min(x, -1),
    "min_dim_indices_getitem": lambda x: x.min(dim=0)[1],
    "argmax": lambda x: torch.argmax(x),
    "argmax_dim": lambda x: x.argmax(dim=1),
    "argmax_keepdim": lambda x: torch.argmax(x, dim=-1, keepdim=True),
    "argmin_dim": lambda x: torch.argmin(x, 2),
    "prod": lambda x: torch.prod(x),
    "prod_dim": lambda x: x.prod(1),
    "norm": lambda x: torch.norm(x),
    "norm_dim": lambda x: x.norm(dim=1),
    "norm_p1_dim_keepdim": lambda x: torch.norm(x, p=1, dim=-1, keepdim=True),
    "linalg_vector_norm": lambda x: torch.linalg.vector_norm(x, dim=-1),
    "cumsum": lambda x: torch.cumsum(x, dim=1),
    "cumsum_method": lambda x: x.cumsum(-1),
    "topk": lambda x: torch.topk(x, 2),
    "topk_smallest": lambda x: torch.topk(x, 2, dim=1, largest=False),
    "topk_values": lambda x: x.topk(3).values,
    "topk_getitem_indices": lambda x: torch.topk(x, 1, dim=0)[1],
    "softmax": lambda x: torch.softmax(x, dim=-1),
    "softmax_functional": lambda x: F.softmax(x, dim=1),
    "softmax_method": lambda x: x.softmax(0),
    "log_softmax": lambda x: F.log_softmax(x, dim=-1),
    "log_softmax_method": lambda x: x.log_softmax(1),
    "logsumexp": lambda x: torch.logsumexp(x, dim=1),
    "sort": lambda x: torch.sort(x, dim=-1),
    "argsort_descending": lambda x: torch.argsort(x, dim=1, descending=True),
    "mean_list_dims": lambda x: x.mean([1, 2]),
    "sum_list_dims_keepdim": lambda x: x.sum([0, 2], keepdim=True),
    "std_correction": lambda x: torch.std(x, dim=1, correction=0),
    "max_dim_unpacked": lambda x: _max_unpacked(x),
    "softmax_dtype": lambda x: F.softmax(x, dim=-1, dtype=torch.float64),
}
for _name, _fn in REDUCE.items():
    fn_case("reductions", _name, _fn, F32(2, 3, 4))

fn_case("reductions", "all", lambda x: torch.all(x), BOOL(2, 3))
fn_case("reductions", "all_dim", lambda x: x.all(dim=1), BOOL(2, 3))
fn_case("reductions", "any", lambda x: torch.any(x), BOOL(2, 3))
fn_case("reductions", "any_dim", lambda x: x.any(1), BOOL(2, 3))
fn_case("reductions", "any_float", lambda x: (x > 1.0).any(), F32(2, 3))
fn_case("reductions", "sum_int64", lambda x: x.sum(1), I64(2, 3))
fn_case("reductions", "sum_int32_promotes", lambda x: x.sum(), I32(2, 3))
fn_case("reductions", "sum_bool", lambda x: x.sum(), BOOL(2, 3))
fn_case("reductions", "mean_float64", lambda x: x.mean(0), F64(2, 3))
fn_case("reductions", "max_int64_dim", lambda x: x.max(1), I64(2, 5))
fn_case("reductions", "argmax_ties", lambda x: x.argmax(1), RAW(torch.tensor([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]])))
fn_case("reductions", "cumsum_int64", lambda x: torch.cumsum(x, 0), I64(3, 2))
fn_case("reductions", "count_nonzero", lambda x: torch.count_nonzero(x, dim=1), I64(3, 4, hi=3))
fn_case("reductions", "sum_empty", lambda x: x.sum(0), F32(0, 3))

# --- shape and indexing ------------------------------------------------------------------

SHAPE = {
    "view": lambda x: x.view(6, 4),
    "view_minus_one": lambda x: x.view(-1),
    "view_tuple": lambda x: x.view((3, -1)),
    "reshape": lambda x: torch.reshape(x, (4, -1)),
    "reshape_method": lambda x: x.reshape(2, 12),
    "flatten": lambda x: torch.flatten(x),
    "flatten_start": lambda x: torch.flatten(x, 1),
    "flatten_method_range": lambda x: x.flatten(0, 1),
    "unflatten": lambda x: x.unflatten(2, (2, 2)),
    "permute": lambda x: x.permute(2, 0, 1),
    "permute_torch": lambda x: torch.permute(x, (1, 2, 0)),
    "transpose": lambda x: x.transpose(0, 2),
    "transpose_torch": lambda x: torch.transpose(x, 1, -1),
    "t": lambda x: x[0].t(),
    "unsqueeze": lambda x: x.unsqueeze(1),
    "unsqueeze_negative": lambda x: torch.unsqueeze(x, -1),
    "squeeze": lambda x: x[:, :1].squeeze(),
    "squeeze_dim": lambda x: torch.squeeze(x[:, :1], 1),
    "expand": lambda x: x[:, :1].expand(2, 3, 4),
    "expand_minus_one": lambda x: x[:1].expand(5, -1, -1),
    "expand_as": lambda x: x[:1, :, :1].expand_as(x),
    "repeat": lambda x: x.repeat(1, 2, 1),
    "repeat_more_dims": lambda x: x.repeat(2, 1, 1, 2),
    "contiguous": lambda x: x.transpose(1, 2).contiguous(),
    "cat": lambda x: torch.cat([x, x * 2], dim=1),
    "cat_tuple_default_dim": lambda x: torch.cat((x, x + 1)),
    "cat_negative_dim": lambda x: torch.cat([x, x], -1),
    "concat": lambda x: torch.concat([x, x], dim=2),
    "stack": lambda x: torch.stack([x, x + 1]),
    "stack_dim": lambda x: torch.stack((x, x * 2, x * 3), dim=2),
    "split": lambda x: torch.split(x, 2, dim=2),
    "split_sizes": lambda x: x.split([1, 2], dim=1),
    "split_getitem": lambda x: torch.split(x, 1, dim=0)[1],
    "chunk": lambda x: torch.chunk(x, 2, dim=-1),
    "chunk_method_uneven": lambda x: x.chunk(2, 1),
    "unbind": lambda x: torch.unbind(x, dim=1),
    "narrow": lambda x: torch.narrow(x, 2, 1, 2),
    "narrow_method": lambda x: x.narrow(0, 1, 1),
    "select": lambda x: torch.select(x, 1, 2),
    "select_method_negative": lambda x: x.select(-1, -1),
    "getitem_int": lambda x: x[1],
    "getitem_slice": lambda x: x[:, 1:3],
    "getitem_step": lambda x: x[:, ::2, 1::2],
    "getitem_negative_slice": lambda x: x[..., -2:],
    "getitem_none": lambda x: x[:, None],
    "getitem_ellipsis": lambda x: x[..., 0],
    "getitem_ellipsis_none": lambda x: x[None, ..., None],
    "getitem_mixed": lambda x: x[1, :, None, 2],
    "getitem_int_int": lambda x: x[0, 1],
    "getitem_empty_slice": lambda x: x[:, 3:],
    "roll": lambda x: torch.roll(x, 1, dims=2),
    "roll_multi": lambda x: x.roll((1, -1), (0, 2)),
    "roll_flat": lambda x: torch.roll(x, 3),
    "flip": lambda x: torch.flip(x, [0, 2]),
    "flip_method": lambda x: x.flip(-1),
    "pad_constant": lambda x: F.pad(x, (1, 2)),
    "pad_constant_value": lambda x: F.pad(x, (0, 1, 2, 0), value=-1.5),
    "pad_reflect": lambda x: F.pad(x, (1, 1), mode="reflect"),
    "pad_replicate": lambda x: F.pad(x, (2, 0), mode="replicate"),
    "pad_negative": lambda x: F.pad(x, (-1, 0)),
    "clone": lambda x: torch.clone(x),
    "clone_method": lambda x: x.clone(),
    "detach": lambda x: x.detach(),
    "tril": lambda x: torch.tril(x[0]),
    "triu_diagonal": lambda x: x[0].triu(1),
    "movedim": lambda x: torch.movedim(x, 0, -1),
    "gather": lambda x: torch.gather(x, 2, torch.zeros_like(x, dtype=torch.long)),
    "view_as": lambda x: x.flatten().view_as(x),
    "reshape_as": lambda x: x[0].reshape_as(x[1].t()),
    "split_unpacked": lambda x: _split_unpacked(x),
    "squeeze_dims_tuple": lambda x: x[:1, :1].squeeze((0, 1)),
    "contiguous_channels_last": lambda x: x[None].contiguous(memory_format=torch.channels_last),
    "unsqueeze_inplace": lambda x: x.clone().unsqueeze_(0),
}
for _name, _fn in SHAPE.items():
    fn_case("shape", _name, _fn, F32(2, 3, 4))

fn_case("shape", "getitem_tensor_index", lambda x, i: x[i], F32(5, 3), I64(4, hi=5))
fn_case("shape", "getitem_tensor_index_dim1", lambda x, i: x[:, i], F32(3, 5), I64(2, hi=5))
fn_case("shape", "getitem_bool_mask", lambda x, m: x[m], F32(3, 4), BOOL(3, 4))
fn_case("shape", "getitem_bool_rows", lambda x, m: x[m], F32(4, 2), RAW(torch.tensor([True, False, True, True])))
fn_case("shape", "index_select", lambda x, i: torch.index_select(x, 1, i), F32(3, 5), I64(3, hi=5))
fn_case("shape", "index_select_method", lambda x, i: x.index_select(0, i), F32(3, 5), I64(4, hi=3))
fn_case("shape", "masked_select", lambda x, m: torch.masked_select(x, m), F32(3, 4), BOOL(3, 4))
fn_case("shape", "nonzero", lambda x: torch.nonzero(x), BOOL(3, 4))
fn_case("shape", "cat_mixed_dtypes", lambda x, y: torch.cat([x, y]), F32(2, 3), I64(1, 3))
fn_case("shape", "cat_with_empty", lambda x, y: torch.cat([x, y]), F32(2, 3), F32(0, 3))
fn_case("shape", "stack_int", lambda x, y: torch.stack([x, y], 1), I64(2, 3), I64(2, 3))
fn_case("shape", "where_single_arg", lambda x: torch.where(x), BOOL(3, 3))
fn_case("shape", "view_int64", lambda x: x.view(3, 2), I64(2, 3))
fn_case("shape", "permute_bool", lambda x: x.permute(1, 0), BOOL(2, 3))
fn_case("shape", "flip_uint8", lambda x: x.flip(0), U8(3, 2))

# creation and conversion
CREATE = {
    "arange_from_size": lambda x: torch.arange(x.size(1)),
    "arange_start_end_step": lambda x: torch.arange(1, x.shape[0] * 4, 3),
    "arange_float": lambda x: torch.arange(0.0, x.size(0), 0.5),
    "arange_dtype": lambda x: torch.arange(x.size(1), dtype=torch.float32),
    "arange_plus_x": lambda x: x + torch.arange(x.size(-1)),
    "zeros": lambda x: torch.zeros(x.size(0), 3),
    "arange_constant": lambda x: x * torch.arange(3),
    "full_constant": lambda x: x + torch.full((2, 3), 0.25),
    "zeros_constant_dtype": lambda x: torch.zeros(2, 3, dtype=torch.int64) + (x > 0),
    "zeros_shape": lambda x: torch.zeros(x.shape),
    "ones_dtype": lambda x: torch.ones(x.shape[0], dtype=torch.int64),
    "full": lambda x: torch.full((x.size(0), 2), 1.5),
    "full_int": lambda x: torch.full((2, x.size(1)), 7),
    "full_bool": lambda x: torch.full((x.size(0),), True),
    "zeros_like": lambda x: torch.zeros_like(x),
    "ones_like": lambda x: torch.ones_like(x),
    "ones_like_dtype": lambda x: torch.ones_like(x, dtype=torch.int64),
    "full_like": lambda x: torch.full_like(x, -2.5),
    "empty_like_filled": lambda x: torch.empty_like(x).fill_(3.0),
    "rand_like_shape_only": lambda x: torch.rand_like(x).shape,
    "new_zeros": lambda x: x.new_zeros(2, x.size(0)),
    "new_ones": lambda x: x.new_ones((3,)),
    "new_full": lambda x: x.new_full((2, 2), 4.0),
    "new_tensor_like_eye": lambda x: torch.eye(x.size(0)),
    "constant_tensor_attr": lambda x: x + torch.tensor([1.0, 2.0, 3.0]),
    "constant_zeros_attr": lambda x: x * torch.ones(3),
    "to_float64": lambda x: x.to(torch.float64),
    "to_dtype_kwarg": lambda x: x.to(dtype=torch.int64),
    "to_int32": lambda x: x.to(torch.int32),
    "to_bool": lambda x: x.to(torch.bool),
    "to_uint8": lambda x: (x.abs() * 10).to(torch.uint8),
    "to_device_str": lambda x: x.to("cpu"),
    "to_device": lambda x: x.to(torch.device("cpu")),
    "to_other": lambda x: x.to(torch.zeros(1, dtype=torch.float64)),
    "float": lambda x: (x > 0).float(),
    "double": lambda x: x.double(),
    "long": lambda x: (x * 3).long(),
    "int": lambda x: (x * 3).int(),
    "bool": lambda x: x.bool(),
    "half": lambda x: x.half(),
    "bfloat16": lambda x: x.bfloat16(),
    "type_dtype": lambda x: x.type(torch.int64),
    "type_as": lambda x: torch.arange(3).type_as(x) + x,
    "float_to_int_truncates": lambda x: (x * 2.7).to(torch.int64),
}
for _name, _fn in CREATE.items():
    fn_case("creation", _name, _fn, F32(2, 3))
fn_case("creation", "int64_to_float", lambda x: x.float() / 3, I64(2, 3))
fn_case("creation", "bool_to_long", lambda x: x.long(), BOOL(2, 3))
fn_case("creation", "uint8_to_float", lambda x: x.float() / 255, U8(2, 3))
fn_case("creation", "int32_to_int64", lambda x: x.long(), I32(2, 3))
fn_case("creation", "type_as_int", lambda x, y: x.type_as(y), F32(2, 3), I64(1))
fn_case("creation", "zeros_like_int32", lambda x: torch.zeros_like(x), I32(2, 3))

# --- nn functional -----------------------------------------------------------------------

params_case("nn_functional", "linear", lambda m, x: F.linear(x, m.w, m.b), (F32(2, 4),), w=(3, 4), b=(3,))
params_case("nn_functional", "linear_no_bias", lambda m, x: F.linear(x, m.w), (F32(2, 4),), w=(3, 4))
params_case("nn_functional", "linear_batched", lambda m, x: F.linear(x, m.w, m.b), (F32(2, 5, 4),),
            w=(3, 4), b=(3,))
params_case("nn_functional", "linear_1d_input", lambda m, x: F.linear(x, m.w, m.b), (F32(4),), w=(3, 4), b=(3,))
fn_case("nn_functional", "torch_C_nn_linear", lambda x, w, b: torch._C._nn.linear(x, w, b),
        F32(2, 4), F32(3, 4), F32(3))
fn_case("nn_functional", "matmul", lambda x, y: torch.matmul(x, y), F32(2, 3), F32(3, 4))
fn_case("nn_functional", "matmul_broadcast", lambda x, y: torch.matmul(x, y), F32(2, 1, 3, 4), F32(3, 4, 2))
fn_case("nn_functional", "matmul_1d_1d", lambda x, y: torch.matmul(x, y), F32(4), F32(4))
fn_case("nn_functional", "mm", lambda x, y: torch.mm(x, y), F32(2, 3), F32(3, 4))
fn_case("nn_functional", "mm_method", lambda x, y: x.mm(y), F32(2, 3), F32(3, 4))
fn_case("nn_functional", "bmm", lambda x, y: torch.bmm(x, y), F32(2, 2, 3), F32(2, 3, 4))
fn_case("nn_functional", "addmm", lambda b, x, y: torch.addmm(b, x, y), F32(4), F32(2, 3), F32(3, 4))
fn_case("nn_functional", "addmm_beta_alpha", lambda b, x, y: torch.addmm(b, x, y, beta=0.5, alpha=2.0),
        F32(2, 4), F32(2, 3), F32(3, 4))
fn_case("nn_functional", "einsum", lambda x, y: torch.einsum("bij,bjk->bik", x, y), F32(2, 2, 3), F32(2, 3, 4))
fn_case("nn_functional", "matmul_float64", lambda x, y: x @ y, F64(2, 3), F64(3, 2))

CONV = {
    "conv2d": (lambda m, x: F.conv2d(x, m.w, m.b), dict(w=(4, 3, 3, 3), b=(4,))),
    "conv2d_stride_padding": (lambda m, x: F.conv2d(x, m.w, m.b, stride=2, padding=1), dict(w=(4, 3, 3, 3), b=(4,))),
    "conv2d_asymmetric": (lambda m, x: F.conv2d(x, m.w, None, (2, 1), (1, 0)), dict(w=(2, 3, 3, 2))),
    "conv2d_groups": (lambda m, x: F.conv2d(x, m.w, m.b, groups=3), dict(w=(6, 1, 3, 3), b=(6,))),
    "conv2d_dilation": (lambda m, x: F.conv2d(x, m.w, dilation=2, padding=2), dict(w=(2, 3, 3, 3))),
    "conv2d_padding_same": (lambda m, x: F.conv2d(x, m.w, m.b, padding="same"), dict(w=(4, 3, 3, 3), b=(4,))),
    "conv2d_padding_same_even_kernel": (lambda m, x: F.conv2d(x, m.w, padding="same"), dict(w=(2, 3, 4, 2))),
    "conv2d_padding_valid": (lambda m, x: F.conv2d(x, m.w, padding="valid"), dict(w=(2, 3, 3, 3))),
    "conv2d_1x1": (lambda m, x: F.conv2d(x, m.w), dict(w=(5, 3, 1, 1))),
    "conv_transpose2d": (lambda m, x: F.conv_transpose2d(x, m.w, m.b), dict(w=(3, 2, 3, 3), b=(2,))),
    "conv_transpose2d_stride": (lambda m, x: F.conv_transpose2d(x, m.w, stride=2, padding=1, output_padding=1),
                                dict(w=(3, 2, 3, 3))),
    "conv_transpose2d_groups": (lambda m, x: F.conv_transpose2d(x, m.w, groups=3), dict(w=(3, 1, 2, 2))),
}
for _name, (_fn, _shapes) in CONV.items():
    params_case("nn_functional", _name, _fn, (F32(1, 3, 6, 5),), **_shapes)
params_case("nn_functional", "conv1d", lambda m, x: F.conv1d(x, m.w, m.b), (F32(2, 3, 8),), w=(4, 3, 3), b=(4,))
params_case("nn_functional", "conv1d_stride_groups_dilation",
            lambda m, x: F.conv1d(x, m.w, stride=2, padding=2, dilation=2, groups=3), (F32(1, 3, 9),), w=(6, 1, 3))
params_case("nn_functional", "conv1d_padding_same", lambda m, x: F.conv1d(x, m.w, padding="same"),
            (F32(1, 3, 7),), w=(2, 3, 4))

POOL = {
    "max_pool2d": lambda x: F.max_pool2d(x, 2),
    "max_pool2d_stride_padding": lambda x: F.max_pool2d(x, 3, stride=2, padding=1),
    "max_pool2d_ceil_mode": lambda x: F.max_pool2d(x, 2, ceil_mode=True),
    "max_pool2d_dilation": lambda x: F.max_pool2d(x, 2, stride=1, dilation=2),
    "max_pool2d_torch": lambda x: torch.max_pool2d(x, (2, 3)),
    "max_pool1d": lambda x: F.max_pool1d(x.flatten(2), 3),
    "avg_pool2d": lambda x: F.avg_pool2d(x, 2),
    "avg_pool2d_ceil_mode": lambda x: F.avg_pool2d(x, 2, ceil_mode=True),
    "avg_pool2d_padding_count_include_pad": lambda x: F.avg_pool2d(x, 3, stride=2, padding=1),
    "avg_pool2d_padding_exclude_pad": lambda x: F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False),
    "avg_pool2d_ceil_exclude_pad": lambda x: F.avg_pool2d(x, 2, 2, 1, ceil_mode=True, count_include_pad=False),
    "avg_pool2d_divisor_override": lambda x: F.avg_pool2d(x, 2, divisor_override=3),
    "avg_pool1d": lambda x: F.avg_pool1d(x.flatten(2), 2),
    "adaptive_avg_pool2d_1": lambda x: F.adaptive_avg_pool2d(x, 1),
    "adaptive_avg_pool2d_uneven": lambda x: F.adaptive_avg_pool2d(x, (3, 2)),
    "adaptive_avg_pool2d_none": lambda x: F.adaptive_avg_pool2d(x, (None, 2)),
    "adaptive_max_pool2d": lambda x: F.adaptive_max_pool2d(x, (2, 3)),
    "adaptive_max_pool2d_indices": lambda x: F.adaptive_max_pool2d(x, 2, return_indices=True),
    "adaptive_avg_pool1d": lambda x: F.adaptive_avg_pool1d(x.flatten(2), 4),
    "interpolate_nearest_scale": lambda x: F.interpolate(x, scale_factor=2),
    "interpolate_nearest_size": lambda x: F.interpolate(x, size=(7, 4), mode="nearest"),
    "interpolate_nearest_fractional_scale": lambda x: F.interpolate(x, scale_factor=1.5, mode="nearest"),
    "interpolate_bilinear": lambda x: F.interpolate(x, size=(8, 9), mode="bilinear"),
    "interpolate_bilinear_align_corners": lambda x: F.interpolate(x, scale_factor=2, mode="bilinear",
                                                                  align_corners=True),
    "interpolate_bilinear_downsample": lambda x: F.interpolate(x, size=(3, 2), mode="bilinear", align_corners=False),
    "upsample_nearest_functional": lambda x: F.upsample(x, scale_factor=2, mode="nearest"),
    "dropout_eval": lambda x: F.dropout(x, 0.5, training=False),
    "dropout2d_eval": lambda x: F.dropout2d(x, 0.3, False),
    "normalize": lambda x: F.normalize(x),
    "normalize_dim_p": lambda x: F.normalize(x, p=1.0, dim=-1),
    "pixel_shuffle": lambda x: F.pixel_shuffle(x[:, :4], 2),
    "softmax_2d_channels": lambda x: F.softmax(x, dim=1),
    "batch_norm_no_stats_affine": lambda x: F.batch_norm(x, torch.zeros(4), torch.ones(4)),
    "interpolate_nearest_exact": lambda x: F.interpolate(x, size=(4, 7), mode="nearest-exact"),
    "cosine_similarity": lambda x: F.cosine_similarity(x, x.flip(1), dim=1),
    "mse_loss": lambda x: F.mse_loss(x, x.flip(-1)),
}
for _name, _fn in POOL.items():
    fn_case("nn_functional", _name, _fn, F32(1, 4, 6, 5))

params_case("nn_functional", "batch_norm", lambda m, x: F.batch_norm(x, m.mean, m.var.abs() + 0.5, m.w, m.b, False),
            (F32(2, 3, 4, 4),), mean=(3,), var=(3,), w=(3,), b=(3,))
params_case("nn_functional", "batch_norm_eps", lambda m, x: F.batch_norm(x, m.mean, m.var.abs() + 0.5, eps=1e-3),
            (F32(2, 3, 5),), mean=(3,), var=(3,))
params_case("nn_functional", "layer_norm", lambda m, x: F.layer_norm(x, (4,), m.w, m.b), (F32(2, 3, 4),),
            w=(4,), b=(4,))
params_case("nn_functional", "layer_norm_2d_shape", lambda m, x: F.layer_norm(x, x.shape[-2:], eps=1e-6),
            (F32(2, 3, 4),))
params_case("nn_functional", "group_norm", lambda m, x: F.group_norm(x, 2, m.w, m.b), (F32(2, 4, 3, 3),),
            w=(4,), b=(4,))
params_case("nn_functional", "embedding", lambda m, i: F.embedding(i, m.w), (I64(2, 3, hi=6),), w=(6, 4))
params_case("nn_functional", "embedding_padding_idx", lambda m, i: F.embedding(i, m.w, padding_idx=0),
            (I64(5, hi=6),), w=(6, 4))
fn_case("nn_functional", "one_hot", lambda i: F.one_hot(i, 5), I64(2, 3, hi=5))
params_case("nn_functional", "prelu", lambda m, x: F.prelu(x, m.w), (F32(2, 3, 4),), w=(3,))
fn_case("nn_functional", "attention_by_hand",
        lambda q, k, v: torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(q.size(-1)), dim=-1) @ v,
        F32(2, 3, 4), F32(2, 5, 4), F32(2, 5, 4))
fn_case("nn_functional", "scaled_dot_product_attention",
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v), F32(1, 2, 3, 4), F32(1, 2, 5, 4), F32(1, 2, 5, 4))
fn_case("nn_functional", "scaled_dot_product_attention_causal",
        lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
        F32(1, 2, 4, 4), F32(1, 2, 4, 4), F32(1, 2, 4, 4))


@case("nn_functional", "torch_assert", F32(2, 3, 4))
class TorchAssert(nn.Module):
    def forward(self, x):
        torch._assert(x.shape[1] == 3, "expected 3 channels")
        return x * 2


@case("nn_functional", "torch_assert_dim", F32(2, 3))
class TorchAssertDim(nn.Module):
    def forward(self, x):
        torch._assert(x.dim() == 2, "expected a matrix")
        return x.relu()


@case("nn_functional", "stochastic_depth", F32(2, 3, 4))
class StochasticDepthFunction(nn.Module):
    def forward(self, x):
        return x + stochastic_depth(x * 2, 0.2, "row", self.training)


@case("nn_functional", "stochastic_depth_module", F32(2, 3, 4))
class StochasticDepthModule(nn.Module):
    def __init__(self):
        super().__init__()
        self.sd = StochasticDepth(0.5, "batch")

    def forward(self, x):
        return self.sd(x.sin())


@case("nn_functional", "dropout_self_training", F32(2, 3))
class DropoutSelfTraining(nn.Module):
    def forward(self, x):
        return F.dropout(x, p=0.2, training=self.training) + 1


# --- leaf modules ----------------------------------------------------------------------------

X4 = F32(2, 4)
IMG = F32(1, 3, 6, 6)
LEAVES = {
    "linear": (lambda: nn.Linear(4, 3), X4),
    "linear_no_bias": (lambda: nn.Linear(4, 3, bias=False), X4),
    "linear_3d_input": (lambda: nn.Linear(4, 2), F32(2, 3, 4)),
    "non_dynamically_quantizable_linear": (lambda: nn.modules.linear.NonDynamicallyQuantizableLinear(4, 3), X4),
    "bilinear": (lambda: _Bilinear(), X4),
    "conv1d": (lambda: nn.Conv1d(3, 4, 3, padding=1), F32(2, 3, 7)),
    "conv1d_stride_no_bias": (lambda: nn.Conv1d(3, 2, 2, stride=2, bias=False), F32(1, 3, 8)),
    "conv2d": (lambda: nn.Conv2d(3, 4, 3), IMG),
    "conv2d_stride_padding_no_bias": (lambda: nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False), IMG),
    "conv2d_depthwise": (lambda: nn.Conv2d(3, 3, 3, padding=1, groups=3), IMG),
    "conv2d_groups_dilation": (lambda: nn.Conv2d(3, 6, (3, 2), dilation=(2, 1), groups=3), IMG),
    "conv2d_padding_same": (lambda: nn.Conv2d(3, 2, 4, padding="same"), IMG),
    "conv2d_padding_reflect": (lambda: nn.Conv2d(3, 2, 3, padding=1, padding_mode="reflect"), IMG),
    "conv_transpose2d": (lambda: nn.ConvTranspose2d(3, 2, 3), IMG),
    "conv_transpose2d_stride_output_padding": (lambda: nn.ConvTranspose2d(3, 2, 3, stride=2, padding=1,
                                                                          output_padding=1), IMG),
    "batch_norm1d": (lambda: nn.BatchNorm1d(4), X4),
    "batch_norm1d_3d_input": (lambda: nn.BatchNorm1d(3), F32(2, 3, 5)),
    "batch_norm2d": (lambda: nn.BatchNorm2d(3), IMG),
    "batch_norm2d_no_affine": (lambda: nn.BatchNorm2d(3, affine=False), IMG),
    "batch_norm2d_eps_momentum": (lambda: nn.BatchNorm2d(3, eps=1e-3, momentum=0.01), IMG),
    "layer_norm": (lambda: nn.LayerNorm(4), F32(2, 3, 4)),
    "layer_norm_no_affine": (lambda: nn.LayerNorm(4, elementwise_affine=False), F32(2, 3, 4)),
    "layer_norm_2d_shape": (lambda: nn.LayerNorm((3, 4), eps=1e-6), F32(2, 3, 4)),
    "group_norm": (lambda: nn.GroupNorm(3, 6), F32(2, 6, 3, 3)),
    "group_norm_no_affine": (lambda: nn.GroupNorm(2, 4, affine=False), F32(2, 4, 5)),
    "dropout": (lambda: nn.Dropout(0.5), X4),
    "dropout2d": (lambda: nn.Dropout2d(0.2), IMG),
    "identity": (lambda: nn.Identity(), X4),
    "flatten": (lambda: nn.Flatten(), IMG),
    "flatten_range": (lambda: nn.Flatten(0, 2), IMG),
    "unflatten": (lambda: nn.Unflatten(1, (2, 2)), X4),
    "relu": (lambda: nn.ReLU(), X4),
    "relu_inplace": (lambda: nn.ReLU(inplace=True), X4),
    "relu6": (lambda: nn.ReLU6(), RAW(torch.tensor([[-1.0, 3.0, 6.5, 7.0]]))),
    "gelu": (lambda: nn.GELU(), X4),
    "gelu_tanh": (lambda: nn.GELU(approximate="tanh"), X4),
    "silu": (lambda: nn.SiLU(), X4),
    "hardswish": (lambda: nn.Hardswish(), RAW(torch.tensor([[-4.0, -1.0, 0.5, 2.0, 4.0]]))),
    "hardsigmoid": (lambda: nn.Hardsigmoid(), RAW(torch.tensor([[-4.0, -1.0, 0.5, 2.0, 4.0]]))),
    "hardtanh": (lambda: nn.Hardtanh(-2.0, 2.0), F32(2, 4)),
    "sigmoid": (lambda: nn.Sigmoid(), X4),
    "tanh": (lambda: nn.Tanh(), X4),
    "softmax": (lambda: nn.Softmax(dim=-1), X4),
    "softmax_dim0": (lambda: nn.Softmax(0), X4),
    "log_softmax": (lambda: nn.LogSoftmax(dim=1), X4),
    "leaky_relu": (lambda: nn.LeakyReLU(0.1), X4),
    "elu": (lambda: nn.ELU(alpha=0.7), X4),
    "prelu": (lambda: nn.PReLU(), X4),
    "softplus": (lambda: nn.Softplus(), X4),
    "mish": (lambda: nn.Mish(), X4),
    "max_pool2d": (lambda: nn.MaxPool2d(2), IMG),
    "max_pool2d_ceil_mode": (lambda: nn.MaxPool2d(3, 2, ceil_mode=True), F32(1, 2, 7, 7)),
    "max_pool2d_padding": (lambda: nn.MaxPool2d(3, stride=2, padding=1), IMG),
    "max_pool1d": (lambda: nn.MaxPool1d(2), F32(1, 3, 7)),
    "avg_pool2d": (lambda: nn.AvgPool2d(2), IMG),
    "avg_pool2d_ceil_count_include_pad": (lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True), F32(1, 2, 7, 7)),
    "avg_pool2d_exclude_pad": (lambda: nn.AvgPool2d(3, 2, 1, count_include_pad=False), F32(1, 2, 7, 7)),
    "avg_pool1d": (lambda: nn.AvgPool1d(3, stride=2), F32(1, 3, 7)),
    "adaptive_avg_pool2d": (lambda: nn.AdaptiveAvgPool2d((1, 1)), IMG),
    "adaptive_avg_pool2d_uneven": (lambda: nn.AdaptiveAvgPool2d(4), F32(1, 2, 7, 5)),
    "adaptive_max_pool2d": (lambda: nn.AdaptiveMaxPool2d(1), IMG),
    "adaptive_max_pool2d_uneven": (lambda: nn.AdaptiveMaxPool2d((3, 2)), F32(1, 2, 7, 5)),
    "adaptive_avg_pool1d": (lambda: nn.AdaptiveAvgPool1d(3), F32(1, 3, 7)),
    "embedding": (lambda: nn.Embedding(10, 4), I64(2, 3)),
    "embedding_padding_idx": (lambda: nn.Embedding(10, 3, padding_idx=1), I64(5)),
    "upsample_nearest": (lambda: nn.Upsample(scale_factor=2), IMG),
    "upsample_nearest_size": (lambda: nn.Upsample(size=(5, 9)), IMG),
    "upsample_bilinear": (lambda: nn.Upsample(scale_factor=2, mode="bilinear"), IMG),
    "upsample_bilinear_align_corners": (lambda: nn.Upsample(size=(4, 9), mode="bilinear", align_corners=True), IMG),
    "upsampling_nearest2d": (lambda: nn.UpsamplingNearest2d(scale_factor=2), IMG),
    "pixel_shuffle": (lambda: nn.PixelShuffle(2), F32(1, 8, 2, 3)),
    "zero_pad2d": (lambda: nn.ZeroPad2d((1, 0, 2, 1)), IMG),
    "constant_pad2d": (lambda: nn.ConstantPad2d(1, 0.5), IMG),
    "channel_shuffle_by_hand": (lambda: _ChannelShuffle(), F32(1, 4, 2, 2)),
}


class _Bilinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.b = nn.Bilinear(4, 4, 2)

    def forward(self, x):
        return self.b(x, x.flip(1))


class _ChannelShuffle(nn.Module):
    """What torchvision's shufflenet does (view, transpose, contiguous, view) in a module."""

    def forward(self, x):
        b, c, h, w = x.size()
        return x.view(b, 2, c // 2, h, w).transpose(1, 2).contiguous().view(b, -1, h, w)


for _name, (_factory, _input) in LEAVES.items():
    leaf_case("modules", _name, _factory, _input)


@case("modules", "multihead_attention", F32(2, 3, 8))
class MHA(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x):
        return self.attn(x, x, x)


@case("modules", "multihead_attention_no_weights", F32(3, 2, 8), F32(4, 2, 8))
class MHANoWeights(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 4)

    def forward(self, q, kv):
        out, _ = self.attn(q, kv, kv, need_weights=False)  # unpacking a Proxy: 1.13 on Python 3.11 cannot
        return out


@case("modules", "multihead_attention_index_output", F32(3, 2, 8), F32(4, 2, 8))
class MHAIndexOutput(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 4)

    def forward(self, q, kv):
        return self.attn(q, kv, kv, need_weights=False)[0]


@case("modules", "multihead_attention_getitem", F32(2, 3, 8), BOOL(2, 3))
class MHAMask(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True, kdim=8, vdim=8)

    def forward(self, x, pad):
        return self.attn(x, x, x, key_padding_mask=pad & (torch.arange(3) > 0), need_weights=False)[0]


@case("modules", "transformer_encoder_layer", F32(2, 3, 8))
class EncoderLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, batch_first=True)

    def forward(self, x):
        return self.layer(x)


@case("modules", "sequential_traced_through", F32(2, 4))
class SequentialModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Sequential(nn.Linear(8, 3), nn.Tanh()))

    def forward(self, x):
        return self.body(x)


@case("modules", "sequential_root", F32(2, 4))
def _sequential_root():
    return nn.Sequential(nn.Linear(4, 4), nn.GELU(), nn.Linear(4, 2))


@case("modules", "module_list_and_dict", F32(2, 4))
class ListAndDict(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(4, 4) for _ in range(2)])
        self.heads = nn.ModuleDict({"a": nn.Linear(4, 2), "b": nn.Linear(4, 1)})

    def forward(self, x):
        for layer in self.layers:
            x = torch.relu(layer(x))
        return self.heads["a"](x), self.heads["b"](x)


@case("modules", "same_module_twice", F32(2, 4))
class SameModuleTwice(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return self.fc(self.fc(x))


class _Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += x
        return self.relu(out)


@case("modules", "residual_blocks", F32(1, 4, 5, 5))
class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer1 = nn.Sequential(_Block(4), _Block(4))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.layer1(x)), 1))


# --- torchvision's building blocks, small: each zoo model's pieces on tiny shapes -------------

def _tv(path):
    """A torchvision attribute by dotted path, imported when the case is built."""
    import importlib
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _bn(eps=1e-5, momentum=0.1):
    return lambda c: nn.BatchNorm2d(c, eps=eps, momentum=momentum)


TV_IMG = F32(1, 8, 8, 8)
TV_BLOCKS = {
    "resnet_basic_block": (lambda: _tv("torchvision.models.resnet.BasicBlock")(8, 8), TV_IMG),
    "resnet_basic_block_downsample": (lambda: _tv("torchvision.models.resnet.BasicBlock")(
        8, 16, 2, nn.Sequential(nn.Conv2d(8, 16, 1, 2, bias=False), nn.BatchNorm2d(16))), TV_IMG),
    "resnet_bottleneck": (lambda: _tv("torchvision.models.resnet.Bottleneck")(8, 2), TV_IMG),
    "mobilenet_v2_inverted_residual": (lambda: _tv("torchvision.models.mobilenetv2.InvertedResidual")(8, 8, 1, 6),
                                       TV_IMG),
    "mobilenet_v3_inverted_residual_se_hardswish": (lambda: _tv("torchvision.models.mobilenetv3.InvertedResidual")(
        _tv("torchvision.models.mobilenetv3.InvertedResidualConfig")(8, 3, 16, 8, True, "HS", 1, 1, 1.0),
        _bn(0.001, 0.01)), TV_IMG),
    "squeeze_excitation": (lambda: _tv("torchvision.ops.misc.SqueezeExcitation")(8, 4), TV_IMG),
    "conv2d_norm_activation": (lambda: _tv("torchvision.ops.misc.Conv2dNormActivation")(
        8, 4, 3, stride=2, activation_layer=nn.Hardswish), TV_IMG),
    "squeezenet_fire": (lambda: _tv("torchvision.models.squeezenet.Fire")(8, 4, 6, 6), TV_IMG),
    "shufflenet_v2_inverted_residual": (lambda: _tv("torchvision.models.shufflenetv2.InvertedResidual")(8, 8, 1),
                                        TV_IMG),
    "shufflenet_v2_inverted_residual_stride2": (lambda: _tv("torchvision.models.shufflenetv2.InvertedResidual")(
        8, 16, 2), TV_IMG),
    "densenet_dense_block": (lambda: _tv("torchvision.models.densenet._DenseBlock")(2, 8, 2, 4, 0.0), TV_IMG),
    "densenet_transition": (lambda: _tv("torchvision.models.densenet._Transition")(8, 4), TV_IMG),
    "googlenet_inception": (lambda: _tv("torchvision.models.googlenet.Inception")(8, 4, 4, 6, 2, 4, 4), TV_IMG),
    "mnasnet_inverted_residual": (lambda: _tv("torchvision.models.mnasnet._InvertedResidual")(8, 8, 5, 1, 3),
                                  TV_IMG),
    "efficientnet_mbconv": (lambda: _tv("torchvision.models.efficientnet.MBConv")(
        _tv("torchvision.models.efficientnet.MBConvConfig")(4, 3, 1, 8, 8, 1), 0.2, _bn(0.001)), TV_IMG),
    "regnet_res_bottleneck_se": (lambda: _tv("torchvision.models.regnet.ResBottleneckBlock")(
        8, 16, 2, nn.BatchNorm2d, nn.ReLU, 8, 1.0, 0.25), TV_IMG),
    "convnext_block": (lambda: _tv("torchvision.models.convnext.CNBlock")(8, 1e-6, 0.1), TV_IMG),
    "swin_block": (lambda: _tv("torchvision.models.swin_transformer.SwinTransformerBlock")(8, 2, [4, 4], [2, 2]),
                   F32(1, 6, 6, 8)),
    "swin_patch_merging": (lambda: _tv("torchvision.models.swin_transformer.PatchMerging")(8), F32(1, 6, 6, 8)),
    "vit_encoder_block": (lambda: _tv("torchvision.models.vision_transformer.EncoderBlock")(2, 8, 16, 0.0, 0.0),
                          F32(2, 5, 8)),
}
for _name, (_factory, _input) in TV_BLOCKS.items():
    CASES.append(Case("torchvision_blocks", _name, _factory, (_input,)))


# --- module state: parameters, buffers and constants -----------------------------------------

@case("module_state", "parameter_get_attr", F32(2, 3))
class ParameterGetAttr(nn.Module):
    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.randn(3))

    def forward(self, x):
        return x * self.scale


@case("module_state", "buffer", F32(2, 3))
class Buffer(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("offset", torch.randn(3))

    def forward(self, x):
        return x - self.offset


@case("module_state", "non_persistent_buffer", F32(2, 3))
class NonPersistentBuffer(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("offset", torch.randn(3), persistent=False)

    def forward(self, x):
        return x + self.offset


@case("module_state", "int64_buffer", F32(2, 3))
class Int64Buffer(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("index", torch.tensor([2, 0, 1]))

    def forward(self, x):
        return x[:, self.index]


@case("module_state", "bool_buffer", F32(2, 3))
class BoolBuffer(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mask", torch.tensor([True, False, True]))

    def forward(self, x):
        return x.masked_fill(self.mask, 0.0)


@case("module_state", "nested_submodule_parameter", F32(2, 3))
class NestedParameter(nn.Module):
    def __init__(self):
        super().__init__()
        self.inner = nn.Module()
        self.inner.deep = nn.Module()
        self.inner.deep.w = nn.Parameter(torch.randn(3, 3))

    def forward(self, x):
        return x @ self.inner.deep.w


@case("module_state", "leaf_weight_get_attr", F32(2, 4))
class LeafWeight(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        return F.linear(x, self.fc.weight * 2, self.fc.bias)


@case("module_state", "shared_parameter", F32(2, 4))
class SharedParameter(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4, bias=False)
        self.b = nn.Linear(4, 4, bias=False)
        self.b.weight = self.a.weight

    def forward(self, x):
        return self.b(self.a(x))


@case("module_state", "tensor_constant", F32(2, 3))
class TensorConstant(nn.Module):
    def __init__(self):
        super().__init__()
        self.table = torch.randn(3)  # a plain tensor attribute: fx makes it _tensor_constant0

    def forward(self, x):
        return x * self.table


@case("module_state", "python_attributes_folded", F32(2, 3))
class PythonAttributes(nn.Module):
    def __init__(self):
        super().__init__()
        self.factor, self.dims, self.eps = 3, (1, 0), 1e-5

    def forward(self, x):
        return (x * self.factor).permute(self.dims) + self.eps


@case("module_state", "digit_named_children", F32(2, 4))
def _digit_named_children():
    return nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.ReLU(), nn.Linear(4, 2)))


@case("module_state", "float64_model", F64(2, 4))
def _float64_model():
    return nn.Sequential(nn.Linear(4, 3), nn.Tanh()).double()


@case("module_state", "float16_buffer", F32(2, 3))
class Float16Buffer(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("w", torch.randn(3).half())

    def forward(self, x):
        return x * self.w.float()


@case("module_state", "bfloat16_parameter", F32(2, 3))
class BFloat16Parameter(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(3, 3).bfloat16())

    def forward(self, x):
        return x @ self.w.to(torch.float32)


@case("module_state", "float16_linear_weights", F32(2, 4))
class Float16LinearWeights(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("w", torch.randn(3, 4).half())
        self.register_buffer("b", torch.randn(3).half())

    def forward(self, x):
        return F.linear(x, self.w.float(), self.b.float())


@case("module_state", "int32_buffer", F32(2, 3))
class Int32Buffer(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("k", torch.tensor([1, 2, 3], dtype=torch.int32))

    def forward(self, x):
        return x * self.k


@case("module_state", "uint8_buffer", F32(2, 3))
class UInt8Buffer(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("lut", torch.tensor([0, 128, 255], dtype=torch.uint8))

    def forward(self, x):
        return x + self.lut.float() / 255


@case("module_state", "strided_view_parameter", F32(2, 3))
class StridedView(nn.Module):
    def __init__(self):
        super().__init__()
        base = torch.randn(3, 3)
        self.register_buffer("base", base)
        self.register_buffer("col", base[:, 1])  # a view of another buffer's storage, non-contiguous

    def forward(self, x):
        return x * self.col + self.base[0]


# --- dtypes in and out -------------------------------------------------------------------------

DTYPES = {
    "float64_in_out": (lambda x: x * 2 + 1, F64(2, 3)),
    "int64_in_out": (lambda x: x * 2 + 1, I64(2, 3)),
    "int32_in_out": (lambda x: x * 2 + 1, I32(2, 3)),
    "bool_in_out": (lambda x: ~x, BOOL(2, 3)),
    "uint8_in_out": (lambda x: x + 1, U8(2, 3)),
    "int32_relu": (lambda x: torch.relu(x), I32(2, 3)),
    "float64_softmax": (lambda x: torch.softmax(x, -1), F64(2, 3)),
    "int64_to_float16": (lambda x: x.half(), I64(2, 3)),
    "float16_roundtrip": (lambda x: x.half().float(), F32(2, 3)),
    "bool_where_int": (lambda x: torch.where(x, 1, 0), BOOL(2, 3)),
    "int64_max": (lambda x: x.max(), I64(2, 3)),
    "uint8_compare": (lambda x: x > 100, U8(2, 3)),
}
for _name, (_fn, _input) in DTYPES.items():
    fn_case("dtypes", _name, _fn, _input)
fn_case("dtypes", "three_dtypes_in", lambda a, b, c: a * b.float() + c.float(), F32(2, 3), I64(2, 3), BOOL(2, 3))
fn_case("dtypes", "six_dtypes_out", lambda x: (x, x.double(), x.long(), x.int(), x > 0, (x.abs() * 9).to(torch.uint8)),
        F32(2, 3))

# --- structured outputs and signatures ------------------------------------------------------------

STRUCTURES = {
    "tuple": lambda x: (x + 1, x * 2),
    "list": lambda x: [x.sin(), x.cos(), x],
    "dict": lambda x: {"sum": x.sum(), "relu": x.relu()},
    "nested": lambda x: {"a": (x, [x + 1, {"deep": x * 3}]), "b": [(x.sum(),)]},
    "tuple_with_int": lambda x: (x, x.shape[0]),
    "tuple_with_float": lambda x: (x, 0.5),
    "tuple_with_bool": lambda x: (x, True),
    "tuple_with_none": lambda x: (x, None),
    "tuple_with_str": lambda x: (x, "tag"),
    "dict_of_sizes": lambda x: {"shape": x.shape, "n": x.numel()},
    "single_element_tuple": lambda x: (x.exp(),),
    "empty_tuple_and_tensor": lambda x: ((), x),
    "input_returned": lambda x: x,
    "same_value_twice": lambda x: (x.relu(), x.relu()),
    "constant_only": lambda x: 3,
}
for _name, _fn in STRUCTURES.items():
    fn_case("structures", _name, _fn, F32(2, 3))
fn_case("structures", "two_inputs", lambda x, y: x * y, F32(2, 3), F32(2, 3))
fn_case("structures", "unused_input", lambda x, y: x + 1, F32(2, 3), F32(2, 3))
fn_case("structures", "many_inputs", lambda a, b, c, d, e: a + b - c * d / (e.abs() + 1),
        F32(2), F32(2), F32(2), F32(2), F32(2))


class Pair(NamedTuple):
    first: torch.Tensor
    second: torch.Tensor


@case("signatures", "annotated", F32(2, 3))
class Annotated(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.relu()


@case("signatures", "annotated_default_float", F32(2, 3))
class AnnotatedDefaultFloat(nn.Module):
    def forward(self, x: torch.Tensor, scale: float = 2.0) -> torch.Tensor:
        return x * scale


@case("signatures", "annotated_default_int_and_bool", F32(2, 3))
class AnnotatedDefaults(nn.Module):
    def forward(self, x: torch.Tensor, dim: int = 1, keepdim: bool = False) -> torch.Tensor:
        return x.sum(dim, keepdim=keepdim)


@case("signatures", "annotated_tuple_return", F32(2, 3))
class AnnotatedTuple(nn.Module):
    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        return x + 1, x - 1


@case("signatures", "annotated_dict_return", F32(2, 3))
class AnnotatedDict(nn.Module):
    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        return {"out": x * 2}


@case("signatures", "annotated_list_return", F32(2, 3))
class AnnotatedList(nn.Module):
    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        return [x, x.t()]


@case("signatures", "annotated_optional_default_none", F32(2, 3))
class AnnotatedOptional(nn.Module):
    def forward(self, x: torch.Tensor, bias: Optional[torch.Tensor] = None) -> torch.Tensor:
        return x * 3


@case("signatures", "annotated_namedtuple_return", F32(2, 3))
class AnnotatedNamedTuple(nn.Module):
    def forward(self, x: torch.Tensor) -> Pair:  # as torchvision's GoogLeNetOutputs: annotation only
        return x.sin(), x.cos()


@case("signatures", "annotated_two_inputs", F32(2, 3), I64(2, 3))
class AnnotatedTwo(nn.Module):
    def forward(self, x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        return x * idx


@case("signatures", "varargs", F32(2, 3), F32(2, 3))
class VarArgs(nn.Module):
    def forward(self, *args):
        return args[0] + args[1]


@case("signatures", "keyword_only", F32(2, 3), F32(2, 3))
class KeywordOnly(nn.Module):
    def forward(self, x, *, y):
        return x - y


@case("signatures", "python_keyword_names", F32(2, 3), F32(2, 3))
class KeywordNames(nn.Module):
    def forward(self, input, lambda_):
        sum = input + lambda_  # fx renames values that shadow builtins
        max = torch.max(sum)
        return sum * max


@case("signatures", "many_same_op", F32(2, 3))
class ManySameOp(nn.Module):
    def forward(self, x):
        for _ in range(12):
            x = torch.sin(x)
        return x


fn_case("signatures", "function_root", lambda x: torch.relu(x) + 1, F32(2, 3))


def _conditional_on_value(x):
    if x.sum() > 0:  # data-dependent control flow: fx cannot trace it
        return x
    return -x


fn_case("signatures", "control_flow_on_tensor", _conditional_on_value, F32(2, 3),
        note="expected to fail tracing: data-dependent control flow")


def families():
    seen = []
    for c in CASES:
        if c.family not in seen:
            seen.append(c.family)
    return seen


def check_unique():
    names = [f"{c.family}/{c.name}" for c in CASES]
    dup = {n for n in names if names.count(n) > 1}
    assert not dup, f"duplicate cases: {sorted(dup)}"


check_unique()
