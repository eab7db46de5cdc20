/* The words page scripts write, in the clinic's language: base.html hands them over in
   #kt-words (English → translation, only what differs). kaptoolsWords.t("Add %(label)s",
   { label: "row" }) looks a message up and fills in its %(name)s places. Loaded before
   the scripts that use it (deferred scripts run in document order). */
(function () {
  "use strict";
  var words = {};
  try { words = JSON.parse(document.getElementById("kt-words").textContent); } catch (e) { /* English */ }
  window.kaptoolsWords = {
    t: function (text, values) {
      return (words[text] || text).replace(/%\((\w+)\)s/g, function (whole, name) {
        return values && Object.prototype.hasOwnProperty.call(values, name) ? values[name] : whole;
      });
    }
  };
})();
