"""Putting rendered parts together into one PDF.

Pages follow one another in order; each part's bookmarks are kept, under one bookmark
for the whole document; the page numbers ("Page x of y") and the document's content
hash are laid over every page as artifacts, so assistive technology does not read them
as content and no part has to be laid out again when the page count changes.
"""

from __future__ import annotations

import io

from pypdf import PdfReader, PdfWriter
from pypdf.generic import ContentStream, NameObject


def assemble(parts: list[bytes], overlay: bytes | None, title: str) -> bytes:
    """One PDF made of ``parts`` in order, with ``overlay``'s pages laid over them."""
    if len(parts) == 1 and overlay is None:
        return parts[0]
    writer = PdfWriter()
    outlines = []
    for data in parts:
        reader = PdfReader(io.BytesIO(data))
        start = len(writer.pages)
        writer.append(reader, import_outline=False)
        outlines.append((start, reader, reader.outline))
        if start == 0 and reader.metadata:
            writer.add_metadata({k: v for k, v in reader.metadata.items()
                                 if isinstance(k, str)})
    if overlay is not None:
        stamps = PdfWriter(clone_from=PdfReader(io.BytesIO(overlay)))
        if len(stamps.pages) != len(writer.pages):
            raise ValueError(f"the overlay has {len(stamps.pages)} pages for "
                             f"{len(writer.pages)}")
        for page, stamp in zip(writer.pages, stamps.pages, strict=True):
            page.merge_page(_as_artifact(stamp, stamps))
    root = writer.add_outline_item(title=title, page_number=0)
    for start, reader, items in outlines:
        _copy_outline(writer, reader, items, start, root)
    writer.page_mode = NameObject("/UseOutlines")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def _as_artifact(stamp, owner: PdfWriter):
    """The overlay page with its drawing marked as an artifact (not part of the text)."""
    content = stamp.get_contents()
    data = content.get_data() if content is not None else b""
    wrapped = ContentStream(None, owner)
    wrapped.set_data(b"/Artifact BMC\n" + data + b"\nEMC\n")
    stamp.replace_contents(wrapped)
    return stamp


def _copy_outline(writer: PdfWriter, reader: PdfReader, items, start: int, parent) -> None:
    last = None
    for item in items:
        if isinstance(item, list):
            if last is not None:
                _copy_outline(writer, reader, item, start, last)
            continue
        page = reader.get_destination_page_number(item)
        if page is None:
            continue
        last = writer.add_outline_item(title=item.title, page_number=start + page, parent=parent)
