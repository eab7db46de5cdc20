"""Putting rendered parts together into one PDF (with qpdf, through pikepdf).

Pages follow one another in order; each part's bookmarks are kept, under one bookmark
for the whole document; the running heads and feet, the document's content hash and
the page numbers ("Page x of y") are laid over every page as artifacts, so assistive
technology does not read them as content and no part has to be laid out again when the
page count or the document around it changes.

The work is split so that little of it waits on anything else:

- ``prepare_for_joining`` runs where a part is laid out (in a render child, beside the
  other parts, as the part is written): it goes through the part's structure elements
  once and stores what joining needs with the part, so a stored part is never walked
  again;
- ``Assembly`` joins the parts one by one as they are laid out (each as soon as it and
  those before it are), while the children lay out the rest; ``finish`` lays the page
  furniture (laid out once for the document, beside its parts) and the page numbers
  (composed from a sample laid out once, see numbers.py; they need the page count, so
  they come last) over the pages and writes the whole.
"""

from __future__ import annotations

import io
from collections.abc import Iterable
from typing import TYPE_CHECKING

import pikepdf
from pikepdf import Array, Dictionary, Name, NameTree, NumberTree, OutlineItem, Page, Pdf

if TYPE_CHECKING:
    from .numbers import Numbers

# What ``prepare_for_joining`` leaves in a part's StructTreeRoot: the prefix its element IDs
# carry, and its elements whose parent was the part's own root or Document (detached
# from it, to be hung under the whole document's Document element). A private key of
# stored parts; it is never copied into an assembled document.
PREPARED = "/KaptoolsJoin"


def assemble(parts: list[bytes], overlays: list[bytes], title: str,
             keywords: str | None = None, frame: bytes | None = None) -> bytes:
    """One PDF made of ``parts`` in order, with the pages of ``overlays`` (in order) and
    ``frame`` (see ``Assembly.finish``) laid over them. Tagged parts (PDF/UA-1) make a
    tagged whole: their structure trees are joined under one Document element, in page
    order. ``keywords`` (the document's content hash) go into its metadata: a part is
    shared by many documents, so it has none of its own."""
    if len(parts) == 1 and not overlays and frame is None and keywords is None:
        return parts[0]
    return Assembly(parts).finish(frame, overlays, title, keywords)


