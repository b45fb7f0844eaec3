// The "Call me back" form's behaviour: read the queue from the page's query string, post the
// request as JSON to /api/public/callbacks, and say what the server answered.
// Everything the server sends is shown with textContent, never as markup.
"use strict";

(function () {
  var API = "/api/public/callbacks";
  var form = document.getElementById("callback-form");
  var result = document.getElementById("result");
  var submit = document.getElementById("submit");
  var windowBox = document.getElementById("window");
  var fields = ["number", "name", "not_before", "not_after"];
  var queue = new URLSearchParams(window.location.search).get("queue");

  function say(text, kind) {
    result.textContent = text;
    result.className = kind || "";
  }

  function clearInvalid() {
    fields.forEach(function (id) {
      var input = document.getElementById(id);
      input.removeAttribute("aria-invalid");
      input.removeAttribute("aria-describedby");
    });
  }

  function markInvalid(field) {
    var input = fields.indexOf(field) >= 0 ? document.getElementById(field) : null;
    if (!input) return;
    if (input.closest("#window")) showWindow(true);
    input.setAttribute("aria-invalid", "true");
    input.setAttribute("aria-describedby", "result");
    input.focus();
  }

  function showWindow(show) {
    windowBox.hidden = !show;
    form.elements.when.value = show ? "window" : "now";
  }

  // datetime-local wants "YYYY-MM-DDTHH:MM" in local time
  function localInputValue(date) {
    function two(n) { return (n < 10 ? "0" : "") + n; }
    return date.getFullYear() + "-" + two(date.getMonth() + 1) + "-" + two(date.getDate()) +
      "T" + two(date.getHours()) + ":" + two(date.getMinutes());
  }

  // A datetime-local value is the customer's local time; the server wants ISO-8601 with an offset.
  function isoWithOffset(value) {
    if (!value) return null;
    var date = new Date(value);
    return isNaN(date.getTime()) ? undefined : date.toISOString();
  }

  function thanks(data, number) {
    var who = data && typeof data.number === "string" ? data.number : number;
    var from = data && typeof data.not_before === "string" ? new Date(data.not_before) : null;
    if (from && !isNaN(from.getTime())) {
      var closed = data.deferred_to_opening ? "We are closed now. " : "";
      return "Thank you. " + closed + "We will call you at " + who + " from " + from.toLocaleString() + ".";
    }
    return "Thank you. We will call you at " + who + " as soon as an agent is free.";
  }

  if (!queue) {
    submit.disabled = true;
    say("This form is not set up: the page address names no queue.", "error");
    return;
  }

  var now = localInputValue(new Date());
  document.getElementById("not_before").min = now;
  document.getElementById("not_after").min = now;

  Array.prototype.forEach.call(form.elements.when, function (radio) {
    radio.addEventListener("change", function () { windowBox.hidden = form.elements.when.value !== "window"; });
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    clearInvalid();
    var number = form.elements.number.value.trim();
    var body = { queue: queue, number: number };
    var name = form.elements.name.value.trim();
    if (name) body.name = name;
    if (form.elements.when.value === "window") {
      var from = isoWithOffset(form.elements.not_before.value);
      var until = isoWithOffset(form.elements.not_after.value);
      if (from === undefined || until === undefined || (!from && !until)) {
        say("Please choose when we may call you.", "error");
        markInvalid(from === undefined || (!from && !until) ? "not_before" : "not_after");
        return;
      }
      if (from) body.not_before = from;
      if (until) body.not_after = until;
    }

    submit.disabled = true;
    say("Sending…");
    fetch(API, {
      method: "POST",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      credentials: "same-origin",
      body: JSON.stringify(body)
    }).then(function (response) {
      return response.json().catch(function () { return null; }).then(function (data) {
        var message = data && typeof data.error === "string" ? data.error : null;
        if (response.ok) {
          form.reset();
          windowBox.hidden = true;
          say(thanks(data, number), "ok");
        } else if (response.status === 429) {
          say(message || "Too many requests for this number. Please try again later.", "error");
          markInvalid("number");
        } else if (response.status === 400 && message) {
          say(message, "error");
          markInvalid(data.field);
        } else {
          say("Sorry, your request could not be taken (error " + response.status + "). Please try again later.", "error");
        }
      });
    }).catch(function () {
      say("We could not be reached. Please check your connection and try again.", "error");
    }).then(function () {
      submit.disabled = false;
    });
  });
})();
