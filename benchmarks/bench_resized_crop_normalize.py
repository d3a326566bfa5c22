"""Resized crop + flip + normalize of a batch of uint8 images against torchvision's per-image chain.

    python benchmarks/bench_resized_crop_normalize.py [--shapes train-mixed:64x224,...] [--help]

Each "shape" is a batch of N uint8 source images around 375x500 (``mixed``: sizes H in [300, 450]
and W in [400, 600], a list; ``fixed``: all 375x500, one tensor) made into an N x 3 x S x S batch
for the train transform (``train``: RandomResizedCrop((S, S)) boxes, half the images flipped) or
the val one (``val``: Resize(256 for S = 224, else S * 8/7), CenterCrop(S)). Antialias on.

Implementations:

- ``eager``: torchvision's v2 functional ops on each image (uint8 (C, H, W) tensors, as
  ``decode_jpeg`` gives them), then the stack: train ``resized_crop`` + ``hflip`` +
  ``to_dtype(scale=True)`` + ``normalize``; val ``resize`` + ``center_crop`` + the same.
- ``compile``: torch.compile of that per-image chain (dynamic shapes: every box differs).
- ``loader``: that chain in a DataLoader, 2 persistent workers, batches of N/8 images joined.
- ours: ``cookbook_ops.resized_crop_normalize`` on every backend here (uint8 (H, W, C) images,
  as ``collate_uint8_list`` gives them; boxes drawn outside the timed call).

Checks: ours against the reference backend (2e-5 of max |out|); the torchvision chains against
our reference with the same boxes, within the rounding of their uint8 resize (1/255 before
Normalize); val chains against the eager val chain (torchvision's Resize + CenterCrop keeps a
fractional region, which our integer box approximates; see ``center_crop_boxes``). Memory
floor: each source pixel of the boxes read once, each output value written once. The markdown
report gets a table of images per second. Writes <out>/resized_crop_normalize-<device>[-quick].*
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
from harness.impls import OUR_BACKENDS, backend_unavailable_reason, import_failure, unknown_impl
from harness.overhead import OverheadCase
from harness.spec import BenchSpec, dtype_name
from harness.timing import Timing

cookbook_ops = import_cookbook_ops()

BENCHMARK = "resized_crop_normalize"
OP = "resized_crop_normalize_forward"
PASSES = ("fwd",)
IMPLS = ("eager", "compile", "loader", *OUR_BACKENDS)
VARIANTS = ("train", "val")
SOURCES = ("mixed", "fixed")
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
LOADER_WORKERS = 2
# Max |error| over max |reference|: ours (float32 arithmetic, positions as ATen); the
# torchvision chains round the resized image to uint8 (1/255 / std 0.225 over max |out| 2.6).
OURS_TOLERANCE = {torch.float32: 2e-5, torch.bfloat16: 8e-3, torch.float16: 1e-3}
CHAIN_TOLERANCE = 8e-3


@dataclass(frozen=True)
class Shape:
    variant: str  # train or val
    source: str  # mixed (a list of sizes) or fixed (one tensor)
    n: int
    size: int
    name: str = ""

    @property
    def label(self) -> str:
        return f"{self.variant}-{self.source}-{self.n}x{self.size}"


def _shapes(n, what):
    return [Shape(v, s, n, 224, f"{v}, {s} sizes, {what}") for v in VARIANTS for s in SOURCES]


SHAPES = {"cuda": _shapes(256, "batch of 256"), "cpu": _shapes(64, "batch of 64")}
# The train transform on a batch of differently sized photos, as a data loader delivers them.
HEADLINE_SHAPES = {
    "cuda": [Shape("train", "mixed", 256, 224, "train, mixed sizes, batch of 256")],
    "cpu": [Shape("train", "mixed", 64, 224, "train, mixed sizes, batch of 64")],
}
QUICK_SHAPES = {"cuda": _shapes(64, "batch of 64"), "cpu": _shapes(8, "batch of 8")}
EFFORT = {
    **spec.EFFORT,
    ("cpu", False): dict(warmup=1, reps=10, min_reps=3, budget_s=1.5),
    ("cpu", True): dict(warmup=1, reps=4, min_reps=2, budget_s=0.2),
}


# --- inputs -----------------------------------------------------------------------------------


@dataclass
class Inputs:
    hwc: list  # uint8 (H, W, C) tensors on the device (ours)
    chw: list  # the same images as (C, H, W) tensors (torchvision's)
    batch: torch.Tensor | None  # the fixed-size images as one (N, H, W, C) tensor
    boxes: torch.Tensor  # (N, 4) int64 on the device
    flip: torch.Tensor | None  # (N,) bool on the device
    resize: int


def resize_for(size: int) -> int:
    return 256 if size == 224 else round(size * 8 / 7)


@functools.lru_cache(maxsize=4)
def make_inputs(shape: Shape, device: str, seed: int = 0) -> Inputs:
    gen = torch.Generator().manual_seed(seed)
    dev = torch.device(device)
    if shape.source == "fixed":
        sizes = [(375, 500)] * shape.n
    else:
        hs = torch.randint(300, 451, (shape.n,), generator=gen).tolist()
        ws = torch.randint(400, 601, (shape.n,), generator=gen).tolist()
        sizes = list(zip(hs, ws))
    # smooth content plus noise: photo-like enough for the val residual to be small
    hwc = []
    for h, w in sizes:
        base = torch.randint(0, 256, (h // 8 + 2, w // 8 + 2, 3), generator=gen).float()
        smooth = torch.nn.functional.interpolate(
            base.permute(2, 0, 1)[None], size=(h, w), mode="bilinear", align_corners=False
        )[0].permute(1, 2, 0)
        noise = torch.randint(-8, 9, (h, w, 3), generator=gen).float()
        hwc.append((smooth + noise).round().clamp(0, 255).to(torch.uint8).to(dev))
    batch = torch.stack(hwc) if shape.source == "fixed" else None
    if batch is not None:
        hwc = list(batch.unbind(0))
    chw = [im.permute(2, 0, 1).contiguous() for im in hwc]
    resize = resize_for(shape.size)
    if shape.variant == "train":
        boxes = cookbook_ops.random_resized_crop_boxes(
            sizes, generator=torch.Generator().manual_seed(seed + 1)
        ).to(dev)
        flip = (torch.rand(shape.n, generator=gen) < 0.5).to(dev)
    else:
        boxes = cookbook_ops.center_crop_boxes(sizes, resize, shape.size).to(dev)
        flip = None
    return Inputs(hwc, chw, batch, boxes, flip, resize)


def ours(inp: Inputs, size: int, out_dtype, backend: str):
    images = inp.batch if inp.batch is not None else inp.hwc
    return cookbook_ops.resized_crop_normalize(
        images, inp.boxes, size, MEAN, STD, flip=inp.flip, out_dtype=out_dtype, backend=backend
    )


def make_case(shape: Shape, dtype: torch.dtype, pass_: str, device: str) -> Case:
    """The inputs of one group; expected: our reference (float32) for the same boxes, and for
    val also torchvision's eager Resize + CenterCrop chain."""
    inp = make_inputs(shape, device)
    expected = {"ours": ours(inp, shape.size, torch.float32, "reference").double()}
    if shape.variant == "val":
        expected["chain"] = chain_batch(inp, shape, torch.float32, chain_one_val).double()
    return Case(shape, dtype, pass_, device, inp, expected)


