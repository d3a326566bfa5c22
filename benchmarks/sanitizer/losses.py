"""Cross-entropy cases: label-smoothed cross-entropy and the mixup cross-entropy."""

from __future__ import annotations

import functools

import torch
from harness.environment import import_cookbook_ops

from sanitizer.compare import IGNORE_INDEX, compare

cookbook_ops = import_cookbook_ops()

# (N, C, dtype, weighted, reduction, convention)
CROSS_ENTROPY_CASES = [
    (3, 7, torch.float32, False, "mean", "uniform"),
    (13, 1001, torch.float32, False, "mean", "uniform"),
    (13, 1001, torch.bfloat16, False, "mean", "uniform"),
    (13, 1001, torch.float16, True, "none", "others"),
    (5, 1, torch.float32, False, "none", "uniform"),
    (64, 4099, torch.float32, True, "mean", "uniform"),
    (5, 32771, torch.bfloat16, False, "sum", "uniform"),
    (2, 131073, torch.float32, False, "none", "uniform"),
    (2, 131073, torch.bfloat16, True, "mean", "lsr"),
]


def run_cross_entropy_case(
    backend, device, n, c, dtype, weighted, reduction, convention
) -> list[str]:
    """Problems found (empty when the backend matches the reference)."""
    gen = torch.Generator(device="cpu").manual_seed(n * 7919 + c)
    logits = (torch.randn(n, c, generator=gen) * 3).to(dtype).to(device)
    target = torch.randint(0, c, (n,), generator=gen)
    target[::3] = IGNORE_INDEX  # row 0 and every third row ignored
    target = target.to(device)
    weight = torch.rand(c, generator=gen).add(0.5).to(device) if weighted else None
    grad_out = torch.randn(n, generator=gen).to(dtype).to(device) if reduction == "none" else None

    def loss_fn(x, name):
        return cookbook_ops.label_smoothing_cross_entropy(
            x,
            target,
            0.1,
            weight=weight,
            ignore_index=IGNORE_INDEX,
            reduction=reduction,
            convention=convention,
            return_correct=True,
            backend=name,
        )

    return _loss_problems(loss_fn, backend, device, logits, grad_out, dtype)


def _loss_problems(loss_fn, backend, device, logits, grad_out, dtype) -> list[str]:
    """Forward + backward of a cross-entropy op (``loss_fn(x, backend_name)`` returns the loss
    and the correct flags) on the reference and on ``backend``: loss, gradient and, for float32
    logits, the correct flags compared."""
    results = {}
    for name in ("reference", backend):
        x = logits.detach().clone().requires_grad_(True)
        loss, correct = loss_fn(x, name)
        loss.backward(grad_out)
        results[name] = (loss.detach(), x.grad, correct)
    if device != "cpu":
        torch.cuda.synchronize()
    problems = compare({k: v[:2] for k, v in results.items()}, backend, ("loss", "grad"), dtype)
    # 16-bit logits tie often enough that two correct kernels may pick different argmaxes.
    if dtype == torch.float32 and not torch.equal(results[backend][2], results["reference"][2]):
        problems.append("correct flags differ")
    return problems


def cross_entropy_cases(backend, device):
    for n, c, dtype, weighted, reduction, convention in CROSS_ENTROPY_CASES:
        label = (
            f"{backend:9s} N={n:<3d} C={c:<6d} {str(dtype).removeprefix('torch.'):8s} "
            f"weight={'y' if weighted else 'n'} {reduction:4s} {convention}"
        )
        yield (
            label,
            functools.partial(
                run_cross_entropy_case,
                backend,
                device,
                n,
                c,
                dtype,
                weighted,
                reduction,
                convention,
            ),
        )


# (N, C, dtype, weighted, reduction, convention, lam: "scalar" or "per_sample")
MIXUP_CE_CASES = [
    (3, 7, torch.float32, False, "mean", "uniform", "scalar"),
    (13, 1001, torch.float32, False, "mean", "uniform", "per_sample"),
    (13, 1001, torch.bfloat16, False, "mean", "uniform", "scalar"),
    (13, 1001, torch.float16, True, "none", "others", "per_sample"),
    (5, 1, torch.float32, False, "none", "uniform", "scalar"),  # one class: targets all equal
    (64, 4099, torch.float32, True, "mean", "uniform", "per_sample"),
    (5, 32771, torch.bfloat16, False, "sum", "uniform", "scalar"),
    (2, 131073, torch.float32, False, "none", "uniform", "per_sample"),
    (2, 131073, torch.bfloat16, True, "mean", "lsr", "scalar"),
]


