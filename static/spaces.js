// webex-oauth-axum: the spaces page's script (GET /spaces only). It narrows the list as you
// type, re-sorts it in place, keeps the "N of M spaces" count (a polite live region) and the
// URL in step, and shows each time in the reader's own zone and words ("3 hours ago", the
// exact local time on hover). Without it the page's form does the same on the server (?q=,
// ?sort=) and times read "2 Mar 2026, 09:15 UTC".
"use strict";

(function () {
  const form = document.getElementById("spaces-tools");
  const table = document.getElementById("spaces-table");
  if (!form || !table) {
    return; // no spaces at all
  }
  const input = document.getElementById("spaces-q");
  const sort = document.getElementById("spaces-sort");
  const count = document.getElementById("spaces-count");
  const wrap = document.getElementById("spaces-wrap");
  const none = document.getElementById("spaces-none");
  const noneQuery = document.getElementById("spaces-none-q");
  const body = table.tBodies[0];
  const total = Number(count.dataset.total) || 0;

  // Each row with what filtering and sorting need, read once.
  const rows = Array.from(body.rows, function (row) {
    const title = row.cells[0].textContent;
    const time = row.querySelector("time");
    const at = time ? Date.parse(time.dateTime) : NaN;
    return { row: row, title: title, folded: title.toLowerCase(), at: at, time: time };
  });

  // --- times in the reader's zone and words --------------------------------------------------
  const UNITS = [
    ["year", 365 * 86400],
    ["month", 30 * 86400],
    ["week", 7 * 86400],
    ["day", 86400],
    ["hour", 3600],
    ["minute", 60],
    ["second", 1],
  ];
  const words = typeof Intl === "object" && Intl.RelativeTimeFormat
    ? new Intl.RelativeTimeFormat(undefined, { numeric: "auto" })
    : null;
  const exact = new Intl.DateTimeFormat(undefined, { dateStyle: "full", timeStyle: "long" });

  function relative(at, now) {
    const seconds = (at - now) / 1000;
    for (const [unit, size] of UNITS) {
      if (Math.abs(seconds) >= size || unit === "second") {
        return words.format(Math.round(seconds / size), unit);
      }
    }
    return "";
  }

  function showTimes() {
    const now = Date.now();
    for (const item of rows) {
      if (item.time && !Number.isNaN(item.at)) {
        if (words) {
          item.time.textContent = relative(item.at, now);
        }
        item.time.title = exact.format(item.at);
      }
    }
  }
  showTimes();
  setInterval(showTimes, 60 * 1000);

  // --- filter, sort, count -------------------------------------------------------------------
  function spacesWord(n) {
    return n === 1 ? "space" : "spaces";
  }

  function applyFilter() {
    const needle = input.value.trim().toLowerCase();
    let shown = 0;
    for (const item of rows) {
      const match = item.folded.includes(needle);
      item.row.hidden = !match;
      if (match) {
        shown += 1;
      }
    }
    const text = shown + " of " + total + " " + spacesWord(total);
    if (count.textContent !== text) {
      count.textContent = text;
    }
    wrap.hidden = shown === 0;
    none.hidden = shown !== 0;
    noneQuery.textContent = input.value.trim();
  }

  function byActivity(a, b) {
    const x = Number.isNaN(a.at) ? -Infinity : a.at;
    const y = Number.isNaN(b.at) ? -Infinity : b.at;
    return y - x || 0;
  }

  function byTitle(a, b) {
    if (a.folded < b.folded) return -1;
    if (a.folded > b.folded) return 1;
    return byActivity(a, b);
  }

  function applySort() {
    const byTitleNow = sort.value === "title";
    rows.sort(byTitleNow ? byTitle : byActivity);
    const fragment = document.createDocumentFragment();
    for (const item of rows) {
      fragment.appendChild(item.row);
    }
    body.appendChild(fragment);
    const titleHead = document.getElementById("col-title");
    const activityHead = document.getElementById("col-activity");
    if (byTitleNow) {
      titleHead.setAttribute("aria-sort", "ascending");
      activityHead.removeAttribute("aria-sort");
    } else {
      activityHead.setAttribute("aria-sort", "descending");
      titleHead.removeAttribute("aria-sort");
    }
  }

  // The address keeps what the list shows, so a reload (served by the server) shows it too.
  function rememberInUrl() {
    const params = new URLSearchParams();
    const q = input.value.trim();
    if (q) {
      params.set("q", q);
    }
    if (sort.value === "title") {
      params.set("sort", "title");
    }
    const search = params.toString();
    history.replaceState(null, "", location.pathname + (search ? "?" + search : ""));
  }

  input.addEventListener("input", function () {
    applyFilter();
    rememberInUrl();
  });
  sort.addEventListener("change", function () {
    applySort();
    rememberInUrl();
  });
  // The list already narrows live; Enter (or Apply) asks the server only when the filter is
  // wider than what the server sent (it left those rooms out).
  const served = input.defaultValue.trim().toLowerCase();
  form.addEventListener("submit", function (event) {
    if (input.value.trim().toLowerCase().includes(served)) {
      event.preventDefault();
      applyFilter();
      applySort();
      rememberInUrl();
    }
  });
})();
