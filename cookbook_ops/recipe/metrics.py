"""Top-k accuracy accumulated on the device, read back once.

The cookbook's evaluation loop calls ``.item()`` on every batch, which stalls a GPU pipeline
once per batch. :class:`Accuracy` keeps its counts as device tensors and only ``compute()``
talks to the host (and, under ``torch.distributed``, to the other ranks): one sync per read.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.distributed as dist

__all__ = ["Accuracy"]


class Accuracy:
    """Top-k classification accuracy, in percent.

    ``update(logits, target)`` takes logits ``(N, C)`` and int64 class indices ``(N,)``;
    ``update(correct)`` takes bool flags ``(N,)`` (as returned by
    ``label_smoothing_cross_entropy(..., return_correct=True)``), which carry top-1 only.
    Top-1 is ``argmax(logits, 1) == target`` (first maximum on ties, as the fused loss
    computes it); top-k for k > 1 uses ``topk``; k >= C counts every sample. ``compute()``
    returns a tuple of floats, one per entry of ``topk`` in its order, each in percent
    (``100 * correct / total``, the cookbook's convention); NaN before any sample. When
    ``torch.distributed`` is initialized, ``compute()`` sums the counts over all ranks.
    """

    def __init__(self, topk: int | Sequence[int] = (1,)):
        ks = (topk,) if isinstance(topk, int) else tuple(topk)
        if not ks or any(not isinstance(k, int) or isinstance(k, bool) or k < 1 for k in ks):
            raise ValueError(f"topk must be positive ints, got {topk!r}")
        self.topk = ks
        self.reset()

    def reset(self) -> None:
        # Allocated on the first update, on that batch's device.
        self.correct: torch.Tensor | None = None
        self.total: torch.Tensor | None = None

    def _accumulate(self, correct: torch.Tensor, n: int) -> None:
        if self.correct is None:
            self.correct = torch.zeros(len(self.topk), dtype=torch.int64, device=correct.device)
            self.total = torch.zeros((), dtype=torch.int64, device=correct.device)
        elif correct.device != self.correct.device:
            raise ValueError(
                f"Accuracy accumulates on {self.correct.device}; got a batch on {correct.device}"
            )
        self.correct += correct
        self.total += n

    @torch.no_grad()
    def update(self, output: torch.Tensor, target: torch.Tensor | None = None) -> None:
        if not isinstance(output, torch.Tensor):
            raise TypeError(f"output must be a tensor, got {type(output).__name__}")
        if output.dtype == torch.bool:
            if target is not None:
                raise ValueError("target must be None when output holds bool correct flags")
            if output.dim() != 1:
                raise ValueError(f"correct flags must be (N,), got shape {tuple(output.shape)}")
            if self.topk != (1,):
                raise ValueError(f"correct flags carry top-1 only; this Accuracy has {self.topk}")
            self._accumulate(output.sum(dtype=torch.int64).reshape(1), output.shape[0])
            return
        if not output.is_floating_point():
            raise TypeError(f"output must be float logits or bool flags, got {output.dtype}")
        if output.dim() != 2:
            raise ValueError(f"output must be (N, C) logits, got shape {tuple(output.shape)}")
        if not isinstance(target, torch.Tensor):
            raise TypeError("target must be an int64 tensor of class indices (N,)")
        if target.dtype != torch.int64 or target.dim() != 1:
            raise ValueError(
                f"target must be (N,) int64, got shape {tuple(target.shape)} {target.dtype}"
            )
        if target.shape[0] != output.shape[0]:
            raise ValueError(f"target has {target.shape[0]} rows but output has {output.shape[0]}")
        if target.device != output.device:
            raise ValueError(f"target is on {target.device} but output is on {output.device}")
        num_classes = output.shape[1]
        if num_classes == 0:
            raise ValueError("output has C = 0 classes: no class can be predicted")
        n = output.shape[0]
        counts = []
        maxk = min(max(self.topk), num_classes)
        hits = None
        if maxk > 1:
            # Each row has at most one hit, so the hit count in the first k columns is the
            # number of rows whose target is in their top k.
            top = output.topk(maxk, dim=1).indices
            hits = (top == target[:, None]).sum(0).cumsum(0)
        top1 = (output.argmax(1) == target).sum()
        every = torch.full((), n, dtype=torch.int64, device=output.device)
        for k in self.topk:
            if k == 1:
                counts.append(top1)
            elif k >= num_classes:  # the top k is every class: every sample counts
                counts.append(every)
            else:
                counts.append(hits[k - 1])
        self._accumulate(torch.stack(counts), output.shape[0])

    def counts(self) -> tuple[list[int], int]:
        """(correct per k, total), summed over ranks when distributed: the one host sync."""
        if self.correct is None:
            device = _default_count_device()
            packed = torch.zeros(len(self.topk) + 1, dtype=torch.int64, device=device)
        else:
            packed = torch.cat([self.correct, self.total.reshape(1)])
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            packed = packed.clone()
            dist.all_reduce(packed)
        values = packed.tolist()
        return values[:-1], values[-1]

    def compute(self) -> tuple[float, ...]:
        correct, total = self.counts()
        if total == 0:
            return tuple(float("nan") for _ in correct)
        return tuple(100.0 * c / total for c in correct)

    def __repr__(self) -> str:
        return f"Accuracy(topk={self.topk})"


def _default_count_device() -> torch.device:
    # A rank with no samples still takes part in the all-reduce, on the device its process
    # group's backend expects.
    if dist.is_available() and dist.is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")
