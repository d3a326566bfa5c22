"""Mixup loss (two targets, smoothing 0.1) against the cookbook's two-CE expression and timm.

    python benchmarks/bench_mixup_cross_entropy.py [--device cpu|cuda] [--quick] [--out DIR]
        [--shapes 4096x1000,per_sample:256x1000,...] [--dtypes fp32,bf16] [--impls eager,...]

Each "shape" is N x C logits with one kind of lam (a plain NxC in --shapes means both):
``scalar`` (a Python float) or ``per_sample`` (an (N,) tensor). target_b is target_a flipped
along the batch, the partner timm's Mixup uses, so every implementation does the same work.

Implementations: the cookbook's expression in PyTorch eager, ``lam * F.cross_entropy(x, ya,
label_smoothing=0.1) + (1 - lam) * F.cross_entropy(x, yb, label_smoothing=0.1)`` (per-sample
lam: the same with ``reduction="none"`` and a mean); torch.compile of it; every backend of
ours that ``cookbook_ops.available_backends(device, op="mixup_cross_entropy_forward")``
reports, ``cookbook_ops.mixup_cross_entropy(x, ya, yb, lam, 0.1)`` (the reference is the
pure-PyTorch fallback that ``auto`` uses where no kernel is built); the dense-target formula
``sum(-mixup_target * log_softmax(x)).mean()`` written out in PyTorch (``dense``), and timm's
``SoftTargetCrossEntropy`` on timm's ``mixup_target`` when timm is importable. Both dense
forms build their (N, C) target inside the timed call, as the training step does. Passes:
``fwd`` (mean loss, logits without grad) and ``fwd+bwd`` (mean loss, backward, ``.grad`` dropped
untimed between calls).

Memory floor, the model of the label-smoothed cross-entropy benchmark: forward must read the
logits once (N*C elements); forward+backward must also write the gradient once (2*N*C: a
kernel that writes the gradient during its forward pass reads the logits once). Our kernels
run forward and backward as two passes, reading the logits twice: 3*N*C, given as "est"
traffic in the JSON. floor time = floor bytes / copy bandwidth measured in this run.

Every loss and gradient is checked against the cookbook's expression evaluated in float64.

Writes <out>/mixup_cross_entropy-<device>[-quick].{json,md,png}; the JSON is rewritten after
every shape, so a run cut short still leaves its finished shapes, and --time-budget skips (and
records) the cases it has no time left for.
"""

from __future__ import annotations

import functools
import sys
import time
from dataclasses import dataclass

import common
import make_report
import torch
import torch.nn.functional as F

cookbook_ops = common.import_cookbook_ops()

SMOOTHING = 0.1
BENCHMARK = "mixup_cross_entropy"
FORWARD_OP = "mixup_cross_entropy_forward"
PASSES = ("fwd", "fwd+bwd")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
OUR_BACKENDS = ("reference", "cpu", "cuda", "triton")
COMPILED_BACKENDS = ("cpu", "cuda", "triton")
IMPLS = ("eager", "compile", *OUR_BACKENDS, "dense", "timm")
LAM_KINDS = ("scalar", "per_sample")


@dataclass(frozen=True)
class Shape:
    n: int
    c: int
    lam: str  # "scalar" or "per_sample"
    name: str = ""

    @property
    def label(self) -> str:
        return f"{self.n}x{self.c}-lam_{self.lam}"


def _both(n, c, what) -> list[Shape]:
    return [Shape(n, c, lam, f"{what}, {lam.replace('_', '-')} lam") for lam in LAM_KINDS]


SHAPES = {
    "cuda": _both(4096, 1000, "ImageNet-1k, batch 4096")
    + _both(256, 1000, "ImageNet-1k, batch 256")
    + _both(1024, 21843, "ImageNet-21k, batch 1024"),
    "cpu": _both(4096, 1000, "ImageNet-1k, batch 4096") + _both(256, 1000, "ImageNet-1k"),
}
QUICK_SHAPES = {
    "cuda": _both(4096, 1000, "ImageNet-1k, batch 4096"),
    "cpu": _both(256, 1000, "ImageNet-1k, batch 256"),
}

# Per-implementation timing effort: (warmup, max reps, min reps, seconds of timed calls).
EFFORT = {
    ("cuda", False): dict(warmup=5, reps=100, min_reps=10, budget_s=0.2),
    ("cuda", True): dict(warmup=3, reps=20, min_reps=5, budget_s=0.05),
    ("cpu", False): dict(warmup=2, reps=40, min_reps=7, budget_s=1.5),
    ("cpu", True): dict(warmup=1, reps=8, min_reps=3, budget_s=0.2),
}

