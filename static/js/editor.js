/* kaptools note editor: rows, conditional fields, Markdown preview and autosave.
   Everything here is an enhancement: the editor works as a plain form without it. */
(function () {
  "use strict";
  document.documentElement.classList.add("js");
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
  function escapeRe(text) { return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"); }

  function renumber(group) {
    var prefix = group.id + "-";
    var rows = group.querySelectorAll(":scope > .rows > .row");
    rows.forEach(function (row, index) {
      var pattern = new RegExp("^" + escapeRe(prefix) + "\\d+-");
      var replacement = prefix + index + "-";
      row.querySelectorAll("[name],[id],[for],[aria-describedby],[list],[data-prefix]").forEach(function (el) {
        ["name", "id", "for", "list", "data-prefix"].forEach(function (attr) {
          var value = el.getAttribute(attr);
          if (value && pattern.test(value)) { el.setAttribute(attr, value.replace(pattern, replacement)); }
        });
        var described = el.getAttribute("aria-describedby");
        if (described) {
          el.setAttribute("aria-describedby", described.split(" ").map(function (id) {
            return id.replace(pattern, replacement);
          }).join(" "));
        }
      });
      row.querySelectorAll(".group").forEach(function (inner) {
        if (pattern.test(inner.id)) { inner.id = inner.id.replace(pattern, replacement); }
      });
      var title = row.querySelector(":scope > .row-head > .row-title");
      if (title) { title.textContent = group.getAttribute("data-item-label") + " " + (index + 1); }
    });
    var max = parseInt(group.getAttribute("data-max") || "50", 10);
    var add = group.querySelector(":scope > .add-row");
    if (add) { add.disabled = rows.length >= max; }
  }

  function clearRow(row) {
    row.querySelectorAll("input, textarea, select").forEach(function (el) {
      if (el.type === "radio" || el.type === "checkbox") {
        el.checked = el.value === "" && el.type === "radio";
      } else if (el.tagName === "SELECT") {
        el.selectedIndex = 0;
      } else {
        el.value = "";
      }
    });
    row.querySelectorAll(".error").forEach(function (el) { el.remove(); });
    row.querySelectorAll(".has-error").forEach(function (el) { el.classList.remove("has-error"); });
    // Nested groups start with a single blank row.
    row.querySelectorAll(".group").forEach(function (inner) {
      var innerRows = inner.querySelectorAll(":scope > .rows > .row");
      for (var i = 1; i < innerRows.length; i++) { innerRows[i].remove(); }
    });
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
    tools.appendChild(rowButton("↑", "up", "Move " + label + " up"));
    tools.appendChild(rowButton("↓", "down", "Move " + label + " down"));
    tools.appendChild(rowButton("Remove", "remove", "Remove this " + label.toLowerCase()));
  }

  function isBlank(row) {
    var blank = true;
    row.querySelectorAll("input, textarea, select").forEach(function (el) {
      if (el.name && /-item_id$/.test(el.name)) { if (el.value) { blank = false; } return; }
      if (el.type === "radio" || el.type === "checkbox") {
        if (el.checked && el.value !== "") { blank = false; }
      } else if (el.tagName === "SELECT") {
        if (el.value) { blank = false; }
      } else if (el.type !== "hidden" && el.value) { blank = false; }
    });
    return blank;
  }

  function setupGroup(group) {
    var label = group.getAttribute("data-item-label") || "row";
    var rows = group.querySelector(":scope > .rows");
    // The spare empty row the server adds for editing without JavaScript becomes the
    // pattern for new rows once there are real rows to show.
    var all = rows.querySelectorAll(":scope > .row");
    var spare = all.length > 1 ? all[all.length - 1] : null;
    var hasErrors = spare && spare.querySelector(".error");
    if (spare && isBlank(spare) && !hasErrors) {
      group.pattern = spare;
      spare.remove();
    }
    rows.querySelectorAll(":scope > .row").forEach(function (row) { decorateRow(group, row); });
    var add = document.createElement("button");
    add.type = "button";
    add.className = "add-row";
    add.textContent = "Add " + label.toLowerCase();
    group.appendChild(add);
    add.addEventListener("click", function () {
      var last = rows.querySelector(":scope > .row:last-child") || group.pattern;
      if (!last) { return; }
      var copy = last.cloneNode(true);
      clearRow(copy);
      copy.querySelectorAll("[data-row-tools]").forEach(function (t) { t.innerHTML = ""; });
      rows.appendChild(copy);
      decorateRow(group, copy);
      copy.querySelectorAll(".group").forEach(function (inner) {
        inner.querySelectorAll(":scope > .add-row").forEach(function (b) { b.remove(); });
        setupGroup(inner);
      });
      renumber(group);
      applyVisibility();
      var first = copy.querySelector("input:not([type=hidden]), textarea, select");
      if (first) { first.focus(); }
      changed();
    });
    group.addEventListener("click", function (event) {
      var button = event.target.closest(".row-button");
      if (!button || button.closest(".group") !== group) { return; }
      var row = button.closest(".row");
      var action = button.getAttribute("data-action");
      if (action === "remove") {
        if (rows.querySelectorAll(":scope > .row").length === 1) {
          group.pattern = group.pattern || row.cloneNode(true);
          clearRow(row);
        } else { row.remove(); }
      } else if (action === "up" && row.previousElementSibling) {
        rows.insertBefore(row, row.previousElementSibling);
      } else if (action === "down" && row.nextElementSibling) {
        rows.insertBefore(row.nextElementSibling, row);
      }
      renumber(group);
      button.focus();
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
    button.textContent = "Preview";
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
        button.textContent = "Preview"; button.setAttribute("aria-expanded", "false");
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
          panel.innerHTML = data.html || "<p><em>Nothing written yet.</em></p>"; // sanitised by the server
          panel.hidden = false; textarea.hidden = true;
          button.textContent = "Edit"; button.setAttribute("aria-expanded", "true");
        }).catch(function () { say("Preview is not available right now.", "warn"); });
    });
  }

  /* ------------------------------------------------------------ autosave */
  function formBody() {
    var data = new FormData(form);
    data.delete("action");
    return data;
  }

  function stash() {
    try {
      var pairs = [];
      formBody().forEach(function (value, key) { pairs.push([key, value]); });
      sessionStorage.setItem(stashKey, JSON.stringify(pairs));
    } catch (e) { /* storage full or disabled: the server copy is all we have */ }
  }

  function autosave() {
    timer = null;
    if (inFlight) { again = true; return; }
    inFlight = true;
    say("Saving…", "busy");
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
        var when = new Date(res.data.saved_at);
        say("Autosaved " + when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) +
            (res.data.conflict ? " — the note was saved elsewhere; you will be asked which version to keep" : ""), "ok");
      } else if (res.status === 503) {
        stash();
        say(res.data.message || "Not saved yet; retrying…", "warn");
        schedule(10000);
      } else {
        say(res.data.message || "Not saved.", "warn");
      }
    }).catch(function (err) {
      stash();
      if (err && err.message === "signed-out") {
        say("You were signed out. Your text is kept in this tab: sign in again and it will be restored.", "warn");
        showSignIn();
      } else {
        say("Not saved yet (connection problem). Your text is kept in this tab; retrying…", "warn");
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
    link.textContent = "Sign in again";
    stateEl.parentNode.appendChild(link);
  }

  function schedule(delay) {
    if (timer) { clearTimeout(timer); }
    timer = setTimeout(autosave, delay);
  }

  function changed() {
    dirty = true;
    say("Unsaved changes", "dirty");
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
    var raw = sessionStorage.getItem(stashKey);
    if (!raw) { return false; }
    var pairs;
    try { pairs = JSON.parse(raw); } catch (e) { sessionStorage.removeItem(stashKey); return false; }
    var body = new FormData();
    pairs.forEach(function (p) { if (p[0] !== "csrf_token") { body.append(p[0], p[1]); } });
    body.append("csrf_token", csrfToken());
    say("Restoring the text you typed before signing in…", "busy");
    fetch(form.getAttribute("data-autosave-url"), {
      method: "POST", body: body, credentials: "same-origin",
      headers: { "X-CSRFToken": csrfToken() }
    }).then(function (r) {
      if (r.ok) { sessionStorage.removeItem(stashKey); location.reload(); }
      else { say("Could not restore the earlier text.", "warn"); }
    });
    return true;
  }

  /* ---------------------------------------------------------------- wire */
  form.querySelectorAll(".group").forEach(setupGroup);
  form.querySelectorAll("textarea").forEach(setupPreview);
  applyVisibility();
  if (!form.hasAttribute("data-no-autosave") && !restoreStash()) {
    say(document.querySelector("[data-restored]") ? "Unsaved changes restored" : "All changes saved", "ok");
  }
  form.addEventListener("input", function () { applyVisibility(); changed(); });
  form.addEventListener("change", function () { applyVisibility(); changed(); });
  form.addEventListener("focusout", function () { if (dirty) { schedule(200); } });
  form.addEventListener("submit", function () {
    dirty = false;
    if (timer) { clearTimeout(timer); }
    sessionStorage.removeItem(stashKey);
  });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") { flushNow(); }
  });
  window.addEventListener("pagehide", flushNow);
})();
