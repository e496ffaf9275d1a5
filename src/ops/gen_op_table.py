#!/usr/bin/env python3
"""The op table generator: validates the YAML op families and writes their C++.

    gen_op_table.py --source-root ROOT --out-dir DIR family.yaml [family.yaml ...]

For each `<dir>/<family>.yaml` it writes `DIR/<family>_table.inc`, which `<dir>/<family>.cpp`
includes as its last line (inside its namespace), and `DIR/op_table.cpp`, the list of all
families. The format is docs/design.md sections 5 and 6. Every problem is reported as
`file:line: entry 'name': what is wrong`, all at once, and the exit status is 1.
"""

import argparse
import ast
import os
import re
import string
import sys

import yaml

# The namespace the family files of a source directory put their kernels in.
NAMESPACES = {"src/ops": "fxpack::ops", "src/compile": "fxpack::detail"}

OP_KEYS = {"aten", "python", "function", "method", "operator", "reflected", "numbers_as_tensors", "kernel",
           "functor", "promotion", "purity", "fusion", "make_fx", "saves_result", "metadata", "assertion",
           "example"}
MODULE_KEYS = {"module", "classes", "constructor", "attributes", "parameters", "buffers", "inputs", "init", "call",
               "forward", "make_fx", "container", "extra_repr", "extra_repr_fn", "validate", "private_attributes",
               "example"}
PROMOTIONS = {"promote": "Promote", "promote_float": "PromoteFloat", "bool": "Bool", "keep": "Keep",
              "index": "Index", "custom": "Custom"}
PURITIES = {"pure": "Pure", "view": "View", "inplace": "InPlace", "nondeterministic": "Nondeterministic",
            "side_effect": "SideEffect"}
FUSIONS = {"unary": "Unary", "binary": "Binary"}
UNARY_OPERATORS = {"operator.neg", "operator.pos", "operator.invert", "operator.not_", "operator.abs"}
BINARY_OPERATORS = {"operator." + n for n in (
    "add", "sub", "mul", "truediv", "floordiv", "mod", "pow", "matmul", "and_", "or_", "xor", "lshift", "rshift",
    "lt", "le", "eq", "ne", "gt", "ge", "getitem", "iadd", "isub", "imul", "itruediv", "ifloordiv", "imod", "ipow",
    "imatmul", "iand", "ior", "ixor", "ilshift", "irshift")}
BASE_TYPES = {"Tensor", "Scalar", "int", "SymInt", "float", "bool", "str", "ScalarType", "Layout", "Device",
              "MemoryFormat", "Any", "Callable"}
ENUM_DEFAULTS = {"contiguous_format": "MemoryFormat", "preserve_format": "MemoryFormat",
                 "channels_last": "MemoryFormat", "strided": "Layout", "float": "ScalarType",
                 "float32": "ScalarType", "double": "ScalarType", "float64": "ScalarType", "long": "ScalarType",
                 "int64": "ScalarType", "bool": "ScalarType", "uint8": "ScalarType"}
TENSOR_FACTORIES = {"randn", "rand", "randint", "ones", "zeros", "tensor"}
EXAMPLE_CALLS = TENSOR_FACTORIES | {"slice"}
CPP_NAME = re.compile(r"^(::)?[A-Za-z_][A-Za-z0-9_]*(::[A-Za-z_][A-Za-z0-9_]*)*(<[A-Za-z0-9_:, <>]*>)?$")
DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$")
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Problem(Exception):
    pass


# ---- YAML with line numbers ------------------------------------------------------------------

class LineLoader(yaml.SafeLoader):
    pass


def _mapping_with_line(loader, node):
    m = loader.construct_mapping(node, deep=True)
    m["__line__"] = node.start_mark.line + 1
    return m


def _no_duplicate_keys(loader, node):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, "key '%s' appears twice" % key, key_node.start_mark)
        seen.add(key)
    return _mapping_with_line(loader, node)


LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicate_keys)


# ---- Schemas (the grammar of src/schema.cpp) ------------------------------------------------

class Type:
    def __init__(self, base, optional=False, is_list=False, size=0, element_optional=False):
        self.base, self.optional, self.list, self.size = base, optional, is_list, size
        self.element_optional = element_optional

    def __str__(self):
        s = self.base + ("?" if self.element_optional else "")
        if self.list:
            s += "[%d]" % self.size if self.size else "[]"
        return s + ("?" if self.optional else "")


class Param:
    def __init__(self, type_, name, default, has_default, kw_only):
        self.type, self.name, self.default, self.has_default, self.kw_only = type_, name, default, has_default, kw_only


class Schema:
    pass


