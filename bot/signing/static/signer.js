// Progressive enhancement of the signer page: everything works without this file (typed
// signature, plain forms); with it, the signer may also draw a signature on a canvas.
(function () {
  "use strict";
  var form = document.getElementById("sign-form");
  if (!form) { return; }
  var drawnOption = form.querySelector("[data-needs-js]");
  var typedBox = document.getElementById("typed-box");
  var drawnBox = document.getElementById("drawn-box");
  var pad = document.getElementById("pad");
  var hidden = document.getElementById("drawn");
  var clear = document.getElementById("pad-clear");
  var empty = document.getElementById("pad-error");
  var ctx = pad.getContext("2d");
  var drawing = false;
  var inked = false;
  var last = null;

  drawnOption.hidden = false;

  function mode() {
    var checked = form.querySelector("input[name=mode]:checked");
    return checked ? checked.value : "typed";
  }
  function sync() {
    var drawn = mode() === "drawn";
    drawnBox.hidden = !drawn;
    typedBox.hidden = drawn;
    if (!drawn) { flag(false); }
  }
  form.querySelectorAll("input[name=mode]").forEach(function (radio) {
    radio.addEventListener("change", sync);
  });
  sync();

  function flag(on) {
    // "Draw" chosen but nothing drawn: say so next to the pad rather than let the server fall
    // back to the typed name, a signature this signer never saw (its box is hidden).
    empty.hidden = !on;
    if (on) {
      pad.setAttribute("aria-invalid", "true");
      pad.setAttribute("aria-describedby", "pad-error");
    } else {
      pad.removeAttribute("aria-invalid");
      pad.removeAttribute("aria-describedby");
    }
  }

  function point(event) {
    var box = pad.getBoundingClientRect();
    return {
      x: (event.clientX - box.left) * (pad.width / box.width),
      y: (event.clientY - box.top) * (pad.height / box.height)
    };
  }
  ctx.lineWidth = 3;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  ctx.strokeStyle = "#10214a";

  pad.addEventListener("pointerdown", function (event) {
    drawing = true;
    last = point(event);
    pad.setPointerCapture(event.pointerId);
    ctx.beginPath();
    ctx.arc(last.x, last.y, 1.2, 0, Math.PI * 2);
    ctx.fill();
    inked = true;
    flag(false);
    event.preventDefault();
  });
  pad.addEventListener("pointermove", function (event) {
    if (!drawing) { return; }
    var p = point(event);
    ctx.beginPath();
    ctx.moveTo(last.x, last.y);
    ctx.lineTo(p.x, p.y);
    ctx.stroke();
    last = p;
    inked = true;
    event.preventDefault();
  });
  ["pointerup", "pointercancel", "pointerleave"].forEach(function (name) {
    pad.addEventListener(name, function () { drawing = false; });
  });
  clear.addEventListener("click", function () {
    ctx.clearRect(0, 0, pad.width, pad.height);
    inked = false;
    hidden.value = "";
  });
  form.addEventListener("submit", function (event) {
    if (mode() === "drawn" && !inked) {
      event.preventDefault();
      flag(true);
      pad.focus();
      return;
    }
    hidden.value = mode() === "drawn" ? pad.toDataURL("image/png") : "";
  });
})();

// Fields on the page: clicking a box goes to its input (focused, scrolled into view), and what
// the signer types shows in the box, so the page looks as it will be stamped.
(function () {
  "use strict";
  document.querySelectorAll("svg.fields a.field-link").forEach(function (link) {
    link.addEventListener("click", function (event) {
      var target = document.getElementById(link.getAttribute("data-input"));
      if (!target) { return; }
      event.preventDefault();
      target.scrollIntoView({ block: "center" });
      var focusable = target.matches("input, select, textarea") ? target : target.querySelector("input, select");
      if (focusable) {
        if (focusable.type === "checkbox") { focusable.checked = !focusable.checked; focusable.dispatchEvent(new Event("change")); }
        focusable.focus();
      }
    });
  });
  function show(name, value) {
    document.querySelectorAll('svg.fields text[data-for="' + name + '"]').forEach(function (text) {
      if (!text.hasAttribute("data-label")) { text.setAttribute("data-label", text.textContent); }
      text.textContent = value || text.getAttribute("data-label");
    });
  }
  document.querySelectorAll('[form="sign-form"]').forEach(function (input) {
    function update() {
      if (input.type === "checkbox") { show(input.name, input.checked ? "\u2713" : ""); }
      else if (input.type === "radio") { if (input.checked) { show(input.name, input.value); } }
      else { show(input.name, input.value); }
    }
    input.addEventListener("input", update);
    input.addEventListener("change", update);
    if (input.value && (input.type !== "checkbox" && input.type !== "radio" || input.checked)) { update(); }
  });
})();
