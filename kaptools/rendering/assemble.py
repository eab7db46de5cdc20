"""Putting rendered parts together into one PDF (with qpdf, through pikepdf).

Pages follow one another in order; each part's bookmarks are kept, under one bookmark
for the whole document; the page numbers ("Page x of y") and the document's content
hash are laid over every page as artifacts, so assistive technology does not read them
as content and no part has to be laid out again when the page count changes.
"""

from __future__ import annotations

import io

import pikepdf
from pikepdf import Name, OutlineItem, Page, Pdf


def assemble(parts: list[bytes], overlays: list[bytes], title: str) -> bytes:
    """One PDF made of ``parts`` in order, with the pages of ``overlays`` (in order) laid
    over them."""
    if len(parts) == 1 and not overlays:
        return parts[0]
    out = Pdf.new()
    bookmarks: list[OutlineItem] = []
    sources = []  # kept open until the result is written: its pages refer to them
    for data in parts:
        source = Pdf.open(io.BytesIO(data))
        sources.append(source)
        start = len(out.pages)
        bookmarks += _outline(source, start)
        out.pages.extend(source.pages)
        if start == 0:
            with out.open_metadata(set_pikepdf_as_editor=False) as meta:
                meta.load_from_docinfo(source.docinfo)
            for key, value in source.docinfo.items():
                out.docinfo[key] = value
    if overlays:
        stamps = []
        for data in overlays:
            source = Pdf.open(io.BytesIO(data))
            sources.append(source)
            stamps += source.pages
        if len(stamps) != len(out.pages):
            raise ValueError(f"the overlays have {len(stamps)} pages for {len(out.pages)}")
        for page, stamp in zip(out.pages, stamps, strict=True):
            _mark_as_artifact(stamp)
            page.add_overlay(stamp)
    with out.open_outline() as outline:
        whole = OutlineItem(title, 0)
        whole.children.extend(bookmarks)
        outline.root.append(whole)
    out.Root.PageMode = Name.UseOutlines
    buffer = io.BytesIO()
    out.save(buffer, compress_streams=True,
             object_stream_mode=pikepdf.ObjectStreamMode.generate)
    for source in sources:
        source.close()
    return buffer.getvalue()


def _mark_as_artifact(stamp: Page) -> None:
    """The overlay page's drawing marked as an artifact (not part of the text)."""
    stamp.contents_coalesce()
    data = stamp.obj.Contents.read_bytes()
    stamp.obj.Contents.write(b"/Artifact BMC\n" + data + b"\nEMC\n")


def _outline(source: Pdf, start: int) -> list[OutlineItem]:
    """``source``'s bookmarks, pointing at its pages' places in the assembled document."""
    index = {page.obj.objgen: i for i, page in enumerate(source.pages)}

    def copy(items) -> list[OutlineItem]:
        copied = []
        for item in items:
            target = _page_of(item, index)
            if target is None:
                copied += copy(item.children)  # its children still have somewhere to go
                continue
            new = OutlineItem(item.title, start + target)
            new.children.extend(copy(item.children))
            copied.append(new)
        return copied

    with source.open_outline() as outline:
        return copy(outline.root)


def _page_of(item: OutlineItem, index: dict) -> int | None:
    destination = item.destination
    if destination is None and item.action is not None and \
            item.action.get("/S") == Name.GoTo:
        destination = item.action.get("/D")
    if isinstance(destination, pikepdf.Array) and len(destination) > 0:
        target = destination[0]
        if isinstance(target, pikepdf.Dictionary):
            return index.get(target.objgen)
        if isinstance(target, int):
            return int(target)
    return None
