"""The sampling functions behind nn.Mixup, called directly: the same draws as the module,
the same generator advance, and the names the module used to define still reachable there."""

import pytest
import torch

import cookbook_ops.nn.mixup as mixup_module
from cookbook_ops.nn import Mixup
from cookbook_ops.ops import mixup_sampling


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(mixup_alpha=0.8, cutmix_alpha=1.0, mode="elem", pairing="permutation"),
        dict(mixup_alpha=0.4, cutmix_alpha=1.0, mode="pair", pairing="pairs", prob=0.7),
        dict(mixup_alpha=0.0, cutmix_alpha=1.0, cutmix_minmax=(0.2, 0.8), pairing="flip"),
    ],
)
def test_functional_draw_equals_the_modules(kwargs):
    x = torch.zeros(7, 3, 10, 12)
    module_gen, functional_gen = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    expected = Mixup(generator=module_gen, **kwargs).sample(x)
    params = mixup_sampling.sample_mix_params(x.shape, x.device, generator=functional_gen, **kwargs)
    for field in ("index", "lam", "boxes", "use_cutmix"):
        a, b = getattr(params, field), getattr(expected, field)
        assert (a is None) == (b is None), field
        if a is not None:
            assert a.dtype == b.dtype and torch.equal(a, b), field
    assert torch.equal(functional_gen.get_state(), module_gen.get_state())


@pytest.mark.parametrize("n", [0, 1, 2, 7, 8])
def test_pairs_is_an_involution_with_at_most_one_fixed_point(n):
    index = mixup_sampling.partners(n, "pairs", torch.Generator().manual_seed(0), "cpu")
    assert torch.equal(index[index], torch.arange(n))
    assert int((index == torch.arange(n)).sum()) == n % 2


def test_old_names_in_the_module_are_the_functional_ones():
    for name in ("MixParams", "beta_sample", "cutmix_boxes", "MODES", "PAIRINGS"):
        assert getattr(mixup_module, name) is getattr(mixup_sampling, name), name
