"""``nas bench surrogate``: ``nas surrogate fit`` then ``nas replay`` (random, TPE, NSGA-II and
GP, 10 seeds x 30 proposals each; ``--quick``: 3 seeds x 10) on the real 32-trial digits survey
that the tests ship (``tests/data/digits_survey32``), in a temporary copy; the wall time of each
step, the surrogate's held-out quality and the replay's verdicts. Target: both steps together in
at most 3 minutes on the 2-core machine (full size only)."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from nas.bench.common import ROOT, target

__all__ = ["bench"]

SURVEY = ROOT / "tests" / "data" / "digits_survey32"
TARGET_S = 180.0


def bench(*, quick: bool, device: str = "cpu") -> dict:
    """The figures and the end-to-end time target (``device`` is not used: all CPU)."""
    from nas.surrogate.fit import fit_surrogate
    from nas.surrogate.replay import run_replay

    if not (SURVEY / "trials.parquet").is_file():
        return {"figures": {}, "targets": [], "skipped": f"{SURVEY}: not here (a source checkout has it)"}  # fmt: skip
    trials, repeats = (10, 3) if quick else (30, 10)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "digits32"
        shutil.copytree(SURVEY, folder)
        t0 = time.perf_counter()
        surrogate = fit_surrogate(folder)
        fit_s = time.perf_counter() - t0
        samplers = ["random", "tpe", "nsga2", "gp"]
        result = run_replay(folder, samplers, trials=trials, repeats=repeats)
        replay_s = time.perf_counter() - t0 - fit_s
    total = fit_s + replay_s
    figures = {
        "rows": surrogate.rows,
        "fit_s": fit_s,
        "replay_s": replay_s,
        "total_s": total,
        "trials": trials,
        "repeats": repeats,
        **{f"{t}_kendall_tau": q["kendall_tau"] for t, q in surrogate.quality.items()},
        **{f"{t}_model": q["model"] for t, q in surrogate.quality.items()},
        "informative": result.summary["informative"],
        "beats_random_from_trial": result.summary["beats_random_from_trial"],
    }
    text = f"fit + replay (4 samplers x {repeats} seeds x {trials} trials) <= {TARGET_S:g} s"
    met = None if quick else total <= TARGET_S
    return {"figures": figures, "targets": [target("surrogate_e2e_s", total, text, met)]}
