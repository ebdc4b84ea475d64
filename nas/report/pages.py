"""The report's pages: self-contained HTML (images embedded as base64 PNG) and Markdown."""

from __future__ import annotations

import base64
import html
import math
import re
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nas.report.document import Report

__all__ = ["anchor", "render_html", "render_md"]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "" if math.isnan(v) else f"{v:.4g}"
    return "" if v is None else str(v)


def _html_table(df) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>"
        for row in df.itertuples(index=False)
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _md_table(df) -> str:
    lines = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + "---|" * len(df.columns)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(lines)


def anchor(title: str) -> str:
    """A section's anchor: its title, lower case, runs of other characters as one hyphen."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


STYLE = (
    "body{font-family:sans-serif;max-width:1200px;margin:1em auto;padding:0 1em;color:#222}"
    "h1{margin:.3em 0}h2{margin:1.2em 0 .4em}nav{font-size:13px;line-height:1.7}"
    "nav a{margin-right:.9em;white-space:nowrap}"
    ".tbl{max-height:340px;overflow:auto;max-width:100%}"
    "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px}"
    "th{position:sticky;top:0;background:#f4f4f4}"
    ".figs{display:flex;flex-wrap:wrap;gap:1em}figure{margin:.5em 0;flex:1 1 480px;max-width:600px}"
    "figure img{width:100%;height:auto}figcaption{font-size:13px;color:#555}.na{color:#a60}"
)


def render_html(report: Report) -> str:
    toc = " ".join(
        f"<a href='#{anchor(s.title)}'>{html.escape(s.title)}</a>" for s in report.sections
    )
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>nas report: {html.escape(report.campaign)}</title><style>{STYLE}</style></head><body>",
        f"<h1>Campaign {html.escape(report.campaign)}</h1>",
        f"<p>{html.escape(report.summary)}</p>",
        f"<nav><b>Contents:</b> {toc}</nav>",
    ]
    for s in report.sections:
        parts.append(f"<h2 id='{anchor(s.title)}'>{html.escape(s.title)}</h2>")
        if s.unavailable:
            parts.append(f"<p class='na'>Not drawn: {html.escape(s.unavailable)}.</p>")
        if s.text:
            parts.append(f"<p>{html.escape(s.text)}</p>")
        if s.figures:  # figures before the table: the front and its table on the first screen
            parts.append("<div class='figs'>")
            for f in s.figures:
                data = base64.b64encode(f.png).decode()
                parts.append(
                    f"<figure><img alt='{html.escape(f.name)}' src='data:image/png;base64,{data}'>"
                    f"<figcaption>{html.escape(f.caption)}</figcaption></figure>"
                )
            parts.append("</div>")
        if s.table is not None and len(s.table):
            parts.append(f"<div class='tbl'>{_html_table(s.table)}</div>")
    parts.append(
        f"<p>Generated {time.strftime('%Y-%m-%d %H:%M:%S')} from {html.escape(str(report.folder))}.</p>"
    )
    return "\n".join(parts + ["</body></html>"])


def render_md(report: Report) -> str:
    parts = [f"# Campaign {report.campaign}", "", report.summary, "", "Contents:", ""]
    parts += [f"- [{s.title}](#{anchor(s.title)})" for s in report.sections] + [""]
    for s in report.sections:
        parts += [f'<a id="{anchor(s.title)}"></a>', "", f"## {s.title}", ""]
        if s.unavailable:
            parts += [f"Not drawn: {s.unavailable}.", ""]
        if s.text:
            parts += [s.text, ""]
        if s.table is not None and len(s.table):
            parts += [_md_table(s.table), ""]
        for f in s.figures:
            parts += [f"![{f.name}](plots/{f.name}.png)", "", f"*{f.caption}*", ""]
    return "\n".join(parts)
