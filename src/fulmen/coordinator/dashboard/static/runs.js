// The runs workspace's pages (issue 17), on top of dashboard.js:
//
//   #manual-run   run by hand: the input's JSON checked as it is typed (the parse error
//                 shown, sending refused while it does not parse or is not an object); the
//                 written or earlier input, whichever is chosen, is the one sent
//   #bulk         the runs list's selection: select all, and how many are selected
"use strict";

(function () {
  function manual(form) {
    const text = form.querySelector("#input");
    const note = document.getElementById("json-status");
    const radios = form.querySelectorAll("input[name=source]");

    function chosen() {
      const checked = form.querySelector("input[name=source]:checked");
      return checked ? checked.value : "written";
    }

    // Only the chosen input's fields are sent (a disabled field is not).
    function show() {
      for (const part of form.querySelectorAll("[data-source]")) {
        const on = part.dataset.source === chosen();
        part.hidden = !on;
        for (const field of part.querySelectorAll("textarea, select")) field.disabled = !on;
      }
      check();
    }

    // The parse error as the browser's JSON parser words it, or null when it is usable.
    function problem() {
      if (chosen() !== "written") {
        return form.querySelector("#dataclip").value ? null : "Choose an earlier input.";
      }
      let value;
      try {
        value = JSON.parse(text.value || "{}");
      } catch (error) {
        return "Not JSON: " + error.message;
      }
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        return "The input must be a JSON object ({…}).";
      }
      return null;
    }

    function check() {
      const found = problem();
      note.textContent = found || (chosen() === "written" ? "Valid JSON." : "");
      note.classList.toggle("bad-text", Boolean(found));
      text.setAttribute("aria-invalid", found && chosen() === "written" ? "true" : "false");
      return found;
    }

    text.addEventListener("input", check);
    form.querySelector("#dataclip").addEventListener("change", check);
    for (const radio of radios) radio.addEventListener("change", show);
    form.addEventListener("submit", (event) => {
      if (check()) {
        event.preventDefault();
        (chosen() === "written" ? text : form.querySelector("#dataclip")).focus();
      }
    });
    show();
  }

  function bulk(form) {
    const all = document.getElementById("select-all");
    const count = document.getElementById("bulk-count");
    const button = form.querySelector("button[type=submit]");
    const boxes = () => Array.from(document.querySelectorAll("input[form=bulk][name=work_order_id]"));

    function counted() {
      const picked = boxes().filter((box) => box.checked).length;
      count.textContent = picked ? picked + " selected" : "None selected";
      button.disabled = picked === 0;
      all.checked = picked > 0 && picked === boxes().length;
    }

    all.addEventListener("change", () => {
      for (const box of boxes()) box.checked = all.checked;
      counted();
    });
    document.addEventListener("change", (event) => {
      if (event.target.matches("input[form=bulk]")) counted();
    });
    // The live list replaces its rows; dashboard.js keeps the ticks, this keeps the count.
    document.getElementById("run-rows").addEventListener("fulmen:swapped", counted);
    counted();
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.getElementById("manual-run");
    if (form) manual(form);
    const picks = document.getElementById("bulk");
    if (picks) bulk(picks);
  });
})();
