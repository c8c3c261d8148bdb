// The print button. No inline script (CSP: script-src 'self').
// (Example wording has no copy button: it is an example for the next visit, not text to paste
// into a signed note.)
"use strict";
(function () {
  document.addEventListener("click", function (event) {
    var printer = event.target.closest("button[data-action='print']");
    if (printer) { window.print(); }
  });
})();
