/* kaptools: follow a PDF being rendered and open it when it is ready. The page also
   refreshes itself every two seconds, so it works without this script. */
(function () {
  "use strict";
  var box = document.querySelector("[data-render-status]");
  if (!box) { return; }
  var bar = box.querySelector("progress");
  var stage = box.querySelector("[data-render-stage]");
  if (!bar) { return; }
  function poll() {
    fetch(box.getAttribute("data-status-url"), { credentials: "same-origin",
                                                 headers: { "Accept": "application/json" } })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (data) {
        bar.value = data.progress;
        bar.textContent = data.progress + " %";
        if (stage && data.stage) { stage.textContent = data.stage; }
        if (data.status === "done" && data.pdf) { location.replace(data.pdf); return; }
        if (data.status === "failed") { location.reload(); return; }
        setTimeout(poll, 700);
      }).catch(function () { setTimeout(poll, 2000); });
  }
  setTimeout(poll, 400);
})();
