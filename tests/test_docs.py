"""The documentation site: ``mkdocs build --strict`` passes (and fails on a broken link), the
generated CLI and YAML references name every command, flag and key the code defines, and the
README stays a short front door whose links into docs/ resolve."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import mkdocs  # noqa: F401 - the dev extra installs it; a missing mkdocs fails here, loudly

from nas import settings, vocab
from nas.campaign import runner
from nas.cli.parser import build_parser
from nas.cli.reference import cli_reference, md_escape
from nas.cli.reference_yaml import yaml_reference
from nas.space.dimparse import DIM_OPTIONS, KINDS
from nas.space.dims import FREE_KEYS, STAGE_KEYS
from nas.space.parse import TOP_KEYS

ROOT = Path(__file__).resolve().parents[1]


def _mkdocs(config: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config), "-d", str(site)]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)


def test_mkdocs_build_strict(tmp_path):
    done = _mkdocs(ROOT / "mkdocs.yml", tmp_path / "site")
    assert done.returncode == 0, done.stderr[-3000:]
    cli = (tmp_path / "site" / "reference" / "cli" / "index.html").read_text()
    yml = (tmp_path / "site" / "reference" / "yaml" / "index.html").read_text()
    assert "nas validate" in cli and "--prescreen" in cli
    assert "batch_size" in yml and "connect_timeout_s" in yml


def test_mkdocs_strict_fails_on_a_broken_link_and_a_missing_page(tmp_path):
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    with open(tmp_path / "docs" / "index.md", "a") as f:
        f.write("\n[gone](no-such-page.md)\n")
    done = _mkdocs(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert done.returncode != 0
    assert "no-such-page.md" in done.stderr
    (tmp_path / "docs" / "index.md").write_text((ROOT / "docs" / "index.md").read_text())
    (tmp_path / "docs" / "layout.md").unlink()  # in the nav
    done = _mkdocs(tmp_path / "mkdocs.yml", tmp_path / "site2")
    assert done.returncode != 0
    assert "layout.md" in done.stderr


# ---------------------------------------------------------------------- CLI reference


def _commands(parser, path=("nas",)):
    """(path, parser) of every subcommand, found by walking argparse's actions."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield (*path, name), child
                yield from _commands(child, (*path, name))


def _sections(text: str, level: str) -> dict[str, str]:
    parts = re.split(rf"^{level} ", text, flags=re.M)[1:]
    return {p.split("\n", 1)[0].strip(): p for p in parts}


def test_cli_reference_names_every_command_flag_and_help():
    parser = build_parser()
    text = cli_reference(parser)
    sections = _sections(text, "##")
    commands = list(_commands(parser))
    assert len(commands) >= 15
    for path, sub in commands:
        name = " ".join(path)
        assert name in sections, f"{name} has no section"
        section = sections[name]
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
                continue
            for flag in action.option_strings or [action.metavar or action.dest]:
                assert re.search(rf"\| `{re.escape(flag)}[ `,]", section), f"{name}: {flag}"
            if action.help:
                help_text = sub._get_formatter()._expand_help(action)
                assert md_escape(help_text) in section, f"{name}: help of {action.dest}"


def test_cli_reference_follows_the_parser():
    """A command or flag added to the parser appears without touching the docs."""
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    extra = sub.add_parser("frobnicate", help="a command that does not exist")
    extra.add_argument("--widget-count", type=int, default=3, help="how many widgets")
    text = cli_reference(parser)
    section = _sections(text, "##")["nas frobnicate"]
    assert "| `--widget-count WIDGET_COUNT` | 3 | how many widgets |" in section
    assert "a command that does not exist" in text


# ---------------------------------------------------------------------- YAML reference


def _rows(section: str) -> set[str]:
    return set(re.findall(r"^\| `([^`]+)` \|", section, flags=re.M))


def test_yaml_reference_names_every_key_and_value():
    text = yaml_reference()
    sub = _sections(text, "###")
    assert set(TOP_KEYS) <= _rows(sub["Top-level keys"])
    for word in (*KINDS, *DIM_OPTIONS):
        assert f"`{word}`" in sub["Dimension forms"]
    assert FREE_KEYS <= _rows(sub["Candidate fields"])
    assert STAGE_KEYS <= _rows(sub["Per-stage dimensions (`space.stage:`)"])
    tables = [n for n in dir(settings) if n.endswith("_RULES")]
    assert {"DATA_RULES", "TRAIN_RULES", "PRETRAIN_RULES", "MEASURE_RULES"} <= set(tables)
    for name in tables:
        after = text.split(f"From `nas.settings.{name}`.", 1)[1]
        section = re.split(r"\n##+ ", after, maxsplit=1)[0]
        rules = getattr(settings, name)
        assert set(rules) == _rows(section), name
        for key, (_, allowed) in rules.items():
            assert f"| `{key}` | {md_escape(allowed)} |" in section
    runner_section = _sections(text, "##")["Runner profiles (`runners/*.yaml`)"]
    assert set(runner._FIELDS) <= _rows(runner_section)
    assert set(runner.LATENCY_KEYS) <= _rows(sub["`latency:`"])
    for name in vocab.__all__:
        assert f"### `{name}`" in text
        for value in getattr(vocab, name):
            assert f"`{value}`" in sub[f"`{name}`"], f"{name}: {value}"


def test_yaml_reference_follows_the_rule_tables(monkeypatch):
    """A key added to a rule table, or a new table, appears without touching the docs."""
    monkeypatch.setitem(settings.TRAIN_RULES, "ema_decay", (float, "a number in [0, 1)"))
    monkeypatch.setattr(
        settings, "WIDGET_RULES", {"count": (int, "an integer >= 0")}, raising=False
    )
    monkeypatch.setitem(runner._FIELDS, "widget_pool", (str,))
    text = yaml_reference()
    assert "| `ema_decay` | a number in \\[0, 1) |" in text
    assert "From `nas.settings.WIDGET_RULES`." in text and "| `count` |" in text
    assert "| `widget_pool` | str |" in text


def test_defaults_are_read_from_the_config_classes():
    text = yaml_reference()
    epochs = "an integer &gt;= 0 (0: measure the candidates only, no training)"
    assert f"| `epochs` | {epochs} | 6 |" in text  # TrainConfig.epochs
    assert "| `mask_ratio` | a fraction in (0, 1) | 0.6 |" in text  # PretrainConfig
    assert "| `dataset` | one of" in text and "| digits |" in text  # DataConfig
    assert "| `connect_timeout_s` | int or float | 30.0 |" in text  # Runner


# ---------------------------------------------------------------------- README


def test_readme_is_short_and_its_docs_links_resolve():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 200
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    docs = [link for link in links if link.startswith("docs/")]
    assert len(docs) >= 10
    missing = [link for link in docs if not (ROOT / link).is_file()]
    assert not missing, missing
    nav = (ROOT / "mkdocs.yml").read_text()
    for link in docs:  # every page the README names is in the site's navigation
        assert link.removeprefix("docs/") in nav, link
