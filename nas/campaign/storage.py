"""Where Ray keeps a campaign's experiments: a local path (made absolute) or a URI that Ray and
pyarrow accept (``s3://bucket/prefix?endpoint_override=HOST:PORT&scheme=http``, ``gs://``,
``file://``), kept as a string. A URI's query (filesystem options) stays at its end when an
experiment name is joined to it."""

from __future__ import annotations

from pathlib import Path

__all__ = ["experiment_location", "is_uri", "storage_location", "storage_of"]


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
