"""Packaging and backend selection: import without the extension, build_info, use_backend."""

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import cookbook_ops


def test_use_backend_context_and_build_info():
    info = cookbook_ops.build_info()
    for key in ("available_backends", "extension_loaded", "extension_error", "built_with_torch"):
        assert key in info
    assert "reference" in cookbook_ops.available_backends()
    logits, target = (torch.randn(4, 5, dtype=torch.float64), torch.randint(0, 5, (4,)))
    with cookbook_ops.use_backend("reference"):
        a = cookbook_ops.label_smoothing_cross_entropy(logits, target, 0.1)
    torch.testing.assert_close(a, F.cross_entropy(logits, target, label_smoothing=0.1))
    with pytest.raises(ValueError, match="name"):
        with cookbook_ops.use_backend("gpu"):
            pass


def test_import_without_extension_falls_back_to_reference():
    code = (
        "import torch, cookbook_ops, torch.nn.functional as F\n"
        "info = cookbook_ops.build_info()\n"
        "assert not info['extension_loaded'] and 'COOKBOOK_OPS_DISABLE_EXTENSION' in "
        "info['extension_error'], info\n"
        "assert cookbook_ops.available_backends('cpu') == ['reference'], info\n"
        "x = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)\n"
        "t = torch.randint(0, 4, (5,))\n"
        "cookbook_ops.label_smoothing_cross_entropy(x, t, 0.1).backward()\n"
        "y = x.detach().requires_grad_()\n"
        "F.cross_entropy(y, t, label_smoothing=0.1).backward()\n"
        "torch.testing.assert_close(x.grad, y.grad)\n"
        "f = torch.randn(2, 3, 4, 4, dtype=torch.float64)\n"
        "assert cookbook_ops.bilinear_pool(f).shape == (2, 9)\n"
        "print('ok')\n"
    )
    env = dict(os.environ, COOKBOOK_OPS_DISABLE_EXTENSION="1", COOKBOOK_OPS_DISABLE_TRITON="1")
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("ok")


def test_extension_built_when_expected():
    """CI builds the C++ kernels; if they are missing there, say why instead of passing."""
    if os.environ.get("COOKBOOK_OPS_EXPECT_EXTENSION") != "1":
        pytest.skip("set COOKBOOK_OPS_EXPECT_EXTENSION=1 to require the compiled kernels")
    info = cookbook_ops.build_info()
    assert info["cpu_kernels"], info
    if os.environ.get("COOKBOOK_OPS_EXPECT_CUDA") == "1":
        assert info["built_with_cuda"], info


def test_installed_package_is_the_one_under_test():
    """tools/test_installed.sh runs this suite against an installed artifact: make sure the
    import did not resolve to the source tree beside the tests."""
    if os.environ.get("COOKBOOK_OPS_EXPECT_INSTALLED") != "1":
        pytest.skip("set COOKBOOK_OPS_EXPECT_INSTALLED=1 when testing an installed artifact")
    from pathlib import Path

    package = Path(cookbook_ops.__file__).resolve().parent
    source_tree = Path(__file__).resolve().parents[1]
    assert package != source_tree / "cookbook_ops", f"imported from the source tree: {package}"
    assert "site-packages" in package.parts, package


def test_version_in_one_place():
    """__version__, build_info() and the installed metadata agree."""
    from importlib.metadata import PackageNotFoundError, version

    from cookbook_ops._version import __version__

    assert cookbook_ops.__version__ == __version__
    assert cookbook_ops.build_info()["version"] == __version__
    try:
        assert version("cookbook_ops") == __version__
    except PackageNotFoundError:  # imported from a checkout that was never pip-installed
        assert os.environ.get("COOKBOOK_OPS_EXPECT_INSTALLED") != "1"


def test_info_command_reports_build():
    """`python -m cookbook_ops` prints versions and backends, and says what to do about a
    missing one (here: the extension switched off)."""
    env = dict(os.environ, COOKBOOK_OPS_DISABLE_EXTENSION="1")
    result = subprocess.run(
        [sys.executable, "-m", "cookbook_ops"], env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert f"cookbook_ops {cookbook_ops.__version__}" in out
    assert f"torch {torch.__version__}" in out
    assert "cpu: reference" in out
    assert "what to do:" in out and "COOKBOOK_OPS_DISABLE_EXTENSION" in out
    result = subprocess.run(
        [sys.executable, "-m", "cookbook_ops", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    import json

    assert json.loads(result.stdout)["version"] == cookbook_ops.__version__
