"""The campaign table: one row per trial in ``results/<campaign>/trials.parquet`` (+ ``.csv``).

A row is keyed by ``trial_id``: writing the same trial again replaces it. Rows are recorded as
trials finish, at a cost that does not grow with the table:

* ``trials.parquet`` and ``trials.csv`` are rewritten together (each to a temporary file, then
  ``os.replace``), so a crash never leaves a half-written file and a failed write (disk full,
  permissions) leaves both as they were. A table of n rows is rewritten once per ``max(1, n/8)``
  new rows: every row while it is small, amortised O(1) per row as it grows.
* Rows between two rewrites are appended to ``trials.jsonl`` (one JSON line, flushed and
  fsync'ed before ``add`` returns), so nothing recorded is lost on a SIGKILL at any point.
  ``read_table`` merges the journal into the parquet rows; every rewrite empties it.
"""

from __future__ import annotations

import io
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
    "campaign_space",
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


JOURNAL = "trials.jsonl"


def read_table(folder: str | Path):
    """The campaign table as a DataFrame (empty if none was written yet), journal included."""
    base = _read_parquet(Path(folder))
    journal = _read_journal(Path(folder))
    return _merge(base, journal) if journal else base


def _read_parquet(folder: Path):
    import pandas as pd

    path = folder / "trials.parquet"
    if not path.exists():
        return pd.DataFrame(columns=list(LEAD))
    try:
        # One read of the whole file, then parse: pyarrow given a path opens it more than once,
        # and a rewrite (os.replace) in between pairs one file's footer with the other's pages.
        return pd.read_parquet(io.BytesIO(path.read_bytes()))
    except Exception as e:  # noqa: BLE001 - a damaged file is user-facing
        raise UserError(
            f"{path}: cannot read the campaign table ({type(e).__name__}: {e})"
        ) from None


def _read_journal(folder: Path) -> list[dict[str, Any]]:
    """Rows recorded since the last rewrite; a torn last line (a crash mid-append) is skipped."""
    path = folder / JOURNAL
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def _merge(base, rows: list[dict[str, Any]]):
    """``base`` with ``rows`` (cells as stored) appended; a later row replaces one with its id."""
    import pandas as pd

    new = pd.DataFrame(rows)
    new = new.drop_duplicates("trial_id", keep="last")
    if len(base):
        base = base[~base["trial_id"].isin(set(new["trial_id"]))]
        df = pd.concat([base, new], ignore_index=True) if len(base) else new
    else:
        df = new
    cols = [c for c in LEAD if c in df] + sorted(c for c in df if c not in LEAD)
    return df[cols].reset_index(drop=True)


def campaign_objectives(folder: Path) -> dict[str, str]:
    """The objectives a campaign was run with (``campaign.json``), else accuracy only."""
    manifest = folder / "campaign.json"
    if manifest.is_file():
        objectives = json.loads(manifest.read_text()).get("spec", {}).get("objectives")
        if objectives:
            return dict(objectives)
    return {"val_acc": "max"}


def campaign_space(folder: str | Path):
    """The campaign's copy of its space (``space.yaml``). Copies written before they stood alone
    may name their ``base:`` relative to the original space file: it is looked up there (the path
    ``campaign.json`` records)."""
    from nas.documents import read_yaml
    from nas.errors import SpaceError
    from nas.space.parse import load_space, parse_space

    copy = Path(folder) / "space.yaml"
    if not copy.is_file():
        raise UserError(f"{copy}: missing; the campaign folder has no copy of its space")
    try:
        return load_space(copy)
    except SpaceError as first:
        manifest = Path(folder) / "campaign.json"
        original = (
            Path(json.loads(manifest.read_text()).get("space") or "")
            if manifest.is_file()
            else None
        )
        if original is None or not original.is_file():
            raise first from None
        return parse_space(read_yaml(copy), source=str(copy), root=original.parent)


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
    """Append-only (by trial id) table: journaled rows, atomic rewrites (module docstring)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._base = _read_parquet(self.folder)
        self._pending = _read_journal(self.folder)  # recorded, not yet in the parquet file
        self._df = None

    @property
    def df(self):
        if self._df is None:
            self._df = _merge(self._base, self._pending) if self._pending else self._base
        return self._df

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
        """Record one row: appended to the journal, or (every ``max(1, n/8)`` rows) the whole
        table rewritten. Either way it is on disk when this returns."""
        cells = {k: _cell(v) for k, v in row.items()}
        rows = len(self._base) + len(self._pending) + 1
        if len(self._pending) + 1 < max(1, rows // 8):
            self._append(cells)
            self._pending.append(cells)
            self._df = None
            return
        merged = _merge(self._base, [*self._pending, cells])
        self._df = merged
        try:
            self._write()
        except UserError:
            self._df = None
            raise
        self._base, self._pending = merged, []
        (self.folder / JOURNAL).unlink(missing_ok=True)

    @staticmethod
    def _journal_ends_cleanly(path: Path, size: int) -> bool:
        with open(path, "rb") as f:
            f.seek(size - 1)
            return f.read(1) == b"\n"

    def _append(self, cells: dict[str, Any]) -> None:
        """One line onto the journal, flushed and fsync'ed; a failed append is cut off again."""
        path = self.folder / JOURNAL
        line = json.dumps(cells, default=str, allow_nan=True) + "\n"
        try:
            with open(path, "a", encoding="utf-8") as f:
                size = f.tell()
                if size and not self._journal_ends_cleanly(path, size):
                    f.write("\n")  # a crash mid-append left a torn line: end it first
                    size = f.tell()
                try:
                    f.write(line)
                    f.flush()
                    os.fsync(f.fileno())
                except OSError:
                    f.truncate(size)
                    raise
        except OSError as e:
            raise UserError(
                f"{path}: cannot write the campaign table ({e.strerror or e}); "
                "the existing table is intact"
            ) from None

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
                except Exception as e:  # noqa: BLE001 - OSError, or pyarrow refusing a column
                    why = getattr(e, "strerror", None) or f"{type(e).__name__}: {e}"
                    raise UserError(
                        f"{target}: cannot write the campaign table ({why}); "
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
