"""The resized-crop + normalize kernels, called as registered ops, against F.interpolate.

The public function and its reference are tested in test_resized_crop_normalize.py; this file
checks the compiled CPU kernel and the Triton twin (interpreted on CPU tensors here) directly:
every output dtype and layout, flips, mixup with a permutation that is not an involution,
antialias on and off, up-, down- and mixed scaling, boxes on image edges and of one pixel,
lists of images of different sizes, one and three channels, and the argument guards.
"""

import os
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F

import cookbook_ops  # noqa: F401  (loads the kernels)
from cookbook_ops import _library

OP = _library.RESIZED_CROP_NORMALIZE
OUT_DTYPES = [torch.float32, torch.bfloat16, torch.float16]
MEAN = {1: [0.449], 3: [0.485, 0.456, 0.406]}
STD = {1: [0.226], 3: [0.229, 0.224, 0.225]}
# Float32 results against the F.interpolate oracle, in normalized units.
ATOL = 1e-5


def has_kernel(backend: str) -> bool:
    name = _library.qualified(_library.twin(OP, backend))
    return torch._C._dispatch_has_kernel_for_dispatch_key(name, "CPU")


BACKENDS = [
    pytest.param(
        b,
        marks=pytest.mark.skipif(not has_kernel(b), reason=f"no {b} kernel registered"),
    )
    for b in ("cpu", "triton")
]


def run(backend, images, boxes, size, mean, std, flip=None, lam=None, index=None, *,
        nhwc=True, antialias=True, out_dtype=torch.float32, channels_last=False):  # fmt: skip
    op = _library.op_for(OP, backend)
    return op(
        images, boxes, size[0], size[1], mean, std, flip, lam, index, nhwc, antialias, out_dtype,
        channels_last,
    )  # fmt: skip


def interpolate(region, size, antialias):
    """F.interpolate of one (C, h, w) float image. ATen's CPU antialiased kernel gives every row
    the first row's value when the output is one pixel wide, so that case resizes the
    transposed image (the filter treats both axes alike)."""
    x = region[None]
    if antialias and size[1] == 1 and size[0] > 1:
        x = F.interpolate(x.mT, size[::-1], mode="bilinear", antialias=True)
        return x.mT[0]
    return F.interpolate(x, size, mode="bilinear", align_corners=False, antialias=antialias)[0]


def oracle(images, boxes, size, mean, std, flip=None, lam=None, index=None, *, nhwc=True,
           antialias=True):  # fmt: skip
    """Float32 (N, C, oh, ow): per-image F.interpolate, then flip, normalize, blend."""
    values = []
    for image, (top, left, h, w) in zip(images, boxes.tolist()):
        chw = image.permute(2, 0, 1) if nhwc else image
        region = chw[:, top : top + h, left : left + w].float() / 255
        values.append(interpolate(region, size, antialias))
    v = torch.stack(values)
    if flip is not None:
        v = torch.where(flip[:, None, None, None], v.flip(-1), v)
    v = (v - mean[:, None, None]) / std[:, None, None]
    if lam is not None:
        weight = lam[:, None, None, None]
        v = weight * v + (1 - weight) * v[index]
    return v


def assert_matches(out, expected, out_dtype, channels_last):
    assert out.dtype == out_dtype
    assert out.shape == expected.shape
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    assert out.is_contiguous(memory_format=memory_format)
    diff = (out.float() - expected).abs()
    if out_dtype == torch.float32:
        allowed = torch.full_like(expected, ATOL)
    else:
        # One rounding of a float32 value within ATOL of the oracle: half a unit in the last
        # place of the 16-bit type at that magnitude, plus ATOL.
        bits = 7 if out_dtype == torch.bfloat16 else 10
        exponent = torch.frexp(expected).exponent.float()
        ulp = torch.exp2(exponent - 1 - bits)
        if out_dtype == torch.float16:
            ulp = ulp.clamp(min=2.0**-24)
        allowed = 0.5 * ulp + ATOL
    worst = (diff - allowed).max().item()
    assert worst <= 0, f"max |out - oracle| = {diff.max().item():.3g} exceeds the bound"


