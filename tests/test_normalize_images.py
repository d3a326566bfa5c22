"""uint8 images to a normalized batch: every backend against the reference and torchvision."""

import numpy as np
import pytest
import torch
from conftest import DEVICES, backend_params, compiled_backend_params, interpreted

import cookbook_ops
from cookbook_ops import _library
from cookbook_ops.nn import NormalizeImages
from cookbook_ops.recipe.data import uint8_collate
from cookbook_ops.reference.normalize_images import normalize_images_forward as reference_forward

OP = _library.NORMALIZE_IMAGES
OUT_DTYPES = [torch.float32, torch.bfloat16, torch.float16]
MEAN = {1: [0.449], 3: [0.485, 0.456, 0.406], 4: [0.485, 0.456, 0.406, 0.5]}
STD = {1: [0.226], 3: [0.229, 0.224, 0.225], 4: [0.229, 0.224, 0.225, 0.25]}
# Float32 values from the exact arithmetic: bit for bit without mixup on every backend; the
# blend may differ by a rounding on backends that order it differently, so it gets one
# float32 rounding of slack (and then one rounding of the 16-bit output dtype).
ONE_ROUNDING = {
    torch.float32: dict(atol=1e-6, rtol=3e-7),
    torch.bfloat16: dict(atol=1e-6, rtol=2**-8),
    torch.float16: dict(atol=1e-6, rtol=2**-11),
}


