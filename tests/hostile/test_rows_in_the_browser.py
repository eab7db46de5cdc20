"""Adding rows in the browser never touches the answers of another row (acceptance 1).

For every repeating group of every shipped template: fill the first row (every choice,
and the other inputs), add rows one by one, filling each, save, reload and print. Every
value chosen is still there, and the note prints.
"""

from __future__ import annotations

import pytest

from kaptools.modality.registry import builtin_dir, load_registry
from tests import factories
from tests.browser.conftest import sign_in
from tests.conftest import Browser
from tests.notes_helpers import new_note

pytestmark = pytest.mark.browser

REGISTRY = load_registry(builtin_dir())
WITH_GROUPS = sorted(t.slug for t in REGISTRY.current() if any(f.type == "group"
                                                                for f in t.fields))
ROWS_PER_GROUP = 3

# Fill every visible input of a row the way a person would, one of two ways (variant 0
# picks first options, 1 picks last ones), announcing each change as the browser does.
FILL_ROW = """(row, variant) => {
  const visible = (el) => !el.closest('[hidden]') && el.getClientRects().length > 0;
  const fire = (el) => { el.dispatchEvent(new Event('input', {bubbles: true}));
                         el.dispatchEvent(new Event('change', {bubbles: true})); };
  for (let pass = 0; pass < 3; pass++) {
    const radios = {};
    row.querySelectorAll('input[type=radio]').forEach((el) => {
      if (el.value !== '' && visible(el)) { (radios[el.name] = radios[el.name] || []).push(el); }
    });
    Object.values(radios).forEach((options) => {
      const pick = variant ? options[options.length - 1] : options[0];
      if (!pick.checked) { pick.checked = true; fire(pick); }
    });
    const boxes = {};
    row.querySelectorAll('input[type=checkbox]').forEach((el) => {
      if (visible(el)) { (boxes[el.name] = boxes[el.name] || []).push(el); }
    });
    Object.values(boxes).forEach((options) => {
      const pick = variant ? options[options.length - 1] : options[0];
      if (!pick.checked) { pick.checked = true; fire(pick); }
    });
    row.querySelectorAll('select').forEach((el) => {
      if (!visible(el) || el.options.length < 2 || el.value) { return; }
      el.selectedIndex = variant ? el.options.length - 1 : 1; fire(el);
    });
    const typed = 'input:not([type=radio]):not([type=checkbox]):not([type=hidden]), textarea';
    row.querySelectorAll(typed).forEach((el) => {
        if (!visible(el) || el.value) { return; }
        if (el.type === 'number') { el.value = el.min || '1'; }
        else if (el.type === 'date') { el.value = variant ? '2026-11-20' : '2026-11-02'; }
        else if (el.type === 'time') { el.value = variant ? '11:45' : '10:15'; }
        else { el.value = 'Row text ' + variant + ' ' + el.name; }
        fire(el);
      });
  }
}"""

# What rows show: every checked option, chosen item and typed value by name.
SNAPSHOT = """(scope) => {
  const seen = {};
  const rows = scope.matches('.row') ? [scope] : scope.querySelectorAll(':scope > .rows > .row');
  rows.forEach((row) => {
    row.querySelectorAll('input, select, textarea').forEach((el) => {
      if (el.type === 'hidden' || el.closest('[hidden]')) { return; }
      if ((el.type === 'radio' || el.type === 'checkbox')) {
        if (el.checked && el.value !== '') { (seen[el.name] = seen[el.name] || []).push(el.value); }
      } else if (el.value) {
        // Numbers come back in the field's own format (0 as 0.00): compare them as numbers.
        const numeric = el.type === 'number' || el.inputMode === 'decimal';
        seen[el.name] = [numeric ? String(parseFloat(el.value)) : el.value];
      }
    });
  });
  return seen;
}"""


@pytest.fixture
def maya_with_a_session(app):
    with app.app_context():
        ids = factories.client_with_course(factories.user("maya"))
    return ids


@pytest.mark.parametrize("slug", WITH_GROUPS)
def test_rows_added_in_the_browser_keep_every_answer(app, live_server, page, slug,
                                                     maya_with_a_session):
    template = REGISTRY.latest(slug)
    http = Browser(app.test_client())
    http.login("maya", factories.PASSWORD)
    url = new_note(http, maya_with_a_session["integration"], slug)
    sign_in(page, live_server, "maya", factories.PASSWORD)
    page.goto(live_server + url)
    groups = [f for f in template.fields if f.type == "group"]
    chosen: dict[str, dict] = {}  # what each row showed right after it was filled
    for f in groups:
        fieldset = page.locator(f'fieldset[data-group="{f.key}"]').first
        rows = fieldset.locator(":scope > .rows > .row")
        if rows.count() == 0:
            fieldset.locator(":scope > .add-row").click()
        chosen[f.key] = {}
        for n in range(min(ROWS_PER_GROUP, f.max_items)):
            if n:
                fieldset.locator(":scope > .add-row").click()
            assert rows.count() == n + 1
            rows.nth(n).evaluate(FILL_ROW, n % 2)
            chosen[f.key].update(rows.nth(n).evaluate(SNAPSHOT))
        assert chosen[f.key], f"nothing was filled in {slug}.{f.key}"
    before = {f.key: page.locator(f'fieldset[data-group="{f.key}"]').first.evaluate(SNAPSHOT)
              for f in groups}
    for key, shown in chosen.items():
        lost = {name: values for name, values in shown.items()
                if before[key].get(name) != values}
        assert not lost, ("adding rows changed rows above", slug, key, lost)
    page.click("button:has-text('Save draft')")
    page.wait_for_selector("text=Draft saved.")
    page.reload()
    after = {f.key: page.locator(f'fieldset[data-group="{f.key}"]').first.evaluate(SNAPSHOT)
             for f in groups}
    for key, shown in before.items():
        lost = {name: values for name, values in shown.items()
                if after[key].get(name) != values}
        assert not lost, (slug, key, lost)
    # And the note prints.
    session = maya_with_a_session["integration"]
    for kind in ("summary", "packet"):
        resp = http.get(f"/sessions/{session}/documents/{kind}.pdf")
        assert resp.status_code == 200 and resp.mimetype == "application/pdf"
