// The live run page: follows /api/runs/ID/events (one JSON object per line)
// and adds each phase as it ends, resizing the Gantt bar by the measured
// durations. When the run reaches a gate or ends, the page is reloaded so the
// server renders the Approve form or the outcome; without this script the
// page is the same, only not live.
(function () {
  var live = document.getElementById("live");
  if (!live || live.dataset.running !== "true") return;
  var id = live.dataset.run;
  var phases = document.querySelector("#phases tbody");
  var gantt = document.getElementById("gantt");
  var waiting = document.getElementById("gate-waiting");
  function cell(row, text) { var td = document.createElement("td"); td.textContent = text; row.appendChild(td); }
  function ms(v) { return v >= 1000 ? (v / 1000).toFixed(1) + "s" : Math.round(v) + "ms"; }
  var seen = phases ? phases.rows.length : 0, index = 0;
  function phase(p) {
    index += 1;
    if (index <= seen) return; // already rendered by the server
    var row = document.createElement("tr");
    row.className = "live-phase";
    cell(row, p.name); cell(row, (p.started_at || "").slice(11, 23)); cell(row, ms(p.duration_ms));
    cell(row, p.status); cell(row, p.detail);
    phases.appendChild(row);
    var bar = document.createElement("div");
    bar.className = "p-" + p.status; bar.textContent = p.name; bar.title = p.name + ": " + ms(p.duration_ms);
    bar.dataset.ms = Math.max(0, Number(p.duration_ms) || 0);
    gantt.appendChild(bar);
    resize();
  }
  // Each bar as wide as its share of the phases so far, as the server draws them.
  function resize() {
    var bars = gantt.children, total = 0, i;
    for (i = 0; i < bars.length; i++) total += Number(bars[i].dataset.ms) || 0;
    for (i = 0; i < bars.length; i++) {
      var share = total > 0 ? (Number(bars[i].dataset.ms) || 0) / total * 100 : 100 / bars.length;
      bars[i].style.width = share.toFixed(2) + "%";
    }
  }
  function handle(ev) {
    if (ev.phase) phase(ev.phase);
    else if (ev.gate) {
      if (waiting) waiting.textContent = "Waiting for approval before " + ev.gate.gate + " since " + ev.gate.since;
      if (!document.querySelector('form[action$="/approve"]')) location.reload();
    } else if (ev.result) {
      document.getElementById("run-status").textContent = ev.result.status;
      location.reload();
    }
  }
  fetch("/api/runs/" + id + "/events").then(function (r) {
    var reader = r.body.getReader(), decoder = new TextDecoder(), buf = "";
    function pump() {
      return reader.read().then(function (chunk) {
        if (chunk.done) return;
        buf += decoder.decode(chunk.value, { stream: true });
        var lines = buf.split("\n");
        buf = lines.pop();
        lines.forEach(function (l) { if (l.trim()) handle(JSON.parse(l)); });
        return pump();
      });
    }
    return pump();
  });
})();
