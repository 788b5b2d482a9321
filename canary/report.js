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

  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  var DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
  var CONFIRMED = 1, JUDGED = 2, BREACH = 4, OK = 8, IN_ALERT = 16;  // report_charts.point_data

  function two(n) { return (n < 10 ? "0" : "") + n; }
  function when(minutes) {
    var d = new Date(minutes * 60000);
    return DAYS[d.getUTCDay()] + " " + d.getUTCDate() + " " + MONTHS[d.getUTCMonth()] + " " + d.getUTCFullYear() +
      ", " + two(d.getUTCHours()) + ":" + two(d.getUTCMinutes()) + " UTC";
  }
  function pct(x) { return (100 * x).toFixed(1) + "%"; }
  var UNITS = {
    tokens: function (v) { return (v >= 100 ? Math.round(v).toLocaleString("en-US") : String(Number(v.toPrecision(3)))) + " tokens"; },
    ms: function (v) { return v >= 1000 ? (v / 1000).toFixed(2) + " s" : Math.round(v) + " ms"; },
    usd: function (v) { return "$" + (v >= 1 ? v.toFixed(2) : v >= 0.001 ? v.toFixed(4) : v.toPrecision(2)); },
    tv: function (v) { return v.toFixed(3) + " (total variation)"; }
  };

  // one run of the pass-rate chart: [passed, answered, errors, mean, floor, flags]
  function runLines(t, p) {
    var passed = p[0], answered = p[1], errors = p[2], mean = p[3], floor = p[4], f = p[5];
    var lines = [when(t) + (f & CONFIRMED ? " · with its confirmation run" : "")];
    if (answered) lines.push(pct(passed / answered) + " passed (" + passed + " of " + answered + " answered)");
    if (errors) lines.push(errors + " of " + (answered + errors) + " samples errored (API)" +
                           (f & JUDGED ? "" : ": no quality verdict"));
    if (mean !== null) lines.push("mean " + pct(mean) + ", floor " + pct(floor) + ": " +
                                  (f & BREACH ? "below the floor" : f & OK ? "inside the band" : "no verdict"));
    else if (f & JUDGED) lines.push("baseline still forming");
    if (f & IN_ALERT && !(f & BREACH)) lines.push("made while an alert was open");
    return lines;
  }

  document.querySelectorAll(".chart[data-points], .chart[data-values]").forEach(function (chart) {
    var times = JSON.parse(chart.closest(".series").getAttribute("data-t"));
    var points = chart.hasAttribute("data-points") ? JSON.parse(chart.getAttribute("data-points")) : null;
    var values = points ? null : JSON.parse(chart.getAttribute("data-values"));
    var unit = UNITS[chart.getAttribute("data-unit")];
    var n = times.length, plot = chart.querySelector(".plot");
    var tip = plot.querySelector(".tip"), cursor = plot.querySelector(".cursor");
    if (!n) return;
    function hide() { tip.hidden = true; cursor.hidden = true; }
    function show(ev) {
      var i = index(ev, plot, n);
      if (i < 0 || i >= n) { hide(); return; }
      var x = (i + 0.5) / n * 100;
      fill(tip, points ? runLines(times[i], points[i]) :
        [when(times[i]), values[i] === null ? "no figure" : unit(values[i])]);
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
