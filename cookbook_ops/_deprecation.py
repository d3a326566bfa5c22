"""Old import paths kept working for one release, each with a DeprecationWarning that names
the new one.

The training utilities moved from the package root to :mod:`cookbook_ops.recipe`. Two ways
in still reach them: ``cookbook_ops.metrics`` as an attribute (``from cookbook_ops import
metrics`` included) goes through the package's ``__getattr__``; ``import cookbook_ops.metrics``
(and ``from cookbook_ops.metrics import Accuracy``) loads the shim module left at the old
path. Both warn once, at the line that asked for the old path.
"""

from __future__ import annotations

import warnings

# Modules of cookbook_ops.recipe that used to live at the package root.
MOVED_TO_RECIPE = ("checkpoint", "data", "metrics", "optim", "regularization", "schedules")


def warn_moved_to_recipe(name: str, stacklevel: int) -> None:
    """Warn that ``cookbook_ops.<name>`` is now ``cookbook_ops.recipe.<name>``. ``stacklevel``
    counts from the caller of this function, as for ``warnings.warn``; the import system's own
    frames are skipped by ``warnings``, so 2 from a shim's body points at the user's import."""
    warnings.warn(
        f"cookbook_ops.{name} has moved to cookbook_ops.recipe.{name}; the old path is "
        f"deprecated and will be removed in the next release (use `from cookbook_ops.recipe "
        f"import {name}`)",
        DeprecationWarning,
        stacklevel=stacklevel + 1,
    )
