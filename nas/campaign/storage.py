"""Where Ray keeps a campaign's experiments: a local path (made absolute) or a URI that Ray and
pyarrow accept (``s3://bucket/prefix?endpoint_override=HOST:PORT&scheme=http``, ``gs://``,
``file://``), kept as a string. A URI's query (filesystem options) stays at its end when an
experiment name is joined to it."""

from __future__ import annotations

from pathlib import Path

__all__ = ["experiment_location", "is_uri", "prune_checkpoints", "storage_location", "storage_of"]


def is_uri(location: str) -> bool:
    return "://" in location


def storage_location(storage_path: str | None, folder: Path) -> str:
    """A campaign's storage: ``storage_path`` as given if a URI, else an absolute path;
    default ``<campaign folder>/ray``."""
    if storage_path and is_uri(storage_path):
        base, sep, query = storage_path.partition("?")
        return base.rstrip("/") + sep + query
    return str(Path(storage_path).expanduser().resolve() if storage_path else folder / "ray")


def experiment_location(storage_path: str | None, folder: Path, experiment: str) -> str:
    """``<storage>/<experiment>`` (what campaign.json records, ``nas resume`` restores)."""
    base, sep, query = storage_location(storage_path, folder).partition("?")
    return f"{base}/{experiment}{sep}{query}"


def storage_of(experiment: str) -> str:
    """The storage an experiment location lives in (its parent, query kept)."""
    base, sep, query = experiment.partition("?") if is_uri(experiment) else (experiment, "", "")
    return base.rstrip("/").rpartition("/")[0] + sep + query


def prune_checkpoints(experiment: str) -> int:
    """After a campaign run ends: keep only each trial's last checkpoint (``nas export`` reads it);
    returns how many were deleted. While a run goes on, Tune keeps every epoch's checkpoint: its
    experiment state (saved every few seconds) may name an older one, and a driver killed then
    must find that one on ``nas resume``."""
    import pyarrow.fs as pafs

    if is_uri(experiment):
        fs, root = pafs.FileSystem.from_uri(experiment)
    else:
        fs, root = pafs.LocalFileSystem(), experiment
    try:
        infos = fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
    except OSError:
        return 0
    by_trial: dict[str, list[str]] = {}
    for info in infos:
        parent, _, name = info.path.rstrip("/").rpartition("/")
        if info.type == pafs.FileType.Directory and name.startswith("checkpoint_"):
            by_trial.setdefault(parent, []).append(info.path)
    deleted = 0
    for paths in by_trial.values():
        for old in sorted(paths)[:-1]:
            try:
                fs.delete_dir(old)
                deleted += 1
            except OSError:
                pass  # a leftover checkpoint costs disk space, never a row
    return deleted