class Assembly:
    """``parts`` joined in order: pages, bookmarks, one structure tree, links resolved.
    ``finish`` adds the overlays and the metadata and writes the PDF; ``close`` lets go
    of the parts when it is not called."""

    def __init__(self, parts: Iterable[bytes] = ()) -> None:
        self.out = Pdf.new()
        self.bookmarks: list[OutlineItem] = []
        self.sources: list[Pdf] = []  # kept open until the result is written
        self.placed: list[tuple[Pdf, int]] = []  # (source, its first page in the result)
        self._structure: _Structure | None = _Structure(self.out)  # None: not all tagged
        self._sealed = False
        try:
            for data in parts:
                self.add(data)
        except BaseException:
            self.close()
            raise

    def add(self, data: bytes) -> None:
        """Join the next part (a render joins each as soon as it and those before it are
        laid out, while the children lay out the rest)."""
        out = self.out
        source = Pdf.open(io.BytesIO(data))
        self.sources.append(source)
        start = len(out.pages)
        self.bookmarks += _outline(source, start)
        out.pages.extend(source.pages)
        self.placed.append((source, start))
        if start == 0:
            with out.open_metadata(set_pikepdf_as_editor=False) as meta:
                meta.load_from_docinfo(source.docinfo)
            for key, value in source.docinfo.items():
                out.docinfo[key] = value
        if self._structure is not None:
            if "/StructTreeRoot" in source.Root:
                self._structure.add(source, start)
            else:  # one untagged part: the whole is untagged
                self._structure = None

    def seal(self) -> None:
        """After the last part: the joined structure tree and the links between parts."""
        if self._sealed:
            return
        self._sealed = True
        if self._structure is not None and self.placed:
            self._structure.attach(self.placed[0][0])
        _resolve_links(self.out, self.placed)

    def finish(self, frame: bytes | None, overlays: list[bytes] | Numbers, title: str,
               keywords: str | None) -> bytes:
        """Lay ``frame``'s first page over the first page and its second over every other
        page (the running heads and feet, the same on every page: drawn once, referred
        to by each page), and a page number over each page (composed by ``overlays``,
        or the pages of ``overlays``, in order); then write the PDF with its outline and
        metadata."""
        from .numbers import Numbers  # here: render children import this module

        out = self.out
        try:
            self.seal()
            furniture = []
            if frame is not None:
                source = Pdf.open(io.BytesIO(frame))
                self.sources.append(source)
                for page in source.pages[:2]:
                    _mark_as_artifact(page)
                    furniture.append(out.copy_foreign(page.as_form_xobject()))
            stamps: list = []
            if isinstance(overlays, Numbers):
                total = len(out.pages)
                stamps = [overlays.overlay(out, n, total) for n in range(1, total + 1)]
            else:
                for data in overlays:
                    source = Pdf.open(io.BytesIO(data))
                    self.sources.append(source)
                    stamps += source.pages
                for stamp in stamps:
                    _mark_as_artifact(stamp)
            if overlays and len(stamps) != len(out.pages):
                raise ValueError(f"the overlays have {len(stamps)} pages for "
                                 f"{len(out.pages)}")
            for number, page in enumerate(out.pages):
                if furniture:
                    page.add_overlay(furniture[min(number, len(furniture) - 1)])
                if stamps:
                    page.add_overlay(stamps[number])
            with out.open_outline() as outline:
                whole = OutlineItem(title, 0)
                whole.children.extend(self.bookmarks)
                outline.root.append(whole)
            out.Root.PageMode = Name.UseOutlines
            if keywords:
                out.docinfo["/Keywords"] = keywords
                with out.open_metadata(set_pikepdf_as_editor=False) as meta:
                    meta["pdf:Keywords"] = keywords
            buffer = io.BytesIO()
            out.save(buffer, compress_streams=True,
                     object_stream_mode=pikepdf.ObjectStreamMode.generate)
            return buffer.getvalue()
        finally:
            self.close()

    def close(self) -> None:
        """Let go of the parts (again is harmless)."""
        for source in self.sources:
            source.close()
        self.sources = []


def prepare_for_joining(pdf, prefix: str) -> None:
    """Make a tagged part ready to be joined, where it is laid out and before it is
    written (a WeasyPrint ``finisher``: ``pdf`` is its pydyf document): its element IDs
    (table headers) and the /Headers that name them carry ``prefix`` (unique to the part:
    each part numbers its own IDs from scratch), and the elements whose parent is the
    part's own root or Document are detached from it and listed (see ``PREPARED``), as
    ``Assembly.add`` does for a part that was not prepared. Done on the objects as they
    are about to be written, not by reading the written part back and writing it again
    (which took about a twentieth of a part's time). An untagged part is left as it is."""
    import pydyf  # here: only render children write parts

    catalog_root = pdf.catalog.get("StructTreeRoot")
    if catalog_root is None:
        return
    objects = pdf.objects
    root = objects[int(catalog_root.split()[0])]  # a reference: b"<number> 0 R"
    top = root["K"] if isinstance(root["K"], list) else [root["K"]]
    tops = {root.reference, *top}  # the root and the elements right under it
    detached = []
    for element in objects:
        if not isinstance(element, dict) or element.get("Type") != "/StructElem":
            continue
        if element.get("P") in tops and element.reference not in tops:
            del element["P"]
            detached.append(element.reference)
        if "ID" in element:
            element["ID"] = pydyf.String(prefix + str(element["ID"].string))
        attributes = element.get("A")
        for attribute in attributes if isinstance(attributes, list) else [attributes]:
            if isinstance(attribute, dict) and "Headers" in attribute:
                headers = attribute["Headers"]
                attribute["Headers"] = pydyf.Array([
                    pydyf.String(prefix + str(h.string))
                    for h in (headers if isinstance(headers, list) else [headers])])
    root[PREPARED[1:]] = pydyf.Dictionary({"Prefix": pydyf.String(prefix),
                                           "Detached": pydyf.Array(detached)})


