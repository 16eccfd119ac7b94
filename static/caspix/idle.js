/* Warn before the idle timeout signs the user out, and offer to stay signed in.
   The server decides: this only warns, and reloads once the time is up so that the sign-in page
   shows instead of a stale one. */
(function () {
  "use strict";
  var body = document.body;
  var idle = parseInt(body.dataset.idleSeconds || "0", 10);
  var banner = document.getElementById("idle-warning");
  if (!idle || !banner) {
    return;
  }
  var warning = parseInt(body.dataset.idleWarning || "120", 10);
  var button = banner.querySelector("button");
  var token = JSON.parse(body.getAttribute("hx-headers") || "{}")["X-CSRFToken"];
  var warnTimer = null;
  var endTimer = null;

  function schedule() {
    window.clearTimeout(warnTimer);
    window.clearTimeout(endTimer);
    banner.hidden = true;
    warnTimer = window.setTimeout(function () {
      banner.hidden = false;
      button.focus();
    }, Math.max(0, idle - warning) * 1000);
    endTimer = window.setTimeout(function () {
      window.location.reload();
    }, (idle + 1) * 1000);
  }

  button.addEventListener("click", function () {
    window.fetch(body.dataset.keepalive, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": token }
    }).then(function (response) {
      if (response.ok) {
        schedule();
      } else {
        window.location.reload();
      }
    });
  });
  document.addEventListener("htmx:afterRequest", schedule);
  schedule();
})();
