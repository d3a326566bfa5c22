"""The shared harness of the op benchmarks (``benchmarks/bench_<op>.py``).

Every number published is a ratio taken in one run (against PyTorch eager, torch.compile,
peers) or a fraction of the memory floor (bytes that must move / copy bandwidth measured in the
same run), because absolute times on shared machines do not reproduce.

- :mod:`harness.spec`: the contract an op's benchmark fulfils (:class:`~harness.spec.BenchSpec`
  and the protocols of its callables), the default passes, dtypes and timing effort;
- :mod:`harness.driver`: the command line every script shares, and the run loop;
- :mod:`harness.impls`: which implementations can run here, and the callable of each;
- :mod:`harness.cases`: one implementation on one case, built, run once and checked;
- :mod:`harness.groups`: every implementation of one (shape, dtype, pass) group, timed;
- :mod:`harness.timing`: CPU and CUDA timing;
- :mod:`harness.floors`: copy bandwidth and the memory floor;
- :mod:`harness.environment`: what produced a result (hardware, versions, commit);
- :mod:`harness.output`: the JSON written while a run goes, and its progress;
- :mod:`harness.overhead`: ``--overhead``, per-call host cost on tiny shapes against eager;
- :mod:`harness.suite`: the pytest-benchmark suites' helpers.

The scripts run with ``benchmarks/`` as the first entry of ``sys.path``, so the package imports
as ``harness``.
"""
