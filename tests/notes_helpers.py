"""Helpers for posting note forms the way a browser does."""

from __future__ import annotations

from kaptools.modality.answers import answers_to_formdata


def form_payload(template, answers, version: int = 1, action: str = "save") -> dict:
    formdata = answers_to_formdata(template, answers)
    payload = {key: formdata.getlist(key) for key in formdata}
    payload["note_version"] = str(version)
    payload["action"] = action
    return payload


def new_note(browser, session_id: int, slug: str) -> str:
    browser.get(f"/sessions/{session_id}/notes/new")
    resp = browser.post(f"/sessions/{session_id}/notes/new", {"modality": slug})
    assert resp.status_code == 302, resp.status_code
    return resp.headers["Location"]