# --- torchvision's per-image chain --------------------------------------------------------------


def chain_one_train(image, top, left, height, width, flip, size):
    from torchvision.transforms.v2 import functional as F

    x = F.resized_crop(image, top, left, height, width, [size, size], antialias=True)
    if flip:
        x = F.hflip(x)
    x = F.to_dtype(x, torch.float32, scale=True)
    return F.normalize(x, list(MEAN), list(STD))


def chain_one_val(image, resize, size):
    from torchvision.transforms.v2 import functional as F

    x = F.center_crop(F.resize(image, [resize], antialias=True), [size, size])
    x = F.to_dtype(x, torch.float32, scale=True)
    return F.normalize(x, list(MEAN), list(STD))


def chain_batch(inp: Inputs, shape: Shape, out_dtype, one) -> torch.Tensor:
    if shape.variant == "train":
        boxes = inp.boxes.tolist()
        flips = [False] * shape.n if inp.flip is None else inp.flip.tolist()
        out = [one(im, *b, f, shape.size) for im, b, f in zip(inp.chw, boxes, flips)]
    else:
        out = [one(im, inp.resize, shape.size) for im in inp.chw]
    return torch.stack(out).to(out_dtype)


class _PerImage(torch.utils.data.Dataset):
    """Image i through the chain; the boxes and flips are fixed so the check can replay them."""

    def __init__(self, inp: Inputs, shape: Shape):
        self.images = [im.cpu() for im in inp.chw]
        self.boxes = inp.boxes.cpu().tolist()
        self.flips = [False] * shape.n if inp.flip is None else inp.flip.cpu().tolist()
        self.shape, self.resize = shape, inp.resize

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        torch.set_num_threads(1)
        if self.shape.variant == "train":
            return chain_one_train(self.images[i], *self.boxes[i], self.flips[i], self.shape.size)
        return chain_one_val(self.images[i], self.resize, self.shape.size)


