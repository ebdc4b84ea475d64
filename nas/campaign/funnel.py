"""Funnel campaigns: screen N candidates cheaply, train only the K best.

``nas survey|search ... --prescreen N --keep K --by EXPR``: N candidates are drawn as a survey
draws them (inside the params/MACs constraints), each is screened by the fast cost path (analytic
params and MACs) and the zero-cost proxies at init (``nas.campaign.analysis``, the values its
trial would record), as Ray tasks in parallel; the K with the largest value of ``EXPR`` (for
example ``synflow`` or ``-macs_m``; the expression language of ``derive:``) are trained, the
others become rows with status ``screened``, their screen values and the reason. A candidate
whose expression is not a finite number (a failed proxy) is never kept.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from nas.campaign.trial import TrialSpec
from nas.errors import UserError
from nas.measure.cost import FAST_COLUMNS
from nas.space.expr import Expr, ExprError
from nas.vocab import PROXIES

__all__ = [
    "SCREEN_NAMES",
    "Funnel",
    "handled_keys",
    "parse_funnel",
    "run_screen",
    "screen_plans",
    "select",
]

# what --by may read (latency_pred_ms: with a runner's latency: {mode: predict})
SCREEN_NAMES = (*FAST_COLUMNS, *PROXIES, "latency_pred_ms")


@dataclass(frozen=True)
class Funnel:
    """``prescreen`` candidates screened, ``keep`` trained, ranked by the expression ``by``."""

    prescreen: int
    keep: int
    by: str

    @property
    def expr(self) -> Expr:
        return Expr(self.by)

    @property
    def proxies(self) -> tuple[str, ...]:
        """The proxies the expression reads (screened even when the measure: section has none)."""
        return tuple(p for p in PROXIES if p in self.expr.names)


def parse_funnel(prescreen: int | None, keep: int | None, by: str | None) -> Funnel | None:
    """The funnel of the flags, or None without ``--prescreen``; one line for a bad combination."""
    given = {"--prescreen": prescreen, "--keep": keep, "--by": by}
    if all(v is None for v in given.values()):
        return None
    missing = [k for k, v in given.items() if v is None]
    if missing:
        raise UserError(f"{missing[0]}: a funnel needs --prescreen N, --keep K and --by EXPR")
    if prescreen < 1 or keep < 1 or keep > prescreen:
        raise UserError(
            f"--keep: expected 1 <= K <= N (--prescreen), got --prescreen {prescreen} --keep {keep}"
        )
    try:
        names = Expr(by).names
    except ExprError as e:
        raise UserError(f"--by: {e}") from None
    unknown = sorted(names - set(SCREEN_NAMES))
    if unknown:
        raise UserError(
            f"--by: {by!r} reads {unknown[0]!r}, which the screen does not measure; "
            f"allowed names: {list(SCREEN_NAMES)}"
        )
    return Funnel(prescreen, keep, by)


def screen_plans(plans: list[dict], spec: TrialSpec, funnel: Funnel, cpus: float) -> list[dict]:
    """The screen values of every plan (same order), computed by Ray tasks of ``cpus`` CPUs each
    (one task per chunk of plans: the data are loaded once per task)."""
    import ray

    if not plans:
        return []
    slots = max(1, int(ray.cluster_resources().get("CPU", 1) // max(cpus, 1e-3)))
    chunks = [plans[i :: min(slots, len(plans))] for i in range(min(slots, len(plans)))]
    task = ray.remote(num_cpus=cpus)(_screen_chunk)
    done = ray.get([task.remote(asdict(spec), chunk, funnel.proxies) for chunk in chunks])
    by_key = {v["run_key"]: v for chunk in done for v in chunk}
    return [by_key[p["run_key"]] for p in plans]


def _screen_chunk(spec: dict, plans: list[dict], extra: tuple[str, ...]) -> list[dict]:
    """Worker side: fast costs and proxies at init of each plan's candidate."""
    import torch

    from nas.campaign.analysis import init_proxies, measure_settings
    from nas.measure import cost_columns, fast_cost
    from nas.models.build import build_model
    from nas.space.candidate import Candidate
    from nas.train.data import DataConfig, load_data

    settings = measure_settings(spec["measure"])
    settings["proxies"] = tuple(dict.fromkeys((*settings["proxies"], *extra)))
    torch.set_num_threads(max(1, int(spec["threads"])))
    loaded: dict[int, Any] = {}
    out = []
    for plan in plans:
        t0 = time.perf_counter()
        c = Candidate.from_dict(plan["candidate"])
        if c.image_size not in loaded:
            cfg = DataConfig.from_dict({**spec["data"], "image_size": c.image_size}, source="data")
            loaded[c.image_size] = load_data(cfg)
        data = loaded[c.image_size].with_channels(c.in_chans)
        values = cost_columns(fast_cost(c))
        torch.manual_seed(plan["seed"])  # the trial builds its network the same way
        model = build_model(c)
        values |= init_proxies(model, data, settings, seed=plan["seed"], num_classes=c.num_classes)
        if spec.get("latency_model"):
            values |= _predicted(spec, c)
        out.append({**values, "run_key": plan["run_key"], "screen_s": time.perf_counter() - t0})
    return out


