"""Deprecated path of :mod:`cookbook_ops.recipe.data`: importing it warns, and it will be
removed in the next release."""

from cookbook_ops._deprecation import warn_moved_to_recipe
from cookbook_ops.recipe.data import *  # noqa: F403
from cookbook_ops.recipe.data import __all__  # noqa: F401

warn_moved_to_recipe("data", stacklevel=2)
del warn_moved_to_recipe
