// PULL web: the little script there is. Pages work without it (forms post, htmx polls the
// ladder every 3 s).
//
// The same-origin live stream (/stream, the API's Server-Sent Events for this session) is
// served and tested, but this page script does not open it yet: with an EventSource open on
// the market page, the order ticket's submit did not complete in the browser journey test
// (docs/web.md, "Not done yet"), and that is not understood yet.