# Loss relative to max(|loss|, 1), gradient relative to max |gradient|, both against float64.
TOLERANCE = {torch.float32: (1e-4, 1e-3), torch.float64: (1e-10, 1e-8)}
TOLERANCE_16BIT = (2e-2, 5e-2)

NOTES: list[str] = []


# --- implementations -------------------------------------------------------------------------


def eager_loss(x, ya, yb, lam):
    """The cookbook's two cross-entropies; a per-sample lam weighs each row's pair."""
    if isinstance(lam, torch.Tensor):
        loss_a = F.cross_entropy(x, ya, reduction="none", label_smoothing=SMOOTHING)
        loss_b = F.cross_entropy(x, yb, reduction="none", label_smoothing=SMOOTHING)
        return (lam * loss_a + (1 - lam) * loss_b).mean()
    return lam * F.cross_entropy(x, ya, label_smoothing=SMOOTHING) + (1 - lam) * F.cross_entropy(
        x, yb, label_smoothing=SMOOTHING
    )


def dense_loss(x, ya, yb, lam):
    """The dense-target route (timm's mixup_target + SoftTargetCrossEntropy), spelled out:
    an (N, C) smoothed, mixed target, then the soft-target cross-entropy."""
    c = x.shape[1]
    off = SMOOTHING / c
    on = 1.0 - SMOOTHING + off
    y1 = torch.full((x.shape[0], c), off, device=x.device).scatter_(1, ya.view(-1, 1), on)
    y2 = torch.full((x.shape[0], c), off, device=x.device).scatter_(1, yb.view(-1, 1), on)
    if isinstance(lam, torch.Tensor):
        lam = lam.view(-1, 1)
    target = y1 * lam + y2 * (1 - lam)
    return torch.sum(-target * F.log_softmax(x, dim=-1), dim=-1).mean()


def _timm_loss():
    from timm.data.mixup import mixup_target
    from timm.loss import SoftTargetCrossEntropy

    criterion = SoftTargetCrossEntropy()

    def loss(x, ya, yb, lam):
        # timm pairs each sample with the flipped batch, so target_b is implied by target_a.
        if isinstance(lam, torch.Tensor):
            lam = lam.view(-1, 1)
        return criterion(x, mixup_target(ya, x.shape[1], lam, SMOOTHING))

    return loss


def _ours(backend: str):
    return functools.partial(cookbook_ops.mixup_cross_entropy, smoothing=SMOOTHING, backend=backend)


def _available_backends(device: str) -> list[str]:
    try:
        return list(cookbook_ops.available_backends(device, op=FORWARD_OP))
    except (TypeError, KeyError):  # a build whose registry does not know the op (or op=)
        return list(cookbook_ops.available_backends(device))


def _why_backend_unavailable(backend: str, device: str) -> str:
    try:
        x = torch.zeros(1, 2, device=device)
        t = torch.zeros(1, dtype=torch.long, device=device)
        cookbook_ops.mixup_cross_entropy(x, t, t, 0.5, backend=backend)
    except Exception as exc:  # the op's own message names the missing piece
        return str(exc)
    return "not reported by cookbook_ops.available_backends()"


def auto_backend(device: str) -> str | None:
    """The backend ``backend="auto"`` runs on ``device``, for the record."""
    try:
        from cookbook_ops import _backend

        return _backend.resolve_backend("auto", torch.device(device), FORWARD_OP)
    except Exception:  # an older layout of the package: not worth failing the run over
        return None


def unavailable_reason(impl: str, device: str) -> str | None:
    """None if ``impl`` can be benchmarked on ``device``, else why not."""
    device_type = torch.device(device).type
    if impl in ("eager", "compile", "dense"):
        return None
    if impl in OUR_BACKENDS:
        if impl == "triton" and device_type == "cpu":
            return "Triton on CPU tensors runs only in the interpreter, not a performance path"
        if impl in _available_backends(device):
            return None
        return _why_backend_unavailable(impl, device)
    if impl == "timm":
        try:
            from timm.data.mixup import mixup_target  # noqa: F401
            from timm.loss import SoftTargetCrossEntropy  # noqa: F401
        except Exception as exc:
            return f"timm is not importable ({type(exc).__name__}: {exc})"
        return None
    raise ValueError(f"unknown implementation {impl!r}; known: {', '.join(IMPLS)}")


def make_loss_fn(impl: str):
    """A fresh ``loss(x, ya, yb, lam) -> mean loss`` for one (shape, dtype, pass) group."""
    if impl == "eager":
        return eager_loss
    if impl == "compile":
        # Static shapes: one specialized graph per group, as a training job with a fixed batch
        # would get (the caller resets dynamo between groups).
        return torch.compile(eager_loss, dynamic=False)
    if impl in OUR_BACKENDS:
        return _ours(impl)
    if impl == "dense":
        return dense_loss
    if impl == "timm":
        return _timm_loss()
    raise ValueError(f"unknown implementation {impl!r}")