class SchemaParser:
    TOKEN = re.compile(r"\s*(->|[A-Za-z_][A-Za-z0-9_]*|-?\d+(\.\d*)?([eE][-+]?\d+)?|\"[^\"]*\"|'[^']*'|\S)")

    def __init__(self, text):
        self.text = text
        self.tokens = []
        pos = 0
        text = text.rstrip()
        while pos < len(text):
            m = self.TOKEN.match(text, pos)
            if not m:
                raise Problem("schema '%s': cannot read it at column %d" % (self.text, pos + 1))
            self.tokens.append(m.group(1))
            pos = m.end()
        self.i = 0
        self.aliases_params, self.aliases_returns = set(), set()
        self.first_writes = False

    def fail(self, what):
        near = " ".join(self.tokens[self.i:self.i + 3]) or "the end"
        raise Problem("schema '%s': %s (near '%s')" % (self.text, what, near))

    def peek(self, tok=None):
        if self.i >= len(self.tokens):
            return None if tok is None else False
        return self.tokens[self.i] if tok is None else self.tokens[self.i] == tok

    def take(self):
        if self.i >= len(self.tokens):
            self.fail("unexpected end")
        self.i += 1
        return self.tokens[self.i - 1]

    def expect(self, tok):
        if not self.peek(tok):
            self.fail("expected '%s'" % tok)
        self.take()

    def ident(self):
        t = self.take()
        if not IDENT.match(t):
            self.i -= 1
            self.fail("expected a name")
        return t

    def alias(self):
        self.expect("(")
        body = []
        while not self.peek(")"):
            body.append(self.take())
        self.expect(")")
        if not body:
            self.fail("empty alias annotation")
        return body[0], "!" in body

    def type(self, where):
        base = self.ident()
        if base not in BASE_TYPES:
            self.i -= 1
            self.fail("unknown type '%s'" % base)
        base = "int" if base == "SymInt" else base
        t = Type(base)
        if self.peek("("):
            name, writes = self.alias()
            where.add(name)
            self.last_writes = writes
        if self.peek("?"):
            self.take()
            if self.peek("["):
                t.element_optional = True
            else:
                t.optional = True
                return t
        if self.peek("["):
            self.take()
            t.list = True
            if self.peek() and self.peek().isdigit():
                t.size = int(self.take())
                if not 1 <= t.size <= 16:
                    self.fail("list size must be 1..16")
            self.expect("]")
            if self.peek("?"):
                self.take()
                t.optional = True
        if t.element_optional and not t.list:
            self.fail("'?' before '[' needs a list")
        return t

    def literal(self):
        t = self.take()
        if t in ("[", "("):
            close = "]" if t == "[" else ")"
            items = []
            if not self.peek(close):
                while True:
                    items.append(self.literal())
                    if not self.peek(","):
                        break
                    self.take()
            self.expect(close)
            return items if close == "]" else tuple(items)
        if t[0] in "\"'":
            return t[1:-1]
        if t == "-" and self.peek() == "inf":
            self.take()
            return float("-inf")
        if re.match(r"^-?\d", t):
            return float(t) if any(c in t for c in ".eE") else int(t)
        if t == "None":
            return None
        if t in ("True", "False"):
            return t == "True"
        if t == "inf":
            return float("inf")
        if t in ENUM_DEFAULTS:
            return ("enum", t)
        self.i -= 1
        self.fail("unknown default value '%s'" % t)

    def check_default(self, p):
        t, v = p.type, p.default
        if v is None:
            if not t.optional and not (t.base == "Any" and not t.list):
                self.fail("default None for '%s', whose type %s is not optional" % (p.name, t))
            return
        if t.list:
            if t.base == "int" and isinstance(v, int) and not isinstance(v, bool) and t.size:
                return
            if not isinstance(v, (list, tuple)):
                self.fail("default of '%s' must be a list" % p.name)
            return
        ok = {
            "Tensor": False,
            "Scalar": isinstance(v, (int, float)),
            "int": isinstance(v, int) and not isinstance(v, bool),
            "float": isinstance(v, (int, float)) and not isinstance(v, bool),
            "bool": isinstance(v, bool),
            "str": isinstance(v, str),
            "Any": True,
        }.get(t.base)
        if ok is None:  # enums
            ok = isinstance(v, tuple) and len(v) == 2 and v[0] == "enum" and ENUM_DEFAULTS[v[1]] == t.base
        if not ok:
            self.fail("default %r does not fit '%s' of type %s" % (v, p.name, t))

    def params(self, allow_defaults=True):
        self.expect("(")
        out, kw_only = [], False
        if self.peek(")"):
            self.take()
            return out
        while True:
            if self.peek("*"):
                self.take()
                if kw_only:
                    self.fail("'*' twice")
                kw_only = True
            else:
                self.last_writes = False
                t = self.type(self.aliases_params)
                if not out and self.last_writes:
                    self.first_writes = True
                name = self.ident()
                if any(q.name == name for q in out):
                    self.fail("parameter '%s' twice" % name)
                p = Param(t, name, None, False, kw_only)
                if self.peek("="):
                    if not allow_defaults:
                        self.fail("tensor slots take no defaults")
                    self.take()
                    p.default, p.has_default = self.literal(), True
                    self.check_default(p)
                elif not kw_only and any(q.has_default and not q.kw_only for q in out):
                    self.fail("parameter '%s' without a default after one with a default" % name)
                out.append(p)
            if not self.peek(","):
                break
            self.take()
        self.expect(")")
        return out

    def schema(self, aten):
        s = Schema()
        if aten:
            s.name = self.ident()
            s.overload = "default"
            if self.peek("."):
                self.take()
                s.overload = self.ident()
        else:
            parts = [self.ident()]
            while self.peek("."):
                self.take()
                parts.append(self.ident())
            s.name = ".".join(parts)
            s.overload = ""
            if len(parts) < 2:
                self.fail("a python schema needs a qualified name (torch.nn.functional.relu, Tensor.size)")
        s.params = self.params()
        self.expect("->")
        s.returns = []
        if self.peek("("):
            self.take()
            s.tuple = True
            if not self.peek(")"):
                while True:
                    s.returns.append(self.type(self.aliases_returns))
                    if self.peek() and IDENT.match(self.peek()):
                        self.take()
                    if not self.peek(","):
                        break
                    self.take()
            self.expect(")")
        else:
            s.tuple = False
            s.returns.append(self.type(self.aliases_returns))
        if self.peek() is not None:
            self.fail("unexpected text after the returns")
        s.inplace = self.first_writes
        s.view = bool(self.aliases_params & self.aliases_returns) and not s.inplace
        s.tensor_returns = sum(1 for r in s.returns if r.base in ("Tensor", "Any"))
        return s


