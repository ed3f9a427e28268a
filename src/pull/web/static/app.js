// PULL web: the little script there is. Pages work without it (forms post, htmx polls);
// with a realtime stream configured (data-stream-url), book and fill events refresh at once.
(function () {
  "use strict";
  var url = document.body && document.body.dataset.streamUrl;
  var book = document.getElementById("book");
  if (!url || !book || !window.WebSocket) { return; }
  var ticker = (document.getElementById("ticket") || {}).dataset;
  ticker = ticker && ticker.ticker;
  if (!ticker) { return; }
  var retry = 1000;
  function connect() {
    var ws = new WebSocket(url);
    ws.onopen = function () {
      retry = 1000;
      ws.send(JSON.stringify({ id: 1, cmd: "subscribe", params: { channels: ["orderbook_delta", "fill"], market_ticker: ticker } }));
    };
    ws.onmessage = function (ev) {
      var msg;
      try { msg = JSON.parse(ev.data); } catch (e) { return; }
      if (msg.type === "orderbook_delta" || msg.type === "orderbook_snapshot" || msg.type === "fill") {
        document.body.dispatchEvent(new CustomEvent("pull:book"));
      }
    };
    ws.onclose = function () { setTimeout(connect, retry); retry = Math.min(retry * 2, 30000); };
  }
  connect();
})();
