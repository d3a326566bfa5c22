"""Resized crop + flip + normalize (+ mixup): every backend against torchvision and the formula."""

import math

import pytest
import torch
from conftest import DEVICES, backend_params, compiled_backend_params, interpreted

import cookbook_ops
from cookbook_ops import _library
from cookbook_ops.nn import RandomResizedCropNormalize, ResizeCenterCropNormalize
from cookbook_ops.recipe.data import collate_uint8_list
from cookbook_ops.reference.resized_crop_normalize import resized_crop_normalize_forward

TF = pytest.importorskip(
    "torchvision.transforms.v2.functional", reason="torchvision is the parity oracle"
)

OP = _library.RESIZED_CROP_NORMALIZE
MEAN = {1: [0.449], 3: [0.485, 0.456, 0.406], 4: [0.485, 0.456, 0.406, 0.5]}
STD = {1: [0.226], 3: [0.229, 0.224, 0.225], 4: [0.229, 0.224, 0.225, 0.25]}
# Normalized float32 output against torchvision on the float image: the resampling positions
# and weights agree to float32 rounding (about 1e-6 in 0..1 units), std divides by ~0.22.
ATOL = 1e-5
# 16-bit outputs: the float32 result rounded once; a value within the slack above of a rounding
# boundary may round to the neighbouring 16-bit value (one step: 2**-7 relative in bf16).
LOW_RTOL = {torch.bfloat16: 2**-7, torch.float16: 2**-10}

# (H, W) of the source images and (top, left, height, width, out_h, out_w) cases on them:
# downscale, upscale, mixed (down in y, up in x), non-square, boxes on the image edges,
# one-pixel boxes, the whole image, identity size.
CASES = [
    ((37, 45), (3, 5, 30, 36, 12, 9)),  # downscale, non-square
    ((37, 45), (0, 0, 37, 45, 13, 13)),  # the whole image, downscale
    ((20, 17), (2, 3, 7, 5, 19, 23)),  # upscale
    ((40, 30), (0, 25, 40, 5, 9, 21)),  # mixed: down in y, up in x; right edge
    ((40, 30), (39, 0, 1, 30, 4, 7)),  # bottom-edge strip, 1 pixel tall
    ((25, 26), (11, 12, 1, 1, 5, 6)),  # one pixel
    ((25, 26), (24, 25, 1, 1, 3, 2)),  # one pixel in the corner
    ((33, 29), (4, 4, 16, 16, 16, 16)),  # same size: a plain crop
    ((64, 9), (1, 0, 63, 9, 5, 9)),  # tall, 12.6x down in y
]


def random_image(height, width, channels, layout, device, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (height, width, channels), generator=g, dtype=torch.uint8)
    if layout == "NCHW":
        x = x.permute(2, 0, 1).contiguous()
    return x.to(device)


def as_chw(image, layout):
    return image.permute(2, 0, 1) if layout == "NHWC" else image


def torchvision_float(images, boxes, size, layout, antialias):
    """Per image, torchvision v2's resized_crop on the float image x / 255: (N, C, h, w)."""
    out = []
    for image, box in zip(images, boxes.tolist()):
        x = as_chw(image, layout).cpu().to(torch.float32) / 255
        out.append(TF.resized_crop(x, *box, list(size), antialias=antialias))
    return torch.stack(out)


def finish(v, mean, std, flip=None, mixup=None):
    """hflip, Normalize and the blend after the resize, as a training script would chain them."""
    if flip is not None:
        v = torch.stack([TF.hflip(vi) if f else vi for vi, f in zip(v, flip.tolist())])
    v = torch.stack([TF.normalize(vi, mean, std) for vi in v])
    if mixup is not None:
        lam, index = mixup
        lam_b = lam.cpu().view(-1, 1, 1, 1) if isinstance(lam, torch.Tensor) else lam
        v = lam_b * v + (1 - lam_b) * v[index.cpu()]
    return v


def check_output(out, expected, out_dtype, memory_format, atol=ATOL):
    assert out.dtype == out_dtype and out.shape == expected.shape
    assert out.is_contiguous(memory_format=memory_format)
    out = out.cpu()
    if out_dtype == torch.float32:
        torch.testing.assert_close(out, expected, atol=atol, rtol=0)
    else:
        torch.testing.assert_close(
            out.float(), expected.to(out_dtype).float(), atol=atol, rtol=LOW_RTOL[out_dtype]
        )


