"""Fuzzing the input files: mutated copies of the repository's valid spaces, candidates and
runners (deleted, duplicated and retyped keys, swapped values, extreme numbers, deep nesting, long
strings, invalid UTF-8, anchors and aliases, huge expressions, truncation). Each case must end as
a valid object or a UserError (``nas validate``: exit 0 or 2 with one line): no other exception,
no case over 2 s, no file written. Deterministic: a failure prints its seed, index and text."""

from __future__ import annotations

import copy
import random
import signal
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from nas.campaign.runner import load_runner
from nas.cli import main
from nas.errors import UserError
from nas.space.candidate import load_candidate
from tests.conftest import ROOT

SEED = 20261203
CASES_PER_SOURCE = {"space": 600, "candidate": 60, "runner": 120}
LIMIT_S = 2.0
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
NASTY = [None, True, False, -1, 0, 1, 3, 2**63, -(2**63), 10**400 // 10**300, 1e308, -1e308,
         float("inf"), float("nan"), "", "x" * 100_000, "9 ** 9 ** 9", "[0] * 10**9",
         "'a' * 10**9", [], {}, [[[[[]]]]], {"choice": []}, {"choice": [None]},
         {"int": [1, 10**30]}, {"float": [0, float("inf")]}, {"derive": "1 + " * 700 + "1"},
         {"derive": "-" * 500 + "1"}, {"when": {"x": 1}}, "../../etc/passwd", "\x00\x01"]  # fmt: skip


def _sources() -> list[tuple[str, Path]]:
    spaces = [ROOT / "spaces" / "quickstart.yaml", ROOT / "spaces" / "seeds.yaml"]
    presets = sorted((ROOT / "spaces" / "presets").glob("*.yaml"))
    runners = [ROOT / "runners" / f"{n}.yaml" for n in ("local", "gpu", "cluster")]
    return (
        [("space", p) for p in spaces]
        + [("candidate", p) for p in presets]
        + [("runner", p) for p in runners]
    )


def _paths(node, prefix=()):
    """Every key path (tuples of keys / indices) of a nested document."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


def _get(node, path):
    for k in path:
        node = node[k]
    return node


def _mutate_tree(doc, rng: random.Random):
    doc = copy.deepcopy(doc)
    paths = [p for p in _paths(doc) if p]
    if not paths:
        return rng.choice(NASTY)
    path = rng.choice(paths)
    parent, key = _get(doc, path[:-1]), path[-1]
    kind = rng.randrange(5)
    if kind == 0:  # delete
        del parent[key]
    elif kind == 1:  # retype / extreme value
        parent[key] = rng.choice(NASTY)
    elif kind == 2:  # swap with another value
        other = rng.choice(paths)
        try:
            a, b = _get(doc, other), parent[key]
            _get(doc, other[:-1])[other[-1]] = b
            parent[key] = a
        except (KeyError, IndexError, TypeError):
            parent[key] = None
    elif kind == 3:  # deep nesting
        value = parent[key]
        for _ in range(rng.choice([10, 60, 150])):
            value = [value] if rng.random() < 0.5 else {"k": value}
        parent[key] = value
    else:  # a long string
        parent[key] = "y" * rng.choice([1000, 100_000, 300_000])
    return doc


def _mutate_text(text: str, rng: random.Random) -> bytes:
    lines = text.splitlines(keepends=True) or [""]
    kind = rng.randrange(6)
    if kind == 0:  # truncate
        return text[: rng.randrange(len(text) + 1)].encode()
    if kind == 1:  # duplicate a line (a repeated key)
        i = rng.randrange(len(lines))
        return "".join(lines[: i + 1] + lines[i:]).encode()
    if kind == 2:  # invalid UTF-8
        i = rng.randrange(len(text) + 1)
        return text[:i].encode() + b"\xff\xfe\xc3" + text[i:].encode()
    if kind == 3:  # anchors and aliases (a small billion-laughs)
        bomb = "lol: &a [x, x, x, x, x, x, x, x]\n" + "".join(
            f"l{i}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
            for i, (p, c) in enumerate(zip("abcdefg", "bcdefgh"))
        )
        return (bomb + text).encode() if rng.random() < 0.5 else (text + bomb).encode()
    if kind == 4:  # a huge expression anywhere
        expr = rng.choice(["9 ** 9 ** 9 ** 9", "'a' * 10**10", "(" * 300 + "1" + ")" * 300])
        return (text + f'\nextra: {{derive: "{expr}"}}\n').encode()
    return ("{" * 2000 + "}" * 2000 + "\n" + text).encode()  # deep flow nesting


def _cases():
    rng = random.Random(SEED)
    presets = str(ROOT / "spaces" / "presets") + "/"
    for kind, path in _sources():
        text = path.read_text().replace("base: presets/", f"base: {presets}")
        doc = yaml.safe_load(text)
        n = CASES_PER_SOURCE[kind] // (2 if kind == "space" else 1)
        for i in range(n):
            body = None
            if rng.random() < 0.6:
                try:
                    tree = _mutate_tree(doc, rng)
                    body = yaml.dump(tree, Dumper=_DUMPER, sort_keys=False).encode()
                except (RecursionError, ValueError):  # the dumper's own limits
                    body = None
            yield kind, path, i, body if body is not None else _mutate_text(text, rng)


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout


def _run(kind: str, file: Path, capsys) -> None:
    loaders: dict[str, Callable] = {"candidate": load_candidate, "runner": load_runner}
    if kind == "space":
        code = main(["validate", str(file), "--probe", "20"])
        _, err = capsys.readouterr()
        assert code in (0, 2), code
        assert code == 0 or (err.count("\n") == 1 and "Traceback" not in err), err[-500:]
        return
    try:
        loaders[kind](file)
    except UserError:
        pass


@pytest.mark.heavy
def test_fuzzed_inputs_end_as_objects_or_user_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cases = list(_cases())
    assert len(cases) >= 1000
    previous = signal.signal(signal.SIGALRM, _alarm)
    slowest, started = 0.0, time.perf_counter()
    try:
        for kind, source, i, body in cases:
            file = tmp_path / f"{kind}.yaml"
            file.write_bytes(body)
            t0 = time.perf_counter()
            signal.setitimer(signal.ITIMER_REAL, LIMIT_S * 2)
            try:
                _run(kind, file, capsys)
            except BaseException as e:  # noqa: BLE001 - any escape is the failure reported
                shown = body[:300].decode(errors="replace")
                frames = [f for f in traceback.extract_tb(e.__traceback__) if "/nas/" in f.filename]
                where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else "?"
                pytest.fail(
                    f"seed {SEED} case {i} ({kind}, from {source.name}): {type(e).__name__}: "
                    f"{str(e)[:300]} at {where}\n--- document (first 300 bytes):\n{shown}"
                )
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            took = time.perf_counter() - t0
            slowest = max(slowest, took)
            assert took < LIMIT_S, f"seed {SEED} case {i} ({kind}, {source.name}) took {took:.2f} s"
            assert sorted(p.name for p in tmp_path.iterdir()) == [file.name], "a file was written"
            file.unlink()
    finally:
        signal.signal(signal.SIGALRM, previous)
    total = time.perf_counter() - started
    print(f"\nfuzz: {len(cases)} cases in {total:.1f} s, slowest {slowest:.2f} s")
    assert total < 60
