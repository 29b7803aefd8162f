// The dashboard's own script: one event stream per tab, the live log, charts, "copy as curl".
(function () {
  var d = document, b = d.body, es = null, live = d.getElementById("live");
  var logview = d.getElementById("logview"), follow = d.getElementById("follow");
  var offset = +b.dataset.offset || 0, logDone = false, chart = null, points = [[], [], [], []];
  function changed() { b.dispatchEvent(new CustomEvent("changed")); }
  function state(text) { if (live) live.textContent = text; }
  function connect() {
    if (!window.EventSource) { state("polling"); return setInterval(changed, 5000); }
    var url = "events" + (b.dataset.log && !logDone ? "?log=" + b.dataset.log + "&from=" + offset : "");
    es = new EventSource(url);
    es.onopen = function () { state("live"); };
    es.onerror = function () { state("reconnecting"); };
    es.addEventListener("changed", changed);
    es.addEventListener("log", function (e) {
      offset = +e.lastEventId;
      logview.insertAdjacentHTML("beforeend", e.data);
      while (logview.childElementCount > 5000) logview.firstElementChild.remove();
      if (follow && follow.checked) logview.scrollTop = logview.scrollHeight;
    });
    es.addEventListener("logend", function () { logDone = true; });
    es.addEventListener("stats", function (e) { plot(JSON.parse(e.data)); });
  }
  function chartOf(el, opts, data) {
    return window.uPlot ? new uPlot(Object.assign({ width: Math.min(el.clientWidth || 600, 900), height: 220 }, opts), data, el) : null;
  }
  function plot(s) {
    var el = d.getElementById("chart");
    if (!el) return;
    var errors = 0;
    for (var k in s) if (k.indexOf("log_count/ERROR") === 0) errors += s[k];
    points[0].push(Date.now() / 1000); points[1].push(s.item_scraped_count || 0);
    points[2].push(s["downloader/request_count"] || 0); points[3].push(errors);
    if (!chart) chart = chartOf(el, { series: [{}, { label: "items", stroke: "#2a7" }, { label: "requests", stroke: "#37c" }, { label: "errors", stroke: "#c33" }] }, points);
    else chart.setData(points);
  }
  d.addEventListener("visibilitychange", function () {
    // Browsers allow six connections per host: a hidden tab gives its stream back.
    if (d.hidden) { if (es) { es.close(); es = null; state("paused"); } }
    else if (!es) { connect(); changed(); }
  });
  d.addEventListener("click", function (e) {
    var t = e.target;
    if (t.classList.contains("curl")) {
      var text = t.dataset.curl.replace("{base}", new URL("../", d.baseURI).href);
      if (navigator.clipboard) navigator.clipboard.writeText(text).catch(function () {});
      var out = d.getElementById("flash"); out.textContent = ""; var c = d.createElement("code");
      c.textContent = text; out.appendChild(c);
    } else if (t.id === "first-error") {
      var err = logview.querySelector(".e");
      if (err) { if (follow) follow.checked = false; err.scrollIntoView(); err.classList.add("hl"); }
    }
  });
  var series = d.getElementById("series");
  if (series) {
    var data = JSON.parse(series.textContent), el = d.getElementById("chart");
    if (data[0].length) chartOf(el, { series: [{}, { label: el.dataset.currency, stroke: "#37c" }] }, data);
  }
  if (logview && follow && follow.checked) logview.scrollTop = logview.scrollHeight;
  connect();
})();
