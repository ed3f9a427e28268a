// PULL web: the little script there is. Pages work without it (forms post and redirect).
//
// Live market page: an element with data-live-market="TICKER" opens the same-origin live
// stream (/stream, the API's Server-Sent Events for this session). Book and trade events ask
// htmx to reload the ladder (`pull:book`), the caller's fills and order updates reload their
// fills (`pull:fills`), each at most every 300 ms. While the stream is down (EventSource
// reconnects by itself) the ladder polls every 3 s instead; it always polls every 20 s.
(function () {
  "use strict";
  var el = document.querySelector("[data-live-market]");
  if (!el || typeof window.EventSource !== "function" || !window.htmx) { return; }
  var ticker = el.getAttribute("data-live-market");
  var pending = {};
  function soon(name) {
    if (pending[name]) { return; }
    pending[name] = setTimeout(function () {
      pending[name] = null;
      window.htmx.trigger(document.body, name);
    }, 300);
  }
  var poll = null;
  function polling(on) {
    if (on && !poll) { poll = setInterval(function () { soon("pull:book"); }, 3000); }
    if (!on && poll) { clearInterval(poll); poll = null; }
  }
  polling(true);
  var source = new EventSource("/stream?markets=" + encodeURIComponent(ticker));
  source.addEventListener("open", function () { polling(false); el.setAttribute("data-live", "on"); });
  source.addEventListener("error", function () { polling(true); });
  ["book", "book_delta", "trades", "market", "market_status"].forEach(function (kind) {
    source.addEventListener(kind, function () { soon("pull:book"); });
  });
  ["fill", "order", "position"].forEach(function (kind) {
    source.addEventListener(kind, function () { soon("pull:fills"); soon("pull:book"); });
  });
  window.addEventListener("pagehide", function () { source.close(); });
})();
