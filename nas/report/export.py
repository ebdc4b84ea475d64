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

from nas.campaign.storage import is_uri, storage_of
from nas.campaign.table import campaign_objectives, load_campaign, records
from nas.errors import UserError, did_you_mean, path_component
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
    """The last Ray checkpoint (``train.pt``) of a trial, in the campaign's Ray storage: the
    location ``campaign.json`` records (a path or a URI such as ``s3://``), else ``<campaign>/ray``.
    A checkpoint in remote storage is copied to ``<campaign>/.weights/`` first."""
    pattern = re.compile(rf"/[^/]*_{re.escape(trial_id)}_[^/]*/checkpoint_(\d+)/train\.pt$")
    for storage in _storages(folder):
        if is_uri(storage):
            found = _remote_weights(storage, pattern, folder / ".weights" / trial_id)
        else:
            paths = Path(storage).glob(f"*/*_{trial_id}_*/checkpoint_*/train.pt")
            found = max(
                ((int(m.group(1)), p) for p in paths if (m := pattern.search(p.as_posix()))),
                default=(None, None),
            )[1]
        if found is not None:
            return found
    return None


def _storages(folder: Path) -> list[str]:
    manifest = folder / "campaign.json"
    out = []
    if manifest.is_file():
        experiment = json.loads(manifest.read_text()).get("experiment")
        if experiment:
            out.append(storage_of(experiment))
    return out + [str(folder / "ray")]


def _remote_weights(storage: str, pattern: re.Pattern, dest: Path) -> Path | None:
    import pyarrow.fs as pafs

    fs, root = pafs.FileSystem.from_uri(storage)
    infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    found = [(int(m.group(1)), i.path) for i in infos if (m := pattern.search("/" + i.path))]
    if not found:
        return None
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / "train.pt"
    with fs.open_input_stream(max(found)[1]) as src, open(target, "wb") as out:
        out.write(src.read())
    return target


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


def _write_weights(
    row: dict[str, Any], candidate: Candidate, folder: Path, dest: Path, *, timm: bool = False
) -> str:
    """Write ``deploy.pt`` (and with ``timm``, ``timm.pt`` + ``timm.json``, or ``TIMM.md`` saying
    why timm cannot build it) and return an empty string, or the reason there are no weights."""
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
    if timm:
        _write_timm(model, dest)
    return ""


def _write_timm(model, dest: Path) -> None:
    """``timm.pt`` (timm's names and shapes) and ``timm.json`` (the ``timm.create_model`` call
    that loads it strictly), or ``TIMM.md`` with the reason timm cannot build the candidate."""
    import torch

    from nas.models.timm_export import to_timm

    try:
        state, spec = to_timm(model)
    except UserError as e:
        (dest / "TIMM.md").write_text(f"No timm export: {e}.\n")
        return
    torch.save(state, dest / "timm.pt")
    (dest / "timm.json").write_text(json.dumps(spec, indent=2) + "\n")


def export_candidates(
    folder: str | Path,
    out: str | Path,
    *,
    trial: Sequence[str] = (),
    pareto: bool = False,
    best_under: Sequence[str] = (),
    objectives: dict[str, str] | None = None,
    overwrite: bool = False,
    timm: bool = False,
) -> list[Path]:
    """Export the chosen trials of a campaign to ``out/<trial_id>/``; returns those folders. An
    existing export of a chosen trial is refused (nothing written) unless ``overwrite``. With
    ``timm``, also the weights in timm's layout (``timm.pt``, ``timm.json``) where timm can build
    the candidate."""
    folder, df = load_campaign(folder)
    objectives = objectives or campaign_objectives(folder)
    rows = select_trials(df, objectives, trial=trial, pareto=pareto, best_under=best_under)
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out: {out} exists and is not a folder")
    chosen = records(rows)
    ids = [path_component(str(r["trial_id"]), key=f"{folder}: trial_id") for r in chosen]
    taken = [out / i for i in ids if (out / i).exists() and any((out / i).iterdir())]
    if taken and not overwrite:
        raise UserError(
            f"--out: {taken[0]} already holds an export ({len(taken)} of the {len(ids)} chosen "
            "trials do); pass --overwrite to replace them, or choose another --out"
        )
    written = []
    for row in chosen:
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
        for stale in ("RETRAIN.md", "timm.pt", "timm.json", "TIMM.md"):
            (dest / stale).unlink(missing_ok=True)
        why = _write_weights(row, candidate, folder, dest, timm=timm)
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