def _predicted(spec: dict, c) -> dict[str, Any]:
    """The latency model's ``latency_pred_ms`` (the value the trial's row will carry)."""
    from nas.measure import LatencyProtocol
    from nas.measure.latency_fit import predicted_columns

    settings = {"threads": spec["threads"], **spec["latency"]}
    proto = LatencyProtocol(device=spec["device"], image_size=c.image_size, **settings)
    return predicted_columns(spec["latency_model"], c, proto)


def select(values: list[Mapping[str, Any]], funnel: Funnel) -> list[dict]:
    """Per plan (same order): ``screen_score`` (the expression, NaN when it is not a finite
    number), ``screen_rank`` (1 = best among the rankable, None for the others), ``screen_kept``
    and ``screen_note`` (why a candidate was left out)."""
    expr = funnel.expr
    scores, notes = [], []
    for v in values:
        try:
            s = expr({k: v.get(k) for k in expr.names})
            score = float(s) if isinstance(s, int | float) and not isinstance(s, bool) else math.nan
        except (ExprError, TypeError, ValueError) as e:
            score, note = math.nan, f"{funnel.by} cannot be evaluated ({e})"
        else:
            note = None if math.isfinite(score) else f"{funnel.by} = {s!r} is not a finite number"
        scores.append(score)
        notes.append(note)
    order = sorted((i for i, s in enumerate(scores) if math.isfinite(s)), key=lambda i: -scores[i])
    rank = {i: r + 1 for r, i in enumerate(order)}
    kept = set(order[: funnel.keep])
    out = []
    for i, score in enumerate(scores):
        note = notes[i] or (
            None
            if i in kept
            else f"screened out: {funnel.by} = {score:.4g}, rank {rank[i]} of {len(order)} "
            f"(kept the best {funnel.keep})"
        )
        out.append(
            {"screen_by": funnel.by, "screen_score": score, "screen_rank": rank.get(i),
             "screen_kept": i in kept, "screen_note": note}
        )  # fmt: skip
    return out


def handled_keys(df) -> set[str]:
    """Run keys a funnel does not screen again: the screened-out rows of earlier runs."""
    if not len(df) or "run_key" not in df:
        return set()
    return set(df.loc[df["status"] == "screened", "run_key"].dropna())


def run_screen(
    funnel: Funnel, plans: list[dict], spec: TrialSpec, cpus: float, table, run: str
) -> tuple[list[dict], dict]:
    """Screen ``plans``, write the left-out ones into ``table`` (status ``screened``) and return
    the kept plans (best first, each with its ``screen`` columns) and the screen's figures."""
    from nas.campaign.trial import screened_row

    t0 = time.perf_counter()
    values = screen_plans(plans, spec, funnel, cpus)
    chosen = select(values, funnel)
    kept = []
    for i, (plan, v, c) in enumerate(zip(plans, values, chosen)):
        screen = {**v, **c}
        screen.pop("run_key")
        if c["screen_kept"]:
            kept.append({**plan, "screen": screen})
        else:
            table.add(screened_row(spec, plan, f"{run}-screen-{i:04d}", screen))
    kept.sort(key=lambda p: p["screen"]["screen_rank"])
    stats = {
        "by": funnel.by,
        "prescreen": funnel.prescreen,
        "keep": funnel.keep,
        "screened": len(plans),
        "kept": len(kept),
        "screen_wall_s": time.perf_counter() - t0,
        "screen_task_s": sum(v["screen_s"] for v in values),
    }
    return kept, stats
