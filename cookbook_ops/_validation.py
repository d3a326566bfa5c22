"""Argument checks the ops share, written once: the public functions, the fake kernels and the
Triton launchers call them (the pure-PyTorch reference is an oracle and checks nothing).

Value checks on tensor contents that must also work under torch.compile are in
:mod:`cookbook_ops._checks`.
"""

from __future__ import annotations

import torch

from cookbook_ops._checks import check_cpu_values, permutation_ok
from cookbook_ops._dtypes import opmath_dtype

# --- cross-entropy options -------------------------------------------------------------------

REDUCTIONS = ("none", "mean", "sum")
CONVENTIONS = ("uniform", "others", "lsr")


def check_num_classes(num_classes: int) -> None:
    """Zero classes leave nothing to take a softmax over (F.cross_entropy fails there too)."""
    if num_classes == 0:
        raise ValueError("logits has C = 0 classes: cross-entropy needs at least one class")


def check_options(smoothing, reduction: str, convention: str, ignore_index) -> None:
    """Checks shared by every cross-entropy entry point (label_smoothing_cross_entropy and
    mixup_cross_entropy)."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}; got {reduction!r}")
    if convention not in CONVENTIONS:
        raise ValueError(f"convention must be one of {CONVENTIONS}; got {convention!r}")
    if isinstance(smoothing, (torch.Tensor, bool)) or not isinstance(smoothing, (int, float)):
        raise TypeError(f"smoothing must be a Python float, got {type(smoothing).__name__}")
    if not 0.0 <= smoothing <= 1.0:
        raise ValueError(f"smoothing must be in [0, 1]; got {smoothing}")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"ignore_index must be an int, got {type(ignore_index).__name__}")


def check_weight(weight, logits: torch.Tensor):
    """Validate class weights for (N, C) logits; return them as the kernels take them
    (contiguous, op-math precision) or None."""
    if weight is None:
        return None
    num_classes = logits.shape[1]
    if not isinstance(weight, torch.Tensor):
        raise TypeError(f"weight must be a tensor or None, got {type(weight).__name__}")
    if weight.dim() != 1 or weight.shape[0] != num_classes:
        raise ValueError(f"weight must have shape ({num_classes},), got {tuple(weight.shape)}")
    if weight.device != logits.device:
        raise ValueError(f"weight is on {weight.device} but logits is on {logits.device}")
    if not weight.is_floating_point():
        raise TypeError(f"weight must be a floating-point tensor, got {weight.dtype}")
    if weight.requires_grad and torch.is_grad_enabled():
        # As F.cross_entropy: class weights are constants on every backend (their gradient
        # would need another pass over the logits). Refused rather than silently not
        # differentiated.
        raise RuntimeError(
            "weight requires grad, but class weights are not differentiable in cookbook_ops "
            "(as in F.cross_entropy); pass weight.detach()"
        )
    return weight.to(opmath_dtype(logits.dtype)).contiguous()


# --- targets ------------------------------------------------------------------------------


def check_target_range(
    target: torch.Tensor, num_classes: int, ignore_index: int, name: str = "target"
) -> None:
    """Raise IndexError naming the argument and its first out-of-range entry. CPU tensors only:
    on a device the check would sync the host, and the kernels there give that row a NaN loss
    instead."""
    if target.device.type != "cpu" or target.numel() == 0:
        return
    if torch.compiler.is_compiling():  # the same check as a graph assertion
        check_cpu_values(
            lambda: (target == ignore_index) | ((target >= 0) & (target < num_classes)),
            target.device,
            IndexError,
            f"{name} is out of range for {num_classes} classes "
            f"(valid: 0..{num_classes - 1} or ignore_index={ignore_index})",
        )
        return
    bad = (target != ignore_index) & ((target < 0) | (target >= num_classes))
    if bool(bad.any()):
        i = int(bad.nonzero()[0, 0])
        raise IndexError(
            f"{name}[{i}] = {int(target[i])} is out of range for {num_classes} classes "
            f"(valid: 0..{num_classes - 1} or ignore_index={ignore_index})"
        )


# --- fake kernels of the cross-entropy ops -----------------------------------------------------


def _check_target_fake(name, t, n):
    torch._check(t.dim() == 1, lambda: f"{name} must be (N,), got shape {tuple(t.shape)}")
    torch._check(t.dtype == torch.int64, lambda: f"{name} must be int64, got {t.dtype}")
    torch._check(t.shape[0] == n, lambda: f"{name} has {t.shape[0]} rows but logits has {n}")


def _check_probability_target_fake(name, t, logits):
    torch._check(
        t.shape == logits.shape,
        lambda: f"{name} must have the shape of logits {tuple(logits.shape)}, got {tuple(t.shape)}",
    )
    torch._check(
        t.dtype == logits.dtype,
        lambda: f"{name} must have the dtype of logits ({logits.dtype}), got {t.dtype}",
    )


def check_fake_args(logits, targets: dict, weight, probability_targets: bool = False):
    """The checks the fake kernels of every cross-entropy op make; ``targets`` maps each
    target's argument name to it (messages name the argument). ``probability_targets``: each
    target is (N, C) in the dtype of logits instead of (N,) int64."""
    torch._check(
        logits.dim() == 2, lambda: f"logits must be (N, C), got shape {tuple(logits.shape)}"
    )
    torch._check(
        logits.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64),
        lambda: f"logits must be a floating tensor, got {logits.dtype}",
    )
    for name, t in targets.items():
        if probability_targets:
            _check_probability_target_fake(name, t, logits)
        else:
            _check_target_fake(name, t, logits.shape[0])
    if weight is not None:
        torch._check(
            weight.dim() == 1 and weight.shape[0] == logits.shape[1],
            lambda: f"weight must be (C,) = ({logits.shape[1]},), got {tuple(weight.shape)}",
        )


# --- blend arguments: the batch permutation and lam (mixup, CutMix, the image ops) ----------


def check_index(index, n, device, name):
    if not isinstance(index, torch.Tensor):
        raise TypeError(f"{name} must be an int64 tensor, got {type(index).__name__}")
    if index.dtype != torch.int64:
        raise TypeError(f"{name} must be int64, got {index.dtype}")
    if index.shape != (n,):
        raise ValueError(
            f"{name} must have shape ({n},) for a batch of {n}, got {tuple(index.shape)}"
        )
    if index.device != device:
        raise ValueError(f"{name} is on {index.device} but x is on {device}")


def on_cpu_eager(t: torch.Tensor) -> bool:
    return t.device.type == "cpu" and not torch.compiler.is_compiling()


def check_permutation(index, name="index"):
    if torch.compiler.is_compiling():  # the same check as a graph assertion (CPU tensors)
        check_cpu_values(
            lambda: permutation_ok(index), index.device, ValueError, f"{name} must be a permutation"
        )
        return
    if on_cpu_eager(index) and index.numel() > 0:
        # O(N), no sort: every value in range and each of 0..n-1 hit exactly once.
        n = index.numel()
        lo, hi = torch.aminmax(index)
        if lo < 0 or hi >= n or not bool(torch.bincount(index, minlength=n).eq(1).all()):
            raise ValueError(f"{name} must be a permutation of 0..{n - 1}")


def lam_tensor(lam, x) -> torch.Tensor:
    """lam as an (N,) tensor in op-math precision on x's device, without a host sync."""
    n = x.shape[0]
    dtype = opmath_dtype(x.dtype)
    if isinstance(lam, torch.Tensor):
        if not lam.is_floating_point():
            raise TypeError(f"lam must be a float or a floating tensor, got {lam.dtype}")
        if lam.device != x.device and lam.dim() != 0:
            raise ValueError(f"lam is on {lam.device} but x is on {x.device}")
        if lam.dim() == 0:
            if lam.device != x.device and on_cpu_eager(lam):
                # Checked on the host, where reading it is free; a blocking copy to x's device
                # would wait for everything queued on the stream. So the value is filled there,
                # or (lam needing its gradient) copied with non_blocking=True: a pageable
                # source is staged at once, so nothing waits for the device.
                value = float(lam.detach())
                if not 0.0 <= value <= 1.0:
                    raise ValueError(f"lam must be in [0, 1]; got {value}")
                if not (lam.requires_grad and torch.is_grad_enabled()):
                    return torch.full((n,), value, dtype=dtype, device=x.device)
                lam = lam.to(device=x.device, dtype=dtype, non_blocking=True)
                return lam.expand(n).contiguous()
            lam = lam.to(device=x.device, dtype=dtype).expand(n)
        elif lam.shape != (n,):
            raise ValueError(
                f"lam must be a float, a 0-d tensor or shape ({n},), got {tuple(lam.shape)}"
            )
        check_cpu_values(
            lambda: (lam >= 0) & (lam <= 1), lam.device, ValueError, "lam must be in [0, 1]"
        )
        return lam.to(dtype).contiguous()
    if isinstance(lam, bool) or not isinstance(lam, (int, float)):
        raise TypeError(f"lam must be a float or a tensor, got {type(lam).__name__}")
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1]; got {lam}")
    return torch.full((n,), float(lam), dtype=dtype, device=x.device)


