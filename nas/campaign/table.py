"""The campaign table: one row per trial in ``results/<campaign>/trials.parquet`` (+ ``.csv``).

Rows are appended as trials finish and the files are replaced atomically (write a temporary
file, then ``os.replace``), so a crash never leaves a half-written table and never loses a row
that was written. A row is keyed by ``trial_id``: writing the same trial again replaces it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nas.errors import UserError
from nas.vocab import FINISHED_STATUSES

__all__ = [
    "CampaignTable",
    "campaign_objectives",
    "load_campaign",
    "plain",
    "read_table",
    "records",
]

# Leading columns, in this order; every other column follows alphabetically.
LEAD = (
    "campaign",
    "mode",
    "trial_id",
    "candidate_id",
    "seed",
    "status",
    "reason",
    "val_acc",
    "val_acc_best",
)


def _cell(value: Any) -> Any:
    """Parquet-friendly cells: lists/dicts as canonical JSON strings."""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, sort_keys=True)
    return value


def records(df) -> list[dict[str, Any]]:
    """Rows as plain Python values, exactly (see :func:`plain`)."""
    return [{k: plain(v) for k, v in row.items()} for row in df.to_dict("records")]


def plain(v: Any) -> Any:
    """One table cell as a plain Python value: NaN/NA -> None, numpy scalars -> Python scalars."""
    import pandas as pd

    if isinstance(v, (list, dict, str)):
        return v
    if pd.isna(v):
        return None
    return v.item() if hasattr(v, "item") else v


def read_table(folder: str | Path):
    """The campaign table as a DataFrame (empty if none was written yet)."""
    import pandas as pd

    path = Path(folder) / "trials.parquet"
    if not path.exists():
        return pd.DataFrame(columns=list(LEAD))
    try:
        return pd.read_parquet(path)
    except Exception as e:  # noqa: BLE001 - a damaged file is user-facing
        raise UserError(
            f"{path}: cannot read the campaign table ({type(e).__name__}: {e})"
        ) from None


def campaign_objectives(folder: Path) -> dict[str, str]:
    """The objectives a campaign was run with (``campaign.json``), else accuracy only."""
    manifest = folder / "campaign.json"
    if manifest.is_file():
        objectives = json.loads(manifest.read_text()).get("spec", {}).get("objectives")
        if objectives:
            return dict(objectives)
    return {"val_acc": "max"}


def load_campaign(folder: str | Path):
    """(folder, table) of an existing campaign folder; a clear error otherwise."""
    path = Path(folder)
    if not (path / "trials.parquet").is_file():
        hint = "" if path.is_dir() else " (no such folder)"
        raise UserError(
            f"{path}: not a campaign folder{hint}; expected {path / 'trials.parquet'} "
            "written by nas survey|search|ablate"
        )
    return path, read_table(path)


class CampaignTable:
    """Append-only (by trial id) table with atomic writes."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.df = read_table(self.folder)

    def __len__(self) -> int:
        return len(self.df)

    def has(self, trial_id: str) -> bool:
        return bool(len(self.df)) and trial_id in set(self.df["trial_id"])

    def row(self, trial_id: str) -> dict[str, Any]:
        """One row as plain Python values (NaN -> None)."""
        sub = self.df[self.df["trial_id"] == trial_id]
        if not len(sub):
            raise KeyError(trial_id)
        return records(sub.iloc[[0]])[0]

    def done_keys(self) -> set[str]:
        """``run_key`` of every finished (non-error) row: identical work is not redone."""
        if not len(self.df) or "run_key" not in self.df:
            return set()
        ok = self.df[self.df["status"].isin(FINISHED_STATUSES)]
        return set(ok["run_key"].dropna())

    def add(self, row: Mapping[str, Any]) -> None:
        import pandas as pd

        new = pd.DataFrame([{k: _cell(v) for k, v in row.items()}])
        df = self.df[self.df["trial_id"] != row["trial_id"]] if len(self.df) else self.df
        df = pd.concat([df, new], ignore_index=True) if len(df) else new
        cols = [c for c in LEAD if c in df] + sorted(c for c in df if c not in LEAD)
        self.df = df[cols]
        self._write()

    def _write(self) -> None:
        """Both files are written in full to temporary files first and only then replace the old
        ones: a failed write (disk full, permissions) leaves both old files as they were."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise UserError(
                f"{self.folder}: cannot create the campaign folder ({e.strerror or e})"
            ) from None
        staged: list[tuple[str, Path]] = []
        try:
            for name, writer in (("trials.parquet", self._parquet), ("trials.csv", self._csv)):
                target = self.folder / name
                try:
                    fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{name}.", suffix=".tmp")
                    os.close(fd)
                    staged.append((tmp, target))
                    writer(tmp)
                except OSError as e:
                    raise UserError(
                        f"{target}: cannot write the campaign table ({e.strerror or e}); "
                        "the existing table is intact"
                    ) from None
            for tmp, target in staged:
                try:
                    os.replace(tmp, target)
                except OSError as e:
                    raise UserError(
                        f"{target}: cannot write the campaign table ({e.strerror or e})"
                    ) from None
        finally:
            for tmp, _ in staged:
                Path(tmp).unlink(missing_ok=True)

    def _parquet(self, path: str) -> None:
        self.df.to_parquet(path, index=False)

    def _csv(self, path: str) -> None:
        self.df.to_csv(path, index=False)
