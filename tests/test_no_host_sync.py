"""No public op or module waits for the GPU: every call below runs under
``torch.cuda.set_sync_debug_mode("error")``, which raises on any synchronising CUDA call
(a blocking host-to-device copy, ``.item()``, ``bool(tensor)``, ...). Each case runs once
before the checked call, since first calls may sync (Triton compiles, library handles, the
normalize constants' pinned copy). The Mixup module has its own test in test_mixup_module.py.
GPU only: every test here skips without one."""

import contextlib

import pytest
import torch

import cookbook_ops
from cookbook_ops import _library
from cookbook_ops.nn import (
    LSR,
    BilinearPooling,
    LabelSmoothingCrossEntropy,
    MixedTarget,
    MixupCrossEntropy,
    NormalizeImages,
)

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def cuda_backends(op):
    if not torch.cuda.is_available():
        return ["cuda"]  # collected, then skipped
    return cookbook_ops.available_backends("cuda", op)


@contextlib.contextmanager
def sync_is_an_error():
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        yield
    finally:
        torch.cuda.set_sync_debug_mode(0)


def check_no_sync(call):
    """Warm up, then run ``call`` with syncs turned into errors; returns its result."""
    call()
    with sync_is_an_error():
        result = call()
    torch.cuda.synchronize()
    return result


def images(layout="NHWC"):
    x = torch.randint(0, 256, (4, 8, 8, 3), dtype=torch.uint8, device="cuda")
    return x if layout == "NHWC" else x.permute(0, 3, 1, 2).contiguous()


@pytest.mark.parametrize("backend", cuda_backends(_library.NORMALIZE_IMAGES))
@pytest.mark.parametrize(
    "form", ["lists", "tuples", "floats", "cpu_tensors", "cuda_tensors", "float64_cpu"]
)
def test_normalize_images(backend, form):
    mean, std = {
        "lists": (MEAN, STD),
        "tuples": (tuple(MEAN), tuple(STD)),
        "floats": (0.5, 0.25),
        "cpu_tensors": (torch.tensor(MEAN), torch.tensor(STD)),
        "cuda_tensors": (torch.tensor(MEAN, device="cuda"), torch.tensor(STD, device="cuda")),
        "float64_cpu": (torch.tensor(MEAN, dtype=torch.float64), torch.tensor(STD).double()),
    }[form]
    x = images()
    index = torch.tensor([2, 3, 0, 1], device="cuda")
    flip = torch.tensor([True, False, True, False], device="cuda")
    lams = [0.3, torch.tensor(0.3), torch.full((4,), 0.3, device="cuda")]
    for lam in lams:
        out = check_no_sync(
            lambda lam=lam: cookbook_ops.normalize_images(
                x,
                mean,
                std,
                flip=flip,
                mixup=(lam, index),
                out_dtype=torch.bfloat16,
                memory_format=torch.channels_last,
                backend=backend,
            )
        )
        expected = cookbook_ops.normalize_images(
            x, mean, std, flip=flip, mixup=(0.3, index), out_dtype=torch.bfloat16,
            memory_format=torch.channels_last, backend="reference",
        )  # fmt: skip
        torch.testing.assert_close(out, expected, atol=1e-6, rtol=2**-8)


@pytest.mark.parametrize("backend", cuda_backends(_library.NORMALIZE_IMAGES))
@pytest.mark.parametrize("moved", [False, True], ids=["module_on_cpu", "module_on_cuda"])
def test_normalize_images_module(backend, moved):
    """As the README uses it: the module is never moved, its mean/std buffers stay on the CPU
    while the batches are on the GPU."""
    g = torch.Generator(device="cuda").manual_seed(0)
    module = NormalizeImages(MEAN, STD, flip_prob=0.5, generator=g, backend=backend)
    if moved:
        module = module.cuda()
    x = images()
    index = torch.tensor([1, 0, 3, 2], device="cuda")
    check_no_sync(lambda: module(x))
    check_no_sync(lambda: module(x, mixup=(torch.tensor(0.6), index)))


