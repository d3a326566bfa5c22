"""Training checkpoints that resume exactly.

Compared with the cookbook's snippet: the file is written to a temporary name in the same
directory and renamed over the old one (a crash mid-write never leaves a truncated
checkpoint); the best copy goes from the new checkpoint *to* ``<stem>_best<suffixes>`` (the
snippet's ``shutil.copy`` had source and destination reversed and a path that did not
exist); the random number generators are saved and restored, so shuffling, dropout and
mixup continue the same streams after a resume; DDP/compiled wrappers are unwrapped so the
keys never carry ``module.``; loading uses ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.modules.utils import consume_prefix_in_state_dict_if_present

try:
    import numpy as np
except ImportError:  # numpy is optional; its generator is then simply not saved
    np = None

__all__ = ["best_path", "load", "save"]

FORMAT_VERSION = 1


def best_path(path: str | os.PathLike) -> Path:
    """Where ``save(..., is_best=True)`` keeps the best copy: ``<stem>_best<suffixes>``
    beside ``path`` (``checkpoint.pth.tar`` -> ``checkpoint_best.pth.tar``)."""
    path = Path(path)
    suffixes = "".join(path.suffixes)
    stem = path.name[: len(path.name) - len(suffixes)] if suffixes else path.name
    return path.with_name(f"{stem}_best{suffixes}")


def _unwrap(model: nn.Module) -> nn.Module:
    """The module whose state_dict has no wrapper prefixes (DDP, DataParallel,
    torch.compile)."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, nn.Module):
            model = model._orig_mod
        else:
            return model


def _rng_state() -> dict:
    version, internal, gauss = random.getstate()
    state = {
        "python": (version, tuple(internal), gauss),
        "torch": torch.get_rng_state(),
    }
    if np is not None:
        npstate = np.random.get_state(legacy=False)
        if npstate["bit_generator"] == "MT19937":
            # Stored as plain tensors and numbers so that weights_only loading accepts it.
            state["numpy"] = {
                "key": torch.from_numpy(npstate["state"]["key"].astype(np.int64)),
                "pos": int(npstate["state"]["pos"]),
                "has_gauss": int(npstate["has_gauss"]),
                "gauss": float(npstate["gauss"]),
            }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if "torch" in state:
        torch.set_rng_state(state["torch"].cpu())
    if np is not None and "numpy" in state:
        s = state["numpy"]
        np.random.set_state(
            {
                "bit_generator": "MT19937",
                "state": {"key": s["key"].cpu().numpy().astype(np.uint32), "pos": s["pos"]},
                "has_gauss": s["has_gauss"],
                "gauss": s["gauss"],
            }
        )
    if "cuda" in state and torch.cuda.is_available():
        cuda_states = state["cuda"]
        # A checkpoint from a machine with more GPUs restores the devices that exist here.
        for device in range(min(len(cuda_states), torch.cuda.device_count())):
            torch.cuda.set_rng_state(cuda_states[device].cpu(), device)


def _atomic_save(obj: Any, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _atomic_copy(src: Path, dst: Path) -> None:
    """Make ``dst`` a copy of ``src``, replacing any old ``dst`` in one rename. A hard link
    costs no space and stays valid when ``src`` is later replaced (the rename gives ``src``
    a new inode); a real copy is the fallback where links are not supported."""
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    try:
        os.unlink(tmp)
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(dst.parent)


def _fsync_dir(directory: Path) -> None:
    # Makes the rename itself durable; not possible on every platform, and only a nicety.
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save(
    path: str | os.PathLike,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scaler: Any = None,
    epoch: int,
    best_metric: float | None = None,
    is_best: bool = False,
    extra: dict | None = None,
) -> Path:
    """Write a checkpoint to ``path`` atomically and return ``path``.

    Saves the model's state (unwrapped from DDP/DataParallel/torch.compile), the optimizer,
    scheduler and ``GradScaler`` states when given, ``epoch`` (by convention the number of
    epochs completed, i.e. the epoch to resume at), ``best_metric``, ``extra`` (any
    weights_only-loadable data: numbers, strings, lists, dicts, tensors) and the python,
    numpy, torch CPU and every CUDA device's RNG states. With ``is_best`` the new file is
    also kept as :func:`best_path` (``<stem>_best<suffixes>``) beside it. Call it on one
    rank only under DDP."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(epoch, int) or isinstance(epoch, bool):
        raise TypeError(f"epoch must be an int, got {epoch!r}")
    if isinstance(best_metric, torch.Tensor):
        best_metric = best_metric.item()
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(f"path's directory {str(path.parent)!r} does not exist")
    checkpoint = {
        "format_version": FORMAT_VERSION,
        "epoch": epoch,
        "best_metric": best_metric,
        "model": _unwrap(model).state_dict(),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": _rng_state(),
        "extra": extra if extra is not None else {},
    }
    _atomic_save(checkpoint, path)
    if is_best:
        _atomic_copy(path, best_path(path))
    return path


def load(
    path: str | os.PathLike,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
    scaler: Any = None,
    map_location: Any = None,
    restore_rng: bool = True,
    strict: bool = True,
) -> dict:
    """Restore what :func:`save` wrote into the given objects; return the metadata
    ``{"epoch", "best_metric", "extra"}``.

    Tensors are read onto ``map_location`` (default ``"cpu"``: a GPU checkpoint opens on
    any machine; ``load_state_dict`` then copies into the model's and optimizer's own
    devices). A model saved with a ``module.`` (DDP) or ``_orig_mod.`` (torch.compile)
    prefix by other code loads into a plain or wrapped model alike. Restores the RNG states
    unless ``restore_rng=False``; under DDP every rank then continues rank 0's streams. Uses
    ``weights_only=True``: a file that needs arbitrary unpickling is refused."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at path {str(path)!r}")
    checkpoint = torch.load(
        path, map_location="cpu" if map_location is None else map_location, weights_only=True
    )
    if not isinstance(checkpoint, dict) or "model" not in checkpoint:
        raise ValueError(
            f"{str(path)!r} is not a checkpoint written by cookbook_ops.recipe.checkpoint"
        )
    state = dict(checkpoint["model"])
    for prefix in ("module.", "_orig_mod."):
        consume_prefix_in_state_dict_if_present(state, prefix)
    _unwrap(model).load_state_dict(state, strict=strict)
    for name, obj in (("optimizer", optimizer), ("scheduler", scheduler), ("scaler", scaler)):
        if obj is None:
            continue
        if checkpoint.get(name) is None:
            raise KeyError(f"{name} was given but the checkpoint {str(path)!r} has no {name} state")
        obj.load_state_dict(checkpoint[name])
    if restore_rng and checkpoint.get("rng") is not None:
        _set_rng_state(checkpoint["rng"])
    return {
        "epoch": checkpoint.get("epoch"),
        "best_metric": checkpoint.get("best_metric"),
        "extra": checkpoint.get("extra", {}),
    }
