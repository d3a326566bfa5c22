"""Learning-rate schedules built on ``torch.optim.lr_scheduler``.

:func:`warmup_cosine` is a ``LambdaLR`` with a closed-form factor: no recursive update to
drift, the same value after ``load_state_dict`` as in an uninterrupted run, and one factor
per parameter group so an absolute ``min_lr`` holds for groups with different base rates.
"""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["warmup_cosine", "warmup_cosine_factor"]


def warmup_cosine_factor(step: int, warmup_steps: int, total_steps: int, min_ratio: float) -> float:
    """The multiplier of the base lr for optimizer step ``step`` (0-based).

    Linear warmup ``(step + 1) / warmup_steps`` for ``step < warmup_steps`` (the first step
    already moves the weights, at ``base / warmup_steps``), then half a cosine from 1 at
    ``step == warmup_steps`` down to ``min_ratio`` at ``step == total_steps``, and
    ``min_ratio`` after that."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_steps = total_steps - warmup_steps
    if decay_steps <= 0 or step >= total_steps:
        return min_ratio
    progress = (step - warmup_steps) / decay_steps
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))


class _Factor:
    # A callable object rather than a closure: LambdaLR.state_dict stores its __dict__, so a
    # checkpoint records the schedule's shape and restores it.
    def __init__(self, warmup_steps: int, total_steps: int, min_ratio: float):
        self.warmup_steps = warmup_steps
        self.total_steps = total_steps
        self.min_ratio = min_ratio

    def __call__(self, step: int) -> float:
        return warmup_cosine_factor(step, self.warmup_steps, self.total_steps, self.min_ratio)


def warmup_cosine(
    optimizer: Optimizer, warmup_steps: int, total_steps: int, min_lr: float = 0.0
) -> LambdaLR:
    """Linear warmup then cosine decay to ``min_lr``, stepped once per optimizer step.

    After ``t`` calls of ``scheduler.step()`` group ``g`` has
    ``lr = base_g * (t + 1) / warmup_steps`` while ``t < warmup_steps``, then
    ``min_lr + (base_g - min_lr) * (1 + cos(pi * (t - warmup_steps) /
    (total_steps - warmup_steps))) / 2``, reaching ``min_lr`` at ``t = total_steps`` and
    staying there (``base_g`` is the group's ``initial_lr``: its lr when the scheduler is
    created). ``warmup_steps = 0`` starts the cosine at once."""
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer)}")
    for name, value in (("warmup_steps", warmup_steps), ("total_steps", total_steps)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{name} must be a non-negative int, got {value!r}")
    if total_steps < warmup_steps or total_steps == 0:
        raise ValueError(
            f"total_steps must be positive and >= warmup_steps ({warmup_steps}), got {total_steps}"
        )
    if not isinstance(min_lr, (int, float)) or min_lr < 0:
        raise ValueError(f"min_lr must be a non-negative float, got {min_lr!r}")
    factors = []
    for group in optimizer.param_groups:
        base = group.get("initial_lr", group["lr"])
        base = float(base)
        # A group with lr 0 stays at 0 (its min_lr ratio is meaningless).
        ratio = min_lr / base if base > 0 else 0.0
        factors.append(_Factor(warmup_steps, total_steps, ratio))
    return LambdaLR(optimizer, factors)
