"""The report page: its notes, what report.md and report.html show (:class:`Page`) and the two
renderings of it; :func:`ratt.report.render.write_report` fills and writes it."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ratt.core.table import markdown_table
from ratt.report.collect import RunRecord


def _html_table(header: list[str], body: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    cell = lambda c: f"<td{'' if c[:1] in NUMERIC_START else ' class=t'}>{html.escape(c)}</td>"  # noqa: E731
    rows = "".join("<tr>" + "".join(cell(c) for c in cells) + "</tr>" for cells in body)
    return f"<div class=wide><table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></div>"


def _embed(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img src="data:image/png;base64,{data}" alt="{html.escape(path.name)}">'


NUMERIC_START = set("0123456789+-−–?")  # cells that start so are right-aligned numbers
CSS = """body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:14px}th,td{border:1px solid #ccc;padding:4px 8px;
text-align:right;white-space:nowrap}th{background:#f3f3f3}.wide{overflow-x:auto}td.t,th:first-child{text-align:left}
img{max-width:100%;border:1px solid #ddd;margin:0.5em 0}pre{background:#f7f7f7;padding:8px;overflow:auto}
.note{color:#555;font-size:13px}"""


RESULTS_NOTE = (
    "Accuracies on the test split in %, mean ± sample std over runs (seeds); 'worst case' counts "
    "a point only if every attack of its row failed on it. Each run's figures come from one "
    "evaluation: eval.json where `ratt eval` was run, else the training's summary.json (never "
    "a mix). 'test points': how many test images each accuracy is over. A group whose runs were "
    "evaluated differently (test points, attacks or threat model) has one row per evaluation, "
    "what differs in brackets."
)
EFFECT_NOTE = (
    "RAT minus the same method without RAT's Taylor terms, paired by seed (same seed = same "
    "initialization, data order and validation split) among runs whose settings differ in "
    "nothing but the method (a variant of RAT is compared by --paired-with instead): mean ± "
    "sample std of the per-seed differences in percentage points, and on how many seeds RAT "
    "was ahead and behind; in brackets the sweep folders, where one pair of methods was run "
    "in several settings."
)
FLAT_NOTE = (
    "From each run's landscape.json summary (`ratt landscape`), mean ± std over runs: "
    "`*_hessian_top` the largest Hessian eigenvalue (Lanczos), `*_hessian_trace` its trace "
    "(Hutchinson), `*_noise_loss@σ` / `*_noise_acc@σ` loss and accuracy under relative weight "
    "noise σ; `clean_*` on clean inputs, `adv_*` on PGD examples."
)
Table = tuple[str, str, list[str], list[list[str]]]  # (title, note, header, rows)


@dataclass
class Page:
    """What report.md and report.html both show, in order."""

    title: str
    note: str
    results: tuple[list[str], list[list[str]]]
    tables: list[Table]
    flatness: tuple[list[str], list[list[str]]] | None
    figures: list[tuple[str, Path]]
    runs: list[str]


def markdown_page(page: Page) -> str:
    """report.md's text."""
    md = [f"# {page.title}", "", page.note, "", markdown_table(*page.results), ""]
    for heading, text, header, body in page.tables:
        md += [f"## {heading}", "", text, "", markdown_table(header, body), ""]
    if page.flatness is not None:
        md += ["## Flatness (landscape.json)", "", FLAT_NOTE, "", markdown_table(*page.flatness), ""]
    md += ["## Figures", ""] + [f"![{caption}]({path.name})\n\n{caption}\n" for caption, path in page.figures]
    md += ["## Runs", ""] + [f"- `{r}`" for r in page.runs]
    return "\n".join(md) + "\n"


def html_page(page: Page, groups: dict[str, list[RunRecord]], versions: dict[str, Any]) -> str:
    """report.html: self-contained, figures embedded, each group's config and the versions."""
    esc = html.escape
    parts = [f"<h1>{esc(page.title)}</h1>", f"<p class=note>{esc(page.note)}</p>", _html_table(*page.results)]
    for heading, text, header, body in page.tables:
        parts += [f"<h2>{esc(heading)}</h2>", f"<p class=note>{esc(text)}</p>", _html_table(header, body)]
    if page.flatness is not None:
        parts += ["<h2>Flatness</h2>", f"<p class=note>{esc(FLAT_NOTE)}</p>", _html_table(*page.flatness)]
    parts += ["<h2>Figures</h2>"]
    for caption, path in page.figures:
        parts.append(f"<figure>{_embed(path)}<figcaption>{esc(caption)}</figcaption></figure>")
    parts += ["<h2>Configs</h2>"]
    for name, group_records in groups.items():
        text = yaml.safe_dump(group_records[0].config, sort_keys=False)
        parts.append(f"<details><summary>{esc(name)}</summary><pre>{esc(text)}</pre></details>")
    parts += ["<h2>Versions</h2>", f"<pre>{esc(yaml.safe_dump(versions))}</pre>"]
    items = "".join(f"<li><code>{esc(r)}</code></li>" for r in page.runs)
    summary = f"<summary>{len(page.runs)} run directories</summary>"
    parts += [f"<h2>Runs</h2><details>{summary}<ul>{items}</ul></details>"]
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{esc(page.title)}</title>"
        f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>"
    )
