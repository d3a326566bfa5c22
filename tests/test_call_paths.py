"""The call path from every nn module to its kernel enters each file of the package once.

A path is the chain of package files on the Python stack when a kernel is called from the
module's forward: a registered op of the extension or its Triton twin (the call into torch's op
dispatch), or a function of the pure-PyTorch reference. A file that appears twice on one chain
is a path that left a file and came back to it, which is what this layout is meant to rule out.
(Backward kernels are called by the autograd engine, through the registered formulas; their
chains do not start at a module and are not paths from it.)
"""

from __future__ import annotations

import os
import sys

import pytest
import torch

import cookbook_ops
from cookbook_ops import nn as cnn

PACKAGE_DIR = os.path.dirname(cookbook_ops.__file__) + os.sep
OPS_FILE = os.path.join("torch", "_ops.py")


def _package_chain(frame) -> tuple[str, ...]:
    chain = []
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(PACKAGE_DIR):
            short = name[len(PACKAGE_DIR) :]
            if not chain or chain[-1] != short:
                chain.append(short)
        frame = frame.f_back
    return tuple(reversed(chain))


def _kernel_chains(fn) -> set[tuple[str, ...]]:
    """The package-file chain of every kernel call made while ``fn`` runs."""
    chains = set()

    def profile(frame, event, arg):
        if event != "call":
            return
        code = frame.f_code
        is_op = code.co_filename.endswith(OPS_FILE) and code.co_name in ("__call__", "redispatch")
        if is_op and "cookbook_ops" not in str(getattr(frame.f_locals.get("self"), "_name", "")):
            return
        in_reference = code.co_filename.startswith(PACKAGE_DIR + "reference" + os.sep)
        if is_op or in_reference:
            chains.add(_package_chain(frame.f_back if is_op else frame))

    sys.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return chains


def _module_calls(backend: str):
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(8, 10, generator=gen, requires_grad=True)
    target = torch.randint(0, 10, (8,), generator=gen)
    images = torch.randn(8, 3, 6, 6, generator=gen, requires_grad=True)
    uint8 = torch.randint(0, 256, (8, 6, 6, 3), dtype=torch.uint8, generator=gen)
    mixup = cnn.Mixup(mixup_alpha=1.0, cutmix_alpha=1.0, num_classes=10)
    mixup_loss = cnn.MixupCrossEntropy(label_smoothing=0.1, backend=backend)

    def mixup_step():
        mixed, mixed_target = mixup(images, target)
        mixup_loss(logits, mixed_target).backward()
        mixed.sum().backward()

    probabilities = torch.softmax(torch.randn(8, 10, generator=gen), dim=1)
    head = cnn.LinearCrossEntropy(6, 10, label_smoothing=0.1, backend=backend)
    features = torch.randn(8, 6, generator=gen)
    sizes = [(9, 7), (6, 8)] * 4
    variable = [
        torch.randint(0, 256, (h, w, 3), dtype=torch.uint8, generator=gen) for h, w in sizes
    ]
    train = cnn.RandomResizedCropNormalize(
        size=4, mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.2), generator=gen
    )
    val = cnn.ResizeCenterCropNormalize(resize=5, crop=4, mean=(0.5, 0.4, 0.3), std=(0.2,) * 3)
    return {
        "LabelSmoothingCrossEntropy(probabilities)": lambda: cnn.LabelSmoothingCrossEntropy(
            label_smoothing=0.1, backend=backend
        )(logits, probabilities).backward(),
        "LinearCrossEntropy": lambda: head(features, target).backward(),
        "RandomResizedCropNormalize": lambda: train(variable),
        "ResizeCenterCropNormalize": lambda: val(variable),
        "LabelSmoothingCrossEntropy": lambda: cnn.LabelSmoothingCrossEntropy(
            label_smoothing=0.1, backend=backend
        )(logits, target).backward(),
        "LSR": lambda: cnn.LSR(0.1, backend=backend)(logits, target).backward(),
        "Mixup+MixupCrossEntropy": mixup_step,
        "BilinearPooling": lambda: cnn.BilinearPooling(backend=backend)(images).sum().backward(),
        "NormalizeImages": lambda: cnn.NormalizeImages(
            mean=(0.5, 0.4, 0.3), std=(0.2, 0.2, 0.2), backend=backend
        )(uint8),
    }


@pytest.mark.parametrize("backend", ["reference", "cpu"])
@pytest.mark.parametrize("module", list(_module_calls("reference")))
def test_each_file_is_entered_once_on_the_way_to_a_kernel(module, backend):
    if backend not in cookbook_ops.available_backends("cpu"):
        pytest.skip(f"backend {backend!r} is not available here")
    with cookbook_ops.use_backend(backend):
        chains = _kernel_chains(_module_calls(backend)[module])
    chains = {chain for chain in chains if chain and chain[0].startswith("nn" + os.sep)}
    assert chains, f"{module} reached no kernel"
    repeated = [chain for chain in chains if len(set(chain)) != len(chain)]
    assert not repeated, "a call path returns to a file it had left:\n" + "\n".join(
        " -> ".join(chain) for chain in repeated
    )
