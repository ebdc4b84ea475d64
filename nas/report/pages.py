"""The report's pages: self-contained HTML (images embedded as base64 PNG) and Markdown."""

from __future__ import annotations

import base64
import html
import math
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from nas.report.document import Report

__all__ = ["render_html", "render_md"]


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


def render_html(report: Report) -> str:
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>nas report: {html.escape(report.campaign)}</title><style>",
        "body{font-family:sans-serif;max-width:1000px;margin:2em auto;color:#222}",
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px}",
        "figure{margin:1em 0}figcaption{font-size:13px;color:#555}.na{color:#a60}</style></head><body>",
        f"<h1>Campaign {html.escape(report.campaign)}</h1>",
        f"<p>{html.escape(report.summary)}</p>",
        f"<p>Generated {time.strftime('%Y-%m-%d %H:%M:%S')} from {html.escape(str(report.folder))}.</p>",
    ]
    for s in report.sections:
        parts.append(f"<h2>{html.escape(s.title)}</h2>")
        if s.unavailable:
            parts.append(f"<p class='na'>Not drawn: {html.escape(s.unavailable)}.</p>")
        if s.text:
            parts.append(f"<p>{html.escape(s.text)}</p>")
        if s.table is not None and len(s.table):
            parts.append(_html_table(s.table))
        for f in s.figures:
            data = base64.b64encode(f.png).decode()
            parts.append(
                f"<figure><img alt='{html.escape(f.name)}' src='data:image/png;base64,{data}'>"
                f"<figcaption>{html.escape(f.caption)}</figcaption></figure>"
            )
    return "\n".join(parts + ["</body></html>"])


def render_md(report: Report) -> str:
    parts = [f"# Campaign {report.campaign}", "", report.summary, ""]
    for s in report.sections:
        parts += [f"## {s.title}", ""]
        if s.unavailable:
            parts += [f"Not drawn: {s.unavailable}.", ""]
        if s.text:
            parts += [s.text, ""]
        if s.table is not None and len(s.table):
            parts += [_md_table(s.table), ""]
        for f in s.figures:
            parts += [f"![{f.name}](plots/{f.name}.png)", "", f"*{f.caption}*", ""]
    return "\n".join(parts)
