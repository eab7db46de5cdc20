"""Every printed document is tagged PDF/UA-1, as an outside checker sees it (issue 12).

The checker is `page-validation` (PyPI), Python bindings to `page`, an independent
validator that passes the veraPDF and Isartor test suites; these tests ask it for zero
failures on every document kind, for a whole course and for one session, with the
demo's notes (every shipped modality with a print layout)."""

from __future__ import annotations

import io

import page
import pikepdf
import pytest
from sqlalchemy import select

from kaptools import documents
from kaptools.demo import load_demo
from kaptools.extensions import db
from kaptools.models import Course
from kaptools.rendering.assemble import (
    PREPARED,
    _detach,
    _elements,
    _prefix_ids,
    _top_level,
    assemble,
)
from kaptools.rendering.weasy import html_to_pdf


def ua_failures(pdf: bytes) -> list[str]:
    report = page.validate_pdf_bytes(pdf, profile=page.ValidationProfile.PDF_UA_1)
    return [f"{f.rule_id}: {f.message}" for f in report.failures]


@pytest.fixture
def demo_courses(app):
    with app.app_context():
        load_demo()
        return [c.id for c in db.session.scalars(select(Course).order_by(Course.id))]


@pytest.mark.parametrize("kind", documents.KINDS)
def test_every_document_passes_the_pdf_ua_checker(app, demo_courses, kind):
    with app.test_request_context():
        for course_id in demo_courses:
            course = db.session.get(Course, course_id)
            pdf = documents.document_pdf(documents.build(kind, course))
            assert ua_failures(pdf) == [], (kind, course.title)
        course = db.session.get(Course, demo_courses[0])
        one = course.sessions[len(course.sessions) // 2]
        pdf = documents.document_pdf(documents.build(kind, course, one))
        assert ua_failures(pdf) == [], (kind, "one session")


PART = ('<html lang="en"><head><title>Doc</title><style>@page {{ @top-left {{ content: '
        '"Running head" }} }}</style></head><body>{}<table><thead><tr><th scope="col">Name'
        '</th><th scope="col">Value</th></tr></thead><tbody><tr><td>a</td><td>1</td></tr>'
        '</tbody></table></body></html>')


@pytest.mark.parametrize("how", ["as laid out", "prepared where laid out",
                                 "prepared, one part twice"])
def test_joined_parts_keep_one_structure_tree_in_page_order(how):
    """Tagged parts, each with a running head and a table, assembled: one root and
    one Document element holding every part's content, marked-content keys renumbered so
    that no two pages share one, table header ids unique across parts, and a link from the
    first part to an anchor in the last resolved to that page. The same whether the parts
    were made ready to be joined in the render child (as a summary's parts are) or not
    (parts stored before that), and when one prepared part appears twice."""
    htmls = [PART.format('<h1>First</h1><p><a href="kaptools-goto:third">to the third part'
                         '</a></p>'),
             PART.format('<h2>Second</h2><p>middle</p>'),
             PART.format('<h2 id="third">Third</h2><p>end</p>')]
    prepared = how != "as laid out"
    parts = [html_to_pdf(h, pdf_ua=True, join_prefix=f"k{i}-" if prepared else None)
             for i, h in enumerate(htmls)]
    if prepared:
        for part in parts:  # what joining needs travels with the stored part
            with pikepdf.open(io.BytesIO(part)) as opened:
                assert PREPARED in opened.Root.StructTreeRoot
    if how == "prepared, one part twice":
        parts.insert(1, parts[1])
    whole = assemble(parts, [], "Doc")
    assert ua_failures(whole) == []
    pdf = pikepdf.open(io.BytesIO(whole))
    objects = [o for o in pdf.objects if isinstance(o, pikepdf.Dictionary)]
    assert sum(1 for o in objects if o.get("/Type") == pikepdf.Name.StructTreeRoot) == 1
    assert sum(1 for o in objects if o.get("/S") == pikepdf.Name.Document) == 1
    root = pdf.Root.StructTreeRoot
    assert root.K.S == pikepdf.Name.Document
    headings = [str(k.S) for k in root.K.K if str(k.S).startswith("/H")]
    assert headings == ["/H1"] + ["/H2"] * (len(parts) - 1)
    assert all(PREPARED not in o for o in objects)  # the parts' private key stays behind
    # Every element reaches the one root through its parents.
    for element in objects:
        if "/S" in element and "/P" in element:
            node = element
            while "/P" in node:
                node = node.P
            assert node.objgen == root.objgen
    ids = [str(o.ID) for o in objects if "/S" in o and "/ID" in o]
    assert len(ids) == len(set(ids)) >= 2 * len(parts)  # two header cells in each part
    for o in objects:
        attributes = o.get("/A") if "/S" in o else None
        for attribute in attributes if isinstance(attributes, pikepdf.Array) else [attributes]:
            if isinstance(attribute, pikepdf.Dictionary) and "/Headers" in attribute:
                assert {str(h) for h in attribute.Headers} <= set(ids)
    keys = [int(p.obj.StructParents) for p in pdf.pages]
    assert len(set(keys)) == len(keys) == len(parts)
    nums = list(root.ParentTree.Nums)
    assert {int(k) for k in nums[::2]} >= set(keys)  # every page's key is in the tree
    link = next(a for a in pdf.pages[0].obj.Annots if a.get("/Subtype") == pikepdf.Name.Link)
    last = len(parts) - 1
    assert link.A.S == pikepdf.Name.GoTo and link.A.D[0].objgen == pdf.pages[last].obj.objgen
    assert str(link.Contents) == f"Go to page {last + 1}"


def test_a_part_prepared_as_it_is_written_is_what_joining_it_unprepared_would_make():
    """A render child prepares a part for joining on its objects just before they are
    written; ``Assembly.add`` prepares a part stored without it by walking its structure
    tree. Both must detach the same elements and give the same IDs and /Headers."""
    html = PART.format('<h1>Title</h1><ul><li>one</li><li>two</li></ul><table><tr>'
                       '<th scope="row">Row</th><td>x</td></tr></table>')

    def summary(pdf: pikepdf.Pdf, detached) -> tuple:
        def describe(element):
            return (str(element.S), str(element.get("/ID", "")),
                    tuple(str(h) for a in ([element.A] if "/A" in element else [])
                          if isinstance(a, pikepdf.Dictionary) and "/Headers" in a
                          for h in a.Headers))
        elements = [o for o in pdf.objects
                    if isinstance(o, pikepdf.Dictionary) and o.get("/Type") == "/StructElem"]
        return (sorted(describe(e) for e in detached), sorted(describe(e) for e in elements),
                sorted(str(e.S) for e in elements if "/P" not in e))

    with pikepdf.open(io.BytesIO(html_to_pdf(html, pdf_ua=True, join_prefix="k7-"))) as ready:
        join = ready.Root.StructTreeRoot[PREPARED]
        assert str(join.Prefix) == "k7-"
        as_written = summary(ready, list(join.Detached))
    with pikepdf.open(io.BytesIO(html_to_pdf(html, pdf_ua=True))) as plain:
        tree = plain.Root.StructTreeRoot
        assert PREPARED not in tree
        kids, entries, tops = _top_level(tree)
        elements = _elements(kids, entries)
        detached = _detach(elements, tops)
        _prefix_ids(elements, "k7-")
        walked = summary(plain, detached)
    assert as_written == walked
    detached_tags, all_tags, parentless = as_written
    assert len(detached_tags) >= 4  # the heading, the list, two tables (and the running head)
    assert sum(1 for _s, i, _h in all_tags if i) == 3  # three header cells...
    assert all(i.startswith("k7-") for _s, i, _h in all_tags if i)  # ...each prefixed
    assert all(h.startswith("k7-") for _s, _i, hs in all_tags for h in hs)
    assert {h for _s, _i, hs in all_tags for h in hs} == {i for _s, i, _h in all_tags if i}
    assert sorted(parentless) == sorted(t[0] for t in detached_tags)  # only those lost /P
