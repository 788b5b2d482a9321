/* canary report: a run's figures under the pointer (or a tap), on the charts and the case grid.
   The page reads fully without it; it only adds the tooltips. Text goes in with textContent. */
(function () {
  "use strict";

  function fill(box, rows) {
    box.textContent = "";
    rows.forEach(function (text, k) {
      var line = document.createElement(k ? "div" : "b");
      line.textContent = text;
      box.appendChild(line);
    });
  }

  function index(ev, box, n) {
    var r = box.getBoundingClientRect();
    return Math.floor((ev.clientX - r.left) / r.width * n);
  }

  document.querySelectorAll(".chart[data-tips]").forEach(function (chart) {
    var tips = JSON.parse(chart.getAttribute("data-tips")), n = tips.length;
    var plot = chart.querySelector(".plot"), tip = plot.querySelector(".tip"), cursor = plot.querySelector(".cursor");
    if (!n) return;
    function hide() { tip.hidden = true; cursor.hidden = true; }
    function show(ev) {
      var i = index(ev, plot, n);
      if (i < 0 || i >= n) { hide(); return; }
      var x = (i + 0.5) / n * 100;
      fill(tip, tips[i]);
      cursor.style.left = x + "%";
      if (x > 55) { tip.style.left = "auto"; tip.style.right = (100 - x) + "%"; }
      else { tip.style.right = "auto"; tip.style.left = x + "%"; }
      cursor.hidden = false;
      tip.hidden = false;
    }
    plot.addEventListener("pointermove", show);
    plot.addEventListener("pointerdown", show);
    plot.addEventListener("pointerleave", hide);
  });

  var floating = document.createElement("div");
  floating.className = "ftip";
  floating.hidden = true;
  document.body.appendChild(floating);

  document.querySelectorAll(".grid[data-slots]").forEach(function (grid) {
    var slots = grid.getAttribute("data-slots").split(",");
    grid.querySelectorAll("svg.cells").forEach(function (strip) {
      var cells = strip.getAttribute("data-cells").split(","), n = cells.length;
      strip.addEventListener("pointermove", function (ev) {
        var i = index(ev, strip, n);
        if (i < 0 || i >= n) { floating.hidden = true; return; }
        var parts = cells[i].split("/");
        fill(floating, [slots[i] || "", cells[i] === "" ? "not run" :
          parts[1] === "0" ? "only API errors" : parts[0] + " of " + parts[1] + " samples passed"]);
        floating.style.left = Math.max(4, Math.min(ev.clientX + 12, window.innerWidth - 170)) + "px";
        floating.style.top = (ev.clientY + 16) + "px";
        floating.hidden = false;
      });
      strip.addEventListener("pointerleave", function () { floating.hidden = true; });
    });
  });

  document.documentElement.setAttribute("data-js", "ready");
})();
