"""The campaign table as it grows: a journal between rewrites (O(1) per recorded row), rewrites
every max(1, n/8) rows, nothing recorded lost on a SIGKILL, parquet and CSV always in agreement."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd

from nas.campaign.table import JOURNAL, CampaignTable, read_table
from tests.conftest import ROOT


def _row(i: int) -> dict:
    return {"campaign": "c", "mode": "survey", "trial_id": f"t{i:05d}", "status": "ok",
            "val_acc": i / 1000, "history": [{"epoch": 1, "val_acc": 0.5}]}  # fmt: skip


def test_small_tables_are_rewritten_every_row_large_ones_rarely(tmp_path, monkeypatch):
    writes = []
    real = CampaignTable._write
    monkeypatch.setattr(
        CampaignTable, "_write", lambda self: (writes.append(len(self.df)), real(self))[1]
    )
    table = CampaignTable(tmp_path / "c")
    for i in range(2000):
        table.add(_row(i))
    assert writes[:15] == list(range(1, 16))  # a small table: both files hold every row
    assert 50 <= len(writes) <= 70  # 2,000 rows: ~55 rewrites (every n/8 rows), not 2,000
    gaps = [b - a for a, b in zip(writes, writes[1:])]
    assert all(g <= max(1, w // 8) + 1 for g, w in zip(gaps, writes[1:]))
    on_disk = read_table(table.folder)
    assert list(on_disk["trial_id"]) == [f"t{i:05d}" for i in range(2000)]
    assert on_disk["val_acc"].tolist() == [i / 1000 for i in range(2000)]


def test_journal_rows_are_read_back_and_a_torn_line_is_skipped(tmp_path):
    table = CampaignTable(tmp_path / "c")
    for i in range(40):
        table.add(_row(i))
    journal = table.folder / JOURNAL
    pending = journal.read_text().splitlines()
    assert pending, "40 rows: the last ones are in the journal, not yet rewritten"
    with open(journal, "a") as f:
        f.write('{"trial_id": "t9999", "status": "o')  # a crash in the middle of an append
    again = CampaignTable(table.folder)
    assert list(again.df["trial_id"]) == [f"t{i:05d}" for i in range(40)]
    assert again.row("t00039")["history"] == json.dumps(_row(39)["history"], sort_keys=True)
    # the same trial written again replaces its row, wherever the old one is
    again.add({**_row(3), "val_acc": 0.99})
    assert read_table(table.folder).set_index("trial_id").loc["t00003", "val_acc"] == 0.99
    assert len(read_table(table.folder)) == 40


def test_parquet_and_csv_agree_after_every_rewrite(tmp_path):
    table = CampaignTable(tmp_path / "c")
    for i in range(30):
        table.add(_row(i))
        if not (table.folder / JOURNAL).exists():  # just rewritten
            parquet = pd.read_parquet(table.folder / "trials.parquet")
            csv = pd.read_csv(table.folder / "trials.csv")
            assert list(parquet["trial_id"]) == list(csv["trial_id"]) == list(table.df["trial_id"])


WRITER = """
import sys
from nas.campaign.table import CampaignTable
table = CampaignTable(sys.argv[1])
for i in range(100000):
    table.add({"campaign": "c", "mode": "survey", "trial_id": f"t{i:05d}", "status": "ok",
               "val_acc": i / 1000})
    print(i, flush=True)
"""


def test_sigkill_at_any_point_loses_no_recorded_row(tmp_path):
    """A writer is SIGKILLed at several moments; every row whose add had returned is there, and
    each file is whole (written to a temporary file, then renamed: a kill between the two renames
    leaves the CSV one rewrite behind the parquet file; the journal still has those rows)."""
    for k, delay in enumerate((0.05, 0.4, 1.1)):
        folder = tmp_path / f"c{k}"
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(folder)], stdout=subprocess.PIPE, text=True,
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        first = proc.stdout.readline()  # imports done, one row recorded
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        acknowledged = int((first + out).split()[-1]) + 1
        df = read_table(folder) if folder.exists() else pd.DataFrame()
        assert len(df) >= acknowledged > 0
        assert list(df["trial_id"]) == [f"t{i:05d}" for i in range(len(df))]
        ids = list(df["trial_id"])
        for name in ("trials.parquet", "trials.csv"):  # each file whole: a prefix of the table
            read = pd.read_parquet if name.endswith("parquet") else pd.read_csv
            assert list(read(folder / name)["trial_id"]) == ids[: len(read(folder / name))]


_OPENED: list[str] = []
_WATCH: list[str] = []


def _audit(event: str, args) -> None:
    if event == "open" and _WATCH and str(args[0]) == _WATCH[0]:
        _OPENED.append(str(args[0]))


sys.addaudithook(_audit)  # (audit hooks cannot be removed: it records only while _WATCH is set)


def test_a_reader_opens_the_table_once_so_a_rewrite_cannot_tear_it(tmp_path):
    """pyarrow given a path opens the file more than once; a rewrite (os.replace) between the
    opens paired one file's footer with the other's pages ("Couldn't deserialize thrift", seen
    when `nas report` or a test read a table while a campaign wrote it). The table is read with
    one open, so a reader sees one whole file."""
    table = CampaignTable(tmp_path)
    for i in range(3):
        table.add({"trial_id": f"t{i}", "status": "ok", "val_acc": 0.5})
    path = tmp_path / "trials.parquet"
    assert path.is_file()
    _WATCH.append(str(path))
    try:
        df = read_table(tmp_path)
    finally:
        _WATCH.clear()
    assert len(df) == 3 and _OPENED == [str(path)]
