"""The contract between one op's benchmark and the shared harness.

An op's benchmark is a script ``benchmarks/bench_<op>.py`` that describes itself in a
:class:`BenchSpec` (its ``SPEC``) and hands it to :func:`harness.driver.main`. The driver owns
the command line, the environment record, the copy bandwidth, the run loop and the reports; the
op supplies its shapes and three callables, typed here as protocols:

- :class:`UnavailableReason`: whether an implementation can run on a device at all;
- :class:`ParseShapes`: the ``--shapes`` text as shapes;
- :class:`RunGroup`: every implementation timed on one (shape, dtype, pass) group;
- :class:`OverheadCases` (optional): the tiny cases of ``--overhead``.

The same module is also what a pytest-benchmark suite ``test_bench_<op>.py`` drives through
:mod:`harness.suite`; what the suite needs of it is :class:`SuiteBench`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Protocol

import torch

if TYPE_CHECKING:
    from harness.cases import Case, Prepared
    from harness.output import Progress
    from harness.overhead import OverheadCase

PASSES = ("fwd", "fwd+bwd")
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
# Per-implementation timing effort: (warmup, max reps, min reps, seconds of timed calls).
EFFORT = {
    ("cuda", False): dict(warmup=5, reps=100, min_reps=10, budget_s=0.2),
    ("cuda", True): dict(warmup=3, reps=20, min_reps=5, budget_s=0.05),
    ("cpu", False): dict(warmup=2, reps=40, min_reps=7, budget_s=1.5),
    ("cpu", True): dict(warmup=1, reps=8, min_reps=3, budget_s=0.2),
}


def dtype_name(dtype: torch.dtype) -> str:
    """How results name a dtype: "float32" for torch.float32."""
    return str(dtype).removeprefix("torch.")


class Shape(Protocol):
    """One benchmark shape: a frozen dataclass whose fields (less ``name``) identify it in the
    results, with a short ``label`` for tables and a ``name`` saying what workload it stands
    for. A shape with a ``variant`` field has its variant copied into every result row."""

    @property
    def label(self) -> str: ...

    @property
    def name(self) -> str: ...


class UnavailableReason(Protocol):
    def __call__(self, impl: str, device: str) -> str | None:
        """None if ``impl`` can be benchmarked on ``device`` (for some shape), else why not;
        an unknown ``impl`` raises ValueError."""
        ...


class ParseShapes(Protocol):
    def __call__(self, text: str) -> list[Shape]:
        """The shapes of a ``--shapes`` argument (a comma-separated list)."""
        ...


class RunGroup(Protocol):
    def __call__(
        self,
        shape: Shape,
        dtype: torch.dtype,
        pass_: str,
        impls: list[str],
        device: str,
        effort: dict,
        copy_gbps: float,
        progress: Progress,
    ) -> list[dict]:
        """The result rows of every implementation of ``impls`` on one (shape, dtype, pass)
        group, eager first; ``effort`` is the timing effort (see ``EFFORT``), ``copy_gbps`` the
        copy bandwidth of this run. Returns no rows for a group the op does not time (and
        advances ``progress`` past it)."""
        ...


class ShapeDict(Protocol):
    def __call__(self, shape: Shape) -> dict:
        """The JSON form of ``shape``; its keys other than "name" identify a skipped group."""
        ...


class OverheadCases(Protocol):
    def __call__(self, device: str) -> list[OverheadCase]:
        """The tiny cases whose per-call host cost ``--overhead`` compares with eager's."""
        ...


class ExtraSections(Protocol):
    def __call__(self, run: dict) -> list[tuple[str, str]]:
        """(title, markdown table) pairs printed after the summary of ``run`` and appended to
        its markdown report."""
        ...


def shape_dict(shape, *, with_label: bool = True) -> dict:
    """The JSON form of a shape dataclass: its fields, then its label and name."""
    fields = {k: v for k, v in asdict(shape).items() if k != "name"}
    if with_label:
        fields["label"] = shape.label
    return {**fields, "name": shape.name}


def parse_kind_sizes(text: str, kinds: tuple[str, ...], what: str) -> list[tuple[str, list[int]]]:
    """``[kind:]AxBx...`` items as (kind, sizes) pairs; an item without a kind stands for
    every kind of that size. ``what`` names the kind in the error for an unknown one."""
    items = []
    for item in text.split(","):
        kind, _, size = item.strip().rpartition(":")
        sizes = [int(v) for v in size.lower().split("x")]
        if kind and kind not in kinds:
            raise SystemExit(f"unknown {what} {kind!r}; known: {', '.join(kinds)}")
        items += [(k, sizes) for k in ([kind] if kind else kinds)]
    return items


@dataclass
class BenchSpec:
    """What one op's benchmark script plugs into :func:`harness.driver.main`.

    ``benchmark`` names the output files (``<benchmark>-<device>[-quick].{json,md,png}``),
    ``doc`` is the script's docstring (its first paragraph is the ``--help`` description) and
    ``call`` the expression being timed, for the record. ``impls`` are every implementation
    the op knows, in table order, eager first. ``shapes`` (``--full``), ``quick_shapes``
    (``--quick``) and ``headline_shapes`` (a plain run) map a device type ("cpu", "cuda") to
    its shapes; ``--shapes`` goes through ``parse_shapes`` instead (``shapes_help`` is its
    help). ``passes``, ``dtypes`` and ``effort`` default to the harness's. ``config`` and
    ``extra`` are added to the run's JSON (``extra["notes"]``, where present, collects notes the
    op makes while it runs). ``auto_backend_ops``: ops whose ``backend="auto"`` choice is
    printed and added to ``extra["notes"]``.
    """

    benchmark: str
    doc: str
    call: str
    impls: tuple[str, ...]
    shapes: dict[str, list]
    quick_shapes: dict[str, list]
    # What a plain run (`make bench`) measures per device: the op's headline case, so that a
    # first look takes minutes; --full runs ``shapes``.
    headline_shapes: dict[str, list]
    shapes_help: str
    parse_shapes: ParseShapes
    unavailable_reason: UnavailableReason
    run_group: RunGroup
    passes: tuple[str, ...] = PASSES
    dtypes: dict[str, torch.dtype] = field(default_factory=lambda: dict(DTYPES))
    effort: dict = field(default_factory=lambda: dict(EFFORT))
    shape_dict: ShapeDict = shape_dict
    config: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)
    auto_backend_ops: tuple[str, ...] = ()
    extra_sections: ExtraSections | None = None
    # ``--overhead``: the op's tiny cases for a device (see harness.overhead)
    overhead_cases: OverheadCases | None = None


class SuiteBench(Protocol):
    """What :mod:`harness.suite` needs of an op's benchmark module (``bench_<op>.py``) to run
    its pytest-benchmark cases as the script runs them."""

    IMPLS: tuple[str, ...]
    PASSES: tuple[str, ...]

    def unavailable_reason(self, impl: str, device: str) -> str | None: ...

    def make_case(self, shape: Shape, dtype: torch.dtype, pass_: str, device: str) -> Case:
        """The inputs of one group and the results every implementation is checked against."""
        ...

    def prepare(self, impl: str, case: Case) -> Prepared:
        """``impl`` ready to time on ``case``, its first call run and checked."""
        ...

    def record_fields(self, impl: str, shape: Shape, dtype: torch.dtype, pass_: str) -> dict:
        """The floor fields of a result row: ``floor_bytes``, and ``floor_flops`` where the op
        has a compute floor."""
        ...