def parse_schema(text, aten):
    return SchemaParser(text).schema(aten)


def parse_params(text, allow_defaults=True):
    p = SchemaParser(text)
    out = p.params(allow_defaults)
    if p.peek() is not None:
        p.fail("unexpected text after the parameter list")
    return out


# ---- Examples --------------------------------------------------------------------------------

def check_value(node, where):
    if isinstance(node, ast.Constant):
        if isinstance(node.value, (int, float, str, bool)) or node.value is None:
            return
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return check_value(node.operand, where)
    elif isinstance(node, (ast.Tuple, ast.List)):
        for e in node.elts:
            check_value(e, where)
        return
    elif isinstance(node, ast.Name) and node.id in ("inf", "nan"):
        return
    elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "torch":
        return
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in EXAMPLE_CALLS:
        for a in node.args:
            check_value(a, where)
        for k in node.keywords:
            if k.arg != "dtype":
                raise Problem("%s: %s() takes only dtype= as a keyword" % (where, node.func.id))
            check_value(k.value, where)
        return
    raise Problem("%s: cannot use '%s' in an example (numbers, strings, None/True/False, tuples, lists, "
                  "torch.<dtype>, %s(...))" % (where, ast.unparse(node), "/".join(sorted(EXAMPLE_CALLS))))


def parse_arguments(text, where):
    """`(a, b, k=v)` -> (positional nodes, {keyword: node})."""
    if not isinstance(text, str) or not text.strip().startswith("("):
        raise Problem("%s: an argument list in parentheses, like (randn(2, 3), 1)" % where)
    try:
        call = ast.parse("f" + text.strip(), mode="eval").body
    except SyntaxError as e:
        raise Problem("%s: %s in %r (several examples go in a block list, one '- (...)' line each: a YAML "
                      "flow list [...] splits at every comma)" % (where, e.msg, text))
    if not isinstance(call, ast.Call) or any(isinstance(a, ast.Starred) for a in call.args):
        raise Problem("%s: %r is not an argument list" % (where, text))
    for a in call.args:
        check_value(a, where)
    for k in call.keywords:
        if k.arg is None:
            raise Problem("%s: no **kwargs in examples" % where)
        check_value(k.value, where)
    return call.args, {k.arg: k.value for k in call.keywords}


def as_list(v):
    return v if isinstance(v, list) else [v]


# ---- Entries ---------------------------------------------------------------------------------

class Entry:
    def __init__(self, family, data):
        self.family = family
        self.data = data
        self.line = data.get("__line__", 0)
        self.source = "%s:%d" % (family.rel, self.line)
        self.name = str(data.get("aten") or data.get("python") or data.get("module") or "?")
        if "(" in self.name:
            self.name = self.name[:self.name.index("(")].strip()

    def fail(self, what):
        raise Problem("%s: entry '%s': %s" % (self.source, self.name, what))

    def get(self, key, default=None):
        return self.data.get(key, default)


