// The dashboard's charts, each drawn from the JSON its table's own numbers were written to
// (Django's json_script): no inline script and no style element, so the strict CSP holds.
// Chart.js sizes its canvas through the CSSOM (element.style), which the CSP does not govern.
// The tables beside the charts are the accessible version; a chart is a picture of its table.
(function () {
  "use strict";

  // Okabe and Ito's palette: told apart with the common colour-vision deficiencies.
  var COLOURS = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442"];
  // The same colours where a set's colour means something (reporting.dashboard.Chart.tones).
  var TONES = { danger: "#D55E00", warning: "#E69F00", ok: "#009E73", neutral: "#767676" };
  var ROW_REM = 1.6; // a horizontal bar's height, so that a long table's chart stays legible

  function colouring(tones) {
    return function (set, index) {
      var colour = TONES[tones[index]] || COLOURS[index % COLOURS.length];
      return Object.assign({}, set, { backgroundColor: colour, borderColor: colour });
    };
  }

  function draw(canvas) {
    var source = document.getElementById(canvas.getAttribute("data-chart"));
    if (!source) {
      return;
    }
    var spec = JSON.parse(source.textContent);
    if (spec.horizontal) {
      canvas.parentElement.style.height = Math.max(12, spec.labels.length * ROW_REM + 4) + "rem";
    }
    var axis = function () {
      return { stacked: spec.stacked, beginAtZero: true, ticks: { precision: 0 } }; // counts: whole numbers
    };
    new window.Chart(canvas, {
      type: spec.kind,
      data: { labels: spec.labels, datasets: spec.datasets.map(colouring(spec.tones)) },
      options: {
        indexAxis: spec.horizontal ? "y" : "x",
        maintainAspectRatio: false,
        animation: false,
        plugins: { legend: { display: spec.datasets.length > 1 } },
        scales: { x: axis(), y: axis() },
      },
    });
  }

  document.querySelectorAll("canvas[data-chart]").forEach(draw);
})();
