/* Irreversible actions ask first. A submit button carrying data-confirm="what happens"
   (and data-confirm-title, data-confirm-action) opens a dialog that says what will be
   locked and how a mistake is corrected; only the dialog's own button sends the form.
   Cancel (the default, and Escape) sends nothing and returns focus to the button.
   Without JavaScript the button sends the form as before. */
(function () {
  "use strict";
  var dialog = null;
  var pending = null;
  var t = window.kaptoolsWords.t;  /* the clinic's words (static/js/words.js) */

  function build() {
    dialog = document.createElement("dialog");
    dialog.className = "confirm-dialog";
    dialog.setAttribute("aria-labelledby", "confirm-title");
    dialog.setAttribute("aria-describedby", "confirm-text");
    dialog.innerHTML = '<h2 id="confirm-title"></h2><p id="confirm-text"></p>' +
      '<div class="actions"><button type="button" class="primary" data-confirm-yes></button>' +
      '<button type="button" data-confirm-no></button></div>';
    dialog.querySelector("[data-confirm-no]").textContent = t("Cancel");
    document.body.appendChild(dialog);
    dialog.querySelector("[data-confirm-no]").addEventListener("click", function () {
      dialog.close("cancel");
    });
    dialog.querySelector("[data-confirm-yes]").addEventListener("click", function () {
      dialog.close("yes");
    });
    dialog.addEventListener("close", function () {
      var asked = pending;
      pending = null;
      if (!asked) { return; }
      if (dialog.returnValue === "yes") {
        asked.button.setAttribute("data-confirmed", "1");
        asked.form.requestSubmit(asked.button);
      } else {
        asked.button.focus();
      }
    });
  }

  document.addEventListener("submit", function (event) {
    var button = event.submitter;
    if (!button || !button.hasAttribute("data-confirm")) { return; }
    if (button.getAttribute("data-confirmed") === "1") {
      button.removeAttribute("data-confirmed");
      return;
    }
    // Nothing else hears of a submission that has not been confirmed.
    event.preventDefault();
    event.stopImmediatePropagation();
    if (!dialog) { build(); }
    var label = button.textContent.trim();
    pending = { form: event.target, button: button };
    dialog.querySelector("#confirm-title").textContent =
      button.getAttribute("data-confirm-title") || t("%(action)s?", { action: label });
    dialog.querySelector("#confirm-text").textContent = button.getAttribute("data-confirm");
    dialog.querySelector("[data-confirm-yes]").textContent =
      button.getAttribute("data-confirm-action") || label;
    dialog.returnValue = "";
    dialog.showModal();
    dialog.querySelector("[data-confirm-no]").focus();
  }, true);
})();
