"""The scikit-learn models a surrogate chooses from (``nas surrogate fit``), each a position in
one list with its settings, so that a saved surrogate names its model by position and is fitted
again on load (``nas.surrogate.model``): no file of a campaign folder is unpickled."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["candidates", "fit_estimator"]


def candidates(seed: int) -> list[tuple[str, dict, Any]]:
    """(name, settings, factory) of every model the cross-validation chooses from."""
    from sklearn.ensemble import GradientBoostingRegressor, RandomForestRegressor
    from sklearn.gaussian_process import GaussianProcessRegressor
    from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    def forest(leaf: int):
        return lambda: RandomForestRegressor(
            n_estimators=50, min_samples_leaf=leaf, max_features=0.5, random_state=seed
        )

    def boosting(depth: int):
        return lambda: GradientBoostingRegressor(
            n_estimators=50, learning_rate=0.1, subsample=0.8, max_depth=depth, random_state=seed
        )

    def gp():
        kernel = ConstantKernel() * Matern(length_scale=3.0, nu=2.5) + WhiteKernel(0.1)
        regressor = GaussianProcessRegressor(kernel, normalize_y=True, random_state=seed)
        return make_pipeline(StandardScaler(), regressor)

    def ridge(alpha: float):
        return lambda: make_pipeline(StandardScaler(), Ridge(alpha=alpha))

    return [
        *[
            ("random_forest", {"min_samples_leaf": k, "max_features": 0.5}, forest(k))
            for k in (1, 3)
        ],
        *[("gradient_boosting", {"max_depth": d}, boosting(d)) for d in (2, 3)],
        ("gaussian_process", {"kernel": "matern52+white"}, gp),
        *[("ridge", {"alpha": a}, ridge(a)) for a in (1.0, 10.0)],
    ]


def fit_estimator(factory, x: np.ndarray, y: np.ndarray):
    """A fitted model; a GP whose optimiser stops at a bound on a small fold still counts (its
    held-out score says how good it is), so convergence warnings are not printed."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return factory().fit(x, y)
