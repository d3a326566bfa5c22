"""uint8 images to a normalized float batch against torchvision, eager and compiled.

    python benchmarks/bench_normalize_images.py [--device cpu|cuda] [--quick] [--out DIR]
        [--shapes 64x224x224x3,flip_mixup:256x224x224x3,...] [--dtypes fp32,bf16] [--impls ...]

Each "shape" is one variant on an N x H x W x C uint8 batch (a plain NxHxWxC in --shapes means
every variant): ``plain`` (ToTensor + Normalize), ``flip`` (+ a per-sample horizontal flip of
half the samples), ``mixup`` (+ the blend with a per-sample lam and a random permutation) and
``flip_mixup`` (both). The dtype is the output dtype (the arithmetic is float32 throughout).
Output: (N, C, H, W) contiguous.

Implementations:

- ``eager``: torchvision's v2 functional ops on the uint8 batch on the same device, as a
  training step would chain them: ``permute`` to NCHW, ``to_dtype(float32, scale=True)``,
  ``normalize``, the flip as ``torch.where(flip, x.flip(-1), x)``, the blend, then the output
  dtype and layout.
- ``compile``: torch.compile of that chain (static shapes).
- ``per_image`` (CPU only, plain and flip): the classic input pipeline, torchvision
  ``[RandomHorizontalFlip,] ToTensor(), Normalize()`` applied to each PIL image inside a
  DataLoader (main process) with the default collate; timed per batch.
- ours: ``cookbook_ops.normalize_images`` on every backend the op has here.

Memory floor: each value is read once as one byte and written once in the output dtype,
N*H*W*C*(1 + output bytes) (mixup reads a second sample per value; the floor does not count it,
so mixup rows can reach at most about 4/5 of it). Every output is checked against the float64
formula. The markdown report gets a table of images per second and the CPU target: our CPU
kernel at least 4x the torchvision chain.

Writes <out>/normalize_images-<device>[-quick].{json,md,png}.
"""

from __future__ import annotations

import functools
import sys
from dataclasses import dataclass

import make_report
import torch
from harness import driver, spec
from harness.cases import Case, Prepared, max_relative_error, prepare_call
from harness.environment import import_cookbook_ops
from harness.floors import element_size, memory_floor_numbers
from harness.groups import new_records, time_group
from harness.impls import (
    OUR_BACKENDS,
    backend_unavailable_reason,
    compile_static,
    import_failure,
    unknown_impl,
)
from harness.overhead import OverheadCase
from harness.spec import BenchSpec, dtype_name, parse_kind_sizes
from harness.timing import Timing

cookbook_ops = import_cookbook_ops()

BENCHMARK = "normalize_images"
OP = "normalize_images_forward"
PASSES = ("fwd",)
IMPLS = ("eager", "compile", "per_image", *OUR_BACKENDS)
VARIANTS = ("plain", "flip", "mixup", "flip_mixup")
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
CPU_TARGET_VS_EAGER = 4.0
# Max |error| over max |float64 formula|: one rounding of the output dtype (torchvision's v2
# to_dtype multiplies by 1/255, a rounding away from x / 255).
TOLERANCE = {torch.float32: 2e-6, torch.bfloat16: 8e-3, torch.float16: 1e-3}

NOTES: list[str] = []


@dataclass(frozen=True)
class Shape:
    variant: str
    n: int
    h: int
    w: int
    c: int
    name: str = ""

    @property
    def numel(self) -> int:
        return self.n * self.h * self.w * self.c

    @property
    def label(self) -> str:
        return f"{self.variant}-{self.n}x{self.h}x{self.w}x{self.c}"


def _all_variants(n, h, w, c, what) -> list[Shape]:
    return [Shape(v, n, h, w, c, f"{v.replace('_', ' + ')}, {what}") for v in VARIANTS]