def cpp_name(entry, key, value):
    if not isinstance(value, str) or not CPP_NAME.match(value):
        entry.fail("%s: '%s' is not a C++ name" % (key, value))
    return value


def check_bool(entry, key):
    v = entry.get(key, False)
    if not isinstance(v, bool):
        entry.fail("%s must be true or false" % key)
    return v


def names(entry, key, pattern, what):
    out = []
    for n in as_list(entry.get(key, [])):
        if not isinstance(n, str) or not pattern.match(n):
            entry.fail("%s: '%s' is not %s" % (key, n, what))
        out.append(n)
    return out


class Family:
    def __init__(self, path, root):
        self.path = path
        self.rel = os.path.relpath(path, root).replace(os.sep, "/")
        self.dir = os.path.dirname(self.rel)
        self.stem = os.path.splitext(os.path.basename(path))[0]
        if self.dir not in NAMESPACES:
            raise Problem("%s: no namespace is known for %s/ (add it to NAMESPACES in gen_op_table.py)" %
                          (self.rel, self.dir))
        self.namespace = NAMESPACES[self.dir]
        self.ops, self.modules = [], []
        cpp = os.path.splitext(path)[0] + ".cpp"
        include = '#include "%s_table.inc"' % self.stem
        if not os.path.exists(cpp):
            raise Problem("%s: its kernels belong in %s, which does not exist" % (self.rel, os.path.relpath(cpp, root)))
        with open(cpp, encoding="utf-8") as f:
            if include not in f.read():
                raise Problem("%s must include the generated table as its last line, inside its namespace: %s" %
                              (os.path.relpath(cpp, root), include))
        with open(path, encoding="utf-8") as f:
            try:
                data = yaml.load(f, Loader=LineLoader)
            except yaml.YAMLError as e:
                raise Problem("%s: %s" % (self.rel, str(e).replace("\n", " ")))
        if data is None:
            data = []
        if not isinstance(data, list):
            raise Problem("%s: the file must be a list of entries" % self.rel)
        for item in data:
            if not isinstance(item, dict):
                raise Problem("%s: every entry must be a mapping, got %r" % (self.rel, item))
            (self.modules if "module" in item else self.ops).append(Entry(self, item))


class Op:
    """A validated op entry."""


