"""Previews of results on a job's page: the first rows of a VOTable, JSON
pretty-printed, the start of a text. Only the first `LIMIT` bytes are
read, and a VOTable is parsed without network access or entity
expansion."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from lxml import etree

from ..models.text import clean_text

__all__ = ["LIMIT", "PREVIEW_BYTES", "Preview", "preview"]

#: Most bytes of a result read for its preview.
LIMIT = 64 * 1024

#: Most table rows shown.
ROWS = 20

_PARSER = etree.XMLParser(
    resolve_entities=False, no_network=True, recover=True, huge_tree=False
)


@dataclass(slots=True)
class Preview:
    """What a job's page shows of a result."""

    kind: str  # "table", "text" or "none"
    text: str = ""
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    truncated: bool = False


def _local(tag: object) -> str:
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def _votable(data: bytes, truncated: bool) -> Preview | None:
    try:
        root = etree.fromstring(data, _PARSER)
    except etree.XMLSyntaxError:
        return None
    if root is None or _local(root.tag) != "VOTABLE":
        return None
    columns: list[str] = []
    rows: list[list[str]] = []
    more = truncated
    for element in root.iter():
        name = _local(element.tag)
        if name == "FIELD":
            columns.append(clean_text(element.get("name", "")))
        elif name == "TR":
            if len(rows) == ROWS:
                more = True
                break
            rows.append(
                [
                    clean_text("".join(cell.itertext()))
                    for cell in element
                    if _local(cell.tag) == "TD"
                ]
            )
    if not columns:
        return None
    return Preview("table", columns=columns, rows=rows, truncated=more)


#: Bytes of a result a preview needs (one more than it shows: to know
#: whether it is truncated).
PREVIEW_BYTES = LIMIT + 1


def preview(data: bytes, mime_type: str) -> Preview:
    """A preview of a result from its first `PREVIEW_BYTES` bytes."""
    truncated = len(data) > LIMIT
    data = data[:LIMIT]
    mime = mime_type.split(";")[0].strip().lower()
    if "votable" in mime or mime in {"text/xml", "application/xml"}:
        table = _votable(data, truncated)
        if table is not None:
            return table
    if mime == "application/json" or mime.endswith("+json"):
        try:
            text = json.dumps(json.loads(data), indent=2, ensure_ascii=False)
        except ValueError:
            text = data.decode("utf-8", "replace")
        return Preview("text", text=clean_text(text), truncated=truncated)
    if mime.startswith("text/") or "xml" in mime:
        text = data.decode("utf-8", "replace")
        return Preview("text", text=clean_text(text), truncated=truncated)
    return Preview("none")
