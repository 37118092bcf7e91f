// Upload forms marked data-upload send their file with a progress bar.
// Without this script they are ordinary forms and work the same, minus the bar.
(function () {
  "use strict";
  document.querySelectorAll("form[data-upload]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.FormData || !window.XMLHttpRequest) return;
      event.preventDefault();
      var bar = form.querySelector(".upload-progress");
      var button = form.querySelector("button[type=submit]");
      var request = new XMLHttpRequest();
      request.open("POST", form.action);
      request.upload.addEventListener("progress", function (e) {
        if (bar && e.lengthComputable) {
          bar.hidden = false;
          bar.value = Math.round((e.loaded / e.total) * 100);
        }
      });
      var section = form.getAttribute("data-upload") || "documents";
      request.addEventListener("load", function () {
        // The answer is a whole page: the case with its message, or with
        // the problem marked. Show it as a normal submission would have.
        var done = request.status < 400;
        if (done && window.history && request.responseURL) {
          window.history.replaceState(null, "", request.responseURL.split("#")[0] + "#" + section);
        }
        document.open();
        document.write(request.responseText);
        document.close();
        if (done) window.location.hash = section;
      });
      request.addEventListener("error", function () {
        if (button) button.disabled = false;
        if (bar) bar.hidden = true;
        window.alert("The upload did not reach the server. Check the connection and try again.");
      });
      if (button) button.disabled = true;
      if (bar) { bar.hidden = false; bar.value = 0; }
      request.send(new FormData(form));
    });
  });
})();
