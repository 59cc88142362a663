/* Keyboard triage for the CSM workspace's CTA lists. No framework, no build step: every action it
   offers is also a plain form on the page, so nothing depends on it.

   j / k      next / previous CTA (the row gets a visible cursor, its title link the focus)
   o, Enter   open the CTA
   x          select or unselect it (the bulk bar acts on the selected CTAs)
   d          done: focus the outcome choice of the bulk bar (selects the current CTA if none is)
   s          snooze: focus the date of the bulk bar (same)
   /          focus the filters
   Esc        back to the list
   ?          show the keyboard help
*/
(function () {
  "use strict";

  var rows = Array.prototype.slice.call(document.querySelectorAll("table.ctas tbody tr[data-cta]"));
  var cursor = -1;

  function typing(target) {
    var tag = target && target.tagName;
    return tag === "INPUT" || tag === "SELECT" || tag === "TEXTAREA" || (target && target.isContentEditable);
  }

  function move(to) {
    if (!rows.length) { return; }
    if (cursor >= 0) { rows[cursor].classList.remove("cursor"); }
    cursor = Math.max(0, Math.min(rows.length - 1, to));
    var row = rows[cursor];
    row.classList.add("cursor");
    var link = row.querySelector("a.open");
    if (link) { link.focus(); }
    row.scrollIntoView({ block: "nearest" });
  }

  function current() {
    return cursor >= 0 ? rows[cursor] : null;
  }

  function box(row) {
    return row ? row.querySelector("input[type=checkbox][name=ids]") : null;
  }

  function selected() {
    return rows.filter(function (row) { var b = box(row); return b && b.checked; });
  }

  function selectCurrentIfNone() {
    if (!selected().length && current() && box(current())) { box(current()).checked = true; }
    narrowOutcomes();
  }

  /* The outcome choice offers only the outcomes every selected CTA may close with. */
  function narrowOutcomes() {
    var select = document.getElementById("b-outcome");
    if (!select) { return; }
    var chosen = selected();
    var allowed = null;
    chosen.forEach(function (row) {
      var mine = (row.getAttribute("data-outcomes") || "").split(" ").filter(Boolean);
      allowed = allowed === null ? mine : allowed.filter(function (o) { return mine.indexOf(o) >= 0; });
    });
    Array.prototype.forEach.call(select.options, function (option) {
      if (!option.value) { return; }
      option.disabled = allowed !== null && allowed.indexOf(option.value) < 0;
      option.hidden = option.disabled;
      if (option.disabled && option.selected) { select.value = ""; }
    });
  }

  rows.forEach(function (row, index) {
    row.addEventListener("focusin", function () {
      if (cursor >= 0 && cursor !== index) { rows[cursor].classList.remove("cursor"); }
      cursor = index;
      row.classList.add("cursor");
    });
    var b = box(row);
    if (b) { b.addEventListener("change", narrowOutcomes); }
  });

  function help() {
    var keys = document.getElementById("keys");
    if (!keys) { return; }
    keys.classList.add("open");
    keys.focus();
    keys.scrollIntoView({ block: "nearest" });
  }

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (event.key === "Escape") {
      if (typing(event.target)) { event.target.blur(); }
      move(cursor < 0 ? 0 : cursor);
      return;
    }
    if (typing(event.target)) { return; }
    var row = current();
    switch (event.key) {
      case "j": move(cursor + 1); break;
      case "k": move(cursor < 0 ? 0 : cursor - 1); break;
      case "o":
        if (row) { window.location.href = row.querySelector("a.open").getAttribute("href"); }
        break;
      case "Enter":
        if (row && event.target === document.body) {
          window.location.href = row.querySelector("a.open").getAttribute("href");
        } else { return; }
        break;
      case "x":
        if (!row) { move(0); row = current(); }
        if (box(row)) { box(row).checked = !box(row).checked; narrowOutcomes(); }
        break;
      case "d":
        if (!document.getElementById("b-outcome")) { return; }
        selectCurrentIfNone();
        document.getElementById("b-outcome").focus();
        break;
      case "s":
        if (!document.getElementById("b-until")) { return; }
        selectCurrentIfNone();
        document.getElementById("b-until").focus();
        break;
      case "/": {
        var filter = document.getElementById("f-status");
        if (!filter) { return; }
        filter.focus();
        break;
      }
      case "?": help(); break;
      default: return;
    }
    event.preventDefault();
  });
})();