def check_op(e):
    unknown = set(e.data) - OP_KEYS - {"__line__"}
    if unknown:
        e.fail("unknown key%s %s (known: %s)" % ("s" if len(unknown) > 1 else "", ", ".join(sorted(unknown)),
                                                ", ".join(sorted(OP_KEYS))))
    if ("aten" in e.data) == ("python" in e.data):
        e.fail("give exactly one of 'aten' (an aten overload) and 'python' (a Python function)")
    op = Op()
    op.entry = e
    op.aten = "aten" in e.data
    op.text = str(e.data["aten" if op.aten else "python"])
    try:
        op.schema = parse_schema(op.text, op.aten)
    except Problem as p:
        e.fail(str(p))
    s = op.schema
    op.functions = names(e, "function", DOTTED, "a qualified function name")
    op.methods = names(e, "method", IDENT, "a method name")
    if not op.aten and (op.functions or op.methods):
        e.fail("'function' and 'method' bind aten overloads; a python entry is registered under its own name")
    if s.params and s.params[0].name == "self" and not op.aten and not s.name.startswith("Tensor."):
        e.fail("a python function's parameters have the names Python gives them (input, not self)")
    op.operator = e.get("operator", "")
    if op.operator:
        if op.operator not in UNARY_OPERATORS | BINARY_OPERATORS:
            e.fail("operator: '%s' is not a Python operator fx records" % op.operator)
        arity = 1 if op.operator in UNARY_OPERATORS else 2
        if len(s.params) < arity:
            e.fail("operator %s takes %d operand(s); the schema has fewer parameters" % (op.operator, arity))
        for p in s.params[arity:]:
            if not p.has_default:
                e.fail("operator %s: parameter '%s' needs a default (the operator passes only its operands)" %
                       (op.operator, p.name))
    op.reflected = e.get("reflected", "")
    if op.reflected:
        if not op.operator or op.operator in UNARY_OPERATORS:
            e.fail("'reflected' needs a binary 'operator'")
        if "." not in op.reflected:
            cpp_name(e, "reflected", op.reflected)
    op.numbers_as_tensors = check_bool(e, "numbers_as_tensors")
    op.saves_result = check_bool(e, "saves_result")
    op.metadata = check_bool(e, "metadata")
    op.assertion = check_bool(e, "assertion")
    op.kernel = cpp_name(e, "kernel", e.get("kernel")) if "kernel" in e.data else ""
    op.functor = cpp_name(e, "functor", e.get("functor")) if "functor" in e.data else ""
    if not op.kernel and not op.functor:
        e.fail("give a 'kernel' (a C++ function) or a 'functor' (an elementwise functor)")
    promotion = e.get("promotion")
    if promotion is None:
        e.fail("'promotion' is required (%s)" % ", ".join(PROMOTIONS))
    op.promotion = as_list(promotion)
    for r in op.promotion:
        if r not in PROMOTIONS:
            e.fail("unknown promotion rule '%s' (known: %s)" % (r, ", ".join(PROMOTIONS)))
    if len(op.promotion) > 1 and len(op.promotion) != len(s.returns):
        e.fail("promotion: %d rules for %d returns" % (len(op.promotion), len(s.returns)))
    if op.functor and len(op.promotion) != 1:
        e.fail("a functor has one result: give one promotion rule")
    if op.functor and op.promotion[0] not in ("promote", "promote_float", "keep", "bool"):
        e.fail("the elementwise driver implements promote, promote_float, keep and bool, not '%s'" % op.promotion[0])
    purity = e.get("purity")
    derived = "inplace" if s.inplace else "view" if s.view else None
    if purity is not None:
        if purity not in PURITIES:
            e.fail("unknown purity '%s' (known: %s)" % (purity, ", ".join(PURITIES)))
        if derived and purity != derived:
            e.fail("purity '%s' contradicts the schema's alias annotations (%s)" % (purity, derived))
        if not derived and purity in ("view", "inplace"):
            e.fail("purity '%s' needs the schema's alias annotation (%s)" %
                   (purity, "Tensor(a!) self -> Tensor(a!)" if purity == "inplace" else "Tensor(a) self -> Tensor(a)"))
    op.purity = purity
    if op.metadata and (purity or derived or "pure") != "pure":
        e.fail("metadata: an op reading only its tensors' dtype and shape is pure, not '%s'" % (purity or derived))
    if op.assertion and purity != "side_effect":
        e.fail("assertion: an op whose effect is raising must be declared 'purity: side_effect' "
               "(dead-code elimination keeps it)")
    op.fusion = e.get("fusion")
    if op.fusion is not None:
        if op.fusion not in FUSIONS:
            e.fail("unknown fusion '%s' (unary or binary)" % op.fusion)
        if not op.functor:
            e.fail("fusion needs a functor")
        tensor_params = [p for p in s.params if not p.has_default]
        if op.fusion == "unary" and len(tensor_params) != 1:
            e.fail("fusion unary: the schema must take one required argument")
        if op.fusion == "binary" and len(tensor_params) != 2:
            e.fail("fusion binary: the schema must take two required arguments")
    op.make_fx = e.get("make_fx", "")
    if op.make_fx and "." not in op.make_fx:
        cpp_name(e, "make_fx", op.make_fx)
    if not s.tensor_returns and op.make_fx:
        e.fail("the schema returns no Tensor, so make_fx evaluates it: remove 'make_fx'")
    examples = as_list(e.get("example", []))
    if not examples:
        e.fail("'example' is required: inputs the table walk test runs")
    op.examples = []
    param_names = {p.name for p in s.params} | ({"input"} if op.functions and s.params and
                                                s.params[0].name == "self" else set())
    for i, ex in enumerate(examples):
        where = "%s: entry '%s': example %d" % (e.source, e.name, i + 1)
        args, kwargs = parse_arguments(ex, where)
        for k in kwargs:
            if k not in param_names or k == "self":
                raise Problem("%s: no parameter '%s' (the schema has %s)" % (where, k, ", ".join(
                    p.name for p in s.params)))
        if (op.methods or s.name.startswith("Tensor.")) and not args:
            raise Problem("%s: pass the receiver (the first argument) positionally" % where)
        op.examples.append(ex.strip())
    return op