def make_case(sizes, channels, nhwc, seed=0, boxes=None):
    """Images of the given (H, W) sizes and boxes (random ones where not given)."""
    g = torch.Generator().manual_seed(seed)
    images, rows = [], []
    for i, (h, w) in enumerate(sizes):
        shape = (h, w, channels) if nhwc else (channels, h, w)
        images.append(torch.randint(0, 256, shape, generator=g, dtype=torch.uint8))
        if boxes is not None and boxes[i] is not None:
            rows.append(list(boxes[i]))
            continue
        bh = int(torch.randint(1, h + 1, (), generator=g))
        bw = int(torch.randint(1, w + 1, (), generator=g))
        top = int(torch.randint(0, h - bh + 1, (), generator=g))
        left = int(torch.randint(0, w - bw + 1, (), generator=g))
        rows.append([top, left, bh, bw])
    mean = torch.tensor(MEAN[channels])
    std = torch.tensor(STD[channels])
    return images, torch.tensor(rows, dtype=torch.int64), mean, std


# Images of different sizes (one list), boxes chosen to cover: the whole image, the
# bottom-right corner, the top-left pixel, a single row, a single column, a tall narrow box
# (downscale in y, upscale in x) and random boxes.
SIZES = [(23, 31), (17, 12), (9, 40), (30, 8), (6, 5), (25, 25), (3, 2)]
BOXES = [
    (0, 0, 23, 31),
    (9, 4, 8, 8),
    (0, 0, 1, 1),
    (14, 0, 1, 8),
    (0, 2, 6, 1),
    (0, 20, 25, 3),
    None,
]
MIX_INDEX = [1, 2, 3, 0, 6, 4, 5]  # two cycles, neither of length 2: not an involution


def variant(name, n, seed=3):
    g = torch.Generator().manual_seed(seed)
    flip = torch.rand(n, generator=g) < 0.5
    flip[0], flip[1] = True, False
    lam = torch.rand(n, generator=g)
    # a single n-cycle (not an involution for n > 2) unless n is the full case
    index = torch.tensor(MIX_INDEX) if n == len(MIX_INDEX) else (torch.arange(n) + 1) % n
    return {
        "plain": {},
        "flip": dict(flip=flip),
        "mixup": dict(lam=lam, index=index),
        "flip_mixup": dict(flip=flip, lam=lam, index=index),
    }[name]


def layout_params():
    """Every combination for the CPU kernel; for the Triton twin (interpreted here, about a
    second a call) a subset that still has each dtype, input and output layout, channel count
    and filter at least twice."""
    params = []
    for out_dtype in OUT_DTYPES:
        for nhwc in (True, False):
            for channels_last in (False, True):
                for channels in (1, 3):
                    for antialias in (False, True):
                        case = (out_dtype, nhwc, channels_last, channels, antialias)
                        name = "-".join(
                            [
                                str(out_dtype).split(".")[-1],
                                "nhwc" if nhwc else "nchw",
                                "cl" if channels_last else "contiguous",
                                f"c{channels}",
                                "antialias" if antialias else "bilinear",
                            ]
                        )
                        params.append(pytest.param("cpu", *case, id=f"cpu-{name}"))
                        # A Latin-square style selection: the parities of the choices.
                        if (nhwc + channels_last + (channels == 3) + antialias) % 2 == (
                            OUT_DTYPES.index(out_dtype) % 2
                        ):
                            params.append(pytest.param("triton", *case, id=f"triton-{name}"))
    return [
        pytest.param(
            *p.values,
            id=p.id,
            marks=pytest.mark.skipif(not has_kernel(p.values[0]), reason="no kernel registered"),
        )
        for p in params
    ]


def small_case(backend, channels, nhwc, seed=0):
    """The SIZES/BOXES case; the Triton interpreter gets its last six images only."""
    k = 0 if backend == "cpu" else 1
    return make_case(SIZES[k:], channels, nhwc, seed=seed, boxes=BOXES[k:])


@pytest.mark.parametrize(
    "backend, out_dtype, nhwc, channels_last, channels, antialias", layout_params()
)
def test_layouts_dtypes(backend, out_dtype, nhwc, channels_last, channels, antialias):
    images, boxes, mean, std = small_case(backend, channels, nhwc)
    kw = variant("flip_mixup", len(images))
    size = (11, 14)
    out = run(backend, images, boxes, size, mean, std, **kw, nhwc=nhwc, antialias=antialias,
              out_dtype=out_dtype, channels_last=channels_last)  # fmt: skip
    expected = oracle(images, boxes, size, mean, std, **kw, nhwc=nhwc, antialias=antialias)
    assert_matches(out, expected, out_dtype, channels_last)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", ["plain", "flip", "mixup", "flip_mixup"])
