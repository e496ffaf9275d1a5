"""Round trip through real PyTorch, both directions, every reference model, PyTorch 1.13 or 2.6.

For each reference model (fixtures/reference/<model>, traced with torch.fx, real weights):
(a) PyTorch writes it with torch.package; fxpack loads that archive in another process, runs
    it, and its output must equal PyTorch's;
(b) fxpack converts that archive back into a torch.package for the same PyTorch, which
    loads it: the same gm.code, the same output;
(c) fxpack traces the model in C++ and writes a torch.package for that PyTorch, which loads
    it into a GraphModule whose output equals fxpack's reference output.

Usage: python3 test_torch_roundtrip.py <torch_roundtrip_child> <fixtures dir> [--torch 1.13|2.6]
  --torch 1.13 (default): PyTorch is this interpreter's (Debian 12's python3-torch).
  --torch 2.6: PyTorch 2.6 runs in the Debian 13 root of ../shared/tools/debian13-torch.sh
      (found in a parent folder of the fixtures, or given by $FXPACK_DEBIAN13_TORCH); the C++
      side runs here. Skipped (exit 77, with the reason) where that tool cannot run.
Prints one line per check and "N passed, N failed"; exits non-zero on any failure.

Internally the script also runs as the PyTorch side of a 2.6 run:
  test_torch_roundtrip.py --torch-side write|check DIR
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MODELS = ["seed_sin", "seed_relu_add", "mlp", "small_convnet"]


# ---- the PyTorch side (runs wherever the PyTorch under test is) ---------------------------

def torch_write(work, reference_dir):
    """Writes work/<model>/torch.pt (PyTorch's archive), code.py, input.npy, output.npy."""
    import numpy as np
    import torch
    from torch.package import PackageExporter
    sys.path.insert(0, HERE)
    import reference_models
    for name in MODELS:
        d = os.path.join(work, name)
        os.makedirs(d, exist_ok=True)
        x, _, _ = reference_models.io_of(name, reference_dir)
        gm = reference_models.build(name, reference_dir)
        with torch.no_grad():
            y = gm(x)
        with PackageExporter(os.path.join(d, "torch.pt")) as pe:
            pe.save_pickle("model", "model.pkl", gm)
        with open(os.path.join(d, "code.py"), "w") as f:
            f.write(gm.code)
        np.save(os.path.join(d, "input.npy"), x.numpy())
        np.save(os.path.join(d, "output.npy"), y.numpy())


def torch_check(work, reference_dir):
    """Loads what fxpack wrote (converted.pt, exported.pt) and prints one result line each."""
    import numpy as np
    import torch
    from torch.package import PackageImporter
    sys.path.insert(0, HERE)
    import reference_models
    for name in MODELS:
        d = os.path.join(work, name)
        x = torch.from_numpy(np.load(os.path.join(d, "input.npy")))
        expected_torch = torch.from_numpy(np.load(os.path.join(d, "output.npy")))
        _, _, expected_ref = reference_models.io_of(name, reference_dir)
        code = open(os.path.join(d, "code.py")).read()
        for what, archive, expected in [("fxpack converts it back", "converted.pt", expected_torch),
                                        ("fxpack traces and exports", "exported.pt", expected_ref)]:
            try:
                gm = PackageImporter(os.path.join(d, archive)).load_pickle("model", "model.pkl")
                assert isinstance(gm, torch.fx.GraphModule), type(gm)
                assert gm.code == code, "code differs:\n" + gm.code
                with torch.no_grad():
                    got = gm(x)
                assert torch.allclose(got, expected, rtol=1e-5, atol=1e-6), (got - expected).abs().max()
                print(f"ok   {what}, PyTorch loads it: {name}")
            except Exception as e:  # noqa: BLE001 - report every model
                print(f"FAIL {what}, PyTorch loads it: {name}: {e}")


# ---- the fxpack side ----------------------------------------------------------------------

def fxpack_side(child, work, version):
    """Runs, converts and exports with the C++ child; returns (passed, failed)."""
    import numpy as np
    passed = failed = 0
    for name in MODELS:
        d = os.path.join(work, name)
        try:
            x = np.load(os.path.join(d, "input.npy"))
            expected = np.load(os.path.join(d, "output.npy"))
            x.astype(np.float32).tofile(os.path.join(d, "input.bin"))
            out = os.path.join(d, "fxpack_output.bin")
            subprocess.run([child, "run", os.path.join(d, "torch.pt"), os.path.join(d, "input.bin"),
                            ",".join(map(str, x.shape)), out], check=True)
            got = np.fromfile(out, dtype=np.float32).reshape(expected.shape)
            assert np.allclose(got, expected, rtol=1e-5, atol=1e-6), np.abs(got - expected).max()
            conv = subprocess.run([child, "convert", os.path.join(d, "torch.pt"), os.path.join(d, "converted.pt"),
                                   version], check=True, capture_output=True, text=True)
            assert conv.stdout == open(os.path.join(d, "code.py")).read(), "fxpack prints other code:\n" + conv.stdout
            print(f"ok   PyTorch {version} writes it, fxpack reads, prints and runs it: {name}")
            passed += 1
        except Exception as e:  # noqa: BLE001
            print(f"FAIL PyTorch {version} writes it, fxpack reads, prints and runs it: {name}: {e}")
            failed += 1
        try:
            subprocess.run([child, "export", name, os.path.join(d, "exported.pt"), version], check=True)
        except Exception as e:  # noqa: BLE001
            print(f"FAIL fxpack exports for PyTorch {version}: {name}: {e}")
            failed += 1
    return passed, failed


def count(lines):
    passed = sum(1 for l in lines if l.startswith("ok "))
    failed = sum(1 for l in lines if l.startswith("FAIL "))
    return passed, failed


def find_debian13_tool(fixtures):
    if os.environ.get("FXPACK_DEBIAN13_TORCH"):
        return os.environ["FXPACK_DEBIAN13_TORCH"]
    d = os.path.abspath(fixtures)
    while d != os.path.dirname(d):
        candidate = os.path.join(d, "shared", "tools", "debian13-torch.sh")
        if os.path.exists(candidate):
            return candidate
        d = os.path.dirname(d)
    return None


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "--torch-side":
        work = sys.argv[3]
        reference = os.path.join(work, "reference")
        torch_write(work, reference) if sys.argv[2] == "write" else torch_check(work, reference)
        return 0

    child, fixtures = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    version = sys.argv[4] if len(sys.argv) > 4 and sys.argv[3] == "--torch" else "1.13"
    try:
        import numpy  # noqa: F401
    except ImportError as e:  # meson counts exit status 77 as "skipped"
        print(f"skipped: numpy is not installed ({e})")
        return 77
    work = tempfile.mkdtemp(prefix="fxpack_torch_")
    shutil.copytree(os.path.join(fixtures, "reference"), os.path.join(work, "reference"))
    start = time.monotonic()
    try:
        if version == "1.13":
            try:
                import torch  # noqa: F401
            except ImportError as e:
                print(f"skipped: PyTorch is not installed ({e}); apt-get install python3-torch")
                return 77

            def torch_side(mode):
                r = subprocess.run([sys.executable, os.path.abspath(__file__), "--torch-side", mode, work],
                                   capture_output=True, text=True)
                sys.stderr.write(r.stderr if r.returncode else "")
                return r.stdout.splitlines()
        else:
            tool = find_debian13_tool(fixtures)
            if not tool:
                print("skipped: no shared/tools/debian13-torch.sh above the fixtures and FXPACK_DEBIAN13_TORCH unset")
                return 77
            if os.geteuid() != 0:
                print("skipped: debian13-torch.sh needs root (debootstrap, mount, chroot)")
                return 77
            shutil.copy(os.path.abspath(__file__), work)
            shutil.copy(os.path.join(HERE, "reference_models.py"), work)

            def torch_side(mode):
                # The Debian 13 root mounts `work` at /project; only what is written there stays.
                r = subprocess.run(["bash", tool, f"python3 test_torch_roundtrip.py --torch-side {mode} /project"],
                                   env=dict(os.environ, PROJECT=work), capture_output=True, text=True)
                if r.returncode:
                    sys.stderr.write(r.stderr)
                return r.stdout.splitlines()

        lines = torch_side("write")
        if not os.path.exists(os.path.join(work, MODELS[-1], "torch.pt")):
            if version != "1.13":
                print(f"skipped: the Debian 13 root did not run PyTorch 2.6 ({' | '.join(lines[-3:])})")
                return 77
            print("FAIL PyTorch did not write the reference archives")
            return 1
        passed, failed = fxpack_side(child, work, version)
        lines = torch_side("check")
        for line in lines:
            print(line)
        p, f = count(lines)
        passed += p
        failed += f + (2 * len(MODELS) - p - f)  # a check that printed nothing failed
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"PyTorch {version} round trip took {time.monotonic() - start:.0f} s")
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