def run_mixup_ce_case(
    backend, device, n, c, dtype, weighted, reduction, convention, lam_kind
) -> list[str]:
    """Problems found (empty when the backend matches the reference)."""
    gen = torch.Generator(device="cpu").manual_seed(n * 7919 + c + 1)
    logits = (torch.randn(n, c, generator=gen) * 3).to(dtype).to(device)
    target_a = torch.randint(0, c, (n,), generator=gen)
    target_b = torch.randint(0, c, (n,), generator=gen)
    rows = torch.arange(n)
    target_b[rows % 3 == 2] = target_a[rows % 3 == 2]  # both slots the same class
    target_a[rows % 4 == 0] = IGNORE_INDEX  # row 0 and every fourth: slot a ignored
    target_b[rows % 4 == 1] = IGNORE_INDEX  # slot b ignored
    target_a[rows % 5 == 3] = target_b[rows % 5 == 3] = IGNORE_INDEX  # both ignored
    target_a, target_b = target_a.to(device), target_b.to(device)
    weight = torch.rand(c, generator=gen).add(0.5).to(device) if weighted else None
    if lam_kind == "per_sample":
        lam = torch.rand(n, generator=gen)
        lam[0] = 1.0
        lam = lam.to(device)
    else:
        lam = float(torch.rand((), generator=gen))
    grad_out = torch.randn(n, generator=gen).to(dtype).to(device) if reduction == "none" else None

    def loss_fn(x, name):
        return cookbook_ops.mixup_cross_entropy(
            x,
            target_a,
            target_b,
            lam,
            0.1,
            weight=weight,
            ignore_index=IGNORE_INDEX,
            reduction=reduction,
            convention=convention,
            return_correct=True,
            backend=name,
        )

    return _loss_problems(loss_fn, backend, device, logits, grad_out, dtype)


def mixup_cross_entropy_cases(backend, device):
    for n, c, dtype, weighted, reduction, convention, lam_kind in MIXUP_CE_CASES:
        label = (
            f"{backend:9s} N={n:<3d} C={c:<6d} {str(dtype).removeprefix('torch.'):8s} "
            f"weight={'y' if weighted else 'n'} {reduction:4s} {convention:7s} lam={lam_kind:10s}"
        )
        yield (
            label,
            functools.partial(
                run_mixup_ce_case,
                backend,
                device,
                n,
                c,
                dtype,
                weighted,
                reduction,
                convention,
                lam_kind,
            ),
        )


# Probability targets: (N, C, dtype, weighted, reduction, target row offset). A target view
# shifted by one element makes its rows start at another 16-byte phase than the logits', the
# all-scalar path of the CUDA kernels; C = 4099 and 32771 cross the warp/block split.
SOFT_TARGET_CASES = [
    (3, 7, torch.float32, False, "mean", 0),
    (13, 1001, torch.float32, True, "none", 0),
    (13, 1001, torch.bfloat16, False, "mean", 1),
    (64, 4099, torch.float16, True, "sum", 0),
    (5, 32771, torch.bfloat16, False, "none", 1),
    (2, 131073, torch.float32, True, "mean", 0),
]


def run_soft_target_case(backend, device, n, c, dtype, weighted, reduction, offset) -> list[str]:
    """Problems found (empty when the backend matches the reference)."""
    gen = torch.Generator(device="cpu").manual_seed(n * 7919 + c + 2)
    logits = (torch.randn(n, c, generator=gen) * 3).to(dtype).to(device)
    q = torch.softmax(torch.randn(n, c, generator=gen) * 2, 1)
    q[:, 1] = 0.0  # zero targets
    q = q.to(dtype).to(device)
    if offset:
        q = torch.cat([q.new_zeros(offset), q.flatten()])[offset:].view(n, c)
    weight = torch.rand(c, generator=gen).add(0.5).to(device) if weighted else None
    grad_out = torch.randn(n, generator=gen).to(dtype).to(device) if reduction == "none" else None

    def loss_fn(x, name):
        return cookbook_ops.label_smoothing_cross_entropy(
            x, q, 0.1, weight=weight, reduction=reduction, return_correct=True, backend=name
        )

    return _loss_problems(loss_fn, backend, device, logits, grad_out, dtype)


def soft_target_cross_entropy_cases(backend, device):
    for n, c, dtype, weighted, reduction, offset in SOFT_TARGET_CASES:
        label = (
            f"{backend:9s} N={n:<3d} C={c:<6d} {str(dtype).removeprefix('torch.'):8s} "
            f"weight={'y' if weighted else 'n'} {reduction:4s} target offset={offset}"
        )
        yield (
            label,
            functools.partial(
                run_soft_target_case, backend, device, n, c, dtype, weighted, reduction, offset
            ),
        )
