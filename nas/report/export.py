"""``nas export``: hand a chosen architecture over — candidate YAML, deploy weights, its row.

Per chosen trial, ``OUT/<trial_id>/`` gets

- ``candidate.yaml``  the candidate (``nas.load_candidate`` reads it back),
- ``deploy.pt``       the re-parameterized ``state_dict`` of the trained weights, when the trial's
  last checkpoint is still in the campaign's Ray experiment and matches the row (else
  ``RETRAIN.md`` says why and how to retrain),
- ``row.json``        its campaign-table row,
- ``README.md``       how to rebuild it with ``nas.build_model``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from nas.campaign.table import campaign_objectives, load_campaign, records
from nas.errors import UserError, did_you_mean
from nas.space.candidate import Candidate

__all__ = ["export_candidates", "find_weights", "select_trials"]


def select_trials(
    df,
    objectives: dict[str, str],
    *,
    trial: Sequence[str] = (),
    pareto: bool = False,
    best_under: Sequence[str] = (),
):
    """Rows chosen by trial ids, by the Pareto front, or as the best row under budgets."""
    from nas.report import pareto_front

    if trial:
        known = list(df["trial_id"])
        missing = [t for t in trial if t not in set(known)]
        if missing:
            raise UserError(
                f"--trial: no trial {missing[0]!r} in the campaign{did_you_mean(missing[0], known)}; "
                f"{len(known)} trials, e.g. {', '.join(known[:3])}"
            )
        return df[df["trial_id"].isin(trial)]
    result = pareto_front(df, objectives, budgets=best_under)
    if pareto:
        if not len(result.front):
            raise UserError("--pareto: no finished (status ok) trial has every objective value")
        return result.front
    if result.best is None:
        raise UserError(
            f"--best-under: no finished trial satisfies {' and '.join(best_under)} "
            f"({int(result.eligible.sum())} finished trials with objective values)"
        )
    return df.loc[[result.best]]


def find_weights(folder: Path, trial_id: str) -> Path | None:
    """The last Ray checkpoint (``train.pt``) of a trial in the campaign's experiments."""
    found = []
    for path in (folder / "ray").glob(f"*/*_{trial_id}_*/checkpoint_*/train.pt"):
        number = re.search(r"checkpoint_(\d+)", str(path.parent.name))
        found.append((int(number.group(1)) if number else -1, path))
    return max(found)[1] if found else None


def _snippet(trial_id: str, has_weights: bool) -> str:
    load = (
        "model = nas.reparameterize(nas.build_model(candidate))  # deploy form\n"
        'model.load_state_dict(torch.load("deploy.pt", weights_only=True))\n'
        if has_weights
        else "model = nas.build_model(candidate)  # fresh weights: train it (see RETRAIN.md)\n"
    )
    return (
        f"# Trial {trial_id}\n\n"
        "Rebuild it in Python (from this folder):\n\n"
        "```python\nimport torch\nimport nas\n\n"
        'candidate = nas.load_candidate("candidate.yaml")\n'
        f"{load}"
        "model.eval()\n```\n\n"
        "Measure or train it again from the CLI:\n\n"
        "```\nnas measure candidate.yaml\nnas train candidate.yaml --epochs 30\n```\n\n"
        "`row.json` is the trial's row of the campaign table (accuracy, costs, history).\n"
    )


def _write_weights(row: dict[str, Any], candidate: Candidate, folder: Path, dest: Path) -> str:
    """Write ``deploy.pt`` and return an empty string, or the reason there are no weights."""
    import torch

    from nas.models.build import build_model, reparameterize

    if row.get("status") != "ok":
        return (
            f"the trial did not finish training (status {row.get('status')}: {row.get('reason')})"
        )
    source = row.get("reused_from") or row["trial_id"]
    path = find_weights(folder, source)
    if path is None:
        return f"no checkpoint of trial {source} is left under {folder / 'ray'}"
    state = torch.load(path, map_location="cpu", weights_only=True)
    if int(state.get("epoch", -1)) != int(row.get("epochs") or 0):
        return (
            f"the last checkpoint ({path}) is from epoch {state.get('epoch')}, "
            f"the row from epoch {row.get('epochs')}"
        )
    model = build_model(candidate)
    model.load_state_dict(state["model"])
    torch.save(reparameterize(model).state_dict(), dest / "deploy.pt")
    return ""


def export_candidates(
    folder: str | Path,
    out: str | Path,
    *,
    trial: Sequence[str] = (),
    pareto: bool = False,
    best_under: Sequence[str] = (),
    objectives: dict[str, str] | None = None,
) -> list[Path]:
    """Export the chosen trials of a campaign to ``out/<trial_id>/``; returns those folders."""
    folder, df = load_campaign(folder)
    objectives = objectives or campaign_objectives(folder)
    rows = select_trials(df, objectives, trial=trial, pareto=pareto, best_under=best_under)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out: {out} exists and is not a folder")
    written = []
    for row in records(rows):
        try:
            candidate = Candidate.from_row(row)
        except UserError as e:
            raise UserError(
                f"{folder}: trial {row['trial_id']} has no valid candidate ({e})"
            ) from None
        dest = out / str(row["trial_id"])
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "candidate.yaml").write_text(
            f"# trial {row['trial_id']} of campaign {row.get('campaign')}, id {candidate.id}\n"
            + candidate.to_yaml()
        )
        (dest / "row.json").write_text(json.dumps(row, indent=2, sort_keys=True) + "\n")
        why = _write_weights(row, candidate, folder, dest)
        (dest / "RETRAIN.md").unlink(missing_ok=True)
        if why:
            (dest / "deploy.pt").unlink(missing_ok=True)
            (dest / "RETRAIN.md").write_text(
                f"No trained weights exported: {why}.\n\n"
                "Retrain it: `nas train candidate.yaml` (same data and budget as the campaign: "
                f"see the `train.*` keys of row.json).\n"
            )
        (dest / "README.md").write_text(_snippet(str(row["trial_id"]), not why))
        written.append(dest)
    return written
