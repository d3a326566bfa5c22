"""Transitional re-exports: the shared harness now lives in ``benchmarks/harness/``."""

from harness.cases import GRAD_LIMIT_MESSAGE, Case, Prepared, max_relative_error, prepare_call  # noqa: F401
from harness.driver import main  # noqa: F401
from harness.environment import import_cookbook_ops  # noqa: F401
from harness.floors import element_size, memory_floor_numbers  # noqa: F401
from harness.groups import new_records, time_group  # noqa: F401
from harness.impls import (  # noqa: F401
    OUR_BACKENDS,
    available_backends,
    backend_unavailable_reason,
    compile_static,
    impl_fn,
    import_failure,
    unknown_impl,
)
from harness.spec import EFFORT, PASSES, BenchSpec, dtype_name, parse_kind_sizes, shape_dict  # noqa: F401
from harness.suite import benchmark_params, run_suite_case  # noqa: F401
from harness.timing import Timing, time_cpu, time_cuda  # noqa: F401