# --- class-index targets and lam of the two-target losses -------------------------------------


def check_index_target(name: str, target, ref: torch.Tensor, ref_name: str) -> None:
    """An (N,) int64 tensor of class indices on the device of ``ref`` (the logits, or the
    head's input), N its rows; errors name ``name`` and ``ref_name``."""
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(target).__name__}")
    if target.dtype != torch.int64:
        raise TypeError(f"{name} must be an int64 tensor of class indices, got {target.dtype}")
    if target.shape != (ref.shape[0],):
        raise ValueError(
            f"{name} must have shape ({ref.shape[0]},) for {ref_name} of shape "
            f"{tuple(ref.shape)}, got {tuple(target.shape)}"
        )
    if target.device != ref.device:
        raise ValueError(f"{name} is on {target.device} but {ref_name} is on {ref.device}")


def check_loss_lam(lam, ref: torch.Tensor, ref_name: str, dtype: torch.dtype):
    """lam of a two-target loss: a Python float, or a tensor of shape () or (N,) converted to
    ``dtype``. Values are checked where that needs no sync (floats, CPU tensors in eager mode).
    A tensor lam is not detached: it weighs the two per-row losses outside the kernels, so a lam
    that requires grad gets its exact gradient (loss_a - loss_b per row)."""
    if isinstance(lam, bool) or not isinstance(lam, (int, float, torch.Tensor)):
        raise TypeError(f"lam must be a float or a tensor, got {type(lam).__name__}")
    if not isinstance(lam, torch.Tensor):
        lam = float(lam)
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"lam must be in [0, 1]; got {lam}")
        return lam
    if not lam.is_floating_point():
        raise TypeError(f"lam must be a floating-point tensor, got {lam.dtype}")
    n = ref.shape[0]
    if lam.dim() > 1 or (lam.dim() == 1 and lam.shape[0] != n):
        raise ValueError(f"lam must be a scalar, a 0-d tensor or ({n},); got {tuple(lam.shape)}")
    if lam.device != ref.device:
        raise ValueError(f"lam is on {lam.device} but {ref_name} is on {ref.device}")

    def _first_bad(ok):
        return f"; got {float(lam.reshape(-1)[(~ok).reshape(-1).nonzero()[0, 0]])}"

    check_cpu_values(
        lambda: (lam >= 0) & (lam <= 1), lam.device, ValueError, "lam must be in [0, 1]", _first_bad
    )
    return lam.to(dtype)
