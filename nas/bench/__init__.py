"""Benchmarks of the explorer's own claims: cost fast path, latency repeatability, re-param speed,
RevCol memory, large depthwise kernels, GRN overhead, trainer and campaign overhead.

Every timing is side by side in one run: the variants are interleaved (the order reversed every
round) and a figure is a median (ratios: the median of the per-round paired ratios), so machine
noise hits both sides alike. A result has ``figures``, ``targets`` (``label``, ``value``, ``text``,
``met``: True/False, None where n/a), ``notes`` and ``provenance``; ``run_bench`` writes it to
``results/bench/NAME.json``. CPU timings use one thread (stack.md T11). One module per benchmark;
``common`` holds the timing helpers, ``registry`` the names. Run: ``nas bench NAME`` or
``python -m nas.bench NAME [--full] [--cuda]``.
"""

from nas.bench.common import kendall_tau
from nas.bench.registry import BENCHES, format_result, run_bench

__all__ = ["BENCHES", "format_result", "kendall_tau", "run_bench"]
