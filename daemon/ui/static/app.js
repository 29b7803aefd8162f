// Live updates, log tail, charts, copy as curl: see daemon/ui/__init__.py.
(function () {
  var d = document, b = d.body, es = null, free = null, live = d.getElementById("live");
  var logview = d.getElementById("logview"), follow = d.getElementById("follow");
  var offset = +b.dataset.offset || 0, logDone = false, chart = null, pts = [[], [], [], []];
  var bc = window.BroadcastChannel && new BroadcastChannel("coinspiders"), own = b.dataset.log;
  function changed() { b.dispatchEvent(new CustomEvent("changed")); }
  function state(t) { live.textContent = t; }
  function open() {
    es = new EventSource("events" + (own && !logDone ? "?log=" + own + "&from=" + offset : ""));
    es.onopen = function () { state("live"); };
    es.onerror = function () { state("reconnecting"); };
    es.addEventListener("changed", function () { changed(); if (bc && !own) bc.postMessage(1); });
    es.addEventListener("log", function (e) {
      offset = +e.lastEventId;
      logview.insertAdjacentHTML("beforeend", e.data);
      while (logview.childElementCount > 5000) logview.firstElementChild.remove();
      if (follow.checked) logview.scrollTop = logview.scrollHeight;
    });
    es.addEventListener("logend", function () { logDone = true; });
    es.addEventListener("stats", function (e) { plot(JSON.parse(e.data)); });
  }
  function connect() {
    if (!window.EventSource) { state("polling"); return setInterval(changed, 5000); }
    if (own || !bc || !navigator.locks) return open();
    state("shared");
    navigator.locks.request("coinspiders-events", function () {
      if (d.hidden) return;
      return new Promise(function (release) { free = release; open(); });
    });
  }
  if (bc) bc.onmessage = function () { if (!es) changed(); };
  d.addEventListener("visibilitychange", function () {
    if (d.hidden) { if (es) { es.close(); es = null; state("paused"); } if (free) { free(); free = null; } }
    else if (!es) { connect(); changed(); }
  });
  function chartOf(el, opts, data) {
    return window.uPlot && new uPlot(Object.assign({ width: Math.min(el.clientWidth || 600, 900), height: 220 }, opts), data, el);
  }
  function plot(s) {
    var el = d.getElementById("chart"), errors = 0;
    for (var k in s) if (!k.indexOf("log_count/ERROR")) errors += s[k];
    pts[0].push(Date.now() / 1000); pts[1].push(s.item_scraped_count || 0);
    pts[2].push(s["downloader/request_count"] || 0); pts[3].push(errors);
    if (chart) return chart.setData(pts);
    chart = chartOf(el, { series: [{}, { label: "items", stroke: "#2a7" }, { label: "requests", stroke: "#37c" }, { label: "errors", stroke: "#c33" }] }, pts);
  }
  d.addEventListener("click", function (e) {
    var t = e.target, out = d.getElementById("flash"), c;
    if (t.classList.contains("curl")) {
      c = d.createElement("code");
      c.textContent = t.dataset.curl.replace("{base}", new URL("../", d.baseURI).href);
      out.replaceChildren(c);
      if (navigator.clipboard) navigator.clipboard.writeText(c.textContent).catch(function () {});
    } else if (t.id == "first-error" && (c = logview.querySelector(".e"))) {
      follow.checked = false; c.scrollIntoView(); c.classList.add("hl");
    }
  });
  var series = d.getElementById("series"), el = d.getElementById("chart");
  if (series) {
    var data = JSON.parse(series.textContent);
    if (data[0].length) chartOf(el, { series: [{}, { label: el.dataset.currency, stroke: "#37c" }] }, data);
  }
  if (logview) logview.scrollTop = logview.scrollHeight;
  connect();
})();
