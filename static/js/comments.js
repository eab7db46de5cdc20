/* A supervisor's comment goes in without reloading the review page. A form marked
   data-inline-comment is sent with fetch, asking for JSON; the comment appears under its
   field, the text box empties, and a polite live region says so. A refused comment keeps
   its text, with the reason next to the box. Anything unexpected (signed out, a network
   error, an answer that is not JSON) falls back to sending the form the plain way, which
   is also what happens without JavaScript. */
(function () {
  "use strict";
  var status = null;

  function announce(text) {
    if (!status) {
      status = document.createElement("p");
      status.className = "visually-hidden";
      status.setAttribute("role", "status");
      status.setAttribute("aria-live", "polite");
      document.body.appendChild(status);
    }
    status.textContent = "";
    window.setTimeout(function () { status.textContent = text; }, 50);
  }

  function showError(form, box, message) {
    var id = box.id + "-error";
    var shown = document.getElementById(id);
    if (!shown) {
      shown = document.createElement("p");
      shown.className = "error";
      shown.id = id;
      box.insertAdjacentElement("afterend", shown);
    }
    shown.textContent = message;
    box.setAttribute("aria-invalid", "true");
    box.setAttribute("aria-describedby", id);
    box.closest(".field").classList.add("has-error");
    box.focus();
  }

  function clearError(box) {
    var shown = document.getElementById(box.id + "-error");
    if (shown) { shown.remove(); }
    box.removeAttribute("aria-invalid");
    box.removeAttribute("aria-describedby");
    box.closest(".field").classList.remove("has-error");
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches || !form.matches("form[data-inline-comment]") || !window.fetch) {
      return;
    }
    event.preventDefault();
    var box = form.querySelector("textarea");
    var button = form.querySelector("button[type=submit]");
    var data = new FormData(form);
    button.disabled = true;
    fetch(form.action, {method: "POST", body: data, credentials: "same-origin",
                        headers: {"Accept": "application/json"}})
      .then(function (response) {
        var type = response.headers.get("Content-Type") || "";
        if (type.indexOf("application/json") === -1) { throw new Error("not JSON"); }
        return response.json();
      })
      .then(function (reply) {  // the second function below handles only a failed fetch
        button.disabled = false;
        if (!reply.ok) { showError(form, box, reply.message); return; }
        var key = data.get("field_key") || "";
        var thread = document.querySelector('[data-comments-for="' + CSS.escape(key) + '"]');
        if (!thread) { window.location.reload(); return; }
        thread.insertAdjacentHTML("beforeend", reply.html);
        thread.hidden = false;
        box.value = "";
        clearError(box);
        announce(reply.message);
        var details = form.closest("details");
        if (details) {
          details.open = false;
          details.querySelector("summary").focus();
        } else {
          box.focus();
        }
      }, function () {
        button.disabled = false;
        form.submit();  // the plain way: the server answers with a page
      });
  });
})();
