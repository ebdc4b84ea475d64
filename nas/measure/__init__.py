"""Measurement of a candidate, in training and deploy form.

``cost`` is the analytic tally (parameters and MACs without building a model, exact against
fvcore); ``counts`` the fvcore count of a built model and its FlopCounterMode cross-check;
``latency`` the timing protocol; ``memory`` the bytes saved for backward; ``candidate`` one
measurement row and the unit-named cost columns that constraints and objectives use.
"""

from nas.measure.candidate import (
    ROW_KEYS,
    check_constraints,
    cost_columns,
    fast_cost,
    measure_candidate,
)
from nas.measure.counts import count_macs, count_params, flop_counter_macs, flop_counter_mapping
from nas.measure.latency import (
    LatencyProtocol,
    measure_latencies,
    measure_latency,
    pinned_threads,
)

__all__ = [
    "ROW_KEYS",
    "LatencyProtocol",
    "check_constraints",
    "cost_columns",
    "count_macs",
    "count_params",
    "fast_cost",
    "flop_counter_macs",
    "flop_counter_mapping",
    "measure_candidate",
    "measure_latencies",
    "measure_latency",
    "pinned_threads",
]
