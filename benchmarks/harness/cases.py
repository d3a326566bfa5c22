"""One implementation on one case: the shared inputs of a (shape, dtype, pass) group, the timed
callable built for an implementation, and the check of its first result."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from harness.spec import dtype_name
from harness.timing import sync


@dataclass
class Case:
    """The inputs of one (shape, dtype, pass) group, made once and shared by every
    implementation, and the float64 (or eager) results they are checked against."""

    shape: object
    dtype: torch.dtype
    pass_: str
    device: str
    inputs: object
    expected: object

    @property
    def label(self) -> str:
        return f"{self.shape.label} {dtype_name(self.dtype)} {self.pass_}"


@dataclass
class Prepared:
    """One implementation ready to time: ``fn`` is the timed call, ``reset`` runs untimed
    before each call (None: nothing to reset). ``errors`` are the deviations its first call
    showed (JSON keys such as ``loss_err``), ``reason`` says why they are too large (None: ok).
    """

    fn: Callable[[], object]
    reset: Callable[[], object] | None
    compile_s: float | None
    errors: dict
    reason: str | None = None


GRAD_LIMIT_MESSAGE = "grad off by {:.2e} (of max |grad|)"


def prepare_call(
    impl: str,
    forward: Callable[[], object],
    inputs: list[torch.Tensor],
    case: Case,
    check: Callable[[object], dict],
    limits: dict[str, tuple[float, str]],
    against: str,
    *,
    grad_output: torch.Tensor | None = None,
) -> Prepared:
    """Build the timed callable of ``forward`` for ``case.pass_``, run it once (compiling if
    needed) and check that first result.

    ``forward()`` runs ``impl`` on ``inputs``; for ``fwd+bwd`` the inputs require grad, the
    timed call also runs backward (from ``grad_output``, or from a scalar loss), and their
    ``.grad`` is dropped untimed between calls. ``check(output)`` returns the errors of the
    first call while the gradients it left on ``inputs`` are still there; ``limits`` maps an
    error to its tolerance and message (see :func:`mismatch_reason`).
    """
    if case.pass_ == "fwd":
        fn, reset = forward, None
    else:
        for t in inputs:
            t.requires_grad_(True)

        def fn():
            forward().backward(grad_output)

        def reset():
            for t in inputs:
                t.grad = None

    t0 = time.perf_counter()
    out = forward()
    if case.pass_ != "fwd":
        out.backward(grad_output)
    sync(case.device)
    first_call_s = time.perf_counter() - t0
    errors = check(out)
    if reset is not None:
        reset()
    compile_s = first_call_s if impl == "compile" else None
    return Prepared(fn, reset, compile_s, errors, mismatch_reason(errors, limits, against))


def max_relative_error(actual: torch.Tensor | None, expected: torch.Tensor) -> float:
    """max |actual - expected| / max |expected|; inf for a missing or misshapen result."""
    if actual is None or actual.shape != expected.shape:
        return float("inf")
    scale = expected.abs().max().clamp_min(1e-30)
    return float((actual.double() - expected).abs().max() / scale)


def mismatch_reason(errors: dict, limits: dict[str, tuple[float, str]], against: str) -> str | None:
    """Why ``errors`` exceed their ``limits`` (error key: (tolerance, message format)), or
    None. An error of None was not measured and passes."""
    bad = [
        message.format(errors[key])
        for key, (tolerance, message) in limits.items()
        if errors.get(key) is not None and not errors[key] <= tolerance
    ]
    return f"vs {against}: " + "; ".join(bad) if bad else None