@pytest.mark.parametrize("backend", cuda_backends(_library.MIXUP_FORWARD))
def test_mixup_pairs_and_cutmix(backend):
    x = torch.randn(4, 3, 8, 8, device="cuda", requires_grad=True)
    index = torch.tensor([2, 3, 0, 1], device="cuda")
    boxes = torch.tensor([[0, 0, 4, 4], [1, 2, 5, 6], [0, 0, 0, 0], [2, 2, 8, 8]], device="cuda")
    for lam in (0.3, torch.tensor(0.3), torch.tensor(0.3, device="cuda"), torch.rand(4).cuda()):

        def blend(lam=lam):
            cookbook_ops.mixup(x, lam, index, backend=backend).sum().backward()

        check_no_sync(blend)
        y = x.detach().clone()

        def pairs(lam=lam, y=y):
            cookbook_ops.mixup_pairs_(y, lam, index, backend=backend)

        check_no_sync(pairs)

    def cut():
        out, lam = cookbook_ops.cutmix(x, boxes, index, backend=backend)
        out.sum().backward()
        return lam

    check_no_sync(cut)
    for u8 in (True, False):
        z = torch.randint(0, 256, (4, 3, 8, 8), dtype=torch.uint8, device="cuda")
        z = z if u8 else z.float().contiguous(memory_format=torch.channels_last)
        check_no_sync(lambda z=z: cookbook_ops.mixup(z, torch.tensor(0.7), index, backend=backend))


@pytest.mark.parametrize("backend", cuda_backends(_library.LSCE_FORWARD))
@pytest.mark.parametrize("reduction", ["none", "sum", "mean"])
def test_label_smoothing_cross_entropy_and_modules(backend, reduction):
    logits = torch.randn(16, 10, device="cuda", requires_grad=True)
    target = torch.randint(0, 10, (16,), device="cuda")
    weight = torch.rand(10, device="cuda") + 0.5

    def loss_and_grad(**kwargs):
        loss, correct = cookbook_ops.label_smoothing_cross_entropy(
            logits, target, 0.1, reduction=reduction, return_correct=True, backend=backend,
            **kwargs,
        )  # fmt: skip
        loss.sum().backward()
        return correct

    check_no_sync(loss_and_grad)
    check_no_sync(lambda: loss_and_grad(weight=weight, convention="others"))
    for module in (
        LabelSmoothingCrossEntropy(weight, reduction=reduction, label_smoothing=0.1,
                                   backend=backend),
        LSR(0.1, reduction=reduction, backend=backend),
    ):  # fmt: skip
        check_no_sync(lambda module=module: module(logits, target).sum().backward())


@pytest.mark.parametrize("backend", cuda_backends(_library.MIXUP_CE_FORWARD))
def test_mixup_cross_entropy_and_module(backend):
    logits = torch.randn(16, 10, device="cuda", requires_grad=True)
    ta = torch.randint(0, 10, (16,), device="cuda")
    tb = torch.randint(0, 10, (16,), device="cuda")
    for lam in (0.3, torch.tensor(0.3, device="cuda"), torch.rand(16, device="cuda")):
        for reduction in ("none", "mean"):

            def loss_and_grad(lam=lam, reduction=reduction):
                loss = cookbook_ops.mixup_cross_entropy(
                    logits, ta, tb, lam, 0.1, reduction=reduction, backend=backend
                )
                loss.sum().backward()

            check_no_sync(loss_and_grad)
    module = MixupCrossEntropy(0.1, backend=backend)
    mixed = MixedTarget(target_a=ta, target_b=tb, lam=torch.rand(16).cuda())
    check_no_sync(lambda: module(logits, mixed).backward())


@pytest.mark.parametrize("backend", cuda_backends(_library.BILINEAR_FORWARD))
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_bilinear_pool_and_module(backend, dtype):
    x = torch.randn(2, 16, 4, 4, device="cuda", dtype=dtype, requires_grad=True)
    y = torch.randn(2, 8, 4, 4, device="cuda", dtype=dtype, requires_grad=True)
    check_no_sync(lambda: cookbook_ops.bilinear_pool(x, backend=backend).sum().backward())
    check_no_sync(lambda: cookbook_ops.bilinear_pool(x, y, backend=backend).sum().backward())
    module = BilinearPooling(backend=backend)
    check_no_sync(lambda: module(x, y).float().pow(2).sum().backward())