SHAPES = {
    "cuda": _all_variants(256, 224, 224, 3, "ImageNet batch of 256"),
    "cpu": _all_variants(64, 224, 224, 3, "ImageNet batch of 64"),
}
# ToTensor + Normalize with the random flip, as the cookbook's train transform runs them.
HEADLINE_SHAPES = {
    "cuda": [Shape("flip", 256, 224, 224, 3, "flip, ImageNet batch of 256")],
    "cpu": [Shape("flip", 64, 224, 224, 3, "flip, ImageNet batch of 64")],
}
QUICK_SHAPES = {
    "cuda": _all_variants(64, 224, 224, 3, "ImageNet batch of 64"),
    "cpu": _all_variants(16, 112, 112, 3, "batch of 16 at 112x112"),
}
# The default effort, with fewer CPU rounds: a batch of images takes long on the CPU.
EFFORT = {
    **spec.EFFORT,
    ("cpu", False): dict(warmup=2, reps=20, min_reps=5, budget_s=1.5),
    ("cpu", True): dict(warmup=1, reps=6, min_reps=3, budget_s=0.2),
}


# --- inputs -----------------------------------------------------------------------------------


@dataclass
class Inputs:
    images: torch.Tensor  # uint8 (N, H, W, C) on the device
    flip: torch.Tensor | None
    lam: torch.Tensor | None  # (N,) float32
    index: torch.Tensor | None


def make_inputs(shape: Shape, device: str, seed: int = 0) -> Inputs:
    gen = torch.Generator().manual_seed(seed)
    dev = torch.device(device)
    images = torch.randint(0, 256, (shape.n, shape.h, shape.w, shape.c), generator=gen)
    images = images.to(torch.uint8).to(dev)
    flip = lam = index = None
    if "flip" in shape.variant:
        flip = (torch.rand(shape.n, generator=gen) < 0.5).to(dev)
    if "mixup" in shape.variant:
        lam = torch.rand(shape.n, generator=gen).to(dev)
        index = torch.randperm(shape.n, generator=gen).to(dev)
    return Inputs(images, flip, lam, index)


