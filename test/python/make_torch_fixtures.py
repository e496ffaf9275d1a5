#!/usr/bin/python3
"""Regenerates the PyTorch 2.x counterparts of the reference archives in fixtures/torch/:
for each reference model (built with its weights from fixtures/reference/ and traced with
torch.fx), fixtures/torch/<model>/package-<version>.pt written by torch.package as a user
writes it, code-<version>.py (gm.code) and readable-<version>.txt (gm.print_readable's text),
where <version> is the running PyTorch's major.minor ("2.6").

Run from the project root in the Debian 13 root that has PyTorch 2.6:
    bash ../shared/tools/debian13-torch.sh 'python3 test/python/make_torch_fixtures.py'
The 1.13 archives (fixtures/torch/<model>/package.pt) come from ../shared/pytorch-reference;
package-*.pt is not byte-reproducible (its pickle holds the module's id()), the rest is."""
import os
import sys

import torch
from torch.package import PackageExporter

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_models  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "fixtures")


def main():
    version = ".".join(torch.__version__.split(".")[:2])
    if version.startswith("1."):
        sys.exit("make_torch_fixtures.py writes the PyTorch 2.x counterparts; this is PyTorch " + torch.__version__)
    for name in reference_models.NAMES:
        gm = reference_models.build(name, os.path.join(FIXTURES, "reference"))
        out = os.path.join(FIXTURES, "torch", name)
        os.makedirs(out, exist_ok=True)
        with PackageExporter(os.path.join(out, f"package-{version}.pt")) as exporter:
            exporter.save_pickle("model", "model.pkl", gm)
        with open(os.path.join(out, f"code-{version}.py"), "w") as f:
            f.write(gm.code)
        with open(os.path.join(out, f"readable-{version}.txt"), "w") as f:
            f.write(reference_models.readable(gm))
        print(f"{name}: package-{version}.pt, code-{version}.py, readable-{version}.txt")


if __name__ == "__main__":
    main()