class _Structure:
    """The parts' structure trees as one, a part at a time: each part's top-level elements
    under a single Document element, their marked-content keys (StructParents) renumbered
    so that they stay unique, and the catalog entries PDF/UA-1 asks for taken from the
    first part (``attach``)."""

    def __init__(self, out: Pdf) -> None:
        self.out = out
        self.document = out.make_indirect(Dictionary(Type=Name.StructElem, S=Name.Document,
                                                     K=Array()))
        self.nums = Array()
        self.role_map = Dictionary()
        self.next_key = 0
        self.prefixes: set[str] = set()
        self.count = 0

    def add(self, source: Pdf, start: int) -> None:
        out, document, number = self.out, self.document, self.count
        self.count += 1
        tree = source.Root.StructTreeRoot
        offset = self.next_key
        kids, entries, tops = _top_level(tree)
        prepared = tree.get(PREPARED)
        if prepared is None:
            # Not prepared where it was laid out: walked here, the same way.
            elements = _elements(kids, entries)
            detached = _detach(elements, tops)
            _prefix_ids(elements, f"p{number}-")
        else:
            detached = list(prepared.Detached)
            if str(prepared.Prefix) in self.prefixes:  # the same part twice: IDs unique
                _prefix_ids(_elements(kids, entries), f"p{number}-")
            self.prefixes.add(str(prepared.Prefix))
        for kid in kids:
            if isinstance(kid, Dictionary):
                document.K.append(_copy(out, kid))
        for element in detached:
            _copy(out, element).P = document
        highest = -1
        for key, value in entries:
            self.nums.append(key + offset)
            self.nums.append(_copy(out, value))
            highest = max(highest, key)
        self.next_key = offset + max(highest + 1, int(tree.get("/ParentTreeNextKey", 0)))
        for i in range(len(source.pages)):
            page = out.pages[start + i].obj
            if "/StructParents" in page:
                page.StructParents = int(page.StructParents) + offset
            for annot in page.get("/Annots", Array()):
                if "/StructParent" in annot:
                    annot.StructParent = int(annot.StructParent) + offset
        for role, standard in tree.get("/RoleMap", Dictionary()).items():
            self.role_map[role] = standard

    def attach(self, first_part: Pdf) -> None:
        out, document = self.out, self.document
        root = out.make_indirect(Dictionary(
            Type=Name.StructTreeRoot, K=document,
            ParentTree=out.make_indirect(Dictionary(Nums=self.nums)),
            ParentTreeNextKey=self.next_key))
        if len(self.role_map):
            root.RoleMap = self.role_map
        document.P = root
        first = first_part.Root
        out.Root.StructTreeRoot = root
        out.Root.MarkInfo = Dictionary(Marked=True)
        out.Root.ViewerPreferences = Dictionary(DisplayDocTitle=True)
        if "/Lang" in first:
            out.Root.Lang = first.Lang
        if "/Metadata" in first:  # it declares PDF/UA-1 (pdfuaid:part) and the title
            out.Root.Metadata = out.copy_foreign(first.Metadata)


def _top_level(tree: Dictionary) -> tuple[list, list, set]:
    """A part's top-level content elements (those under its Document element, or the
    root's own), its parent-tree entries, and the objects that are its root and
    top-level elements."""
    top = tree.K if isinstance(tree.K, Array) else Array([tree.K])
    tops = {tree.objgen} | {e.objgen for e in top if isinstance(e, Dictionary)}
    kids = []
    for element in top:
        inner = element.get("/K") if element.get("/S") == Name.Document else None
        if inner is None:
            kids.append(element)
        else:
            kids += list(inner) if isinstance(inner, Array) else [inner]
    entries = list(NumberTree(tree.ParentTree).items()) if "/ParentTree" in tree else []
    return kids, entries, tops


def _detach(elements: list[Dictionary], tops: set) -> list[Dictionary]:
    """Elements whose parent is the part's own Document or root — its top-level content,
    and running heads that sit in the parent tree only — detached, so that copying them
    copies nothing above them (a second root); they are hung under the one Document."""
    detached = []
    for element in elements:
        parent = element.get("/P")
        if not isinstance(parent, Dictionary) or parent.objgen not in tops:
            continue
        if element.get("/S") == Name.Document and element.objgen in tops:
            continue  # the part's own Document: not content (what it holds is)
        del element["/P"]
        detached.append(element)
    return detached


