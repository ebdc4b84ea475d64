"""Surrogates of a survey and sampler replays (issue 20): ``fit`` (one cross-validated model per
measured target, held-out quality), ``replay`` (the campaign's samplers against the surrogate on
Ray), ``stats`` and ``report`` (anytime curves with 95% bands, when a sampler beats random).

- ``survey``: a survey campaign folder as a training set
- ``features``: the feature schema (flat params, analytic costs)
- ``model``: the fitted ``Surrogate`` and ``<campaign>/surrogate/``
"""

from __future__ import annotations

from nas.lazy import lazy_exports

_LAZY = {
    "Surrogate": "nas.surrogate.model",
    "fit_surrogate": "nas.surrogate.fit",
    "load_surrogate": "nas.surrogate.model",
    "run_replay": "nas.surrogate.replay",
}
__all__ = sorted(_LAZY)
__getattr__ = lazy_exports(__name__, _LAZY)
