// Keyboard shortcuts of the workspace: j / k move through the cases of a table, Enter opens the
// current one, a assigns it (or, on a case page, the case) to oneself, ? shows the shortcuts.
// Every shortcut does what a link or a button of the page does: without JavaScript nothing is lost.
(function () {
  "use strict";
  var rows = Array.prototype.slice.call(document.querySelectorAll("tr[data-case-row]"));
  var help = document.getElementById("keyboard-help");
  var current = -1;

  function typing(target) {
    return target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT|BUTTON)$/.test(target.tagName));
  }

  function select(index) {
    if (!rows.length) { return; }
    current = Math.max(0, Math.min(rows.length - 1, index));
    rows.forEach(function (row, i) { row.classList.toggle("current", i === current); });
    var link = rows[current].querySelector("a[data-case-link]");
    if (link) { link.focus(); }
  }

  function assign() {
    var form = current >= 0 ? rows[current].querySelector("form[data-take-form]") : null;
    var button = form ? form.querySelector("button") : document.getElementById("assign-to-me");
    if (button) { button.click(); }
  }

  function toggleHelp() {
    if (!help) { return; }
    help.hidden = !help.hidden;
    if (!help.hidden) { help.focus(); }
  }

  rows.forEach(function (row, i) {
    row.addEventListener("focusin", function () { current = i; rows.forEach(function (r, j) { r.classList.toggle("current", j === i); }); });
  });

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) { return; }
    switch (event.key) {
      case "j": select(current + 1); break;
      case "k": select(current < 0 ? 0 : current - 1); break;
      case "Enter":
        if (current >= 0 && document.activeElement === document.body) {
          var link = rows[current].querySelector("a[data-case-link]");
          if (link) { link.click(); }
        }
        return;
      case "a": assign(); break;
      case "?": toggleHelp(); break;
      case "Escape": if (help && !help.hidden) { help.hidden = true; } return;
      default: return;
    }
    event.preventDefault();
  });
}());