@pytest.mark.parametrize("antialias", [False, True], ids=["bilinear", "antialias"])
@pytest.mark.parametrize(
    "size", [(4, 5), (40, 33), (1, 1), (1, 9), (7, 1), (30, 3)], ids=lambda s: f"{s[0]}x{s[1]}"
)
def test_scales_and_variants(backend, name, antialias, size):
    """Down-, up- and mixed scaling (the output size against boxes of 1..40 pixels a side)."""
    if backend == "triton" and (name in ("flip", "mixup") or size == (40, 33)):
        pytest.skip("interpreter time: the Triton twin runs the other variants and sizes")
    images, boxes, mean, std = small_case(backend, 3, True, seed=5)
    kw = variant(name, len(images))
    out = run(backend, images, boxes, size, mean, std, **kw, antialias=antialias)
    expected = oracle(images, boxes, size, mean, std, **kw, antialias=antialias)
    assert_matches(out, expected, torch.float32, False)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("antialias", [False, True], ids=["bilinear", "antialias"])
def test_large_downscale(backend, antialias):
    """Many taps per output pixel: 300 source pixels to 7 (about 43 each way) and 9 (90 to 3
    and 4, 20 each way, for the interpreted Triton twin)."""
    sizes = [(300, 280), (64, 300)] if backend == "cpu" else [(60, 50), (16, 60)]
    whole = [(0, 0, h, w) for h, w in sizes]
    images, boxes, mean, std = make_case(sizes, 3, True, seed=7, boxes=whole)
    size = (7, 9) if backend == "cpu" else (3, 4)
    kw = variant("flip_mixup", 2)
    out = run(backend, images, boxes, size, mean, std, **kw, antialias=antialias)
    expected = oracle(images, boxes, size, mean, std, **kw, antialias=antialias)
    assert_matches(out, expected, torch.float32, False)


@pytest.mark.parametrize("backend", BACKENDS)
def test_many_random_boxes(backend):
    """Random sizes and boxes, both layouts of the output."""
    g = torch.Generator().manual_seed(11)
    n = 12 if backend == "cpu" else 5
    top = 48 if backend == "cpu" else 20
    sizes = [tuple(int(v) for v in torch.randint(1, top, (2,), generator=g)) for _ in range(n)]
    for nhwc in (True, False):
        images, boxes, mean, std = make_case(sizes, 3, nhwc, seed=12)
        kw = variant("flip_mixup", n)
        for antialias in (False, True):
            size = (16, 20) if backend == "cpu" else (6, 9)
            out = run(backend, images, boxes, size, mean, std, **kw, nhwc=nhwc,
                      antialias=antialias, channels_last=not nhwc)  # fmt: skip
            expected = oracle(images, boxes, size, mean, std, **kw, nhwc=nhwc,
                              antialias=antialias)  # fmt: skip
            assert_matches(out, expected, torch.float32, not nhwc)


@pytest.mark.parametrize("backend", BACKENDS)
def test_batched_tensor_views(backend):
    """A batched (N, H, W, C) tensor passed as its N views: each view starts inside one storage."""
    batch = torch.randint(0, 256, (3, 10, 12, 3), dtype=torch.uint8)
    images = list(batch.unbind(0))
    boxes = torch.tensor([[0, 0, 10, 12], [2, 3, 5, 9], [9, 11, 1, 1]])
    mean, std = torch.tensor(MEAN[3]), torch.tensor(STD[3])
    out = run(backend, images, boxes, (6, 8), mean, std)
    assert_matches(out, oracle(images, boxes, (6, 8), mean, std), torch.float32, False)


def test_torchvision_v2_chain():
    """torchvision's resized_crop + hflip + normalize on the float image, where installed."""
    tvf = pytest.importorskip("torchvision.transforms.v2.functional")
    images, boxes, mean, std = make_case([(40, 52), (31, 29)], 3, False, seed=13)
    flip = torch.tensor([True, False])
    out = run("cpu", images, boxes, (24, 20), mean, std, flip, nhwc=False)
    for i, (image, (top, left, h, w)) in enumerate(zip(images, boxes.tolist())):
        x = tvf.to_dtype(image, torch.float32, scale=True)
        x = tvf.resized_crop(x, top, left, h, w, [24, 20], antialias=True)
        if flip[i]:
            x = tvf.hflip(x)
        x = tvf.normalize(x, MEAN[3], STD[3])
        torch.testing.assert_close(out[i], x, atol=ATOL, rtol=0)


def test_empty_batch():
    mean, std = torch.tensor(MEAN[3]), torch.tensor(STD[3])
    out = run("cpu", [], torch.empty(0, 4, dtype=torch.int64), (5, 6), mean, std)
    assert out.shape == (0, 3, 5, 6)


def test_noncontiguous_image_is_read_correctly():
    image = torch.randint(0, 256, (3, 20, 16), dtype=torch.uint8).permute(1, 2, 0)  # HWC view
    boxes = torch.tensor([[2, 1, 15, 14]])
    mean, std = torch.tensor(MEAN[3]), torch.tensor(STD[3])
    out = run("cpu", [image], boxes, (9, 7), mean, std)
    assert_matches(out, oracle([image], boxes, (9, 7), mean, std), torch.float32, False)


