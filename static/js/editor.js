/* kaptools note editor: rows, conditional fields, Markdown preview and autosave.
   Everything here is an enhancement: the editor works as a plain form without it. */
(function () {
  "use strict";
  document.documentElement.classList.add("js");

  var t = window.kaptoolsWords.t;  /* the clinic's words (static/js/words.js) */

  /* A tab keeps what it sent until the server confirms the save landed: then (on the
     editor, or on the signed note) the page names the editor whose save it was. */
  function readStash(key) {
    try {
      var raw = sessionStorage.getItem(key);
      if (!raw) { return null; }
      var data = JSON.parse(raw);
      return Array.isArray(data) ? { editor: null, pairs: data } : data;
    } catch (e) { return null; }
  }
  var landed = document.querySelector("[data-saved-editor][data-note-id]");
  if (landed) {
    var landedKey = "kaptools-unsaved-note-" + landed.getAttribute("data-note-id");
    var kept = readStash(landedKey);
    if (kept && kept.editor === landed.getAttribute("data-saved-editor")) {
      sessionStorage.removeItem(landedKey);
    }
  }

  var form = document.getElementById("note-form");
  if (!form) { return; }

  var AUTOSAVE_DELAY = 2500;
  var stateEl = form.querySelector("[data-save-state]");
  var noteId = form.getAttribute("data-note-id");
  var stashKey = "kaptools-unsaved-note-" + noteId;
  var dirty = false, timer = null, inFlight = false, again = false;

  function say(text, kind) {
    if (!stateEl) { return; }
    stateEl.textContent = text;
    stateEl.setAttribute("data-kind", kind || "");
  }

  function csrfToken() {
    var input = form.querySelector("input[name=csrf_token]");
    return input ? input.value : "";
  }

  /* ---------------------------------------------------------------- rows */
  /* New rows are made from the blank row the server renders in each group's <template>;
     a filled row is never copied, so adding a row cannot touch another row's answers. */
  function escapeRe(text) { return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"); }

  function rowsOf(group) { return group.querySelectorAll(":scope > .rows > .row"); }

  function renameRow(row, from, to) {
    var pattern = new RegExp("^" + escapeRe(from));
    row.querySelectorAll("[name],[id],[for],[aria-describedby],[list],[data-prefix]").forEach(function (el) {
      ["name", "id", "for", "list", "data-prefix"].forEach(function (attr) {
        var value = el.getAttribute(attr);
        if (value && pattern.test(value)) { el.setAttribute(attr, value.replace(pattern, to)); }
      });
      var described = el.getAttribute("aria-describedby");
      if (described) {
        el.setAttribute("aria-describedby", described.split(" ").map(function (id) {
          return id.replace(pattern, to);
        }).join(" "));
      }
    });
    row.querySelectorAll(".group").forEach(function (inner) {
      if (pattern.test(inner.id)) { inner.id = inner.id.replace(pattern, to); }
    });
    // Blank rows of groups inside this row carry this row's number in their names too.
    row.querySelectorAll("template[data-row-template]").forEach(function (tpl) {
      tpl.innerHTML = tpl.innerHTML.split(from).join(to);
    });
  }

  function renumber(group) {
    var prefix = group.id + "-";
    var moved = [];
    // Two steps, through names no other row has: a radio button renamed into a group
    // that already has a checked button would clear one of them.
    rowsOf(group).forEach(function (row, index) {
      var old = row.getAttribute("data-index");
      if (old !== String(index)) {
        renameRow(row, prefix + old + "-", prefix + "moving" + index + "-");
        moved.push([row, index]);
      }
    });
    moved.forEach(function (pair) {
      renameRow(pair[0], prefix + "moving" + pair[1] + "-", prefix + pair[1] + "-");
      pair[0].setAttribute("data-index", String(pair[1]));
    });
    rowsOf(group).forEach(function (row, index) {
      var title = row.querySelector(":scope > .row-head > .row-title");
      if (title) {
        title.textContent = t("%(item)s %(number)s",
                              { item: group.getAttribute("data-item-label"), number: index + 1 });
      }
    });
    var max = parseInt(group.getAttribute("data-max") || "50", 10);
    var add = group.querySelector(":scope > .add-row");
    if (add) { add.disabled = rowsOf(group).length >= max; }
  }

  function rowButton(label, action, extra) {
    var b = document.createElement("button");
    b.type = "button";
    b.className = "row-button";
    b.textContent = label;
    b.setAttribute("data-action", action);
    if (extra) { b.setAttribute("aria-label", extra); }
    return b;
  }

  function decorateRow(group, row) {
    var tools = row.querySelector(":scope > .row-head > [data-row-tools]");
    if (!tools || tools.childElementCount) { return; }
    var label = group.getAttribute("data-item-label");
    tools.appendChild(rowButton("↑", "up", t("Move %(label)s up", { label: label })));
    tools.appendChild(rowButton("↓", "down", t("Move %(label)s down", { label: label })));
    tools.appendChild(rowButton(t("Remove"), "remove", t("Remove this %(label)s", { label: label.toLowerCase() })));
  }

  function isBlank(row) {
    var blank = true;
    row.querySelectorAll("input, textarea, select").forEach(function (el) {
      if (el.type === "hidden") { return; }
      if (el.type === "radio" || el.type === "checkbox") {
        if (el.checked && el.value !== "") { blank = false; }
      } else if (el.value) { blank = false; }
    });
    return blank;
  }

  function blankRow(group) {
    var tpl = group.querySelector(":scope > template[data-row-template]");
    if (!tpl) { return null; }
    var index = rowsOf(group).length;
    var html = tpl.innerHTML.split(tpl.getAttribute("data-placeholder")).join(String(index));
    var holder = document.createElement("template");
    holder.innerHTML = html;
    return holder.content.firstElementChild;
  }

  function setupGroup(group) {
    var label = group.getAttribute("data-item-label") || t("row");
    var rows = group.querySelector(":scope > .rows");
    // The spare empty row the server adds for editing without JavaScript is not needed
    // once there are rows to show (an empty group keeps one, ready to type into).
    var all = rowsOf(group);
    var spare = all.length > 1 ? all[all.length - 1] : null;
    if (spare && isBlank(spare) && !spare.querySelector(".error") && group.querySelector(":scope > template")) {
      spare.remove();
    }
    rowsOf(group).forEach(function (row) { decorateRow(group, row); });
    var add = document.createElement("button");
    add.type = "button";
    add.className = "add-row";
    add.textContent = t("Add %(label)s", { label: label.toLowerCase() });
    group.appendChild(add);
    add.addEventListener("click", function () {
      var row = blankRow(group);
      if (!row) { return; }
      rows.appendChild(row);
      decorateRow(group, row);
      row.querySelectorAll(".group").forEach(setupGroup);
      row.querySelectorAll("textarea").forEach(setupPreview);
      renumber(group);
      applyVisibility();
      var first = row.querySelector("input:not([type=hidden]), textarea, select");
      if (first) { first.focus(); }
      changed();
    });
    group.addEventListener("click", function (event) {
      var button = event.target.closest(".row-button");
      if (!button || button.closest(".group") !== group) { return; }
      var row = button.closest(".row");
      var action = button.getAttribute("data-action");
      var focusAfter = button;
      if (action === "remove") {
        var next = row.nextElementSibling || row.previousElementSibling;
        row.remove();
        focusAfter = next ? (next.querySelector(".row-button[data-action=remove]") || add) : add;
      } else if (action === "up" && row.previousElementSibling) {
        rows.insertBefore(row, row.previousElementSibling);
      } else if (action === "down" && row.nextElementSibling) {
        rows.insertBefore(row.nextElementSibling, row);
      }
      renumber(group);
      focusAfter.focus();
      changed();
    });
    renumber(group);
  }

  /* ------------------------------------------------- conditional fields */
  function currentValue(name) {
    var els = form.querySelectorAll('[name="' + name.replace(/"/g, '\\"') + '"]');
    if (!els.length) { return null; }
    var first = els[0];
    if (first.type === "checkbox") {
      var out = [];
      els.forEach(function (el) { if (el.checked) { out.push(el.value); } });
      return out;
    }
    if (first.type === "radio") {
      var picked = null;
      els.forEach(function (el) { if (el.checked && el.value !== "") { picked = el.value; } });
      return picked;
    }
    return first.value === "" ? null : first.value;
  }

  function holds(op, expected, actual) {
    if (actual === "yes") { actual = true; } else if (actual === "no") { actual = false; }
    var filled = actual !== null && actual !== "" && !(Array.isArray(actual) && !actual.length);
    if (op === "filled") { return filled === Boolean(expected); }
    if (op === "equals") {
      if (Array.isArray(actual)) { return actual.indexOf(expected) >= 0; }
      return actual === expected || (typeof expected === "number" && Number(actual) === expected);
    }
    if (op === "not_equals") { return filled && actual !== expected; }
    if (op === "in") { return expected.indexOf(actual) >= 0; }
    if (op === "lt" || op === "gt") {
      var n = Number(actual);
      if (!filled || isNaN(n)) { return false; }
      return op === "lt" ? n < expected : n > expected;
    }
    return true;
  }

  function applyVisibility() {
    form.querySelectorAll("[data-show-field]").forEach(function (el) {
      var name = el.getAttribute("data-prefix") + el.getAttribute("data-show-field");
      var expected = JSON.parse(el.getAttribute("data-show-value"));
      el.hidden = !holds(el.getAttribute("data-show-op"), expected, currentValue(name));
    });
  }

  /* --------------------------------------------------- Markdown preview */
  function setupPreview(textarea) {
    var wrap = textarea.closest(".field");
    var button = document.createElement("button");
    button.type = "button";
    button.className = "preview-toggle";
    button.textContent = t("Preview");
    button.setAttribute("aria-expanded", "false");
    var panel = document.createElement("div");
    panel.className = "md-preview";
    panel.hidden = true;
    panel.setAttribute("aria-live", "polite");
    wrap.appendChild(button);
    wrap.appendChild(panel);
    button.addEventListener("click", function () {
      if (!panel.hidden) {
        panel.hidden = true; textarea.hidden = false;
        button.textContent = t("Preview"); button.setAttribute("aria-expanded", "false");
        textarea.focus();
        return;
      }
      var body = new FormData();
      body.append("text", textarea.value);
      body.append("csrf_token", csrfToken());
      fetch(form.getAttribute("data-preview-url"), {
        method: "POST", body: body, credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken() }
      }).then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
        .then(function (data) {
          if (data.html) {
            panel.innerHTML = data.html;  // sanitised by the server
          } else {
            panel.innerHTML = "<p><em></em></p>";
            panel.querySelector("em").textContent = t("Nothing written yet.");
          }
          panel.hidden = false; textarea.hidden = true;
          button.textContent = t("Edit"); button.setAttribute("aria-expanded", "true");
        }).catch(function () { say(t("Preview is not available right now."), "warn"); });
    });
  }

  /* ------------------------------------------------------------ autosave */
  function formBody() {
    var data = new FormData(form);
    data.delete("action");
    return data;
  }

  function editorId() {
    var input = form.querySelector("input[name=editor_id]");
    return input ? input.value : null;
  }

  function stash() {
    try {
      var pairs = [];
      formBody().forEach(function (value, key) { pairs.push([key, value]); });
      sessionStorage.setItem(stashKey, JSON.stringify({ editor: editorId(), pairs: pairs }));
    } catch (e) { /* storage full or disabled: the server copy is all we have */ }
  }

  function autosave() {
    timer = null;
    if (inFlight) { again = true; return; }
    inFlight = true;
    say(t("Saving…"), "busy");
    fetch(form.getAttribute("data-autosave-url"), {
      method: "POST", body: formBody(), credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken(), "X-Requested-With": "fetch" }
    }).then(function (r) {
      if (r.status === 401 || r.redirected) { throw new Error("signed-out"); }
      return r.json().then(function (data) { return { status: r.status, data: data }; });
    }).then(function (res) {
      if (res.status === 200) {
        dirty = false;
        sessionStorage.removeItem(stashKey);
        // The time as the clinic's pages show it (its time zone), not this device's.
        var time = res.data.saved_at_shown ||
            new Date(res.data.saved_at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
        say(t(res.data.conflict ? "Autosaved %(time)s — the note was saved elsewhere; you will be asked which version to keep"
                                : "Autosaved %(time)s", { time: time }), "ok");
      } else if (res.status === 503) {
        stash();
        say(res.data.message || t("Not saved yet; retrying…"), "warn");
        schedule(10000);
      } else {
        say(res.data.message || t("Not saved."), "warn");
      }
    }).catch(function (err) {
      stash();
      if (err && err.message === "signed-out") {
        say(t("You were signed out. Your text is kept in this tab: sign in again and it will be restored."), "warn");
        showSignIn();
      } else {
        say(t("Not saved yet (connection problem). Your text is kept in this tab; retrying…"), "warn");
        schedule(10000);
      }
    }).then(function () {
      inFlight = false;
      if (again) { again = false; schedule(500); }
    });
  }

  function showSignIn() {
    if (document.getElementById("signin-again")) { return; }
    var link = document.createElement("a");
    link.id = "signin-again";
    link.className = "button primary";
    link.href = "/login?next=" + encodeURIComponent(location.pathname);
    link.textContent = t("Sign in again");
    stateEl.parentNode.appendChild(link);
  }

  function schedule(delay) {
    if (timer) { clearTimeout(timer); }
    timer = setTimeout(autosave, delay);
  }

  /* ------------------------------------- reference pickers, fed live */
  // A picker that refers to the rows of another group (the EMDR target worked on today,
  // the CBT hot thought) offers those rows as they are on the page: a new row or a
  // changed title shows at once, without saving first. A new row gets its stable id here
  // (the server keeps any id of the same form).
  function newItemId() {
    var bytes = new Uint8Array(4);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return ("0" + b.toString(16)).slice(-2); }).join("");
  }

  function itemsOf(group) {
    var label = group.getAttribute("data-item-label") || t("Item");
    var titleKey = group.getAttribute("data-item-title");
    var out = [];
    rowsOf(group).forEach(function (row, index) {
      var own = function (selector) {  // this row's own field, not a nested row's
        return Array.prototype.find.call(row.querySelectorAll(selector),
                                         function (el) { return el.closest(".row") === row; });
      };
      var idInput = own('[name$="-item_id"]');
      if (!idInput) { return; }
      var title = titleKey ? own('[name$="-' + titleKey + '"]') : null;
      var text = title ? title.value.trim() : "";
      if (!idInput.value && !text && isBlank(row)) { return; }  // an untouched spare row
      if (!idInput.value) { idInput.value = newItemId(); }
      out.push([idInput.value, text || label + " " + (index + 1)]);
    });
    return out;
  }

  function refreshRefs() {
    form.querySelectorAll("select[data-ref-group]").forEach(function (select) {
      var group = form.querySelector('fieldset.group[data-group="' + select.getAttribute("data-ref-group") + '"]');
      if (!group) { return; }
      var items = itemsOf(group);
      var now = Array.prototype.map.call(select.options, function (o) { return o.value + "\u0000" + o.text; }).slice(1);
      var wanted = items.map(function (i) { return i[0] + "\u0000" + i[1]; });
      if (now.join("\u0001") === wanted.join("\u0001")) { return; }
      var chosen = select.value;
      while (select.options.length > 1) { select.remove(1); }
      items.forEach(function (i) { select.add(new Option(i[1], i[0], false, i[0] === chosen)); });
      if (chosen && select.value !== chosen) { select.value = ""; }
    });
  }

  function changed() {
    refreshRefs();
    dirty = true;
    say(t("Unsaved changes"), "dirty");
    stash();
    schedule(AUTOSAVE_DELAY);
  }

  function flushNow() {
    if (!dirty) { return; }
    var body = formBody();
    if (navigator.sendBeacon) {
      navigator.sendBeacon(form.getAttribute("data-autosave-url"), body);
    }
    stash();
  }

  function restoreStash() {
    var kept = readStash(stashKey);
    if (!kept) { sessionStorage.removeItem(stashKey); return false; }
    if (kept.editor && kept.editor === form.getAttribute("data-saved-editor")) {
      sessionStorage.removeItem(stashKey);  // that save landed
      return false;
    }
    var body = new FormData();
    kept.pairs.forEach(function (p) { if (p[0] !== "csrf_token") { body.append(p[0], p[1]); } });
    body.append("csrf_token", csrfToken());
    say(t("Restoring the text you typed before signing in…"), "busy");
    fetch(form.getAttribute("data-autosave-url"), {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken() }
    }).then(function (r) {
      if (r.ok) { sessionStorage.removeItem(stashKey); location.reload(); }
      else { say(t("Could not restore the earlier text."), "warn"); }
    });
    return true;
  }

  /* ---------------------------------------------------------------- wire */
  form.querySelectorAll(".group").forEach(setupGroup);
  form.querySelectorAll("textarea").forEach(setupPreview);
  applyVisibility();
  if (document.querySelector(".form-errors") && !form.hasAttribute("data-no-autosave")) {
    // Sent back with problems: this page already holds everything typed (the stash is
    // the same text), so it is kept by autosave from here, without reloading the page
    // and losing the messages next to the fields.
    sessionStorage.removeItem(stashKey);
    dirty = true;
    say(t("Not saved yet"), "dirty");
    schedule(AUTOSAVE_DELAY);
  } else if (!form.hasAttribute("data-no-autosave") && !restoreStash()) {
    say(t(document.querySelector("[data-restored]") ? "Unsaved changes restored" : "All changes saved"), "ok");
  }
  form.addEventListener("input", function () { applyVisibility(); changed(); });
  form.addEventListener("change", function () { applyVisibility(); changed(); });
  form.addEventListener("focusout", function () { if (dirty) { schedule(200); } });
  // The save bar stays on screen; the field being typed in is never under it.
  var bar = form.querySelector(".sticky-actions");
  form.addEventListener("focusin", function (event) {
    if (!bar || bar.contains(event.target)) { return; }
    var shown = (event.target.closest("label") || event.target).getBoundingClientRect();
    var top = bar.getBoundingClientRect().top;
    if (shown.bottom > top) { window.scrollBy(0, shown.bottom - top + 16); }
  });
  // A form sent back with problems: the first problem gets the focus (and is read out).
  if (document.querySelector(".form-errors")) {
    var invalid = form.querySelector("[aria-invalid=true]");
    if (invalid) { invalid.focus(); }
  }
  form.addEventListener("submit", function () {
    // Keep this tab's copy until the next page confirms the save (an expired form or an
    // unreachable database must not cost the words).
    stash();
    dirty = false;
    if (timer) { clearTimeout(timer); }
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") { flushNow(); }
  });
  window.addEventListener("pagehide", flushNow);
})();
