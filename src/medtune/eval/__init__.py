"""Evaluation: benchmarks declared as data, loglik and cot protocols, strict extraction, metrics, reports.

Import what you need from the submodules; this package imports nothing heavy so that
``medtune eval score`` runs without torch. Entry points for other stages:
``medtune.eval.evaluate.evaluate`` and ``medtune.eval.evaluate.compare_models``.
"""
