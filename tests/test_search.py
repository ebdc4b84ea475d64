"""nas.campaign.search: the samplers by name (TPE's options, the warning for a long GP search)
and the scheduler refused for measure-only trials."""

from __future__ import annotations

import logging

import optuna
import pytest

from nas.campaign.search import GP_TRIALS, make_sampler, make_scheduler
from nas.errors import UserError


def test_tpe_is_multivariate_and_grouped():
    sampler = make_sampler("tpe", 3)
    assert isinstance(sampler, optuna.samplers.TPESampler)
    assert sampler._multivariate is True and sampler._group is True  # noqa: SLF001


def test_a_long_gp_search_is_warned_about(caplog):
    with caplog.at_level(logging.WARNING, logger="nas.campaign.search"):
        make_sampler("gp", 0, planned=GP_TRIALS)
        make_sampler("tpe", 0, planned=10 * GP_TRIALS)
        assert not caplog.records
        make_sampler("gp", 0, planned=GP_TRIALS + 1)
    (record,) = caplog.records
    assert f"{GP_TRIALS + 1} planned trials" in record.getMessage()
    assert "nsga2" in record.getMessage()


def test_asha_is_refused_when_nothing_trains():
    with pytest.raises(UserError, match=r"^scheduler: asha .* train.epochs is 0"):
        make_scheduler("asha", 0)
    assert make_scheduler("asha", 3) is not None