def loader_fn(inp: Inputs, shape: Shape, out_dtype):
    loader = torch.utils.data.DataLoader(
        _PerImage(inp, shape),
        batch_size=max(1, shape.n // 8),
        num_workers=LOADER_WORKERS,
        persistent_workers=True,
    )

    def batch():
        return torch.cat(list(loader)).to(out_dtype)

    return batch


def make_fn(impl: str, inp: Inputs, shape: Shape, out_dtype):
    if impl == "eager":
        one = chain_one_train if shape.variant == "train" else chain_one_val
        return lambda: chain_batch(inp, shape, out_dtype, one)
    if impl == "compile":
        one = torch.compile(
            chain_one_train if shape.variant == "train" else chain_one_val, dynamic=True
        )
        return lambda: chain_batch(inp, shape, out_dtype, one)
    if impl == "loader":
        return loader_fn(inp, shape, out_dtype)
    if impl in OUR_BACKENDS:
        return lambda: ours(inp, shape.size, out_dtype, impl)
    raise ValueError(f"unknown implementation {impl!r}")


# --- availability -------------------------------------------------------------------------------


def unavailable_reason(impl: str, device: str) -> str | None:
    if impl in ("eager", "compile", "loader"):
        reason = import_failure("torchvision", "torchvision.transforms.v2.functional")
        if reason is None and impl == "loader" and torch.device(device).type != "cpu":
            return "the DataLoader workers run on the CPU (see the CPU run)"
        return reason
    if impl in OUR_BACKENDS:
        return backend_unavailable_reason(impl, device, (OP,))
    raise unknown_impl(impl, IMPLS)


IMPL_LABELS = {
    "eager": "torchvision v2 per-image chain (eager)",
    "compile": "torch.compile(per-image chain)",
    "loader": f"per-image chain in a DataLoader ({LOADER_WORKERS} workers)",
}
impl_label = functools.partial(make_report.impl_label, overrides=IMPL_LABELS)


# --- one group --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def floor_bytes(shape: Shape, dtype: torch.dtype) -> int:
    inp = make_inputs(shape, "cpu")
    read = int((inp.boxes[:, 2] * inp.boxes[:, 3]).sum()) * 3
    return read + shape.n * 3 * shape.size * shape.size * element_size(dtype)


def record_fields(impl: str, shape: Shape, dtype: torch.dtype, pass_: str) -> dict:
    return {"floor_bytes": floor_bytes(shape, dtype)}


def prepare(impl: str, case: Case) -> Prepared:
    """Build the timed call, run it once (compiling if needed) and compare (see the module
    docstring for what each implementation is compared with)."""
    shape = case.shape
    fn = make_fn(impl, case.inputs, shape, case.dtype)
    ours_impl = impl in OUR_BACKENDS
    key = "chain" if shape.variant == "val" and not ours_impl else "ours"
    expected = case.expected[key]

    def check(out):
        err = max_relative_error(out.to(expected.device), expected)
        if not out.is_contiguous():
            err = float("inf")
        return {"out_err": err}

    tolerance = OURS_TOLERANCE[case.dtype] if ours_impl else CHAIN_TOLERANCE
    if not ours_impl and case.dtype != torch.float32:
        tolerance += OURS_TOLERANCE[case.dtype]
    against = "torchvision's eager val chain" if key == "chain" else "the reference backend"
    limits = {"out_err": (tolerance, "output off by {:.2e} (of max |out|)")}
    return prepare_call(impl, fn, [], case, check, limits, against)


def finish_record(rec: dict, timing: Timing, copy_gbps: float, n: int) -> dict:
    memory_floor_numbers(rec, timing, copy_gbps)
    rec["images_per_s"] = n / (timing.median_ms * 1e-3)
    return rec


def run_group(shape, dtype, pass_, impls, device, effort, copy_gbps, progress) -> list[dict]:
    label = f"{shape.label} {dtype_name(dtype)}"
    case = make_case(shape, dtype, pass_, device)
    records = new_records(case, impls, impl_label, record_fields)
    finish = functools.partial(finish_record, copy_gbps=copy_gbps, n=shape.n)
    return time_group(case, records, prepare, finish, effort, progress, label=label)


# --- driver -----------------------------------------------------------------------------------


def parse_shapes(text: str) -> list[Shape]:
    """``[variant-source:]NxS`` items; without a prefix, every variant and source."""
    shapes = []
    for item in text.split(","):
        kind, _, dims = item.strip().rpartition(":")
        n, size = (int(v) for v in dims.lower().split("x"))
        kinds = [tuple(kind.split("-"))] if kind else [(v, s) for v in VARIANTS for s in SOURCES]
        for variant, source in kinds:
            if variant not in VARIANTS or source not in SOURCES:
                raise SystemExit(f"unknown shape kind {kind!r}; e.g. train-mixed, val-fixed")
            shapes.append(Shape(variant, source, n, size, "custom"))
    return shapes


def overhead_cases(device: str):
    """``--overhead``: 4 uint8 8x8x3 images to 4x4, nearly all host work, against
    torchvision's per-image chain on the same boxes (Python ints, as a data loader has them)."""
    hwc = torch.randint(0, 256, (4, 8, 8, 3), dtype=torch.uint8, device=device)
    boxes = torch.tensor([[0, 0, 8, 8], [1, 2, 6, 5], [2, 1, 5, 7], [0, 3, 8, 4]], device=device)
    pairs = list(zip(hwc.permute(0, 3, 1, 2), boxes.tolist()))
    return [
        OverheadCase(
            "4x8x8x3 to 4x4",
            "fwd",
            lambda: torch.stack([chain_one_train(im, *b, False, 4) for im, b in pairs]),
            lambda: cookbook_ops.resized_crop_normalize(hwc, boxes, 4, MEAN, STD),
        )
    ]


SPEC = BenchSpec(
    benchmark=BENCHMARK,
    doc=__doc__,
    call=(
        "cookbook_ops.resized_crop_normalize(uint8_hwc_images, boxes, size, mean, std, flip=..., "
        "out_dtype=...) vs torchvision v2 resized_crop (or resize + center_crop) + hflip + "
        "to_dtype(scale=True) + normalize per image"
    ),
    impls=IMPLS,
    passes=PASSES,
    shapes=SHAPES,
    quick_shapes=QUICK_SHAPES,
    headline_shapes=HEADLINE_SHAPES,
    effort=EFFORT,
    shapes_help="[variant-source:]NxS list, e.g. train-mixed:64x224,val-fixed:256x224",
    parse_shapes=parse_shapes,
    unavailable_reason=unavailable_reason,
    run_group=run_group,
    config={"mean": MEAN, "std": STD, "antialias": True, "output_layout": "NCHW contiguous"},
    extra={
        "floor_note": (
            "memory floor: each source pixel inside the boxes read once (uint8), each output "
            "value written once; GB/s = floor bytes / time; of floor = floor time / time."
        ),
        "notes": [],
    },
    extra_sections=lambda run: [("images per second", images_per_second_table(run))],
    overhead_cases=overhead_cases,
)


def images_per_second_table(run: dict) -> str:
    groups: dict[tuple, dict] = {}
    for rec in run.get("results", []):
        if rec.get("images_per_s") is not None:
            groups.setdefault((rec["shape"]["label"], rec["dtype"]), {})[rec["impl"]] = rec
    impls = [i for i in IMPLS if any(i in g for g in groups.values())]
    head = ["shape", "dtype", *[impl_label(i) for i in impls]]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for (label, dtype), recs in groups.items():
        row = [label, make_report.SHORT_DTYPE.get(dtype, dtype)]
        row += [f"{recs[i]['images_per_s']:.0f}" if i in recs else "-" for i in impls]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    return driver.main(SPEC, argv)


if __name__ == "__main__":
    sys.exit(main())