_SCALAR_SCRIPT = """
import sys, torch, cookbook_ops
from cookbook_ops import _library
args = torch.load(sys.argv[1])
op = _library.op_for(_library.RESIZED_CROP_NORMALIZE, "cpu")
outs = [op(*args[:9], nhwc, aa, torch.float32, False) for nhwc, aa in args[9]]
torch.save(outs, sys.argv[2])
"""


def test_scalar_path(tmp_path):
    """The scalar loops (ATEN_CPU_CAPABILITY=default turns the vector kernels off), against the
    oracle computed with ATen's vector kernels in this process: ATen's own default-capability
    bilinear kernel rounds its source positions without an FMA and differs by ~1e-5."""
    results = []
    cases = [(nhwc, aa) for nhwc in (True, False) for aa in (False, True)]
    for channels in (1, 3):
        images, boxes, mean, std = make_case(SIZES, channels, True, seed=17, boxes=BOXES)
        kw = variant("flip_mixup", len(images))
        nchw = [im.permute(2, 0, 1).contiguous() for im in images]
        for nhwc, aa in cases:
            results.append(
                ((nhwc, aa), oracle(images if nhwc else nchw, boxes, (13, 10), mean, std, **kw,
                                    nhwc=nhwc, antialias=aa))
            )  # fmt: skip
        for nhwc in (True, False):
            args = [images if nhwc else nchw, boxes, 13, 10, mean, std, kw["flip"], kw["lam"],
                    kw["index"], [(nhwc, aa) for aa in (False, True)]]  # fmt: skip
            torch.save(args, tmp_path / "args.pt")
            env = dict(os.environ, ATEN_CPU_CAPABILITY="default")
            subprocess.run(
                [sys.executable, "-c", _SCALAR_SCRIPT, tmp_path / "args.pt", tmp_path / "out.pt"],
                check=True, env=env, timeout=300,
            )  # fmt: skip
            outs = torch.load(tmp_path / "out.pt")
            for aa, out in zip((False, True), outs):
                expected = dict(results[-4:])[(nhwc, aa)]
                assert_matches(out, expected, torch.float32, False)


def test_opcheck():
    images, boxes, mean, std = make_case(SIZES[:4], 3, True, boxes=BOXES[:4])
    kw = variant("flip_mixup", 4)
    args = (images, boxes, 5, 6, mean, std, kw["flip"], kw["lam"], kw["index"], True, True,
            torch.bfloat16, True)  # fmt: skip
    fake = getattr(torch._library.simple_registry.singleton.find(_library.qualified(OP)),
                   "fake_impl", None)  # fmt: skip
    utils = ("test_schema", "test_autograd_registration")
    if fake is not None and fake.kernel is not None:
        utils += ("test_faketensor", "test_aot_dispatch_dynamic")
    torch.library.opcheck(_library.op_for(OP, "cpu"), args, test_utils=utils)


@pytest.mark.parametrize("backend", BACKENDS)
def test_argument_errors(backend):
    images, boxes, mean, std = make_case([(8, 9), (5, 6)], 3, True, boxes=[None, None])
    good = dict(flip=None, lam=None, index=None)

    def call(images=images, boxes=boxes, mean=mean, std=std, size=(4, 4), **kw):
        args = {**good, **kw}
        return run(backend, images, boxes, size, mean, std, args["flip"], args["lam"],
                   args["index"])  # fmt: skip

    errors = (RuntimeError, ValueError, TypeError, IndexError)
    outside = boxes.clone()
    outside[1] = torch.tensor([1, 2, 5, 4])  # rows 1..5 of a 5-row image
    with pytest.raises(errors, match="boxes"):
        call(boxes=outside)
    empty = boxes.clone()
    empty[0, 3] = 0
    with pytest.raises(errors, match="boxes"):
        call(boxes=empty)
    negative = boxes.clone()
    negative[0, 0] = -1
    with pytest.raises(errors, match="boxes"):
        call(boxes=negative)
    with pytest.raises(errors, match="boxes"):
        call(boxes=boxes[:1])
    with pytest.raises(errors, match="boxes"):
        call(boxes=boxes.int())
    with pytest.raises(errors, match="images"):
        call(images=[images[0].float(), images[1]])
    with pytest.raises(errors, match="images"):
        call(images=[images[0], images[1][..., :2].contiguous()])
    with pytest.raises(errors, match="mean"):
        call(mean=mean[:2], std=std[:2])
    with pytest.raises(errors, match="out_h|size|positive"):
        call(size=(0, 4))
    with pytest.raises(errors, match="lam"):
        call(lam=torch.rand(2))
    with pytest.raises(errors, match="index"):
        call(lam=torch.rand(2), index=torch.tensor([0, 2]))
    with pytest.raises(errors, match="flip"):
        call(flip=torch.ones(3, dtype=torch.bool))


