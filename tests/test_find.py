"""Quick-find answers within the user's scope only, by client code or name, session date,
and note template and state; every section pages."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from kaptools.extensions import db
from kaptools.models import Client
from kaptools.timeutil import today
from tests import factories
from tests.conftest import Browser, signed_in


@pytest.fixture
def clinic(app):
    """Maya and Sam, therapists, each with a client called Jordan Avery (and the same
    code); Ruth supervises Maya only."""
    with app.app_context():
        maya = factories.user("maya")
        sam = factories.user("sam")
        ruth = factories.user("ruth", role="supervisor")
        mine = factories.client_with_course(maya, code="KT-0001")
        theirs = factories.client_with_course(sam, code="KT-0001")
        for ids in (mine, theirs):
            db.session.get(Client, ids["client"]).display_name = "Jordan Avery"
        factories.supervise(ruth, maya, starts=today() - timedelta(days=30))
        db.session.commit()
        return {"mine": mine, "theirs": theirs}



def links(page: str, kind: str) -> set[int]:
    return {int(i) for i in re.findall(rf'href="/{kind}/(\d+)"', page)}


def find(b: Browser, q: str, **more) -> str:
    answer = b.get("/find", query_string={"q": q, **more})
    assert answer.status_code == 200
    return answer.get_data(as_text=True)


@pytest.mark.parametrize("q", ["Jordan", "jord", "avery jordan", "KT-0001", "kt-00"])
def test_a_name_or_code_finds_only_ones_own_client(app, clinic, q):
    maya, sam = signed_in(app, "maya"), signed_in(app, "sam")
    mine, theirs = clinic["mine"]["client"], clinic["theirs"]["client"]
    assert links(find(maya, q), "clients") == {mine}
    assert links(find(sam, q), "clients") == {theirs}


def test_a_supervisor_finds_the_supervisees_client_only(app, clinic):
    page = find(signed_in(app, "ruth"), "Jordan Avery")
    assert links(page, "clients") == {clinic["mine"]["client"]}
    assert "(Maya)" in page  # whose client it is


def test_a_date_finds_the_sessions_of_that_day_in_scope(app, clinic):
    maya = signed_in(app, "maya")
    for q in ("2026-11-03", "3 Nov 2026", "03/11/2026", "3 november 2026"):
        assert links(find(maya, q), "sessions") == {clinic["mine"]["integration"]}, q
    assert links(find(maya, "4 Nov 2026"), "sessions") == set()


def test_a_template_and_state_find_notes_in_scope(app, clinic):
    maya, sam = signed_in(app, "maya"), signed_in(app, "sam")
    for q in ("thought record", "CBT draft", "drafts"):
        assert links(find(maya, q), "notes") == {clinic["mine"]["note"]}, q
        assert links(find(sam, q), "notes") == {clinic["theirs"]["note"]}, q
    assert links(find(maya, "thought signed"), "notes") == set()
    assert "Draft notes" in find(maya, "drafts")
    # A discarded draft is found no more.
    maya.post(f"/notes/{clinic['mine']['note']}/discard-draft")
    assert links(find(maya, "drafts"), "notes") == set()


def test_every_section_pages(app, clinic):
    with app.app_context():
        maya = db.session.get(Client, clinic["mine"]["client"]).therapist
        for number in range(2, 27):
            db.session.add(Client(therapist=maya, code=f"KT-{number:04d}",
                                  display_name=f"Pat Example {number}"))
        db.session.commit()
    b = signed_in(app, "maya")
    first = find(b, "pat")
    assert len(links(first, "clients")) == 20 and "All 25 clients" in first
    second = find(b, "pat", show="clients", page=2)
    assert len(links(second, "clients")) == 5 and "Page 2 of 2" in second
    assert len(links(first, "clients") | links(second, "clients")) == 25


def test_administrators_have_no_quick_find(app, clinic):
    with app.app_context():
        factories.user("ada", role="admin")
    assert signed_in(app, "ada").get("/find?q=Jordan").status_code == 404
