// Copy buttons for example wording and the print button. No inline script (CSP: script-src 'self').
"use strict";
(function () {
  function announce(button, text) {
    var region = button.closest("section") && button.closest("section").querySelector(".copy-status");
    if (region) { region.textContent = text; }
    button.setAttribute("data-copied", "true");
  }
  function fallbackCopy(text) {
    var area = document.createElement("textarea");
    area.value = text; area.setAttribute("readonly", ""); area.style.position = "fixed"; area.style.opacity = "0";
    document.body.appendChild(area); area.select();
    var ok = false;
    try { ok = document.execCommand("copy"); } catch (e) { ok = false; }
    document.body.removeChild(area);
    return ok;
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy-target]");
    if (button) {
      var source = document.getElementById(button.getAttribute("data-copy-target"));
      if (!source) { return; }
      var text = source.textContent;
      var done = function () { announce(button, "Copied to the clipboard."); };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, function () { if (fallbackCopy(text)) { done(); } });
      } else if (fallbackCopy(text)) { done(); }
      return;
    }
    var printer = event.target.closest("button[data-action='print']");
    if (printer) { window.print(); }
  });
})();