def impl_label(impl: str) -> str:
    if impl == "eager":
        return "torch eager (two CEs)"
    if impl == "dense":
        return "dense target + soft CE (eager)"
    if impl == "timm":
        return "timm mixup_target + SoftTargetCrossEntropy"
    return make_report.IMPL_LABELS.get(impl, impl)


# --- bytes ----------------------------------------------------------------------------------


def floor_bytes(shape: Shape, dtype: torch.dtype, pass_: str) -> int:
    elem = torch.empty((), dtype=dtype).element_size()
    return shape.n * shape.c * elem * (1 if pass_ == "fwd" else 2)


def bytes_moved_estimate(impl: str, shape: Shape, dtype: torch.dtype, pass_: str) -> int | None:
    """Logits-sized traffic of our compiled kernels (forward reads the logits once; backward
    reads them again and writes the gradient); None for the others."""
    if impl not in COMPILED_BACKENDS:
        return None
    elem = torch.empty((), dtype=dtype).element_size()
    return shape.n * shape.c * elem * (1 if pass_ == "fwd" else 3)


# --- one case ---------------------------------------------------------------------------------


@dataclass
class Inputs:
    x0: torch.Tensor
    target_a: torch.Tensor
    target_b: torch.Tensor
    lam: float | torch.Tensor


def make_inputs(shape: Shape, dtype: torch.dtype, device: str, seed: int = 0) -> Inputs:
    gen = torch.Generator().manual_seed(seed)
    dev = torch.device(device)
    x0 = torch.randn(shape.n, shape.c, generator=gen).to(dev, dtype)
    target_a = torch.randint(0, shape.c, (shape.n,), generator=gen).to(dev)
    if shape.lam == "per_sample":
        lam = torch.rand(shape.n, generator=gen).to(dev)
    else:
        lam = float(torch.rand((), generator=gen))
    return Inputs(x0, target_a, target_a.flip(0), lam)


def expected_outputs(inp: Inputs, pass_: str):
    """Loss and gradient of the cookbook's expression in float64."""
    x = inp.x0.double().requires_grad_(pass_ != "fwd")
    lam = inp.lam.double() if isinstance(inp.lam, torch.Tensor) else inp.lam
    loss = eager_loss(x, inp.target_a, inp.target_b, lam)
    grad = None
    if pass_ != "fwd":
        loss.backward()
        grad = x.grad
    return loss.detach(), grad


@dataclass
class Prepared:
    fn: object
    reset: object
    compile_s: float | None
    loss_err: float | None
    grad_err: float | None


def _sync(device: str) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def prepare(impl, pass_, inp: Inputs, expected, device) -> Prepared:
    """Build the timed callable, run it once (compiling if needed) and compare with float64."""
    loss_fn = make_loss_fn(impl)
    x = inp.x0.detach().clone()
    args = (inp.target_a, inp.target_b, inp.lam)
    if pass_ == "fwd":

        def fn():
            return loss_fn(x, *args)

        reset = None
    else:
        x.requires_grad_(True)

        def fn():
            loss_fn(x, *args).backward()

        def reset():
            x.grad = None

    t0 = time.perf_counter()
    loss = loss_fn(x, *args)
    if pass_ != "fwd":
        loss.backward()
    _sync(device)
    first_call_s = time.perf_counter() - t0

    loss_ref, grad_ref = expected
    loss_err = float((loss.detach().double() - loss_ref).abs() / loss_ref.abs().clamp_min(1.0))
    grad_err = None
    if grad_ref is not None:
        if x.grad is None:
            grad_err = float("inf")
        else:
            scale = grad_ref.abs().max().clamp_min(1e-30)
            grad_err = float((x.grad.double() - grad_ref).abs().max() / scale)
    if reset is not None:
        reset()
    return Prepared(
        fn=fn,
        reset=reset,
        compile_s=first_call_s if impl == "compile" else None,
        loss_err=loss_err,
        grad_err=grad_err,
    )


def check_status(rec: dict, dtype: torch.dtype) -> None:
    loss_tol, grad_tol = TOLERANCE.get(dtype, TOLERANCE_16BIT)
    bad = []
    if rec.get("loss_err") is not None and not rec["loss_err"] <= loss_tol:
        bad.append(f"loss off by {rec['loss_err']:.2e} (relative)")
    if rec.get("grad_err") is not None and not rec["grad_err"] <= grad_tol:
        bad.append(f"grad off by {rec['grad_err']:.2e} (of max |grad|)")
    if bad:
        rec["status"] = "mismatch"
        rec["reason"] = "vs float64 expression: " + "; ".join(bad)