def random_images(n, height, width, channels, layout, device, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(0, 256, (n, height, width, channels), generator=g, dtype=torch.uint8)
    # Every value of the table at least once in the first sample of larger batches.
    flat = x.view(-1)
    flat[: min(256, flat.numel())] = torch.arange(min(256, flat.numel()), dtype=torch.uint8)
    if layout == "NCHW":
        x = x.permute(0, 3, 1, 2).contiguous()
    return x.to(device)


def variants(n, device, seed=1):
    """(name, kwargs) for: nothing, flips, mixup with a scalar and a per-sample lam, both."""
    g = torch.Generator().manual_seed(seed)
    flip = (torch.arange(n) % 2 == 0).to(device)
    index = torch.randperm(n, generator=g).to(device)
    lam = torch.rand(n, generator=g).to(device)
    return [
        ("plain", {}),
        ("flip", dict(flip=flip)),
        ("mixup_scalar", dict(mixup=(0.3, index))),
        ("mixup_per_sample_flip", dict(flip=flip, mixup=(lam, index))),
    ]


def check_against_reference(out, images, layout, kwargs, out_dtype, memory_format, backend):
    expected = cookbook_ops.normalize_images(
        images,
        MEAN[out.shape[1]],
        STD[out.shape[1]],
        layout=layout,
        out_dtype=out_dtype,
        memory_format=memory_format,
        backend="reference",
        **kwargs,
    )
    assert out.dtype == out_dtype and out.shape == expected.shape
    assert out.is_contiguous(memory_format=memory_format)
    if "mixup" not in kwargs or backend in ("reference", "cpu"):
        # The C++ kernel blends exactly as the eager expression: no slack for it.
        assert torch.equal(out, expected), (out - expected).abs().max()
    else:
        torch.testing.assert_close(out, expected, **ONE_ROUNDING[out_dtype])


# --- parity --------------------------------------------------------------------------------


@pytest.mark.parametrize("device,backend", compiled_backend_params(OP))
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
@pytest.mark.parametrize("out_dtype", OUT_DTYPES, ids=str)
@pytest.mark.parametrize(
    "memory_format", [torch.contiguous_format, torch.channels_last], ids=["nchw", "cl"]
)
def test_matches_reference(device, backend, layout, out_dtype, memory_format):
    sizes = [(3, 5, 7, 3), (2, 1, 6, 4), (2, 4, 1, 1)]  # (N, H, W, C): odd, H = 1, W = 1
    if not interpreted(backend, device):
        sizes.append((5, 9, 33, 3))
    for n, height, width, channels in sizes:
        images = random_images(n, height, width, channels, layout, device)
        for _name, kwargs in variants(n, device):
            out = cookbook_ops.normalize_images(
                images,
                MEAN[channels],
                STD[channels],
                layout=layout,
                out_dtype=out_dtype,
                memory_format=memory_format,
                backend=backend,
                **kwargs,
            )
            check_against_reference(out, images, layout, kwargs, out_dtype, memory_format, backend)


def test_reference_matches_the_plain_formula():
    """The reference against the formula written out in float64 with a float32 tolerance, so a
    reference that went wrong in a way all backends copy would still be caught."""
    images = random_images(4, 3, 5, 3, "NHWC", "cpu")
    flip = torch.tensor([True, False, False, True])
    index = torch.tensor([2, 0, 3, 1])
    lam = torch.tensor([0.25, 1.0, 0.0, 0.6])
    mean = torch.tensor(MEAN[3], dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(STD[3], dtype=torch.float64).view(1, 3, 1, 1)
    x = images.permute(0, 3, 1, 2).double()
    x = torch.stack([xi.flip(-1) if f else xi for xi, f in zip(x, flip)])
    v = (x / 255 - mean) / std
    lam_b = lam.double().view(-1, 1, 1, 1)
    expected = lam_b * v + (1 - lam_b) * v[index]
    out = reference_forward(
        images,
        torch.tensor(MEAN[3]),
        torch.tensor(STD[3]),
        flip,
        lam,
        index,
        True,
        torch.float32,
        False,
    )
    torch.testing.assert_close(out.double(), expected, atol=2e-6, rtol=1e-6)


def torchvision_expected(images_hwc, mean, std, flip=None, lam=None, index=None):
    """ToTensor() + Normalize(mean, std) per image (+ hflip, + the blend), as a training
    script would compute it with torchvision."""
    transforms = pytest.importorskip(
        "torchvision.transforms", reason="torchvision is not installed (parity with it skipped)"
    )
    from torchvision.transforms import functional as F

    pipeline = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
    out = []
    for i, image in enumerate(images_hwc.cpu().numpy()):
        v = pipeline(image)
        out.append(F.hflip(v) if flip is not None and bool(flip[i]) else v)
    v = torch.stack(out)
    if lam is not None:
        lam_b = lam.cpu().view(-1, 1, 1, 1) if isinstance(lam, torch.Tensor) else lam
        v = lam_b * v + (1 - lam_b) * v[index.cpu()]
    return v


@pytest.mark.parametrize("device,backend", backend_params(OP))
@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_matches_torchvision(device, backend, layout):
    for n, height, width, channels in [(4, 6, 5, 3), (2, 3, 1, 1), (3, 1, 4, 4)]:
        hwc = random_images(n, height, width, channels, "NHWC", device, seed=channels)
        images = hwc if layout == "NHWC" else hwc.permute(0, 3, 1, 2).contiguous()
        mean, std = MEAN[channels], STD[channels]
        for name, kwargs in variants(n, device):
            flip = kwargs.get("flip")
            lam, index = kwargs.get("mixup", (None, None))
            expected = torchvision_expected(hwc, mean, std, flip, lam, index)
            for memory_format in (torch.contiguous_format, torch.channels_last):
                out = cookbook_ops.normalize_images(
                    images, mean, std, layout=layout, memory_format=memory_format,
                    backend=backend, **kwargs,
                )  # fmt: skip
                assert out.is_contiguous(memory_format=memory_format)
                if lam is None or backend in ("reference", "cpu"):
                    assert torch.equal(out.cpu(), expected), (
                        name,
                        (out.cpu() - expected).abs().max(),
                    )
                else:
                    torch.testing.assert_close(out.cpu(), expected, **ONE_ROUNDING[torch.float32])
                for dtype in (torch.bfloat16, torch.float16):
                    low = cookbook_ops.normalize_images(
                        images, mean, std, layout=layout, out_dtype=dtype, backend=backend,
                        **kwargs,
                    )  # fmt: skip
                    # One rounding of the float32 result, not a float32 result of rounded steps.
                    if lam is None:
                        assert torch.equal(low.cpu(), expected.to(dtype)), name
                    else:
                        torch.testing.assert_close(
                            low.cpu(), expected.to(dtype), **ONE_ROUNDING[dtype]
                        )


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_non_contiguous_and_permuted_inputs(device, backend):
    base = random_images(6, 5, 8, 3, "NHWC", device)
    flip = torch.tensor([True, False, True], device=device)
    cases = {
        # every other sample, every other column: no dense block at all
        "sliced_nhwc": (base[::2, :, ::2], "NHWC"),
        # an NCHW view of NHWC memory: read in place as NHWC
        "nchw_view": (base.permute(0, 3, 1, 2)[:3], "NCHW"),
        # an NHWC view of NCHW memory
        "nhwc_view": (base.permute(0, 3, 1, 2).contiguous().permute(0, 2, 3, 1)[3:], "NHWC"),
        "channel_slice_nchw": (base.permute(0, 3, 1, 2).contiguous()[:3, :, 1:4], "NCHW"),
    }
    for name, (images, layout) in cases.items():
        assert not images.is_contiguous(), name
        for kwargs in ({}, dict(flip=flip, mixup=(0.4, torch.tensor([2, 0, 1], device=device)))):
            out = cookbook_ops.normalize_images(
                images, MEAN[3], STD[3], layout=layout, backend=backend, **kwargs
            )
            expected = cookbook_ops.normalize_images(
                images.contiguous(), MEAN[3], STD[3], layout=layout, backend="reference", **kwargs
            )
            if kwargs and backend not in ("reference", "cpu"):
                torch.testing.assert_close(out, expected, **ONE_ROUNDING[torch.float32])
            else:
                assert torch.equal(out, expected), name


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_mean_std_forms_and_odd_values(device, backend):
    images = random_images(2, 3, 4, 3, "NHWC", device)
    lists = cookbook_ops.normalize_images(images, MEAN[3], STD[3], backend=backend)
    for mean, std in (
        (tuple(MEAN[3]), tuple(STD[3])),
        (torch.tensor(MEAN[3]), torch.tensor(STD[3])),
        (torch.tensor(MEAN[3], device=device), torch.tensor(STD[3], device=device)),
        (torch.tensor(MEAN[3], dtype=torch.float64), np.array(STD[3]).tolist()),
    ):
        out = cookbook_ops.normalize_images(images, mean, std, backend=backend)
        assert torch.equal(out, lists)
    # one value for every channel, as torchvision's Normalize broadcasts it; negative std.
    # The oracle runs on the CPU: CUDA divides by a Python number as a multiplication by its
    # reciprocal, one ulp off x / 255 for some x, where every backend divides.
    one = cookbook_ops.normalize_images(images, 0.5, [-0.25], backend=backend)
    expected = (images.cpu().permute(0, 3, 1, 2).float() / 255 - 0.5) / -0.25
    assert torch.equal(one.cpu(), expected)


@pytest.mark.parametrize("device", DEVICES)
def test_empty_batch(device):
    for layout, shape in (("NHWC", (0, 4, 5, 3)), ("NCHW", (0, 3, 4, 5))):
        images = torch.zeros(shape, dtype=torch.uint8, device=device)
        index = torch.zeros(0, dtype=torch.int64, device=device)
        out = cookbook_ops.normalize_images(
            images, MEAN[3], STD[3], layout=layout, mixup=(0.5, index)
        )
        assert out.shape == (0, 3, 4, 5) and out.dtype == torch.float32


# --- no gradient ---------------------------------------------------------------------------


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_not_differentiable(device, backend):
    images = random_images(2, 3, 4, 3, "NHWC", device)
    mean = torch.tensor(MEAN[3], device=device, requires_grad=True)
    out = cookbook_ops.normalize_images(images, mean, STD[3], backend=backend)
    assert out.grad_fn is None and not out.requires_grad
    with pytest.raises(RuntimeError, match="does not require grad"):
        out.sum().backward()


# --- bad inputs ----------------------------------------------------------------------------


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_bad_inputs_raise_clear_errors(device, backend):
    images = random_images(4, 5, 6, 3, "NHWC", device)
    index = torch.tensor([1, 0, 3, 2], device=device)

    def call(images=images, mean=MEAN[3], std=STD[3], **kwargs):
        return cookbook_ops.normalize_images(images, mean, std, backend=backend, **kwargs)

    with pytest.raises(TypeError, match="images must be uint8"):
        call(images.float())
    with pytest.raises(TypeError, match="images must be a torch.Tensor"):
        call(images.cpu().numpy())
    with pytest.raises(ValueError, match=r"images must be \(N, H, W, C\)"):
        call(images[0])
    with pytest.raises(ValueError, match=r"images must be \(N, C, H, W\)"):
        call(images[..., None], layout="NCHW")
    with pytest.raises(ValueError, match="layout"):
        call(layout="nhwc")
    with pytest.raises(ValueError, match="layout"):
        call(layout="HWC")
    with pytest.raises(ValueError, match="mean"):
        call(mean=[0.5, 0.5])
    with pytest.raises(ValueError, match="std"):
        call(std=[0.2] * 4)
    with pytest.raises(ValueError, match="mean"):  # C = 5 when this batch is read as NCHW
        call(images, layout="NCHW")
    with pytest.raises(ValueError, match="std must not contain zeros"):
        call(std=[0.2, 0.0, 0.2])
    with pytest.raises(ValueError, match="std must not contain zeros"):
        call(std=[0.2, 1e-60, 0.2])  # zero once in float32
    with pytest.raises(ValueError, match="std must not contain zeros"):
        call(std=torch.tensor([0.2, 0.0, 0.2]))
    with pytest.raises(TypeError, match="mean"):
        call(mean="0.5")
    with pytest.raises(TypeError, match="mean"):
        call(mean=torch.tensor([1, 2, 3]))
    with pytest.raises(TypeError, match="flip"):
        call(flip=torch.ones(4, dtype=torch.int64, device=device))
    with pytest.raises(TypeError, match="flip"):
        call(flip=[True] * 4)
    with pytest.raises(ValueError, match="flip"):
        call(flip=torch.ones(3, dtype=torch.bool, device=device))
    with pytest.raises(TypeError, match="mixup"):
        call(mixup=0.5)
    with pytest.raises(TypeError, match="mixup"):
        call(mixup=(0.5, index, 1))
    with pytest.raises(ValueError, match="lam"):
        call(mixup=(1.5, index))
    with pytest.raises(ValueError, match="lam"):
        call(mixup=(torch.tensor([0.5, 0.5], device=device), index))
    with pytest.raises(TypeError, match="index"):
        call(mixup=(0.5, index.int()))
    with pytest.raises(ValueError, match="index"):
        call(mixup=(0.5, index[:2]))
    with pytest.raises(ValueError, match="out_dtype"):
        call(out_dtype=torch.float64)
    with pytest.raises(ValueError, match="out_dtype"):
        call(out_dtype=torch.uint8)
    with pytest.raises(ValueError, match="memory_format"):
        call(memory_format=torch.channels_last_3d)
    with pytest.raises(ValueError, match="backend"):
        cookbook_ops.normalize_images(images, MEAN[3], STD[3], backend="gpu")
    if device == "cpu":
        with pytest.raises(ValueError, match="permutation"):
            call(mixup=(0.5, torch.tensor([0, 0, 1, 2])))
        with pytest.raises(ValueError, match="lam"):
            call(mixup=(torch.tensor([0.5, -0.1, 0.2, 0.3]), index))
    if torch.cuda.is_available():
        other = "cpu" if device == "cuda" else "cuda"
        with pytest.raises(ValueError, match="flip"):
            call(flip=torch.ones(4, dtype=torch.bool, device=other))
        with pytest.raises(ValueError, match="index"):
            call(mixup=(0.5, index.to(other)))


@pytest.mark.parametrize("device,backend", compiled_backend_params(OP))
def test_kernel_checks_guard_direct_calls(device, backend):
    """The raw kernels refuse what would make them read out of bounds, for callers that skip
    the public function."""
    op = _library.op_for(OP, backend)
    images = random_images(3, 2, 4, 3, "NHWC", device)
    mean = torch.tensor(MEAN[3], device=device)
    std = torch.tensor(STD[3], device=device)
    lam = torch.full((3,), 0.5, device=device)
    if device == "cpu":  # on a GPU the value check would sync; the kernels leave it unmixed
        with pytest.raises((RuntimeError, IndexError, ValueError), match="index"):
            op(images, mean, std, None, lam, torch.tensor([0, 1, 3], device=device), True,
               torch.float32, False)  # fmt: skip
    with pytest.raises((RuntimeError, ValueError), match="lam"):
        op(images, mean, std, None, lam, None, True, torch.float32, False)
    with pytest.raises((RuntimeError, ValueError), match="mean"):
        op(images, mean[:2], std, None, None, None, True, torch.float32, False)
    with pytest.raises((RuntimeError, ValueError), match="flip"):
        op(images, mean, std, torch.ones(2, dtype=torch.bool, device=device), None, None, True,
           torch.float32, False)  # fmt: skip


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
        images = random_images(3, 4, 5, 3, "NHWC" if nhwc else "NCHW", device)
        for args in (
            (None, None, None, torch.float32, False),
            (flip, lam, index, torch.bfloat16, True),
            (flip, None, None, torch.float16, False),
        ):
            flip_, lam_, index_, dtype, channels_last = args
            torch.library.opcheck(
                _library.op(name),
                (images, mean, std, flip_, lam_, index_, nhwc, dtype, channels_last),
            )


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_compile_fullgraph(device, backend):
    torch._dynamo.reset()
    images = random_images(4, 3, 5, 3, "NHWC", device)
    flip = torch.tensor([True, False, False, True], device=device)
    index = torch.tensor([3, 2, 1, 0], device=device)
    lam = torch.tensor([0.1, 0.5, 0.9, 1.0], device=device)

    def prepare(images, flip, lam, index):
        return cookbook_ops.normalize_images(
            images,
            MEAN[3],
            STD[3],
            flip=flip,
            mixup=(lam, index),
            out_dtype=torch.bfloat16,
            memory_format=torch.channels_last,
            backend=backend,
        )

    compiled = torch.compile(prepare, fullgraph=True)
    out = compiled(images, flip, lam, index)
    expected = prepare(images, flip, lam, index)
    assert out.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out, expected, **ONE_ROUNDING[torch.bfloat16])


# --- the module ----------------------------------------------------------------------------


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_module_generator_reproducible(device, backend):
    images = random_images(16, 3, 4, 3, "NHWC", device)

    def module(seed):
        g = torch.Generator(device=device).manual_seed(seed)
        return NormalizeImages(MEAN[3], STD[3], flip_prob=0.5, generator=g, backend=backend)

    a, b = module(7), module(7)
    first = a(images)
    assert torch.equal(first, b(images))
    # the mask is the generator's next draw, compared with p on the device
    g = torch.Generator(device=device).manual_seed(7)
    flip = torch.rand(16, device=device, generator=g) < 0.5
    assert 0 < int(flip.sum()) < 16  # this seed flips some samples and keeps some
    assert torch.equal(first, cookbook_ops.normalize_images(images, MEAN[3], STD[3], flip=flip))
    # the next batch draws a new mask
    second = a(images)
    flip2 = torch.rand(16, device=device, generator=g) < 0.5
    assert torch.equal(second, cookbook_ops.normalize_images(images, MEAN[3], STD[3], flip=flip2))


@pytest.mark.parametrize("device,backend", backend_params(OP))
def test_module_flip_extremes_and_options(device, backend):
    images = random_images(5, 3, 4, 3, "NCHW", device)
    plain = cookbook_ops.normalize_images(images, MEAN[3], STD[3], layout="NCHW")
    never = NormalizeImages(MEAN[3], STD[3], layout="NCHW", flip_prob=0.0, backend=backend)
    always = NormalizeImages(MEAN[3], STD[3], layout="NCHW", flip_prob=1.0, backend=backend)
    assert torch.equal(never(images), plain)
    assert torch.equal(always(images), plain.flip(-1))
    assert never.flip_mask(5, torch.device(device)) is None
    half = NormalizeImages(
        MEAN[3], STD[3], layout="NCHW", out_dtype=torch.float16,
        memory_format=torch.channels_last, backend=backend,
    )  # fmt: skip
    index = torch.tensor([4, 3, 2, 1, 0], device=device)
    out = half(images, mixup=(0.25, index))
    assert out.dtype == torch.float16 and out.is_contiguous(memory_format=torch.channels_last)
    expected = cookbook_ops.normalize_images(
        images, MEAN[3], STD[3], layout="NCHW", mixup=(0.25, index), out_dtype=torch.float16
    )
    torch.testing.assert_close(out, expected, **ONE_ROUNDING[torch.float16])
    assert "flip_prob=0.0" in repr(never)
    assert not list(never.state_dict())  # mean/std are constants, not state


def test_module_bad_arguments():
    with pytest.raises(ValueError, match="flip_prob"):
        NormalizeImages(MEAN[3], STD[3], flip_prob=1.5)
    with pytest.raises(TypeError, match="flip_prob"):
        NormalizeImages(MEAN[3], STD[3], flip_prob=True)
    with pytest.raises(ValueError, match="layout"):
        NormalizeImages(MEAN[3], STD[3], layout="CHW")
    with pytest.raises(ValueError, match="std must not contain zeros"):
        NormalizeImages(MEAN[3], [0.2, 0.0, 0.1])
    with pytest.raises(ValueError, match="same length"):
        NormalizeImages(MEAN[3], [0.2, 0.1])
    with pytest.raises(ValueError, match="out_dtype"):
        NormalizeImages(MEAN[3], STD[3], out_dtype=torch.float64)
    with pytest.raises(TypeError, match="generator"):
        NormalizeImages(MEAN[3], STD[3], generator=0)
    module = NormalizeImages(MEAN[3], STD[3], flip_prob=0.5)
    with pytest.raises(ValueError, match="mean must have one value per channel"):
        module(torch.zeros(2, 4, 4, 4, dtype=torch.uint8))
    if torch.cuda.is_available():
        cpu_gen = NormalizeImages(MEAN[3], STD[3], flip_prob=0.5, generator=torch.Generator())
        with pytest.raises(ValueError, match="generator"):
            cpu_gen(torch.zeros(2, 4, 4, 3, dtype=torch.uint8, device="cuda"))


# --- collate -------------------------------------------------------------------------------


def test_uint8_collate_pil_numpy_grayscale_tensors():
    image_module = pytest.importorskip("PIL.Image", reason="Pillow is not installed")
    g = torch.Generator().manual_seed(3)
    arrays = [
        torch.randint(0, 256, (5, 7, 3), generator=g, dtype=torch.uint8).numpy() for _ in range(3)
    ]
    # PIL images with targets
    images, targets = uint8_collate([(image_module.fromarray(a), i) for i, a in enumerate(arrays)])
    assert images.dtype == torch.uint8 and images.shape == (3, 5, 7, 3)
    assert torch.equal(images, torch.from_numpy(np.stack(arrays)))
    assert torch.equal(targets, torch.tensor([0, 1, 2]))
    # numpy arrays, bare (no targets)
    assert torch.equal(uint8_collate(arrays), images)
    # non-contiguous array and tensors
    assert torch.equal(uint8_collate([a[:, ::-1] for a in arrays]), images.flip(2))
    assert torch.equal(uint8_collate([torch.from_numpy(a) for a in arrays]), images)
    # grayscale: PIL "L", 2-D arrays, 1-bit images (ToTensor reads those as 0/255)
    gray = [a[..., 0] for a in arrays]
    stacked, names = uint8_collate([(image_module.fromarray(a, mode="L"), "x") for a in gray])
    assert stacked.shape == (3, 5, 7, 1) and names == ["x", "x", "x"]
    assert torch.equal(stacked[..., 0], torch.from_numpy(np.stack(gray)))
    assert torch.equal(uint8_collate(gray), stacked)
    bits = image_module.fromarray(gray[0] > 127)
    assert torch.equal(
        uint8_collate([bits])[0, ..., 0], torch.from_numpy((gray[0] > 127) * 255).to(torch.uint8)
    )
    # extra fields collate as the default collate does
    imgs, t1, t2 = uint8_collate([(a, 1, torch.tensor([0.5])) for a in arrays])
    assert imgs.shape == (3, 5, 7, 3) and t1.tolist() == [1, 1, 1] and t2.shape == (3, 1)


def test_uint8_collate_feeds_normalize_like_torchvision():
    transforms = pytest.importorskip(
        "torchvision.transforms", reason="torchvision is not installed"
    )
    image_module = pytest.importorskip("PIL.Image", reason="Pillow is not installed")
    g = torch.Generator().manual_seed(5)
    pil = [
        image_module.fromarray(
            torch.randint(0, 256, (6, 5, 3), generator=g, dtype=torch.uint8).numpy()
        )
        for _ in range(4)
    ]
    reference_pipeline = transforms.Compose(
        [transforms.ToTensor(), transforms.Normalize(MEAN[3], STD[3])]
    )
    expected = torch.stack([reference_pipeline(p) for p in pil])
    loader = torch.utils.data.DataLoader(
        [(p, k) for k, p in enumerate(pil)], batch_size=4, collate_fn=uint8_collate
    )
    images, targets = next(iter(loader))
    out = cookbook_ops.normalize_images(images, MEAN[3], STD[3])
    assert torch.equal(out, expected) and targets.tolist() == [0, 1, 2, 3]


def test_uint8_collate_bad_batches():
    a = np.zeros((4, 5, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="same size"):
        uint8_collate([a, np.zeros((4, 6, 3), dtype=np.uint8)])
    with pytest.raises(ValueError, match="same size"):
        uint8_collate([a, np.zeros((4, 5), dtype=np.uint8)])
    with pytest.raises(TypeError, match=r"batch\[1\] must be a uint8 array"):
        uint8_collate([a, a.astype(np.float32)])
    with pytest.raises(TypeError, match=r"batch\[0\] must be a uint8 tensor"):
        uint8_collate([torch.zeros(4, 5, 3)])
    with pytest.raises(ValueError, match=r"\(H, W, C\)"):
        uint8_collate([np.zeros((2, 4, 5, 3), dtype=np.uint8)])
    with pytest.raises(TypeError, match="PIL image"):
        uint8_collate(["not an image"])
    with pytest.raises(ValueError, match="non-empty"):
        uint8_collate([])
    image_module = pytest.importorskip("PIL.Image", reason="Pillow is not installed")
    with pytest.raises(TypeError, match="8 bits"):
        uint8_collate([image_module.new("I", (4, 4))])
