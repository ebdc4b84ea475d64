"""Find the claim spaces and run each as an ablation campaign, then its report."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from nas.errors import UserError, did_you_mean

__all__ = ["CLAIMS_DIR", "ClaimRun", "claim_spaces", "run_claims"]

log = logging.getLogger(__name__)

CLAIMS_DIR = Path("spaces/claims")


@dataclass
class ClaimRun:
    """One claim space's campaign: its folder, the claims' table (``claim_effects``), the
    budget in words and the wall time of this run (seconds; ~0 when nothing was left to run)."""

    name: str
    folder: Path
    table: pd.DataFrame
    budget: str
    wall_s: float


def claim_spaces(names: Sequence[str] = (), root: str | Path = CLAIMS_DIR) -> list[Path]:
    """The claim spaces under ``root`` (``*.yaml``, by file name), or those named (a file stem,
    or a path to a space with a claims: block). An unknown name is a UserError listing them."""
    root = Path(root)
    found = {p.stem: p for p in sorted(root.glob("*.yaml"))} if root.is_dir() else {}
    if not names:
        if not found:
            raise UserError(f"{root}: no claim spaces (*.yaml) found")
        return list(found.values())
    out = []
    for name in names:
        if name in found:
            out.append(found[name])
        elif name.endswith((".yaml", ".yml")) and Path(name).is_file():
            out.append(Path(name))
        else:
            raise UserError(
                f"claims: unknown claim {name!r}{did_you_mean(name, found)}; "
                f"allowed: {sorted(found)} (or a space file)"
            )
    return out


def run_claims(
    paths: Sequence[Path],
    *,
    results: str = "results",
    runner_path: str | None = None,
    seed: int = 0,
    progress: bool = True,
    retrain: bool = False,
) -> list[ClaimRun]:
    """Run each claim space as the ablation its claims: block describes (campaign
    ``claims-<space name>``: a rerun continues it), write its report, return the verdicts."""
    from nas.campaign import run_campaign
    from nas.campaign.table import read_table
    from nas.report.claims import budget_text, claim_effects
    from nas.report.render import write_report
    from nas.space import load_space

    spaces = [(Path(p), load_space(p)) for p in paths]  # every file checked before any runs
    for path, space in spaces:
        if space.claims is None:
            raise UserError(f"{path}: claims: missing; a claim space names its claims there")
    out = []
    for path, space in spaces:
        claims = space.claims
        t0 = time.perf_counter()
        folder = run_campaign(
            "ablate",
            str(path),
            name=f"claims-{space.name}",
            runner_path=runner_path,
            seed=seed,
            results=results,
            axes=claims.axes,
            seeds=claims.seeds,
            factorial=claims.factorial,
            retrain=retrain,
            progress=progress,
        )
        wall = time.perf_counter() - t0
        write_report(folder)
        table = claim_effects(read_table(folder), claims.effects)
        budget = f"{budget_text(folder)}, {claims.seeds} seeds"
        out.append(ClaimRun(space.name, folder, table, budget, wall))
        log.info("claims %s: %s", space.name, ", ".join(table["verdict"]))
    return out
