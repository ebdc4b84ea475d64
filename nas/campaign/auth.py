"""Ray token authentication for the campaign's Ray (Ray's token mode, Ray >= 2.52).

Ray reads the mode from ``RAY_AUTH_MODE`` (``token`` or ``disabled``) and, in token mode, the
token from ``RAY_AUTH_TOKEN``, else the file ``RAY_AUTH_TOKEN_PATH`` names, else
``~/.ray/auth_token`` (https://docs.ray.io/en/latest/ray-security/token-auth.html). Every process
Ray starts inherits the environment of the process that started it, so setting these variables
before ``ray.init`` / ``ray start`` is how a worker, an actor or a node gets the token.

* A private local Ray: token mode with a fresh random token held in this process's environment
  (``RAY_AUTH_TOKEN``); nothing is written to disk, nothing else on the machine can join.
* A cluster: token mode with the cluster's token from Ray's documented places; a cluster found to
  run without authentication gets a one-line warning.
* ``auth: disabled`` in the runner: no token, and a one-line warning naming the risk.
"""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

from nas.errors import UserError

__all__ = [
    "cluster_authenticated",
    "default_token_path",
    "prepare_auth",
    "refresh_ray_auth",
]

log = logging.getLogger(__name__)

MODE, TOKEN, TOKEN_PATH = "RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"
RISK = "anyone who can reach its ports can run code as the user who started it"
_local_token: str | None = None  # the token this process made for its private local Ray


def default_token_path() -> Path:
    """Ray's default token file."""
    return Path.home() / ".ray" / "auth_token"


def prepare_auth(runner_name: str, mode: str, address: str | None) -> None:
    """Set Ray's authentication environment for a local Ray (``address`` None) or a cluster
    before ``ray.init``; a clear error when a cluster's token is nowhere to be found."""
    global _local_token
    os.environ[MODE] = mode
    if os.environ.get(TOKEN) and os.environ.get(TOKEN) == _local_token:
        del os.environ[TOKEN]  # an earlier local Ray's token is nobody else's
    if mode == "disabled":
        where = "the local Ray" if address is None else f"the Ray cluster at {address}"
        log.warning(
            "runner %r: auth: disabled: %s runs without authentication; %s",
            runner_name,
            where,
            RISK,
        )
    elif address is None:
        _local_token = os.environ[TOKEN] = secrets.token_hex(32)  # 256 bits, as Ray's own
    else:
        _check_token(runner_name)
    refresh_ray_auth()


def _check_token(runner_name: str) -> None:
    """The cluster's token must be somewhere Ray looks (it would fail later, less clearly)."""
    if os.environ.get(TOKEN):
        return
    path = os.environ.get(TOKEN_PATH)
    if path:
        try:
            if Path(path).read_text().strip():
                return
            problem = "is empty"
        except OSError as e:
            problem = f"cannot be read ({e.strerror or e})"
        raise UserError(f"runner {runner_name!r}: {TOKEN_PATH}={path}: the token file {problem}")
    if default_token_path().is_file():
        return
    raise UserError(
        f"runner {runner_name!r}: auth: token needs the cluster's token: set {TOKEN} or "
        f"{TOKEN_PATH}, or put it in {default_token_path()} (`ray get-auth-token` on the head "
        "prints it); a cluster started without authentication needs auth: disabled"
    )


def refresh_ray_auth() -> None:
    """Make an already imported Ray read the mode and token again (it caches both)."""
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")  # as ray's own _enable_token_auth does after changing RAY_AUTH_MODE
    AuthenticationTokenLoader.instance().reset_cache()


def cluster_authenticated() -> bool:
    """Whether the connected cluster's processes run in token mode (asked of a worker)."""
    import ray

    @ray.remote(num_cpus=0)
    def mode() -> bool:
        from ray._raylet import AuthenticationMode, get_authentication_mode

        return get_authentication_mode() == AuthenticationMode.TOKEN

    return bool(ray.get(mode.remote()))