def batch_for(cases, channels, layout, device, seed=0):
    images = [
        random_image(h, w, channels, layout, device, seed + k)
        for k, ((h, w), _) in enumerate(cases)
    ]
    boxes = torch.tensor([c[1][:4] for c in cases], dtype=torch.int64, device=device)
    return images, boxes


# --- the formula itself ----------------------------------------------------------------------


def formula_weights(n_in, n_out, antialias):
    """The resampling matrix (n_out, n_in) of one axis from the formula in the reference's
    docstring, in float64 with Python loops: an independent statement of the weights."""
    scale = n_in / n_out
    rows = []
    for k in range(n_out):
        row = [0.0] * n_in
        if antialias and scale >= 1:
            center = scale * (k + 0.5)
            lo = max(int(center - scale + 0.5), 0)
            hi = min(int(center + scale + 0.5), n_in)
            w = [max(0.0, 1 - abs((j + 0.5 - center) / scale)) for j in range(lo, hi)]
            for j, wj in zip(range(lo, hi), w):
                row[j] = wj / sum(w)
        else:
            src = max(scale * (k + 0.5) - 0.5, 0.0)
            j0 = int(src)
            j1 = min(j0 + 1, n_in - 1)
            row[j0] += 1 - (src - j0)
            row[j1] += src - j0
        rows.append(row)
    return torch.tensor(rows, dtype=torch.float64)


@pytest.mark.parametrize("antialias", [True, False])
def test_reference_is_the_written_formula(antialias):
    """The reference against the docstring's formula in float64, including output width 1
    (where ATen's CPU antialiased kernel is off, so torchvision cannot be the oracle)."""
    cases = CASES + [((30, 31), (2, 3, 27, 20, 6, 1)), ((30, 31), (2, 3, 27, 20, 1, 4))]
    for (h, w), (top, left, bh, bw, oh, ow) in cases:
        image = random_image(h, w, 3, "NCHW", "cpu", seed=h * w)
        region = image[:, top : top + bh, left : left + bw].double() / 255
        expected = (
            formula_weights(bh, oh, antialias) @ region @ formula_weights(bw, ow, antialias).T
        )
        out = resized_crop_normalize_forward(
            [image], torch.tensor([[top, left, bh, bw]]), oh, ow, torch.zeros(3), torch.ones(3),
            None, None, None, False, antialias, torch.float32, False,
        )  # fmt: skip
        # float32 positions (as ATen) against float64 ones: a few float32 steps apart
        torch.testing.assert_close(out[0].double(), expected, atol=5e-6, rtol=0)


def test_upscale_with_antialias_is_bilinear():
    """ATen's antialiased filter on an upscale (support 1) is plain bilinear: the reference
    computes it with the antialias formula, so this holds it to the other one."""
    image = random_image(9, 7, 3, "NCHW", "cpu", seed=3)
    boxes = torch.tensor([[1, 1, 6, 5]])
    args = (torch.zeros(3), torch.ones(3), None, None, None, False)
    aa = resized_crop_normalize_forward([image], boxes, 17, 23, *args, True, torch.float32, False)
    plain = resized_crop_normalize_forward(
        [image], boxes, 17, 23, *args, False, torch.float32, False
    )
    torch.testing.assert_close(aa, plain, atol=1e-6, rtol=0)


# --- parity with torchvision -------------------------------------------------------------------


@pytest.mark.parametrize("device,backend", backend_params(OP))
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize("antialias", [True, False], ids=["aa", "no_aa"])
def test_matches_torchvision_per_case(device, backend, layout, antialias):
    cases = CASES[:4] if interpreted(backend, device) else CASES
    for channels in (3, 1) if not interpreted(backend, device) else (3,):
        for case in cases:
            images, boxes = batch_for([case], channels, layout, device, seed=channels)
            size = case[1][4:]
            expected = finish(
                torchvision_float(images, boxes, size, layout, antialias),
                MEAN[channels],
                STD[channels],
            )
            out = cookbook_ops.resized_crop_normalize(
                images, boxes, size, MEAN[channels], STD[channels], layout=layout,
                antialias=antialias, backend=backend,
            )  # fmt: skip
            check_output(out, expected, torch.float32, torch.contiguous_format)


