"""The campaign table when the disk or the folder fails: a clear error naming the path, and the
existing table intact (same bytes). No Ray here except the end-to-end campaign test (local Ray)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from nas.campaign.table import CampaignTable
from nas.errors import UserError


def _row(i: int) -> dict:
    return {
        "campaign": "c",
        "mode": "survey",
        "trial_id": f"t{i}",
        "status": "ok",
        "val_acc": i / 10,
    }


@pytest.fixture()
def table(tmp_path) -> CampaignTable:
    t = CampaignTable(tmp_path / "c")
    t.add(_row(1))
    t.add(_row(2))
    return t


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("where", ["parquet", "csv", "replace"])
def test_disk_full_keeps_the_table(table, monkeypatch, where):
    """Disk full while writing either file, or at the rename: UserError naming the file, both
    files byte-identical to before, no temporary file left."""
    before = _snapshot(table.folder)
    if where == "replace":
        monkeypatch.setattr("nas.campaign.table.os.replace", _enospc)
    else:
        monkeypatch.setattr(CampaignTable, f"_{where}", lambda self, path: _enospc())
    with pytest.raises(UserError) as info:
        table.add(_row(3))
    msg = str(info.value)
    assert "No space left on device" in msg and "\n" not in msg
    name = "trials.csv" if where == "csv" else "trials.parquet"
    assert str(table.folder / name) in msg
    assert _snapshot(table.folder) == before  # both files, byte for byte; no .tmp left
    monkeypatch.undo()
    assert len(CampaignTable(table.folder)) == 2


def test_read_only_folder_keeps_the_table(table, monkeypatch):
    """A folder the process may not write to. As root (CI) permissions are not enforced, so the
    OS's answer to a read-only folder (EACCES on creating the temporary file) is injected."""
    before = _snapshot(table.folder)
    if os.geteuid() == 0:

        def denied(*args, **kwargs):
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

        monkeypatch.setattr("nas.campaign.table.tempfile.mkstemp", denied)
    table.folder.chmod(0o555)
    try:
        with pytest.raises(UserError, match="cannot write the campaign table") as info:
            table.add(_row(3))
        assert str(table.folder / "trials.parquet") in str(info.value)
        assert "Permission denied" in str(info.value) and "\n" not in str(info.value)
    finally:
        table.folder.chmod(0o755)
    assert _snapshot(table.folder) == before


def test_folder_that_is_a_file(tmp_path):
    """Works as root too: the campaign folder's place is taken by a file."""
    (tmp_path / "c").write_text("not a folder")
    with pytest.raises(UserError, match="cannot create the campaign folder") as info:
        CampaignTable(tmp_path / "c" / "sub").add(_row(1))
    assert str(tmp_path / "c" / "sub") in str(info.value)
    assert (tmp_path / "c").read_text() == "not a folder"


@pytest.mark.heavy
def test_disk_full_during_a_campaign_is_one_clear_error(tmp_path, monkeypatch):
    """The driver's table write fails mid-campaign (disk full after the first row): the campaign
    stops with a UserError naming the table (the CLI prints it as one line, exit 2), and the row
    already written is intact; ``nas resume`` later would continue the rest."""
    import ray

    from nas.campaign import run_campaign
    from tests.test_campaign import RUNNER, write_space

    space = write_space(tmp_path)
    runner = tmp_path / "runner.yaml"
    runner.write_text(RUNNER.replace("max_concurrent: 2", "max_concurrent: 1"))
    folder = tmp_path / "full"
    real = CampaignTable._csv
    writes = []

    def csv_then_full(self, path):
        writes.append(path)
        if len(writes) > 1:
            _enospc()
        real(self, path)

    monkeypatch.setattr(CampaignTable, "_csv", csv_then_full)
    try:
        with pytest.raises(UserError) as info:
            run_campaign(
                "survey", str(space), name="full", runner_path=str(runner), n=3,
                results=str(tmp_path),
            )  # fmt: skip
    finally:
        ray.shutdown()
    assert str(folder / "trials.csv") in str(info.value)
    assert "No space left on device" in str(info.value)
    monkeypatch.undo()
    df = CampaignTable(folder).df
    assert len(df) == 1 and (df["status"] == "ok").all()
    assert not list(folder.glob(".trials.*"))
