"""Analysis of a campaign table: pure functions from the trial DataFrame to data (compute, then
render). ``nas.report.render`` draws them (``nas report``).

- ``pareto``: objectives and budgets, Pareto ranks and fronts, hypervolume, knees, best under budgets
- ``edf``: design-space error EDFs with complexity normalisation, bootstrap bands, KS distances
- ``ablation``: ablation effects with confidence intervals, cost attribution
"""

from nas.report.ablation import ABLATION_METRICS, ablation_effects, cost_attribution
from nas.report.edf import EDFResult, edf
from nas.report.pareto import (
    COST_COLUMNS,
    ParetoResult,
    apply_budgets,
    hypervolume,
    hypervolume_over_trials,
    pareto_front,
    pareto_ranks,
    parse_budget,
    parse_objectives,
)

__all__ = [
    "ABLATION_METRICS",
    "COST_COLUMNS",
    "EDFResult",
    "ParetoResult",
    "ablation_effects",
    "apply_budgets",
    "cost_attribution",
    "edf",
    "hypervolume",
    "hypervolume_over_trials",
    "pareto_front",
    "pareto_ranks",
    "parse_budget",
    "parse_objectives",
]
