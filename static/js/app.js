// PersonaWeb's only script: glue around htmx. No inline scripts anywhere (the CSP forbids them).
(function () {
  "use strict";

  // Live fragments from the server may target things this page does not show (another node in
  // the inspector, a row outside the shown window). Drop those before the ws extension swaps,
  // instead of letting htmx log "target not found". One frame may carry several changes (a
  // burst): a target that an earlier part of the same frame inserts counts as shown, since
  // the parts are swapped in order.
  function shown(id, frame, el) {
    if (document.getElementById(id)) return true;
    if (!frame) return false;
    return Array.from(frame.querySelectorAll('[id="' + CSS.escape(id) + '"]')).some(function (x) {
      return x !== el;
    });
  }

  function keep(el, frame) {
    var d = el.dataset || {};
    if ("pwOptional" in d && !shown(el.id, frame, el)) return false;
    if (d.pwIfNode !== undefined) {
      var ins = document.getElementById("inspector");
      if (!ins || ins.dataset.node !== d.pwIfNode) return false;
    }
    if (d.pwNew && document.getElementById(d.pwNew)) return false;   // already shown (resync raced)
    if (d.pwIfExists && !shown(d.pwIfExists, frame, el)) {
      // Its place is not on this page. While panes are being reloaded it may be that the
      // reload was rendered before this change: reload once more when it lands.
      if (reloading) reloadAgain = true;
      return false;
    }
    return true;
  }

  // Reconnect soon after a server restart: exponential backoff with jitter, capped at 4 s
  // (the extension's default grows to 30 s and leaves a restarted page stale for long).
  htmx.config.wsReconnectDelay = function (retryCount) {
    var ceiling = Math.min(500 * Math.pow(2, retryCount), 4000);
    return ceiling / 2 + Math.random() * ceiling / 2;
  };

  // Instructions inside live frames (see personaweb/web/live.py): reload some panes for
  // this page's own window, or refetch the inspector if it shows a node that changed.
  function obey(el) {
    var d = el.dataset || {};
    if (d.pwReload !== undefined) {
      reloadPanes();
      return true;
    }
    if (d.pwRefresh !== undefined) {
      var ins = document.getElementById("inspector");
      // Through the same queue as every inspector load, so a late refresh never overwrites
      // the node the inspector has since followed the run to.
      if (ins && ins.dataset.node === d.pwRefresh && !typingIn(ins)) inspect(d.pwRefresh);
      return true;
    }
    return false;
  }

  var reloading = null;
  var reloadAgain = false;
  function reloadPanes() {
    var b = base();
    if (!b) return;
    if (reloading) { reloadAgain = true; return; }
    var main = document.querySelector("main.debugger");
    var win = main && main.dataset.window ? main.dataset.window : "";
    // One request brings every shared pane back, each swapped in by its own id.
    reloading = htmx.ajax("GET", b + "panes/?window=" + encodeURIComponent(win), { target: "#runbar", swap: "none" })
      .catch(function () { return null; })
      .then(function () {
        reloading = null;
        if (reloadAgain) { reloadAgain = false; reloadPanes(); }
      });
  }

  htmx.defineExtension("pw-optional", {
    transformResponse: function (text) {
      var tpl = document.createElement("template");
      tpl.innerHTML = text;   // inert: nothing in a template runs or loads
      Array.from(tpl.content.children).forEach(function (el) {
        if (obey(el) || !keep(el, tpl.content)) el.remove();
      });
      return tpl.innerHTML;
    },
  });

  function flash(message) {
    var box = document.getElementById("flash");
    if (!box) return;
    box.textContent = message;   // text, never HTML
    box.classList.add("show");
    clearTimeout(flash.timer);
    flash.timer = setTimeout(function () { box.classList.remove("show"); }, 6000);
  }

  // Refusals (409), bad input (400) and missing things (404) come back as plain text.
  document.addEventListener("htmx:responseError", function (e) {
    var xhr = e.detail.xhr;
    flash(xhr.status + " · " + (xhr.responseText || xhr.statusText).slice(0, 300));
  });
  document.addEventListener("htmx:sendError", function () {
    flash("The server did not answer. Is it running?");
  });

  document.addEventListener("htmx:afterRequest", function (e) {
    var form = e.detail.elt;
    if (e.detail.successful && form.matches && form.matches("form[data-reset-on-success]")) {
      form.reset();
    }
  });

  // A message fragment may carry a flash.
  document.addEventListener("htmx:oobAfterSwap", function (e) {
    var t = e.detail.target;
    if (t && t.id === "flash") {
      t.classList.add("show");
      clearTimeout(flash.timer);
      flash.timer = setTimeout(function () { t.classList.remove("show"); }, 6000);
    }
  });

  function base() {
    var main = document.querySelector("main.debugger");
    return main ? main.dataset.base : null;
  }

  // Inspector loads run one after another: a second request aimed at an inspector that the
  // first one is about to replace would land in a detached element.
  var loading = Promise.resolve();
  var wanted = null;
  function inspect(nodeId) {
    var b = base();
    if (!b) return;
    wanted = nodeId;
    loading = loading.then(function () {
      if (wanted !== nodeId) return null;   // a newer node was asked for meanwhile
      return htmx.ajax("GET", b + "inspect/" + nodeId + "/", { target: "#inspector", swap: "outerHTML" });
    }).catch(function () { return null; });
  }

  function markSelected(nodeId) {
    document.querySelectorAll("#steps > li.sel").forEach(function (li) { li.classList.remove("sel"); });
    var li = document.getElementById("n-" + nodeId);
    if (li) li.classList.add("sel");
  }

  // Follow the run: when the inspected node (or the one we are already following to) gets a
  // child, inspect the child, so a reviewer watching the tip sees each new proposal.
  var following = null;
  document.addEventListener("htmx:wsAfterMessage", function () {
    var ins = document.getElementById("inspector");
    document.querySelectorAll("[data-follow-from]").forEach(function (li) {
      var from = li.dataset.followFrom;
      li.removeAttribute("data-follow-from");
      if (ins && (ins.dataset.node === from || following === from)) {
        following = li.dataset.node;
        inspect(li.dataset.node);
      }
    });
    if (ins && ins.dataset.node) markSelected(ins.dataset.node);
  });

  document.addEventListener("htmx:afterSwap", function (e) {
    var ins = document.getElementById("inspector");
    if (ins && ins.dataset.node === following) following = null;
    if (ins && ins.dataset.node) markSelected(ins.dataset.node);
  });

  // Review mode: the proposal waiting for a person opens in the inspector as it appears, so
  // `a` and `r` act on it at once. Not while someone is typing in the inspector.
  var lastWaiting = null;
  function typingIn(el) {
    var active = document.activeElement;
    return !!(el && active && el.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName));
  }
  function openWaiting() {
    var bar = document.getElementById("runbar");
    var waiting = bar ? bar.dataset.waiting : "";
    if (!waiting || waiting === lastWaiting) return;
    var ins = document.getElementById("inspector");
    if (typingIn(ins)) return;
    lastWaiting = waiting;
    if (ins && ins.dataset.node === waiting) return;
    markSelected(waiting);
    inspect(waiting);
  }
  document.addEventListener("htmx:wsAfterMessage", openWaiting);
  document.addEventListener("htmx:afterSettle", openWaiting);
  document.addEventListener("DOMContentLoaded", openWaiting);

  // After a reconnect the server resyncs the panes; the inspector is ours to refresh.
  document.addEventListener("htmx:wsOpen", function () {
    var ins = document.getElementById("inspector");
    if (ins && ins.dataset.node) inspect(ins.dataset.node);
    document.body.classList.remove("offline");
  });
  document.addEventListener("htmx:wsClose", function () {
    document.body.classList.add("offline");
  });

  // Keyboard: j/k next/previous step, a approve, r reject. Not while typing.
  document.addEventListener("keydown", function (e) {
    var t = e.target;
    if (t && (t.tagName === "TEXTAREA" && e.key === "Enter" && (e.ctrlKey || e.metaKey))) {
      var form = t.closest("form");
      if (form) { e.preventDefault(); htmx.trigger(form, "submit"); }
      return;
    }
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    if (t && (t.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(t.tagName))) return;
    if (e.key === "j" || e.key === "k") {
      var rows = Array.from(document.querySelectorAll("#steps > li.step"));
      if (!rows.length) return;
      var i = rows.findIndex(function (li) { return li.classList.contains("sel"); });
      i = i < 0 ? (e.key === "j" ? 0 : rows.length - 1) : i + (e.key === "j" ? 1 : -1);
      i = Math.max(0, Math.min(rows.length - 1, i));
      var btn = rows[i].querySelector("button.row");
      markSelected(rows[i].dataset.node);
      rows[i].scrollIntoView({ block: "nearest" });
      btn.click();
      e.preventDefault();
    } else if (e.key === "a" || e.key === "r" || e.key === "A") {
      // The inspected node's button; else the runbar's, for the proposal waiting for review.
      var sel = 'button[data-key="' + e.key + '"]';
      var b = document.querySelector("#inspector " + sel);
      if (!b || b.disabled) b = document.querySelector("#runbar " + sel);
      if (!b && e.key === "a") b = document.querySelector("#runbar button.approve");
      if (b && !b.disabled) {
        htmx.process(b);   // it may have been swapped in a moment ago, not yet wired up
        b.click();
        e.preventDefault();
      }
    }
  });
})();
