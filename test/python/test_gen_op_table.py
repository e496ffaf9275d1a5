#!/usr/bin/env python3
"""The op table generator refuses bad entries at build time, naming file, line and entry.

    test_gen_op_table.py path/to/gen_op_table.py

Each case writes a small family (YAML and the .cpp that includes its table) into a temporary
source tree, runs the generator, and checks its exit status and message.
"""

import os
import subprocess
import sys
import tempfile
import unittest

GENERATOR = None

GOOD_OP = """
- aten: twice(Tensor self) -> Tensor
  function: torch.twice
  method: twice
  functor: Twice
  promotion: keep
  fusion: unary
  example: (randn(2, 3))
"""

GOOD_KIND = """
- module: Twice
  classes: [torch.nn.modules.activation.Twice]
  constructor: (bool inplace=False)
  attributes: (bool inplace)
  call: torch.twice(input)
  extra_repr: "inplace={inplace}"
  example:
    - init: ()
      input: (randn(2))
"""


def run(families, include_line=True):
    """families: {relative yaml path: text}. Returns (exit status, stderr, output dir)."""
    root = tempfile.mkdtemp(prefix="gen_op_table_")
    out = os.path.join(root, "out")
    os.makedirs(out)
    paths = []
    for rel, text in families.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        stem = os.path.splitext(os.path.basename(rel))[0]
        with open(os.path.splitext(path)[0] + ".cpp", "w") as f:
            f.write('#include "%s_table.inc"\n' % stem if include_line else "// no table\n")
        paths.append(path)
    p = subprocess.run([sys.executable, GENERATOR, "--source-root", root, "--out-dir", out] + paths,
                       capture_output=True, text=True)
    return p.returncode, p.stderr, out


class Generator(unittest.TestCase):
    def refused(self, families, *needles, **kw):
        rc, err, _ = run(families, **kw)
        self.assertEqual(rc, 1, err)
        for n in needles:
            self.assertIn(n, err)
        return err

    def test_a_good_family_generates_its_table(self):
        rc, err, out = run({"src/ops/fam.yaml": GOOD_OP + GOOD_KIND})
        self.assertEqual(rc, 0, err)
        with open(os.path.join(out, "fam_table.inc")) as f:
            inc = f.read()
        self.assertIn("e.kernel = &elementwise_kernel<Twice, Promotion::Keep>;", inc)
        self.assertIn('e.call = "torch.twice(input)";', inc)
        with open(os.path.join(out, "op_table.cpp")) as f:
            self.assertIn("&ops::fam_op_table()", f.read())

    def test_unknown_keys(self):
        self.refused({"src/ops/fam.yaml": GOOD_OP.replace("promotion:", "promtion:")},
                     "src/ops/fam.yaml:2: entry 'twice': unknown key promtion")

    def test_duplicate_aten_overloads_and_operators(self):
        self.refused({"src/ops/fam.yaml": GOOD_OP + GOOD_OP.replace("torch.twice", "torch.twice2").replace(
            "method: twice", "method: twice2")}, "aten overload twice.default is already declared at src/ops/fam.yaml:2")

    def test_bad_schemas_and_defaults(self):
        self.refused({"src/ops/fam.yaml": GOOD_OP.replace("(Tensor self)", "(Tensr self)")}, "unknown type 'Tensr'")
        self.refused({"src/ops/fam.yaml": GOOD_OP.replace("(Tensor self)", "(Tensor self, int k=None)")},
                     "default None for 'k', whose type int is not optional")
        self.refused({"src/ops/fam.yaml": GOOD_OP.replace("(Tensor self)", "(Tensor self, bool k=1)")},
                     "does not fit 'k' of type bool")
        self.refused({"src/ops/fam.yaml": GOOD_OP.replace("-> Tensor", "")}, "expected '->'")

    def test_unknown_promotion_rules_and_purity(self):
        self.refused({"src/ops/fam.yaml": GOOD_OP.replace("promotion: keep", "promotion: widen")},
                     "unknown promotion rule 'widen'")
        self.refused({"src/ops/fam.yaml": GOOD_OP + "  purity: inplace\n"}, "purity 'inplace' needs the schema's alias annotation")

    def test_make_fx_names_a_declared_overload(self):
        self.refused({"src/ops/fam.yaml": GOOD_OP + "  make_fx: thrice.default\n"},
                     "make_fx: no entry declares the aten overload 'thrice.default'")

    def test_overloads_of_one_name_stay_in_one_file(self):
        other = GOOD_OP.replace("twice(Tensor self)", "twice.other(Tensor self, Tensor other)").replace(
            "(randn(2, 3))", "(randn(2, 3), randn(3))").replace("  fusion: unary\n", "")
        self.refused({"src/ops/fam.yaml": GOOD_OP, "src/ops/other.yaml": other},
                     "function 'torch.twice' has overloads in src/ops/fam.yaml and src/ops/other.yaml")

    def test_examples_parse_and_name_parameters(self):
        self.refused({"src/ops/fam.yaml": GOOD_OP.replace("(randn(2, 3))", "(randn(2, 3), scale=2)")},
                     "example 1: no parameter 'scale'")
        self.refused({"src/ops/fam.yaml": GOOD_OP.replace("(randn(2, 3))", "(open('x'))")},
                     "cannot use 'open('x')' in an example")
        self.refused({"src/ops/fam.yaml": GOOD_OP.replace("example: (randn(2, 3))", "example: [(randn(2, 3)), (randn(3))]")},
                     "a YAML flow list [...] splits at every comma")

    def test_kernels_are_required_and_named_in_cpp(self):
        self.refused({"src/ops/fam.yaml": GOOD_OP.replace("  functor: Twice\n", "").replace("  fusion: unary\n", "")},
                     "give a 'kernel'")
        self.refused({"src/ops/fam.yaml": GOOD_OP.replace("functor: Twice", "functor: Twice()")},
                     "functor: 'Twice()' is not a C++ name")
        self.refused({"src/ops/fam.yaml": GOOD_OP}, '#include "fam_table.inc"', include_line=False)

    def test_module_kinds(self):
        self.refused({"src/ops/fam.yaml": GOOD_OP + GOOD_KIND.replace("inplace={inplace}", "inplace={in_place}")},
                     "extra_repr: '{in_place}' is not an attribute")
        self.refused({"src/ops/fam.yaml": GOOD_OP + GOOD_KIND.replace("torch.twice(input)", "torch.twice(input, scale)")},
                     "call: 'scale' is not an input, attribute, parameter or buffer")
        self.refused({"src/ops/fam.yaml": GOOD_OP + GOOD_KIND.replace("torch.twice(input)", "torch.thrice(input)")},
                     "call: no entry declares the function 'torch.thrice'")
        self.refused({"src/ops/fam.yaml": GOOD_OP + GOOD_KIND + GOOD_KIND}, "module kind 'Twice' is already declared")

    def test_every_problem_is_reported_at_once(self):
        err = self.refused({"src/ops/fam.yaml": GOOD_OP.replace("keep", "widen") + GOOD_OP.replace("twice(", "thrice(")
                            .replace("torch.twice", "torch.thrice").replace("method: twice", "method: thrice")
                            .replace("Tensor self", "Tensr self")}, "2 problems in the op table")
        self.assertIn("widen", err)
        self.assertIn("Tensr", err)


if __name__ == "__main__":
    GENERATOR = os.path.abspath(sys.argv.pop(1))
    unittest.main(verbosity=1)