def _on(device, tensors):
    return [None if t is None else t.to(device) for t in tensors]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("backend", ["cuda", "triton"])
@pytest.mark.parametrize("nhwc", [True, False], ids=["nhwc", "nchw"])
@pytest.mark.parametrize("antialias", [False, True], ids=["bilinear", "antialias"])
@pytest.mark.parametrize("out_dtype", OUT_DTYPES, ids=str)
@pytest.mark.parametrize("channels", [1, 3])
def test_gpu_kernels(backend, nhwc, antialias, out_dtype, channels):
    """The CUDA kernel and the compiled Triton twin on CUDA tensors, against the oracle (on the
    CPU), with flips, a non-involution mixup and both output layouts."""
    name = _library.qualified(_library.twin(OP, "cpu" if backend == "cuda" else backend))
    if not torch._C._dispatch_has_kernel_for_dispatch_key(name, "CUDA"):
        pytest.skip(f"no {backend} kernel for CUDA tensors")
    op_backend = "cpu" if backend == "cuda" else backend  # the CUDA kernel is the op itself
    images, boxes, mean, std = make_case(SIZES, channels, nhwc, boxes=BOXES)
    kw = variant("flip_mixup", len(images))
    for size, channels_last in (((11, 14), False), ((40, 33), True), ((1, 1), False)):
        expected = oracle(images, boxes, size, mean, std, **kw, nhwc=nhwc, antialias=antialias)
        flip, lam, index = _on("cuda", [kw["flip"], kw["lam"], kw["index"]])
        out = run(op_backend, _on("cuda", images), boxes.cuda(), size, mean.cuda(), std.cuda(),
                  flip, lam, index, nhwc=nhwc, antialias=antialias, out_dtype=out_dtype,
                  channels_last=channels_last)  # fmt: skip
        assert out.is_cuda
        assert_matches(out.cpu(), expected, out_dtype, channels_last)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
@pytest.mark.parametrize("backend", ["cuda", "triton"])
def test_gpu_large_downscale_and_batch(backend):
    """Many taps (300 -> 7) and a 64-image batch of mixed sizes on the GPU."""
    op_backend = "cpu" if backend == "cuda" else backend
    name = _library.qualified(_library.twin(OP, op_backend))
    if not torch._C._dispatch_has_kernel_for_dispatch_key(name, "CUDA"):
        pytest.skip(f"no {backend} kernel for CUDA tensors")
    g = torch.Generator().manual_seed(21)
    sizes = [(300, 280), (64, 300)] + [
        (int(h), int(w)) for h, w in torch.randint(200, 520, (62, 2), generator=g)
    ]
    images, boxes, mean, std = make_case(sizes, 3, True, seed=22)
    kw = variant("flip_mixup", len(images))
    for size in ((7, 9), (224, 224)):
        expected = oracle(images, boxes, size, mean, std, **kw)
        flip, lam, index = _on("cuda", [kw["flip"], kw["lam"], kw["index"]])
        out = run(op_backend, _on("cuda", images), boxes.cuda(), size, mean.cuda(), std.cuda(),
                  flip, lam, index)  # fmt: skip
        assert_matches(out.cpu(), expected, torch.float32, False)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("out_dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("channels", [1, 2, 3])
def test_16bit_output_is_the_float32_output_rounded_once(backend, out_dtype, channels):
    """Bit for bit: the 16-bit result is the float32 result of the same kernel rounded to
    nearest even (one rounding), in both output layouts, with flips and mixup."""
    if backend == "triton" and channels == 2:
        pytest.skip("interpreter time")
    images, boxes, mean, std = small_case(backend, 3, True)
    images = [im[..., :channels].contiguous() for im in images]
    mean, std = mean[:channels], std[:channels]
    kw = variant("flip_mixup", len(images))
    for channels_last in (False, True):
        wide = run(backend, images, boxes, (5, 19), mean, std, **kw, channels_last=channels_last)
        out = run(backend, images, boxes, (5, 19), mean, std, **kw, out_dtype=out_dtype,
                  channels_last=channels_last)  # fmt: skip
        assert torch.equal(out.view(torch.int16), wide.to(out_dtype).view(torch.int16))
