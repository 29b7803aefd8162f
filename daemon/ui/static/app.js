// Live updates, log tail, charts, copy as curl: see daemon/ui/__init__.py.
(function () {
  var d = document, b = d.body, es = null, free = null, live = d.getElementById("live");
  var logview = d.getElementById("logview"), follow = d.getElementById("follow");
  var offset = +b.dataset.offset || 0, logDone = false, chart = null, el = d.getElementById("chart");
  var S = el && JSON.parse(d.getElementById("series").textContent);
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
  function draw() {
    if (chart) return chart.setData(S.data);
    if (window.uPlot && S.data[0].length) chart = new uPlot({ width: Math.min(el.clientWidth || 600, 900), height: 220,
      series: [{}].concat(S.labels.map(function (l, i) { return { label: l, stroke: ["#37c", "#2a7", "#c33"][i] }; })) }, S.data, el);
  }
  function plot(s) {
    var errors = 0;
    for (var k in s) if (!k.indexOf("log_count/ERROR")) errors += s[k];
    [Date.now() / 1000, s.item_scraped_count || 0, s["downloader/request_count"] || 0, errors].forEach(function (v, i) { S.data[i].push(v); });
    draw();
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
  if (S) draw();
  if (logview) logview.scrollTop = logview.scrollHeight;
  connect();
})();
