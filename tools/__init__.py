"""Experiment runners and benchmarks of lift3d, run as modules from the repository root:
``python -m tools.study``, ``python -m tools.study_ablate``, ``python -m tools.study_profile``,
``python -m tools.bench_generate`` (see tools/README.md)."""