def check_module(e):
    unknown = set(e.data) - MODULE_KEYS - {"__line__"}
    if unknown:
        e.fail("unknown key%s %s (known: %s)" % ("s" if len(unknown) > 1 else "", ", ".join(sorted(unknown)),
                                                ", ".join(sorted(MODULE_KEYS))))
    m = Op()
    m.entry = e
    m.name = e.get("module")
    if not isinstance(m.name, str) or not IDENT.match(m.name):
        e.fail("module: '%s' is not a class name" % m.name)
    m.classes = names(e, "classes", DOTTED, "a torch class path")
    try:
        m.constructor = parse_params(e.get("constructor", "()"))
        m.attributes = parse_params(e.get("attributes", "()"))
    except Problem as p:
        e.fail(str(p))
    tensors = []
    for key in ("parameters", "buffers"):
        try:
            slots = parse_params(str(e.get(key, "()")), allow_defaults=False)
        except Problem as p:
            e.fail("%s: %s" % (key, p))
        for t in slots:
            if t.type.base != "Tensor" or t.type.list or t.type.element_optional:
                e.fail("%s: '%s' must be a Tensor (or Tensor? when optional)" % (key, t.name))
        setattr(m, key, [t.name + ("?" if t.type.optional else "") for t in slots])
        tensors += [t.name for t in slots]
    # forward's inputs: names, or a parameter list with types and defaults, which lets a
    # call_module node pass some of them by keyword or leave them out.
    m.input_params = ""
    if isinstance(e.get("inputs"), str) and e.get("inputs").strip().startswith("("):
        m.input_params = e.get("inputs").strip()
        try:
            m.inputs = [p.name for p in parse_params(m.input_params)]
        except Problem as p:
            e.fail("inputs: %s" % p)
    else:
        m.inputs = names(e, "inputs", IDENT, "an input name") or ["input"]
    attr_names = [a.name for a in m.attributes]
    m.init = cpp_name(e, "init", e.get("init")) if "init" in e.data else ""
    if not m.init:
        ctor = {p.name for p in m.constructor}
        for a in attr_names:
            if a not in ctor:
                e.fail("attribute '%s' is no constructor parameter: give an 'init' function" % a)
        if tensors:
            e.fail("a kind with parameters or buffers needs an 'init' function that creates them")
    m.container = check_bool(e, "container")
    m.forward = cpp_name(e, "forward", e.get("forward")) if "forward" in e.data else ""
    m.call = e.get("call", "")
    m.make_fx = cpp_name(e, "make_fx", e.get("make_fx")) if "make_fx" in e.data else ""
    if bool(m.call) == bool(m.forward):
        e.fail("give exactly one of 'call' (a call template) and 'forward' (a C++ function)")
    if m.make_fx and not m.forward:
        e.fail("'make_fx' goes with 'forward' (a call template decomposes as its call)")
    if m.forward and not m.make_fx and not m.container:
        e.fail("a kind with a C++ forward needs a C++ 'make_fx' decomposition")
    if m.call:
        try:
            call = ast.parse(m.call, mode="eval").body
        except SyntaxError as err:
            e.fail("call: %s in %r" % (err.msg, m.call))
        if not isinstance(call, ast.Call) or not DOTTED.match(ast.unparse(call.func)):
            e.fail("call: '%s' is not target(arguments)" % m.call)
        m.call_target = ast.unparse(call.func)
        known = set(m.inputs) | set(attr_names) | set(tensors)
        for a in list(call.args) + [k.value for k in call.keywords]:
            if isinstance(a, ast.Name):
                if a.id not in known:
                    e.fail("call: '%s' is not an input, attribute, parameter or buffer" % a.id)
            else:
                check_value(a, "%s: entry '%s': call" % (e.source, e.name))
    fmt = e.get("extra_repr")
    m.extra_repr_fn = cpp_name(e, "extra_repr_fn", e.get("extra_repr_fn")) if "extra_repr_fn" in e.data else ""
    if fmt is not None and m.extra_repr_fn:
        e.fail("give 'extra_repr' (a format) or 'extra_repr_fn' (a function), not both")
    m.extra_repr = fmt or ""
    if fmt is not None:
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(fmt) if f is not None]
        except ValueError as err:
            e.fail("extra_repr: %s" % err)
        for f in fields:
            if f not in attr_names:
                e.fail("extra_repr: '{%s}' is not an attribute" % f)
    m.validate = cpp_name(e, "validate", e.get("validate")) if "validate" in e.data else ""
    m.private = cpp_name(e, "private_attributes", e.get("private_attributes")) if "private_attributes" in e.data else ""
    examples = as_list(e.get("example", []))
    if not examples:
        e.fail("'example' is required: {init: (...), input: (...)}")
    m.examples = []
    for i, ex in enumerate(examples):
        where = "%s: entry '%s': example %d" % (e.source, e.name, i + 1)
        if not isinstance(ex, dict) or set(ex) - {"init", "input", "__line__"} or "input" not in ex:
            raise Problem("%s: an example is {init: (constructor arguments), input: (forward inputs)}" % where)
        init = str(ex.get("init", "()"))
        parse_arguments(init, where + " init")
        parse_arguments(str(ex["input"]), where + " input")
        m.examples.append((init.strip(), str(ex["input"]).strip()))
    return m


# ---- Emission ------------------------------------------------------------------------------

