// Keyboard shortcuts for fast review (progressive enhancement: every action is also a plain form).
// j/k: next/previous match, c: confirm, r: reject (focuses the reason), v: reveal, x: tick for bulk.
(function () {
  "use strict";
  function matches() { return Array.prototype.slice.call(document.querySelectorAll(".match")); }
  function current() {
    var active = document.activeElement;
    var m = active && active.closest ? active.closest(".match") : null;
    return m || document.querySelector(".match.single") || null;
  }
  function move(step) {
    var list = matches();
    if (!list.length) { return; }
    var i = list.indexOf(current());
    var next = list[Math.max(0, Math.min(list.length - 1, i < 0 ? 0 : i + step))];
    next.focus();
    next.scrollIntoView({block: "nearest"});
  }
  document.addEventListener("keydown", function (e) {
    if (e.altKey || e.ctrlKey || e.metaKey) { return; }
    var t = e.target;
    if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable)) { return; }
    var m = current();
    switch (e.key) {
      case "j": move(1); break;
      case "k": move(-1); break;
      case "c":
        if (m) { var c = m.querySelector(".confirm-form button"); if (c) { c.click(); } }
        break;
      case "r":
        if (m) { var r = m.querySelector(".reject-form select"); if (r) { r.focus(); } }
        break;
      case "v":
        if (m) {
          var rv = m.querySelector(".reveal-form button");
          if (rv) { rv.click(); } else { var d = m.querySelector("a.details"); if (d) { window.location.href = d.href; } }
        }
        break;
      case "x":
        if (m) { var x = m.querySelector("input[type=checkbox]"); if (x) { x.checked = !x.checked; } }
        break;
      default: return;
    }
    e.preventDefault();
  });
})();