def make_case(shape: Shape, dtype: torch.dtype, pass_: str, device: str) -> Case:
    """The inputs of one group, with the formula evaluated in float64 (flip, scale,
    normalize, blend), NCHW."""
    inp = make_inputs(shape, device)
    x = inp.images.permute(0, 3, 1, 2).double()
    if inp.flip is not None:
        x = torch.where(inp.flip.view(-1, 1, 1, 1), x.flip(-1), x)
    mean = torch.tensor(MEAN, dtype=torch.float64, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(STD, dtype=torch.float64, device=x.device).view(1, -1, 1, 1)
    v = (x / 255 - mean) / std
    if inp.lam is not None:
        lam = inp.lam.double().view(-1, 1, 1, 1)
        v = lam * v + (1 - lam) * v[inp.index]
    return Case(shape, dtype, pass_, device, inp, v)


# --- implementations --------------------------------------------------------------------------


def torchvision_chain(images, flip, lam, index, out_dtype):
    """The uint8 batch through torchvision's v2 functional ops, as a training step would."""
    from torchvision.transforms.v2 import functional as F

    x = images.permute(0, 3, 1, 2)
    x = F.to_dtype(x, torch.float32, scale=True)
    x = F.normalize(x, list(MEAN), list(STD))
    if flip is not None:
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
    if lam is not None:
        lam = lam.view(-1, 1, 1, 1)
        x = lam * x + (1 - lam) * x[index]
    return x.to(out_dtype).contiguous()


def per_image_loader(inp: Inputs, out_dtype):
    """A DataLoader running torchvision's per-image transforms over PIL images; returns a
    function that produces one batch. The flips are the loader's own random draws, so the
    check compares against the formula with the mask it actually drew (replayed below)."""
    from PIL import Image
    from torchvision import transforms as T

    arrays = inp.images.cpu().numpy()
    pil = [Image.fromarray(a) for a in arrays]
    steps = [T.ToTensor(), T.Normalize(MEAN, STD)]
    if inp.flip is not None:
        # A fixed per-image mask replays the batch's flips exactly (and costs what a random
        # RandomHorizontalFlip does).
        flips = inp.flip.cpu().tolist()

        class Dataset(torch.utils.data.Dataset):
            def __len__(self):
                return len(pil)

            def __getitem__(self, i):
                image = pil[i].transpose(Image.FLIP_LEFT_RIGHT) if flips[i] else pil[i]
                return pipeline(image)

    else:

        class Dataset(torch.utils.data.Dataset):
            def __len__(self):
                return len(pil)

            def __getitem__(self, i):
                return pipeline(pil[i])

    pipeline = T.Compose(steps)
    loader = torch.utils.data.DataLoader(Dataset(), batch_size=len(pil), num_workers=0)

    def batch():
        return next(iter(loader)).to(out_dtype)

    return batch


def make_fn(impl: str, inp: Inputs, out_dtype):
    if impl == "eager":
        return lambda: torchvision_chain(inp.images, inp.flip, inp.lam, inp.index, out_dtype)
    if impl == "compile":
        compiled = compile_static(torchvision_chain)
        return lambda: compiled(inp.images, inp.flip, inp.lam, inp.index, out_dtype)
    if impl == "per_image":
        return per_image_loader(inp, out_dtype)
    if impl in OUR_BACKENDS:
        mixup = None if inp.lam is None else (inp.lam, inp.index)
        return lambda: cookbook_ops.normalize_images(
            inp.images, MEAN, STD, flip=inp.flip, mixup=mixup, out_dtype=out_dtype, backend=impl
        )
    raise ValueError(f"unknown implementation {impl!r}")


# --- availability -------------------------------------------------------------------------------


def unavailable_reason(impl: str, device: str) -> str | None:
    if impl in ("eager", "compile", "per_image"):
        reason = import_failure("torchvision", "torchvision")
        if reason is None and impl == "per_image" and torch.device(device).type != "cpu":
            return "the per-image DataLoader pipeline runs on the CPU (see the CPU run)"
        return reason
    if impl in OUR_BACKENDS:
        return backend_unavailable_reason(impl, device, (OP,))
    raise unknown_impl(impl, IMPLS)


def not_applicable(impl: str, variant: str) -> str | None:
    if impl == "per_image" and "mixup" in variant:
        return "a per-image pipeline has no batch to mix"
    return None


IMPL_LABELS = {
    "eager": "torchvision v2 chain (eager)",
    "compile": "torch.compile(torchvision v2 chain)",
    "per_image": "per-image ToTensor+Normalize in a DataLoader",
}
impl_label = functools.partial(make_report.impl_label, overrides=IMPL_LABELS)


# --- one group --------------------------------------------------------------------------------


def floor_bytes(shape: Shape, dtype: torch.dtype) -> int:
    return shape.numel * (1 + element_size(dtype))


def record_fields(impl: str, shape: Shape, dtype: torch.dtype, pass_: str) -> dict:
    return {"floor_bytes": floor_bytes(shape, dtype)}


def prepare(impl: str, case: Case) -> Prepared:
    """Build the timed call, run it once (compiling if needed) and compare with float64."""
    fn = make_fn(impl, case.inputs, case.dtype)

    def check(out):
        err = max_relative_error(out.to(case.expected.device), case.expected)
        if not out.is_contiguous():
            err = float("inf")  # the contract is a contiguous NCHW batch
        return {"out_err": err}

    limits = {"out_err": (TOLERANCE[case.dtype], "output off by {:.2e} (of max |out|)")}
    return prepare_call(impl, fn, [], case, check, limits, "float64 formula")


def finish_record(rec: dict, timing: Timing, copy_gbps: float, n: int) -> dict:
    memory_floor_numbers(rec, timing, copy_gbps)
    rec["images_per_s"] = n / (timing.median_ms * 1e-3)
    return rec


def run_group(shape, dtype, pass_, impls, device, effort, copy_gbps, progress) -> list[dict]:
    label = f"{shape.label} {dtype_name(dtype)}"
    case = make_case(shape, dtype, pass_, device)
    timed = [i for i in impls if not_applicable(i, shape.variant) is None]
    if len(timed) < len(impls):
        progress.update(f"{label}: per-image pipeline not applicable", n=len(impls) - len(timed))
    records = new_records(case, timed, impl_label, record_fields)
    finish = functools.partial(finish_record, copy_gbps=copy_gbps, n=shape.n)
    return time_group(case, records, prepare, finish, effort, progress, label=label)


# --- driver -----------------------------------------------------------------------------------


def parse_shapes(text: str) -> list[Shape]:
    """``[variant:]NxHxWxC`` items; without a variant, every variant of that size."""
    items = parse_kind_sizes(text, VARIANTS, "variant")
    return [Shape(v, n, h, w, c, "custom") for v, (n, h, w, c) in items]


def overhead_cases(device: str):
    """``--overhead``: 8 uint8 NHWC images of 4x4x3 (not differentiable: forward only)."""
    images = torch.randint(0, 256, (8, 4, 4, 3), dtype=torch.uint8, device=device)
    mean = torch.tensor(MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=device).view(1, 3, 1, 1)

    def eager():
        return (images.permute(0, 3, 1, 2).float() / 255 - mean) / std

    def ours():
        return cookbook_ops.normalize_images(images, MEAN, STD)

    return [OverheadCase("8x4x4x3", "fwd", eager, ours)]


SPEC = BenchSpec(
    benchmark=BENCHMARK,
    doc=__doc__,
    call=(
        "cookbook_ops.normalize_images(images_nhwc_uint8, mean, std, flip=..., mixup=..., "
        "out_dtype=...) vs torchvision v2 to_dtype(scale=True) + normalize + masked flip + "
        "blend + permute"
    ),
    impls=IMPLS,
    passes=PASSES,
    shapes=SHAPES,
    quick_shapes=QUICK_SHAPES,
    headline_shapes=HEADLINE_SHAPES,
    effort=EFFORT,
    shapes_help=(
        "[variant:]NxHxWxC list, e.g. 64x224x224x3,flip:256x224x224x3; variants: "
        + ", ".join(VARIANTS)
    ),
    parse_shapes=parse_shapes,
    unavailable_reason=unavailable_reason,
    run_group=run_group,
    config={"mean": MEAN, "std": STD, "output_layout": "NCHW contiguous"},
    extra={
        "floor_note": (
            "memory floor: each value read once as uint8 and written once in the output dtype, "
            "N*H*W*C*(1 + output bytes); mixup's second read is not counted. GB/s = floor "
            "bytes / time; of floor = floor time / time."
        ),
        "notes": NOTES,
    },
    extra_sections=lambda run: [("images per second", images_per_second_table(run))],
    overhead_cases=overhead_cases,
)


def images_per_second_table(run: dict) -> str:
    """Images per second of every implementation, and the CPU target, per group."""
    groups: dict[tuple, dict] = {}
    for rec in run.get("results", []):
        key = (rec["shape"]["label"], rec["dtype"])
        if rec.get("images_per_s") is not None:
            groups.setdefault(key, {})[rec["impl"]] = rec
    impls = [i for i in IMPLS if any(i in g for g in groups.values())]
    head = ["shape", "dtype", *[impl_label(i) for i in impls]]
    device = run.get("config", {}).get("device", "")
    if device.startswith("cpu"):
        head.append(f"cpu vs chain (target >= {CPU_TARGET_VS_EAGER:g}x)")
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for (label, dtype), recs in groups.items():
        row = [label, make_report.SHORT_DTYPE.get(dtype, dtype)]
        row += [f"{recs[i]['images_per_s']:.0f}" if i in recs else "-" for i in impls]
        if device.startswith("cpu"):
            cpu, eager = recs.get("cpu"), recs.get("eager")
            if cpu and eager:
                ratio = eager["median_ms"] / cpu["median_ms"]
                met = "met" if ratio >= CPU_TARGET_VS_EAGER else "NOT met"
                row.append(f"{ratio:.2f}x ({met})")
            else:
                row.append("-")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return driver.main(SPEC, argv)


if __name__ == "__main__":
    sys.exit(main())
