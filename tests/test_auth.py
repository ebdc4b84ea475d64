"""Ray token authentication (nas.campaign.auth): the runner's ``auth:`` key, a cluster token that
is nowhere is one clear error, ``auth: disabled`` warns once per run, and a cluster without
authentication is named in a warning. The local campaign's Ray refusing a second process without
the token is tested on a running campaign (tests/test_campaign.py, the SIGKILL test); the loopback
cluster tests (tests/test_cluster*.py) run with a token."""

from __future__ import annotations

import logging
import os

import pytest

from nas.campaign.runner import runner_from_dict
from nas.errors import SpaceError, UserError


@pytest.fixture()
def ray_env(monkeypatch, tmp_path):
    """Ray's auth variables restored after the test; HOME without ~/.ray/auth_token."""
    for key in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_ADDRESS"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_runner_auth_key():
    assert runner_from_dict({}, source="r.yaml").auth == "token"
    assert runner_from_dict({"auth": "disabled"}, source="r.yaml").auth == "disabled"
    with pytest.raises(SpaceError, match=r"auth.*expected one of \['token', 'disabled'\]"):
        runner_from_dict({"auth": "off"}, source="r.yaml")


def test_a_cluster_token_that_is_nowhere_is_one_clear_error(ray_env):
    from nas.campaign.auth import prepare_auth

    with pytest.raises(UserError) as e:
        prepare_auth("far", "token", "10.0.0.1:6379")
    assert "runner 'far': auth: token needs the cluster's token: set RAY_AUTH_TOKEN" in str(e.value)
    assert "\n" not in str(e.value)
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(ray_env / "nothing")
    with pytest.raises(UserError, match=r"RAY_AUTH_TOKEN_PATH=.*nothing: the token file cannot"):
        prepare_auth("far", "token", "10.0.0.1:6379")
    (ray_env / ".ray").mkdir()
    (ray_env / ".ray" / "auth_token").write_text("ab" * 32)
    del os.environ["RAY_AUTH_TOKEN_PATH"]
    prepare_auth("far", "token", "10.0.0.1:6379")  # Ray's default file: accepted
    assert os.environ["RAY_AUTH_MODE"] == "token" and "RAY_AUTH_TOKEN" not in os.environ


@pytest.mark.heavy
def test_auth_disabled_warns_once_and_an_open_cluster_is_named(ray_env, caplog, monkeypatch):
    """A runner with ``auth: disabled`` runs (a task runs) with one warning for the run; a
    default runner joining a cluster started without authentication warns that it is open."""
    import ray

    from nas.campaign import init_ray
    from nas.campaign.loopback import RayCluster
    from nas.campaign.runner import Runner

    caplog.set_level(logging.WARNING, logger="nas")
    off = Runner(name="off", auth="disabled", num_cpus=1, object_store_mb=100)
    try:
        init_ray(off)
        init_ray(off)  # the same run asks again (e.g. a resume after a fit): no second line
        assert ray.get(ray.remote(lambda: 6 * 7).remote()) == 42
    finally:
        ray.shutdown()
    lines = [r.getMessage() for r in caplog.records if "auth: disabled" in r.getMessage()]
    assert lines == [
        "runner 'off': auth: disabled: the local Ray runs without authentication; anyone who "
        "can reach its ports can run code as the user who started it"
    ]
    caplog.clear()
    cluster = RayCluster(auth=False).start(worker=False)
    monkeypatch.setenv("RAY_AUTH_TOKEN", "ab" * 32)  # the user has a token; the cluster ignores it
    try:
        init_ray(Runner(name="open", address=cluster.address))
        assert ray.get(ray.remote(lambda: 6 * 7).remote()) == 42
    finally:
        ray.shutdown()
        cluster.shutdown()
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("nas")]
    assert len(lines) == 1 and lines[0].startswith(
        f"runner 'open': the Ray cluster at {cluster.address} runs without authentication"
    ), lines
