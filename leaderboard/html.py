"""A self-contained static leaderboard page: inline CSS, a small vanilla-JS sortable table and
the trade-off plots as data URIs, so it works opened from disk or served by any static host
(e.g. a static Hugging Face Space). No external URL is referenced."""

from __future__ import annotations

import base64
import html
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from benchmark.util.atomic import write_text_atomic
from leaderboard.plot import tradeoff_png
from leaderboard.table import (
    NOTE,
    display_columns,
    leaderboard_table,
    load_results,
    section_notes,
    sections,
)

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1400px; padding: 0 1em; color: #1d1d1f; background: #fff; }
h1 { font-size: 1.6em; margin-bottom: .2em; }
h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
.meta, footer { color: #666; font-size: .9em; }
.scroll { overflow-x: auto; }
table.lb { border-collapse: collapse; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.lb th, table.lb td { padding: .3em .6em; border-bottom: 1px solid #eee; text-align: right; }
table.lb th { cursor: pointer; user-select: none; background: #f6f6f8; position: sticky; top: 0; }
table.lb th:hover { background: #ebebf0; }
table.lb th[aria-sort="ascending"]::after { content: " \\25B4"; }
table.lb th[aria-sort="descending"]::after { content: " \\25BE"; }
table.lb td.text, table.lb th.text { text-align: left; }
table.lb td.headline { font-weight: 600; }
img.plot { max-width: 100%; height: auto; margin-top: 1em; border: 1px solid #eee; }
footer { margin-top: 3em; border-top: 1px solid #ddd; padding-top: .6em; }
"""

# sorts a table by the clicked column: ascending, then descending; numbers compare as numbers
# (from data-value, the raw mean), text as text; empty values always sort last
JS = """
(function () {
  function key(row, col) {
    var v = row.cells[col].getAttribute("data-value");
    if (v === null || v === "") { return null; }
    var n = Number(v);
    return isNaN(n) ? v : n;
  }
  function compare(a, b, asc) {
    if (a === null || b === null) { return (a === null) - (b === null); }
    var c = (typeof a === "number" && typeof b === "number") ? a - b
      : String(a).localeCompare(String(b), undefined, {numeric: true});
    return asc ? c : -c;
  }
  function sortBy(table, th, col) {
    var asc = th.getAttribute("aria-sort") !== "ascending";
    var heads = table.tHead.rows[0].cells;
    for (var i = 0; i < heads.length; i++) { heads[i].removeAttribute("aria-sort"); }
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) { return compare(key(a, col), key(b, col), asc); });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  var tables = document.querySelectorAll("table.sortable");
  Array.prototype.forEach.call(tables, function (table) {
    var heads = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(heads, function (th, col) {
      th.tabIndex = 0;
      th.addEventListener("click", function () { sortBy(table, th, col); });
      th.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(table, th, col); }
      });
    });
  });
})();
"""


def _value(x: object) -> str:
    """The data-value of a cell: the raw number (repr precision), '' when undefined."""
    if x is None or x is pd.NA:
        return ""
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    if isinstance(x, (float, np.floating)):
        return repr(float(x)) if np.isfinite(x) else ""
    return str(x)


def _td(text: str, value: object, cls: str = "", title: str = "") -> str:
    attrs = f' data-value="{html.escape(_value(value))}"'
    if cls:
        attrs += f' class="{cls}"'
    if title:
        attrs += f' title="{html.escape(title)}"'
    return f"<td{attrs}>{html.escape(text)}</td>"


def section_table(section: pd.DataFrame) -> str:
    """One task group as a sortable HTML table; each cell's data-value holds its raw value (the
    mean; the lower end for the interval column; the rank, empty for the reference)."""
    cols = display_columns(section)
    text_cls = ' class="text"'
    head = "".join(
        f'<th scope="col"{text_cls if i in (1, 2) else ""}>{html.escape(h)}</th>'
        for i, (h, _, _) in enumerate(cols)
    )
    body = []
    for i in range(len(section)):
        cells = []
        for j, (header, texts, values) in enumerate(cols):
            cls = "text" if j in (1, 2) else ("headline" if j == 4 else "")
            title = ""
            if header == "config":
                title = str(values[i])
            elif header == "seeds":
                title = f"seeds {section['seeds'].iloc[i]}"
            cells.append(_td(texts[i], values[i], cls, title))
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (
        '<div class="scroll"><table class="lb sortable">\n'
        f"<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(body) + "\n</tbody></table></div>"
    )


def render_page(table: pd.DataFrame, source: str = "") -> str:
    """The whole page as a string, from a leaderboard table."""
    from benchmark import __version__

    parts = []
    for n, (keys, section) in enumerate(sections(table)):
        identity, data_hash, backbone = keys
        png = tradeoff_png(section, identity, data_hash=data_hash, backbone_hash=backbone)
        uri = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
        lines = section_notes(table, keys, section)
        notes = "".join(f'<p class="meta">{html.escape(line)}</p>\n' for line in lines)
        parts.append(
            f'<section id="task-{n}" data-task="{html.escape(identity)}">\n'
            f"<h2>{html.escape(identity)}</h2>\n"
            f'<p class="meta">data hash <code>{html.escape(data_hash)}</code> · backbone config '
            f"<code>{html.escape(backbone)}</code> · {len(section)} methods</p>\n"
            f"{section_table(section)}\n{notes}"
            f'<img class="plot" alt="{html.escape(identity)}: forgetting vs utility trade-off" '
            f'src="{uri}">\n</section>'
        )
    versions = ", ".join(sorted({v for s in table["harness_versions"] for v in s.split()}))
    failed = int(table.attrs.get("failed", 0))
    n_files = int(table["n_seeds"].sum())
    origin = f" from <code>{html.escape(source)}</code>" if source else ""
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tracer-bench leaderboard</title>
<link rel="icon" href="data:,">
<style>{CSS}</style>
</head>
<body>
<h1>tracer-bench leaderboard</h1>
<p class="meta">Concept unlearning in generative semantic-ID recommenders. Ranked by erasure
score (harmonic mean of the forgetting part, measured against the retrain oracle, and the utility
part); {html.escape(NOTE)}. Click a column header to sort.</p>
{chr(10).join(parts)}
<footer>{n_files} result files{origin}, {failed} failed runs skipped · results from harness
version(s) {html.escape(versions)} · page built by tracer-bench {html.escape(__version__)}
</footer>
<script>{JS}</script>
</body>
</html>
"""


def write_site(
    folder_of_results: str | Path,
    out_dir: str | Path,
    trusted: Mapping | None = None,
    *,
    table: pd.DataFrame | None = None,
) -> Path:
    """Build `out_dir/index.html` from a results folder, atomically (✓ only under a `trusted`
    key); returns its path. `table`: the folder's leaderboard table where the caller has built
    it already (then the folder is not read again and `trusted` is not used)."""
    if table is None:
        table = leaderboard_table(load_results(folder_of_results, trusted))
    page = render_page(table, source=Path(folder_of_results).name)
    return write_text_atomic(Path(out_dir) / "index.html", page)
