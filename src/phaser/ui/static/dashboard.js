// phaser dashboard: keeps server-rendered parts live from the server's
// event streams, and checks JSON fields of submit forms before sending.
"use strict";

function fragment(html) {
  const template = document.createElement("template");
  template.innerHTML = html.trim();
  return template.content.firstElementChild;
}

// Open streams, by element. A tab in the background closes its stream
// (browsers allow few connections per server over HTTP/1.1) and opens it
// again, asking for the current state, when it is shown.
const streams = new Map();

function follow(element, again) {
  let url = element.dataset.stream;
  if (again) url += (url.includes("?") ? "&" : "?") + "resync=1";
  const source = new EventSource(url);
  streams.set(element, source);
  // A part of the page (overview, job): replaced whole.
  source.addEventListener("live", (event) => {
    element.innerHTML = event.data;
    element.dataset.updates = String(Number(element.dataset.updates || 0) + 1);
    // Buttons outside the live part (so that an update never takes them
    // from under the pointer) show only in the phases they apply to.
    const phase = element.querySelector("[data-phase]");
    if (phase) {
      document.querySelectorAll("[data-show-in]").forEach((control) => {
        control.hidden = !control.dataset.showIn.split(" ")
          .includes(phase.dataset.phase);
      });
    }
  });
  // Rows of a job list: replaced in place, new jobs added at the top.
  source.addEventListener("row", (event) => {
    const row = fragment("<table><tbody>" + event.data + "</tbody></table>")
      .querySelector("tr");
    const current = document.getElementById(row.id);
    if (current) current.replaceWith(row);
  });
  source.addEventListener("new", (event) => {
    const row = fragment("<table><tbody>" + event.data + "</tbody></table>")
      .querySelector("tr");
    const current = document.getElementById(row.id);
    if (current) {
      current.replaceWith(row);  // already added (before a reconnection)
      return;
    }
    element.querySelector("tbody").prepend(row);
    const empty = document.getElementById("empty");
    if (empty) empty.remove();
  });
  source.addEventListener("gone", (event) => {
    const row = document.getElementById("job-" + event.data.trim());
    if (row) {
      row.dataset.phase = "DELETED";
      row.classList.add("gone");
    }
    if (element.id === "live") {
      element.insertAdjacentHTML("afterbegin",
        '<p class="message" role="alert">This job has been deleted.</p>');
      source.close();
      streams.delete(element);
      element.dataset.ended = "true";
    }
  });
  // A browser gives up on a stream that answers with an error (503
  // while Redis is away); try again, asking for the current state.
  source.addEventListener("error", () => {
    if (source.readyState !== EventSource.CLOSED || element.dataset.ended) {
      return;  // reconnecting by itself, or finished
    }
    streams.delete(element);
    setTimeout(() => {
      if (!streams.has(element) && !document.hidden) follow(element, true);
    }, 5000);
  });
  source.addEventListener("end", () => {
    source.close();
    streams.delete(element);
    element.dataset.ended = "true";
  });
}

document.addEventListener("visibilitychange", () => {
  if (document.hidden) {
    streams.forEach((source) => source.close());
    streams.clear();
  } else {
    document.querySelectorAll("[data-stream]").forEach((element) => {
      if (!streams.has(element) && !element.dataset.ended) {
        follow(element, true);
      }
    });
  }
});

function checkJson(area) {
  try {
    JSON.parse(area.value || "null");
    area.setCustomValidity("");
  } catch (error) {
    area.setCustomValidity("Not valid JSON: " + error.message);
  }
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("[data-stream]").forEach((element) => {
    follow(element, false);
  });
  document.querySelectorAll("textarea[data-json]").forEach((area) => {
    checkJson(area);
    area.addEventListener("input", () => checkJson(area));
  });
});