def cstr(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def strings(xs):
    return "{" + ", ".join(cstr(x) for x in xs) + "}"


def functor_expr(op):
    return "elementwise_functor<%s, Promotion::%s>()" % (op.functor, PROMOTIONS[op.promotion[0]])


def emit_family(fam, ops, modules, generator):
    out = ["// Generated by %s from %s. Do not edit: edit the YAML." % (generator, fam.rel),
           "// Included by %s/%s.cpp inside namespace %s, after its kernels." % (fam.dir, fam.stem, fam.namespace),
           "",
           "const ::fxpack::op_table::Family& %s_op_table() {" % fam.stem,
           "  using namespace ::fxpack;",
           "  static const op_table::Family family = [] {",
           "    op_table::Family f;",
           "    f.file = %s;" % cstr(fam.rel)]
    for op in ops:
        e = op.entry
        out.append("    {  // %s" % e.name)
        out.append("      op_table::OpEntry e;")
        out.append("      e.source = %s;" % cstr(e.source))
        out.append("      e.aten = %s;" % ("true" if op.aten else "false"))
        out.append("      e.schema = %s;" % cstr(op.text))
        if op.functions:
            out.append("      e.functions = %s;" % strings(op.functions))
        if op.methods:
            out.append("      e.methods = %s;" % strings(op.methods))
        if op.operator:
            out.append("      e.op = %s;" % cstr(op.operator))
            out.append("      e.op_operands = %d;" % (1 if op.operator in UNARY_OPERATORS else 2))
        if op.reflected:
            if "." in op.reflected:
                out.append("      e.reflected_aten = %s;" % cstr(op.reflected))
            else:
                out.append("      e.reflected = &%s;" % op.reflected)
        if op.kernel:
            out.append("      e.kernel = &%s;" % op.kernel)
        else:
            out.append("      e.kernel = &elementwise_kernel<%s, Promotion::%s>;" % (op.functor,
                                                                                    PROMOTIONS[op.promotion[0]]))
        if op.functor:
            out.append("      e.functor = %s;" % functor_expr(op))
        out.append("      e.promotion = {%s};" % ", ".join("Promotion::" + PROMOTIONS[r] for r in op.promotion))
        if op.purity:
            out.append("      e.purity = Purity::%s;" % PURITIES[op.purity])
        if op.fusion:
            out.append("      e.fusion = Fusion::%s;" % FUSIONS[op.fusion])
        if op.numbers_as_tensors:
            out.append("      e.numbers_as_tensors = true;")
        if op.saves_result:
            out.append("      e.saves_result = true;")
        if op.metadata:
            out.append("      e.metadata = true;")
        if op.assertion:
            out.append("      e.assertion = true;")
        if op.make_fx:
            if "." in op.make_fx:
                out.append("      e.make_fx_aten = %s;" % cstr(op.make_fx))
            else:
                out.append("      e.make_fx = &%s;" % op.make_fx)
        out.append("      e.examples = %s;" % strings(op.examples))
        out.append("      f.ops.push_back(std::move(e));")
        out.append("    }")
    for m in modules:
        e = m.entry
        out.append("    {  // %s" % m.name)
        out.append("      op_table::ModuleEntry e;")
        out.append("      e.source = %s;" % cstr(e.source))
        out.append("      e.name = %s;" % cstr(m.name))
        if m.classes:
            out.append("      e.classes = %s;" % strings(m.classes))
        out.append("      e.constructor = %s;" % cstr(str(e.get("constructor", "()"))))
        out.append("      e.attributes = %s;" % cstr(str(e.get("attributes", "()"))))
        if m.parameters:
            out.append("      e.parameters = %s;" % strings(m.parameters))
        if m.buffers:
            out.append("      e.buffers = %s;" % strings(m.buffers))
        out.append("      e.inputs = %s;" % strings(m.inputs))
        if m.input_params:
            out.append("      e.input_params = %s;" % cstr(m.input_params))
        for key, attr in (("init", m.init), ("forward", m.forward), ("make_fx", m.make_fx),
                          ("extra_repr", m.extra_repr_fn), ("validate", m.validate),
                          ("private_attributes", m.private)):
            if attr:
                out.append("      e.%s = &%s;" % (key, attr))
        if m.call:
            out.append("      e.call = %s;" % cstr(m.call))
        if m.extra_repr:
            out.append("      e.extra_repr_format = %s;" % cstr(m.extra_repr))
        if m.container:
            out.append("      e.container = true;")
        out.append("      e.examples = {%s};" % ", ".join("{%s, %s}" % (cstr(a), cstr(b)) for a, b in m.examples))
        out.append("      f.modules.push_back(std::move(e));")
        out.append("    }")
    out += ["    return f;", "  }();", "  return family;", "}", ""]
    return "\n".join(out)


def emit_index(families, generator):
    out = ["// Generated by %s. Do not edit." % generator, '#include "ops/op_table.hpp"', ""]
    for fam in families:
        out.append("namespace %s {" % fam.namespace)
        out.append("const op_table::Family& %s_op_table();" % fam.stem)
        out.append("}")
    out += ["", "namespace fxpack::op_table {", "", "std::vector<const Family*> families() {", "  return {"]
    for fam in families:
        out.append("      &%s::%s_op_table()," % (fam.namespace.replace("fxpack::", ""), fam.stem))
    out += ["  };", "}", "", "}  // namespace fxpack::op_table", ""]
    return "\n".join(out)


# ---- Whole-table checks -----------------------------------------------------------------------

def check_table(families):
    problems = []
    ops_by_family, modules_by_family = {}, {}
    for fam in families:
        ops_by_family[fam.rel], modules_by_family[fam.rel] = [], []
        for e in fam.ops:
            try:
                ops_by_family[fam.rel].append(check_op(e))
            except Problem as p:
                problems.append(str(p))
        for e in fam.modules:
            try:
                modules_by_family[fam.rel].append(check_module(e))
            except Problem as p:
                problems.append(str(p))
    all_ops = [op for fam in families for op in ops_by_family[fam.rel]]
    # Unique names: aten overloads and operators once; function and method overload sets in one file.
    aten, operators, functions, methods = {}, {}, {}, {}
    for op in all_ops:
        e = op.entry
        if op.aten:
            key = "%s.%s" % (op.schema.name, op.schema.overload)
            if key in aten:
                problems.append("%s: entry '%s': aten overload %s is already declared at %s" %
                                (e.source, e.name, key, aten[key].entry.source))
            aten.setdefault(key, op)
        elif op.schema.name.startswith("Tensor."):
            methods.setdefault(op.schema.name[7:], []).append(op)
        else:
            functions.setdefault(op.schema.name, []).append(op)
        for f in op.functions:
            functions.setdefault(f, []).append(op)
        for m in op.methods:
            methods.setdefault(m, []).append(op)
        if op.operator:
            if op.operator in operators:
                problems.append("%s: entry '%s': operator %s is already declared at %s" %
                                (e.source, e.name, op.operator, operators[op.operator].entry.source))
            operators.setdefault(op.operator, op)
    for what, table in (("function", functions), ("method", methods)):
        for name, ops in table.items():
            files = {op.entry.family.rel for op in ops}
            if len(files) > 1:
                problems.append("%s '%s' has overloads in %s: keep an op's overloads in one file" %
                                (what, name, " and ".join(sorted(files))))
    for name in functions:
        if name in operators or name.startswith("torch.ops."):
            problems.append("function '%s' is also declared as %s" % (
                name, "an operator" if name in operators else "an aten target (write it as an aten entry)"))
    for op in all_ops:
        e = op.entry
        for key in ("make_fx", "reflected"):
            target = getattr(op, key)
            if target and "." in target:
                if target not in aten:
                    problems.append("%s: entry '%s': %s: no entry declares the aten overload '%s'" %
                                    (e.source, e.name, key, target))
                elif key == "make_fx":
                    tparams = {p.name for p in aten[target].schema.params}
                    for p in op.schema.params:
                        n = "self" if p.name == "input" and "self" in tparams else p.name
                        if n not in tparams:
                            problems.append("%s: entry '%s': make_fx: %s has no parameter '%s'; write a "
                                            "decomposition function instead" % (e.source, e.name, target, p.name))
    kinds, classes = {}, {}
    for fam in families:
        for m in modules_by_family[fam.rel]:
            if m.name in kinds:
                problems.append("%s: module kind '%s' is already declared at %s" %
                                (m.entry.source, m.name, kinds[m.name].entry.source))
            kinds.setdefault(m.name, m)
            for c in m.classes:
                if c in classes:
                    problems.append("%s: class %s is already declared at %s" %
                                    (m.entry.source, c, classes[c].entry.source))
                classes.setdefault(c, m)
            if m.call and m.call_target not in functions:
                problems.append("%s: entry '%s': call: no entry declares the function '%s'" %
                                (m.entry.source, m.name, m.call_target))
    return problems, ops_by_family, modules_by_family


def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--source-root", required=True)
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("families", nargs="+")
    args = ap.parse_args()
    generator = "src/ops/gen_op_table.py"
    families, problems = [], []
    for path in args.families:
        try:
            families.append(Family(path, args.source_root))
        except Problem as p:
            problems.append(str(p))
    stems = [f.stem for f in families]
    for s in set(stems):
        if stems.count(s) > 1:
            problems.append("two families are called '%s': family file names must be unique" % s)
    more, ops, modules = check_table(families)
    problems += more
    if problems:
        for p in problems:
            print("error: " + p, file=sys.stderr)
        print("%d problem%s in the op table" % (len(problems), "" if len(problems) == 1 else "s"), file=sys.stderr)
        return 1
    for fam in families:
        write(os.path.join(args.out_dir, fam.stem + "_table.inc"),
                         emit_family(fam, ops[fam.rel], modules[fam.rel], generator))
    write(os.path.join(args.out_dir, "op_table.cpp"), emit_index(families, generator))
    return 0


if __name__ == "__main__":
    sys.exit(main())
