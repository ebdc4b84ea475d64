"""``nas dashboard``: a campaign table mirrored into an Optuna study (``nas.report.dashboard``) and
served by ``optuna-dashboard`` (the optional extra ``nas[dashboard]``), on 127.0.0.1 by default."""

from __future__ import annotations

import ipaddress
import logging
import sys
import threading

from nas.cli.flags import EPILOG
from nas.errors import UserError

__all__ = ["add_dashboard", "cmd_dashboard"]

log = logging.getLogger(__name__)
INSTALL = "pip install 'nas[dashboard]' (or: pip install optuna-dashboard)"


def _port(text: str) -> int:
    import argparse

    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"expected a port number 0..65535 (0: any free one), got {text!r}"
        )
    return port


def _interval(text: str) -> float:
    import argparse

    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected seconds > 0, got {text!r}")
    return value


def add_dashboard(sub) -> None:
    """``nas dashboard``."""
    d = sub.add_parser(
        "dashboard",
        help="live optuna-dashboard view of a campaign (any mode, finished or running)",
        epilog=EPILOG,
        description="Mirror the campaign table into an in-memory Optuna study (params, objective "
        "values, statuses as trial states, measured columns as user attributes) and serve "
        "optuna-dashboard on it; rows that arrive while the campaign runs are added every "
        f"--interval seconds, each trial once. Needs the extra: {INSTALL}.",
    )
    d.add_argument("folder", help="campaign folder, e.g. results/quickstart")
    d.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; anything else is reachable by others and "
        "the dashboard has no authentication)",
    )
    d.add_argument("--port", type=_port, default=8080, help="port (default 8080; 0: a free one)")
    d.add_argument(
        "--interval",
        type=_interval,
        default=5.0,
        metavar="S",
        help="seconds between two reads of the table (default 5)",
    )
    d.set_defaults(func=cmd_dashboard)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _follow(mirror, interval: float, stop: threading.Event) -> None:
    """Add the rows that arrive, every ``interval`` seconds, until ``stop``."""
    while not stop.wait(interval):
        try:
            added = mirror.sync()
        except UserError as e:  # a table caught mid-rewrite, a folder removed: try again
            log.warning("nas dashboard: %s", e)
            continue
        except Exception as e:  # noqa: BLE001 - one bad row must not end the updates silently
            log.warning(
                "nas dashboard: the update failed (%s: %s); trying again", type(e).__name__, e
            )
            continue
        if added:
            total = len(mirror.mirrored)
            print(f"nas dashboard: +{added} trial(s), {total} in the study", flush=True)


def cmd_dashboard(args) -> int:
    """Mirror, serve, follow the table until Ctrl-C."""
    try:
        import optuna_dashboard
    except ImportError:
        raise UserError(f"optuna-dashboard is not installed; install it with {INSTALL}") from None
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    import optuna

    from nas.report.dashboard import TableMirror

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    mirror = TableMirror(args.folder)
    mirror.sync()

    class Quiet(WSGIRequestHandler):
        def log_message(self, *a) -> None:  # one line per request would drown the status lines
            pass

    try:
        server = make_server(
            args.host, args.port, optuna_dashboard.wsgi(mirror.storage), handler_class=Quiet
        )
    except OSError as e:
        raise UserError(
            f"--host/--port: cannot listen on {args.host}:{args.port} ({e.strerror or e})"
        ) from None
    if not _loopback(args.host):
        print(
            f"nas dashboard: warning: listening on {args.host}: the dashboard has no "
            "authentication; anyone who can reach this port can read and annotate the study",
            file=sys.stderr,
        )
    host, port = server.server_address[:2]
    print(
        f"nas dashboard: {len(mirror.mirrored)} trial(s) of {mirror.folder} in study "
        f"{mirror.study.study_name!r}; http://{host}:{port}/dashboard/ (Ctrl-C stops)",
        flush=True,
    )
    stop = threading.Event()
    follower = threading.Thread(target=_follow, args=(mirror, args.interval, stop), daemon=True)
    follower.start()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("nas dashboard: stopped", file=sys.stderr)
    finally:
        stop.set()
        server.server_close()
    return 0