def finish_record(rec: dict, timing: common.Timing, copy_gbps: float) -> dict:
    median = timing.median_ms
    floor = rec["floor_bytes"]
    rec["timing"] = timing.to_dict()
    rec["median_ms"] = median
    rec["floor_ms"] = floor / (copy_gbps * 1e9) * 1e3
    rec["achieved_GBps"] = floor / (median * 1e-3) / 1e9
    rec["fraction_of_floor"] = rec["floor_ms"] / median
    est = rec["bytes_moved_est"]
    rec["est_GBps"] = est / (median * 1e-3) / 1e9 if est is not None else None
    return rec


def run_group(shape, dtype, pass_, impls, device, effort, copy_gbps, progress) -> list[dict]:
    """Every implementation on one (shape, dtype, pass); eager first, ratios against it."""
    torch._dynamo.reset()  # compiled graphs of earlier groups must not count toward the limit
    inp = make_inputs(shape, dtype, device)
    expected = expected_outputs(inp, pass_)
    dtype_name = str(dtype).removeprefix("torch.")
    records = [
        {
            "shape": shape_dict(shape),
            "dtype": dtype_name,
            "pass": pass_,
            "impl": impl,
            "label": impl_label(impl),
            "status": "ok",
            "reason": None,
            "floor_bytes": floor_bytes(shape, dtype, pass_),
            "bytes_moved_est": bytes_moved_estimate(impl, shape, dtype, pass_),
        }
        for impl in impls
    ]

    def prepare_record(rec):
        p = prepare(rec["impl"], pass_, inp, expected, device)
        rec.update(compile_s=p.compile_s, loss_err=p.loss_err, grad_err=p.grad_err)
        check_status(rec, dtype)
        return p.fn, p.reset

    common.measure_group(
        records,
        prepare_record,
        lambda rec, timing: finish_record(rec, timing, copy_gbps),
        device,
        effort,
        progress,
        f"{shape.label} {dtype_name} {pass_}",
    )
    common.add_speedups(records, "eager", "speedup_vs_eager")
    common.add_speedups(records, "compile", "speedup_vs_compile")
    return records


# --- driver -----------------------------------------------------------------------------------


def shape_dict(shape: Shape) -> dict:
    return {"n": shape.n, "c": shape.c, "lam": shape.lam, "label": shape.label, "name": shape.name}


def parse_shapes(text: str) -> list[Shape]:
    """``[scalar:|per_sample:]NxC`` items; without a lam kind, both kinds of that size."""
    shapes = []
    for item in text.split(","):
        lam, _, size = item.strip().rpartition(":")
        n, c = (int(v) for v in size.lower().split("x"))
        if lam and lam not in LAM_KINDS:
            raise SystemExit(f"unknown lam kind {lam!r}; known: {', '.join(LAM_KINDS)}")
        for kind in [lam] if lam else LAM_KINDS:
            shapes.append(Shape(n, c, kind, "custom"))
    return shapes


SPEC = common.BenchSpec(
    benchmark=BENCHMARK,
    doc=__doc__,
    call=(
        f"cookbook_ops.mixup_cross_entropy(x, ya, yb, lam, {SMOOTHING}) and "
        f"lam * F.cross_entropy(x, ya, label_smoothing={SMOOTHING}) + (1 - lam) * "
        f"F.cross_entropy(x, yb, label_smoothing={SMOOTHING}), mean"
    ),
    impls=IMPLS,
    passes=PASSES,
    dtypes=DTYPES,
    shapes=SHAPES,
    quick_shapes=QUICK_SHAPES,
    effort=EFFORT,
    shapes_help="[scalar:|per_sample:]NxC list, e.g. 4096x1000,per_sample:256x1000",
    parse_shapes=parse_shapes,
    shape_dict=shape_dict,
    unavailable_reason=unavailable_reason,
    run_group=run_group,
    config={"smoothing": SMOOTHING, "target_b": "target_a flipped along the batch"},
    extra={
        "floor_note": (
            "memory floor: fwd reads the logits once (N*C*elem bytes); fwd+bwd also writes the "
            "gradient once (2*N*C*elem); our kernels' own traffic is 3*N*C*elem for fwd+bwd "
            "(backward rereads the logits). GB/s = floor bytes / time; of floor = floor time "
            "/ time. Dense-target rows build their (N, C) target inside the timed call."
        ),
        "notes": NOTES,
    },
)


def parse_args(argv=None):
    return common.parse_args(SPEC, argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    chosen = auto_backend(args.device)
    NOTES.append(f"backend='auto' runs {chosen!r} for {FORWARD_OP} on {args.device} in this build")
    print(NOTES[-1], flush=True)
    return common.main(SPEC, argv)


if __name__ == "__main__":
    sys.exit(main())
