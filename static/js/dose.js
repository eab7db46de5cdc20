/* The dosing record's dose in both units (mg and mg/kg), kept up to date while typing.
   The server writes the same line on the page; this only follows the fields. */
(function () {
  "use strict";
  var out = document.querySelector("[data-dose-both]");
  if (!out) { return; }
  var hint = out.getAttribute("data-hint");
  /* The same sentences the server writes (kaptools/dosing.py), in the clinic's words. */
  var t = window.kaptoolsWords.t;

  function number(id) {
    var el = document.getElementById(id);
    var text = el ? el.value.trim().replace(",", ".") : "";
    return text ? Number(text) : NaN;
  }
  function fmt(value, places) { return String(Number(value.toFixed(places))); }

  function update() {
    var dose = number("dose");
    var weight = number("body_weight_kg");
    var unit = document.querySelector('input[name="dose_unit"]:checked');
    unit = unit ? unit.value : "";
    if (!isFinite(dose) || !isFinite(weight) || weight <= 0 || !unit) {
      out.textContent = hint;
    } else if (unit === "mg") {
      out.textContent = t("%(dose)s mg = %(per_kg)s mg/kg at %(weight)s kg",
        { dose: fmt(dose, 2), per_kg: fmt(dose / weight, 2), weight: fmt(weight, 1) });
    } else {
      out.textContent = t("%(per_kg)s mg/kg = %(dose)s mg at %(weight)s kg",
        { per_kg: fmt(dose, 2), dose: fmt(dose * weight, 1), weight: fmt(weight, 1) });
    }
  }
  document.addEventListener("input", update);
  document.addEventListener("change", update);
})();
