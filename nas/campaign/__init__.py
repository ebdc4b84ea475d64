"""Campaigns: survey, search and ablate as Ray Tune experiments, one table per campaign.

Driver side: ``runner`` (execution profiles), ``plan`` (survey and ablation trials), ``search``
(Optuna and scheduler wiring), ``cluster`` (Ray start-up), ``run`` (run and resume), ``callback``
(writes rows as trials finish) and ``table`` (the campaign table). Worker side: ``trainable``
(the Tune function) and ``trial`` (one trial, independent of Ray).
"""

from __future__ import annotations

from nas.lazy import lazy_exports

_LAZY = {
    "init_ray": "nas.campaign.cluster",
    "plan_ablation": "nas.campaign.plan",
    "plan_survey": "nas.campaign.plan",
    "resume_campaign": "nas.campaign.run",
    "run_campaign": "nas.campaign.run",
}
__all__ = sorted(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY)
