// Comparison pages: live columns and the contender rows of the form. No inline scripts (CSP).
(function () {
  "use strict";

  // --- live columns -------------------------------------------------------------------------
  // Each contender's session feed (the debugger's WebSocket) sends debugger fragments. They are
  // not for this page: instead, streamed text goes into the contender's live cell (as text,
  // never HTML), and anything else refreshes that contender's column from the server,
  // coalesced so that a burst of node changes costs one request.
  var feeds = {};

  function feedState(id) {
    return feeds[id] || (feeds[id] = { timer: null, busy: false, again: false, node: "", text: "" });
  }

  function showLive(id) {
    var s = feedState(id);
    var live = document.getElementById("live-" + id);
    if (live && s.node && live.dataset.node === s.node) live.textContent = s.text;
    return !!(live && live.dataset.node === s.node);
  }

  function refresh(feed) {
    var id = feed.dataset.cmpFeed;
    var s = feedState(id);
    if (s.busy) { s.again = true; return; }
    if (s.timer) return;
    s.timer = setTimeout(function () {
      s.timer = null;
      s.busy = true;
      var done = function () {
        s.busy = false;
        showLive(id);
        syncBoard();
        if (s.again) { s.again = false; refresh(feed); }
      };
      htmx.ajax("GET", feed.dataset.columnUrl, { source: feed, target: feed, swap: "none" }).then(done, done);
    }, 120);
  }

  // The bar above the board (running, continue, judge) depends on every column: when the
  // columns' statuses no longer agree with it, reload the board once.
  var boardBusy = false;
  function syncBoard() {
    var board = document.getElementById("board");
    var bar = board && board.querySelector(".cmp-bar");
    if (!bar || boardBusy) return;
    var running = !!board.querySelector(".cmp-colhead[data-status=running]");
    if ((bar.dataset.running === "1") === running) return;
    boardBusy = true;
    var done = function () { boardBusy = false; };
    htmx.ajax("GET", board.dataset.url, { target: "#board", swap: "outerHTML" }).then(done, done);
  }

  document.addEventListener("htmx:wsBeforeMessage", function (e) {
    var feed = e.target;
    if (!feed || !feed.dataset || feed.dataset.cmpFeed === undefined) return;
    e.preventDefault();   // the debugger's panes do not exist here
    var tpl = document.createElement("template");
    tpl.innerHTML = e.detail.message;   // inert: nothing in a template runs or loads
    var stream = tpl.content.querySelector("pre[id^='stream-']");
    if (stream) {
      var s = feedState(feed.dataset.cmpFeed);
      s.node = stream.id.slice("stream-".length);
      s.text = stream.textContent;
      if (showLive(feed.dataset.cmpFeed)) return;
    }
    refresh(feed);
  });

  // --- the new-comparison form: add and remove contender rows --------------------------------
  function renumber(rows) {
    Array.from(rows.querySelectorAll("[data-contender-row] .n")).forEach(function (n, i) {
      n.textContent = String(i + 1);
    });
  }

  function reindex(rows, total) {
    // Form prefixes must run 0..n-1 with no gaps: rename every row's fields in order.
    Array.from(rows.querySelectorAll("[data-contender-row]")).forEach(function (row, i) {
      row.querySelectorAll("[name^='contenders-']").forEach(function (el) {
        el.name = el.name.replace(/^contenders-(\d+|__prefix__)-/, "contenders-" + i + "-");
        if (el.id) el.id = el.id.replace(/^id_contenders-(\d+|__prefix__)-/, "id_contenders-" + i + "-");
      });
    });
    total.value = String(rows.querySelectorAll("[data-contender-row]").length);
    renumber(rows);
  }

  function setUpForm() {
    var add = document.getElementById("add-contender");
    var tpl = document.getElementById("contender-template");
    var rows = document.getElementById("contender-rows");
    var total = document.querySelector("input[name='contenders-TOTAL_FORMS']");
    if (!add || !tpl || !rows || !total) return;
    var max = parseInt(add.dataset.max, 10) || 4;
    var update = function () {
      add.hidden = rows.querySelectorAll("[data-contender-row]").length >= max;
    };
    add.addEventListener("click", function () {
      rows.appendChild(tpl.content.cloneNode(true));
      reindex(rows, total);
      update();
    });
    rows.addEventListener("click", function (e) {
      var button = e.target.closest(".remove-contender");
      if (!button) return;
      button.closest("[data-contender-row]").remove();
      reindex(rows, total);
      update();
    });
    update();
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUpForm);
  } else {
    setUpForm();
  }
})();
