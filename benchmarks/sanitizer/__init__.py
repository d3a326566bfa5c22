"""The cases ``benchmarks/sanitizer_cases.py`` runs under compute-sanitizer, one module per op
family: each holds its table of awkward cases, the run of one case on a backend against the
reference (returning the problems found) and the generator of labelled cases the driver walks.
"""
