"""The training utilities moved to cookbook_ops.recipe; their old paths work for one release
and warn once, at the user's line, naming the new path. Importing the package never warns."""

import subprocess
import sys

import pytest

import cookbook_ops
import cookbook_ops.recipe

MOVED = ["checkpoint", "data", "metrics", "optim", "regularization", "schedules"]

# Each way a user may have reached a moved module; `obj` ends up as its first public name.
FORMS = {
    "attribute": "obj = cookbook_ops.{name}.{attr}",
    "from_package": "from cookbook_ops import {name} as module\nobj = module.{attr}",
    "import_submodule": "import cookbook_ops.{name}\nobj = cookbook_ops.{name}.{attr}",
    "from_submodule": "from cookbook_ops.{name} import {attr} as obj",
}
USER_FILE = "<user code>"


def _forget_old_path(name):
    """Undo an earlier use of the old path, so the next one is a first use again."""
    sys.modules.pop(f"cookbook_ops.{name}", None)
    vars(cookbook_ops).pop(name, None)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("name", MOVED)
def test_old_path_works_and_warns_once_at_the_users_line(name, form):
    new_module = getattr(cookbook_ops.recipe, name)
    attr = new_module.__all__[0]
    code = compile(FORMS[form].format(name=name, attr=attr), USER_FILE, "exec")
    namespace = {"cookbook_ops": cookbook_ops}
    _forget_old_path(name)
    try:
        with pytest.warns(DeprecationWarning) as record:
            exec(code, namespace)
    finally:
        _forget_old_path(name)
    assert namespace["obj"] is getattr(new_module, attr)
    deprecations = [w for w in record if issubclass(w.category, DeprecationWarning)]
    assert len(deprecations) == 1, [str(w.message) for w in deprecations]
    message = str(deprecations[0].message)
    assert f"cookbook_ops.{name}" in message and f"cookbook_ops.recipe.{name}" in message
    assert deprecations[0].filename == USER_FILE


@pytest.mark.parametrize("name", MOVED)
def test_shim_reexports_every_public_name(name):
    new_module = getattr(cookbook_ops.recipe, name)
    _forget_old_path(name)
    try:
        with pytest.warns(DeprecationWarning, match=f"cookbook_ops.recipe.{name}"):
            shim = __import__(f"cookbook_ops.{name}", fromlist=["_"])
    finally:
        _forget_old_path(name)
    assert shim is not new_module
    assert list(shim.__all__) == list(new_module.__all__)
    for public in new_module.__all__:
        assert getattr(shim, public) is getattr(new_module, public), public


def test_unknown_attribute_still_raises():
    with pytest.raises(AttributeError, match="no_such_thing"):
        cookbook_ops.no_such_thing  # noqa: B018


def test_importing_the_package_and_its_new_paths_does_not_warn():
    code = (
        "import warnings\n"
        "warnings.simplefilter('error')\n"
        "import cookbook_ops\n"
        "from cookbook_ops import *\n"
        "import cookbook_ops.recipe.metrics\n"
        "from cookbook_ops.recipe import checkpoint, data, metrics, optim, regularization, "
        "schedules\n"
        "assert cookbook_ops.recipe.metrics is metrics\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_old_path_warns_in_a_fresh_process():
    """The subprocess check above can fail: the same process, reaching one old path, does."""
    code = (
        "import warnings\n"
        "warnings.simplefilter('error')\n"
        "import cookbook_ops\n"
        "try:\n"
        "    cookbook_ops.metrics\n"
        "except DeprecationWarning as e:\n"
        "    print('warned:', e)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("warned: cookbook_ops.metrics has moved"), result.stdout