def variants(n, device, seed=1):
    g = torch.Generator().manual_seed(seed)
    flip = (torch.arange(n) % 2 == 0).to(device)
    index = torch.randperm(n, generator=g).to(device)
    lam = torch.rand(n, generator=g).to(device)
    return [
        ("plain", {}),
        ("flip", dict(flip=flip)),
        ("mixup_scalar", dict(mixup=(0.3, index))),
        ("flip_mixup_per_sample", dict(flip=flip, mixup=(lam, index))),
    ]


@pytest.mark.parametrize("device,backend", backend_params(OP))
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize("out_dtype", [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize(
    "memory_format", [torch.contiguous_format, torch.channels_last], ids=["nchw", "cl"]
)
def test_variable_sizes_flip_mixup(device, backend, layout, out_dtype, memory_format):
    """A list of differently sized images with every case's box, resized to one size; flips,
    mixup, output dtypes and layouts."""
    cases = CASES[:4] if interpreted(backend, device) else CASES
    images, boxes = batch_for(cases, 3, layout, device)
    size = (11, 14)
    base = torchvision_float(images, boxes, size, layout, True)
    for _name, kwargs in variants(len(cases), device):
        expected = finish(base, MEAN[3], STD[3], kwargs.get("flip"), kwargs.get("mixup"))
        out = cookbook_ops.resized_crop_normalize(
            images, boxes, size, MEAN[3], STD[3], layout=layout, out_dtype=out_dtype,
            memory_format=memory_format, backend=backend, **kwargs,
        )  # fmt: skip
        check_output(out, expected, out_dtype, memory_format)


@pytest.mark.parametrize("device,backend", backend_params(OP))
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_tensor_form_equals_list_form(device, backend, layout):
    n, h, w = (3, 12, 10) if interpreted(backend, device) else (6, 40, 52)
    images = torch.stack([random_image(h, w, 3, layout, device, seed=k) for k in range(n)])
    sizes = torch.tensor([[h, w]] * n, device=device)
    boxes = cookbook_ops.random_resized_crop_boxes(
        sizes, generator=torch.Generator(device=device).manual_seed(5)
    )
    flip = torch.tensor([True, False] * (n // 2) + [True] * (n % 2), device=device)
    kwargs = dict(layout=layout, flip=flip, backend=backend)
    from_tensor = cookbook_ops.resized_crop_normalize(images, boxes, 8, MEAN[3], STD[3], **kwargs)
    from_list = cookbook_ops.resized_crop_normalize(
        list(images.unbind(0)), boxes, (8, 8), MEAN[3], STD[3], **kwargs
    )
    assert torch.equal(from_tensor, from_list)
    expected = finish(torchvision_float(images, boxes, (8, 8), layout, True), MEAN[3], STD[3], flip)
    check_output(from_tensor, expected, torch.float32, torch.contiguous_format)
    # a non-contiguous batch (a channel-sliced view) is read as its contiguous copy
    wide = torch.cat([images, images], dim=3 if layout == "NHWC" else 1)
    view = wide[..., :3] if layout == "NHWC" else wide[:, :3]
    assert not view.is_contiguous()
    assert torch.equal(
        cookbook_ops.resized_crop_normalize(view, boxes, 8, MEAN[3], STD[3], **kwargs), from_tensor
    )


@pytest.mark.parametrize("antialias", [True, False], ids=["aa", "no_aa"])
def test_within_one_level_of_torchvision_uint8_chain(antialias):
    """Against torchvision's own uint8 pipeline (resized_crop on the uint8 tensor, which rounds
    the resized values to uint8, then to_dtype(scale=True)): within 1/255 before normalizing."""
    images, boxes = batch_for(CASES, 3, "NCHW", "cpu", seed=7)
    for image, box, case in zip(images, boxes, CASES):
        size = list(case[1][4:])
        if size[1] == 1 and antialias:
            continue  # ATen's CPU antialiased kernel is off at output width 1 (see above)
        tv = TF.to_dtype(
            TF.resized_crop(image, *box.tolist(), size, antialias=antialias),
            torch.float32,
            scale=True,
        )
        ours = cookbook_ops.resized_crop_normalize(
            [image], box.view(1, 4), size, 0.0, 1.0, layout="NCHW", antialias=antialias
        )[0]
        assert (ours - tv).abs().max() <= 1 / 255 + 1e-6, case


# --- backends against the reference ----------------------------------------------------------


@pytest.mark.parametrize("device,backend", compiled_backend_params(OP))
def test_kernels_match_reference(device, backend):
    """Every compiled backend (none until kernels are registered) against the reference on a
    larger random batch: downscales to 1/8, upscales, every option."""
    g = torch.Generator().manual_seed(11)
    small = interpreted(backend, device)
    sizes = [
        (int(h), int(w)) for h, w in torch.randint(1, 24 if small else 90, (5, 2), generator=g)
    ]
    for layout in ("NHWC", "NCHW"):
        images = [random_image(h, w, 3, layout, device, seed=k) for k, (h, w) in enumerate(sizes)]
        boxes = cookbook_ops.random_resized_crop_boxes(
            sizes, scale=(0.01, 1.0), generator=torch.Generator().manual_seed(3)
        ).to(device)
        for antialias in (True, False):
            for _, kwargs in variants(len(sizes), device):
                for size in ((7, 9), (31, 17)):
                    call = dict(layout=layout, antialias=antialias, **kwargs)
                    out = cookbook_ops.resized_crop_normalize(
                        images, boxes, size, MEAN[3], STD[3], backend=backend, **call
                    )
                    expected = cookbook_ops.resized_crop_normalize(
                        images, boxes, size, MEAN[3], STD[3], backend="reference", **call
                    )
                    torch.testing.assert_close(out, expected, atol=ATOL, rtol=0)


# --- edge cases, no gradient, bad inputs ------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
def test_empty_batch(device):
    for layout, shape in (("NHWC", (0, 4, 5, 3)), ("NCHW", (0, 3, 4, 5))):
        images = torch.zeros(shape, dtype=torch.uint8, device=device)
        boxes = torch.zeros((0, 4), dtype=torch.int64, device=device)
        out = cookbook_ops.resized_crop_normalize(
            images, boxes, (6, 7), MEAN[3], STD[3], layout=layout, memory_format=torch.channels_last
        )
        assert out.shape == (0, 3, 6, 7) and out.dtype == torch.float32


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_not_differentiable(device, backend):
    images, boxes = batch_for(CASES[:2], 3, "NHWC", device)
    mean = torch.tensor(MEAN[3], device=device, requires_grad=True)
    out = cookbook_ops.resized_crop_normalize(images, boxes, 5, mean, STD[3], backend=backend)
    assert out.grad_fn is None and not out.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        out.sum().backward()


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_bad_inputs_raise_clear_errors(device, backend):
    images, boxes = batch_for(CASES[:3], 3, "NHWC", device)
    index = torch.tensor([1, 2, 0], device=device)

    def call(images=images, boxes=boxes, size=8, mean=MEAN[3], std=STD[3], **kwargs):
        return cookbook_ops.resized_crop_normalize(
            images, boxes, size, mean, std, backend=backend, **kwargs
        )

    with pytest.raises(TypeError, match=r"images\[1\] must be uint8"):
        call([images[0], images[1].float(), images[2]])
    with pytest.raises(TypeError, match="images must be uint8"):
        call(torch.zeros(3, 8, 8, 3, device=device))
    with pytest.raises(TypeError, match="images must be a uint8 tensor or a list"):
        call(images[0].cpu().numpy())
    with pytest.raises(ValueError, match=r"images\[0\] must be \(H, W, C\)"):
        call([images[0][None], images[1], images[2]])
    with pytest.raises(ValueError, match=r"images must be \(N, C, H, W\)"):
        call(images[0], layout="NCHW")
    with pytest.raises(ValueError, match="at least one image"):
        call([], boxes[:0])
    with pytest.raises(ValueError, match=r"images\[2\] has 4 channels"):
        call([images[0], images[1], torch.zeros(9, 9, 4, dtype=torch.uint8, device=device)])
    with pytest.raises(ValueError, match="layout"):
        call(layout="nhwc")
    with pytest.raises(ValueError, match="size must be positive"):
        call(size=0)
    with pytest.raises(ValueError, match="size must be positive"):
        call(size=(4, -1))
    with pytest.raises(TypeError, match="size"):
        call(size=(4.0, 4))
    with pytest.raises(TypeError, match="size"):
        call(size=(4, 4, 4))
    with pytest.raises(TypeError, match="boxes must be int64"):
        call(boxes=boxes.int())
    with pytest.raises(TypeError, match="boxes must be an int64 tensor"):
        call(boxes=boxes.tolist())
    with pytest.raises(ValueError, match=r"boxes must have shape \(3, 4\)"):
        call(boxes=boxes[:2])
    with pytest.raises(ValueError, match=r"boxes must have shape \(3, 4\)"):
        call(boxes=boxes[:, :3])
    with pytest.raises(ValueError, match="mean"):
        call(mean=[0.5, 0.5])
    with pytest.raises(ValueError, match="std"):
        call(std=[0.2] * 4)
    with pytest.raises(ValueError, match="std must not contain zeros"):
        call(std=[0.2, 0.0, 0.2])
    with pytest.raises(TypeError, match="flip"):
        call(flip=torch.ones(3, dtype=torch.int64, device=device))
    with pytest.raises(ValueError, match="flip"):
        call(flip=torch.ones(2, dtype=torch.bool, device=device))
    with pytest.raises(TypeError, match="mixup"):
        call(mixup=0.5)
    with pytest.raises(ValueError, match="lam"):
        call(mixup=(1.5, index))
    with pytest.raises(ValueError, match="index"):
        call(mixup=(0.5, index[:2]))
    with pytest.raises(TypeError, match="antialias"):
        call(antialias=1)
    with pytest.raises(ValueError, match="out_dtype"):
        call(out_dtype=torch.float64)
    with pytest.raises(ValueError, match="memory_format"):
        call(memory_format=torch.channels_last_3d)
    with pytest.raises(ValueError, match="backend"):
        cookbook_ops.resized_crop_normalize(images, boxes, 8, MEAN[3], STD[3], backend="gpu")
    if device == "cpu":  # value checks read the boxes: CPU tensors only
        for bad in ([-1, 0, 5, 5], [0, -1, 5, 5], [0, 0, 0, 5], [0, 0, 5, 0], [30, 0, 8, 5],
                    [0, 40, 5, 6], [0, 0, 38, 5]):  # fmt: skip
            b = boxes.clone()
            b[0] = torch.tensor(bad)
            with pytest.raises(ValueError, match=r"boxes must be non-empty and inside.*boxes\[0\]"):
                call(boxes=b)
        with pytest.raises(ValueError, match="permutation"):
            call(mixup=(0.5, torch.tensor([0, 0, 1])))
    if torch.cuda.is_available():
        other = "cpu" if device == "cuda" else "cuda"
        with pytest.raises(ValueError, match="one device"):
            call([images[0], images[1].to(other), images[2]])
        with pytest.raises(ValueError, match="boxes is on"):
            call(boxes=boxes.to(other))
        with pytest.raises(ValueError, match="flip"):
            call(flip=torch.ones(3, dtype=torch.bool, device=other))


# --- registration: opcheck and torch.compile ------------------------------------------------


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_opcheck(device, backend):
    name = _library.twin(OP, backend)
    mean = torch.tensor(MEAN[3], device=device)
    std = torch.tensor(STD[3], device=device)
    flip = torch.tensor([True, False, True], device=device)
    lam = torch.tensor([0.2, 0.7, 1.0], device=device)
    index = torch.tensor([2, 0, 1], device=device)
    for nhwc in (True, False):
        images, boxes = batch_for(CASES[:3], 3, "NHWC" if nhwc else "NCHW", device)
        for flip_, lam_, index_, antialias, dtype, channels_last in (
            (None, None, None, True, torch.float32, False),
            (flip, lam, index, False, torch.bfloat16, True),
            (flip, None, None, True, torch.float16, False),
        ):
            torch.library.opcheck(
                _library.op(name),
                (
                    images,
                    boxes,
                    6,
                    5,
                    mean,
                    std,
                    flip_,
                    lam_,
                    index_,
                    nhwc,
                    antialias,
                    dtype,
                    channels_last,
                ),  # fmt: skip
            )


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_compile_fullgraph(device, backend):
    torch._dynamo.reset()
    n = 4
    images = torch.stack([random_image(14, 18, 3, "NHWC", device, seed=k) for k in range(n)])
    boxes = torch.tensor(
        [[0, 0, 14, 18], [2, 3, 9, 7], [5, 10, 1, 8], [1, 1, 12, 16]], device=device
    )
    flip = torch.tensor([True, False, False, True], device=device)
    index = torch.tensor([3, 2, 1, 0], device=device)
    lam = torch.tensor([0.1, 0.5, 0.9, 1.0], device=device)

    def prepare(images, boxes, flip, lam, index):
        return cookbook_ops.resized_crop_normalize(
            images, boxes, (10, 12), MEAN[3], STD[3], flip=flip, mixup=(lam, index),
            out_dtype=torch.bfloat16, memory_format=torch.channels_last, backend=backend,
        )  # fmt: skip

    compiled = torch.compile(prepare, fullgraph=True)
    out = compiled(images, boxes, flip, lam, index)
    expected = prepare(images, boxes, flip, lam, index)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=2**-8)
    if device == "cpu":  # the box check runs in the graph as an assertion
        bad = boxes.clone()
        bad[2, 2] = 20
        with pytest.raises(RuntimeError, match="boxes must be non-empty and inside"):
            compiled(images, bad, flip, lam, index)


def test_no_value_is_read_on_the_host():
    """On the meta device nothing has values: the whole path (boxes, flips, the op on the
    reference) goes through only if no value is read back, i.e. nothing would sync a GPU."""
    images = torch.empty((4, 30, 40, 3), dtype=torch.uint8, device="meta")
    module = RandomResizedCropNormalize(16, flip_prob=0.5)
    out = module(images, mixup=(torch.rand(4, device="meta"), torch.arange(4, device="meta")))
    assert out.shape == (4, 3, 16, 16) and out.device.type == "meta"
    val = ResizeCenterCropNormalize(32, 24)(list(images.unbind(0)))
    assert val.shape == (4, 3, 24, 24)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_no_host_sync_on_cuda():
    images = [
        torch.randint(0, 256, s, dtype=torch.uint8, device="cuda")
        for s in ((30, 40, 3), (50, 20, 3))
    ]
    train = RandomResizedCropNormalize(16, generator=torch.Generator(device="cuda"))
    val = ResizeCenterCropNormalize(24, 16)
    for module in (train, val):
        module(images)  # first call: the mean/std device copies are made
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for module in (train, val):
            module(images)
            module(torch.stack([images[0], images[0]]))
    finally:
        torch.cuda.set_sync_debug_mode(0)


# --- the modules ---------------------------------------------------------------------------


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_train_module_is_boxes_then_flips_then_the_op(device, backend):
    images = [random_image(h, w, 3, "NHWC", device, seed=h) for h, w in ((30, 40), (22, 25))] * 3

    def module(seed):
        g = torch.Generator(device=device).manual_seed(seed)
        return RandomResizedCropNormalize(
            (9, 7), scale=(0.2, 1.0), flip_prob=0.5, mean=MEAN[3], std=STD[3], generator=g,
            backend=backend,
        )  # fmt: skip

    a, b = module(4), module(4)
    first = a(images)
    assert torch.equal(first, b(images))
    g = torch.Generator(device=device).manual_seed(4)
    sizes = torch.tensor([[30, 40], [22, 25]] * 3, device=device)
    boxes = cookbook_ops.random_resized_crop_boxes(sizes, (0.2, 1.0), generator=g)
    flip = torch.rand(6, device=device, generator=g) < 0.5
    assert 0 < int(flip.sum()) < 6
    expected = cookbook_ops.resized_crop_normalize(
        images, boxes, (9, 7), MEAN[3], STD[3], flip=flip, backend=backend
    )
    assert torch.equal(first, expected)
    assert not torch.equal(a(images), first)  # the next batch draws new boxes
    assert "flip_prob=0.5" in repr(a) and not list(a.state_dict())


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_val_module_matches_resize_center_crop(device, backend):
    """Where the kept region has whole-pixel edges (448 -> 224, crop 192: rows 32..415), the
    val module equals torchvision's Resize + CenterCrop on the float image, apart from the
    outermost output ring under antialias (the chain's filter reads one source pixel beyond
    the region there; the box does not)."""
    if interpreted(backend, device):
        pytest.skip("a 448x448 image is too large for the Triton interpreter")
    image = random_image(448, 448, 3, "NHWC", device, seed=2)
    for antialias in (True, False):
        module = ResizeCenterCropNormalize(
            224, 192, mean=MEAN[3], std=STD[3], antialias=antialias, backend=backend
        )
        out = module(image[None])[0].cpu()
        x = image.permute(2, 0, 1).cpu().float() / 255
        chain = TF.center_crop(TF.resize(x, [224], antialias=antialias), [192])
        expected = TF.normalize(chain, MEAN[3], STD[3])
        inner = (slice(None), slice(1, -1), slice(1, -1))
        torch.testing.assert_close(out[inner], expected[inner], atol=ATOL, rtol=0)
        if not antialias:
            torch.testing.assert_close(out, expected, atol=ATOL, rtol=0)


def test_modules_bad_arguments():
    with pytest.raises(ValueError, match="flip_prob"):
        RandomResizedCropNormalize(flip_prob=1.5)
    with pytest.raises(TypeError, match="generator"):
        RandomResizedCropNormalize(generator=1)
    with pytest.raises(ValueError, match="scale"):
        RandomResizedCropNormalize(scale=(1.0, 0.5))
    with pytest.raises(ValueError, match="ratio"):
        RandomResizedCropNormalize(ratio=(0.0, 1.0))
    with pytest.raises(ValueError, match="size must be positive"):
        RandomResizedCropNormalize(size=0)
    with pytest.raises(ValueError, match="std must not contain zeros"):
        RandomResizedCropNormalize(std=[0.2, 0.0, 0.1])
    with pytest.raises(ValueError, match="layout"):
        ResizeCenterCropNormalize(layout="HWC")
    with pytest.raises(ValueError, match="resize must be positive"):
        ResizeCenterCropNormalize(resize=0)
    with pytest.raises(ValueError, match="out_dtype"):
        ResizeCenterCropNormalize(out_dtype=torch.float64)
    with pytest.raises(ValueError, match="crop"):  # larger than the resized image
        ResizeCenterCropNormalize(32, 40)(torch.zeros(1, 40, 40, 3, dtype=torch.uint8))


# --- collate ---------------------------------------------------------------------------------


def test_collate_uint8_list_feeds_the_train_module():
    image_module = pytest.importorskip("PIL.Image", reason="Pillow is not installed")
    g = torch.Generator().manual_seed(9)
    arrays = [
        torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8).numpy()
        for h, w in ((20, 30), (25, 18), (20, 30))
    ]
    samples = [
        (image_module.fromarray(arrays[0]), 0),
        (arrays[1], 1),
        (torch.from_numpy(arrays[2]), 2),
    ]
    loader = torch.utils.data.DataLoader(samples, batch_size=3, collate_fn=collate_uint8_list)
    images, targets = next(iter(loader))
    assert isinstance(images, list) and targets.tolist() == [0, 1, 2]
    for image, array in zip(images, arrays):
        assert image.dtype == torch.uint8 and torch.equal(image, torch.from_numpy(array))
    assert collate_uint8_list(arrays)[1].shape == (25, 18, 3)
    gray = collate_uint8_list([arrays[0][..., 0], arrays[1][:, ::-1, 0]])
    assert gray[0].shape == (20, 30, 1) and torch.equal(
        gray[1][..., 0], torch.from_numpy(arrays[1][:, ::-1, 0].copy())
    )
    out = RandomResizedCropNormalize(8)(images)
    assert out.shape == (3, 3, 8, 8)
    with pytest.raises(ValueError, match="non-empty"):
        collate_uint8_list([])
    with pytest.raises(TypeError, match=r"batch\[1\] must be a uint8 array"):
        collate_uint8_list([arrays[0], arrays[1].astype("float32")])


def test_statistics_of_a_train_batch_look_like_images():
    """A sanity check of scale: a constant grey image normalizes to a constant."""
    image = torch.full((1, 20, 30, 3), 128, dtype=torch.uint8)
    out = RandomResizedCropNormalize(7, mean=(0.5,), std=(0.25,))(image)
    torch.testing.assert_close(out, torch.full_like(out, (128 / 255 - 0.5) / 0.25))
    assert math.isfinite(float(out.sum()))