def _elements(kids: list, entries: list) -> list[Dictionary]:
    """Every structure element under ``kids`` and in the parent-tree ``entries``, and the
    parents of these (a running head's container is in neither), once each."""
    seen: set = set()
    found: list[Dictionary] = []
    stack = list(kids)
    for _key, value in entries:
        stack += list(value) if isinstance(value, Array) else [value]
    while stack:
        element = stack.pop()
        if not isinstance(element, Dictionary) or "/S" not in element:
            continue
        key = element.objgen if element.is_indirect else id(element)
        if key in seen:
            continue
        seen.add(key)
        found.append(element)
        parent = element.get("/P")
        if isinstance(parent, Dictionary) and parent.get("/Type") != Name.StructTreeRoot:
            stack.append(parent)
        inner = element.get("/K")
        stack += list(inner) if isinstance(inner, Array) else ([inner] if inner is not None else [])
    return found


def _prefix_ids(elements: list[Dictionary], prefix: str) -> None:
    """Element IDs (table headers) and the /Headers that point at them, made unique across
    parts: each part numbers its own from scratch."""
    for element in elements:
        if "/ID" in element:
            element.ID = pikepdf.String(prefix + str(element.ID))
        attributes = element.get("/A")
        for attribute in (attributes if isinstance(attributes, Array) else [attributes]):
            if isinstance(attribute, Dictionary) and "/Headers" in attribute:
                headers = attribute.Headers
                attribute.Headers = Array([
                    pikepdf.String(prefix + str(h))
                    for h in (headers if isinstance(headers, Array) else [headers])])


def _copy(out: Pdf, value):
    """``value`` from another PDF, in ``out`` (indirect objects copied once per source, so
    references to pages already copied land on the same pages)."""
    if isinstance(value, (Array, Dictionary)) and not value.is_indirect:
        if isinstance(value, Array):
            return Array([_copy(out, item) for item in value])
        return Dictionary({key: _copy(out, item) for key, item in value.items()})
    if isinstance(value, pikepdf.Object) and value.is_indirect:
        return out.copy_foreign(value)
    return value


# A link from one part to a place in another cannot be resolved when the part is laid out
# on its own: the template writes it as "kaptools-goto:<anchor>", and it is pointed at the
# anchor's page once the parts are together.
GOTO_SCHEME = "kaptools-goto:"


def _resolve_links(out: Pdf, placed: list[tuple[Pdf, int]]) -> None:
    from ..i18n import _  # here: render children import this module for prepare_for_joining

    destinations = {}
    for source, start in placed:
        names = source.Root.get("/Names")
        if names is None or "/Dests" not in names:
            continue
        index = {page.obj.objgen: i for i, page in enumerate(source.pages)}
        for name, dest in NameTree(names.Dests).items():
            dest = dest.get("/D", dest) if isinstance(dest, Dictionary) else dest
            if isinstance(dest, Array) and len(dest) and isinstance(dest[0], Dictionary) \
                    and dest[0].objgen in index:
                page = out.pages[start + index[dest[0].objgen]].obj
                destinations[str(name)] = Array([page, *list(dest)[1:]])
    number = {page.obj.objgen: i + 1 for i, page in enumerate(out.pages)}
    for page in out.pages:
        for annot in page.obj.get("/Annots", Array()):
            action = annot.get("/A")
            if action is None or action.get("/S") != Name.URI:
                continue
            uri = str(action.get("/URI", ""))
            if uri.startswith(GOTO_SCHEME):
                target = destinations.get(uri[len(GOTO_SCHEME):])
                if target is not None:
                    annot.A = Dictionary(S=Name.GoTo, D=target)
                    annot.Contents = pikepdf.String(_("Go to page %(page)s",
                                                      page=number[target[0].objgen]))
                else:
                    del annot["/A"]  # nowhere to go: a plain entry, never a broken link
                    annot.Contents = pikepdf.String("")
    # The anchors stay reachable from outside too ("summary.pdf#note-12").
    if destinations:
        tree = NameTree.new(out)
        for name in sorted(destinations):
            tree[name] = destinations[name]
        out.Root.Names = Dictionary(Dests=tree.obj)


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
