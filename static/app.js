// webex-oauth-axum: the device sign-in page's script (GET /sign-in only; /spaces has spaces.js):
// it counts down to the code's expiry, polls GET /device/status and moves
// on when the flow ends, and wires the Copy button. Every other page works without it, and so
// does the sign-in page (its "Refresh" link reloads it).
"use strict";

(function () {
  const flow = document.getElementById("device-flow");
  if (!flow || !flow.dataset.status) {
    return; // not the sign-in page
  }

  wireCopyButton();

  const initialStatus = flow.dataset.status;
  if (initialStatus === "granted") {
    // The server normally redirects instead of showing this state; move on anyway.
    location.assign("/granted");
    return;
  }
  if (initialStatus !== "pending") {
    return; // denied, expired or error: the page already shows "Start again"
  }

  // Timing, in milliseconds.
  const TICK_MS = 1000; // countdown refresh
  const POLL_MS = 2000; // normal pause between two status requests
  const MAX_BACKOFF_MS = 10000; // longest pause after network errors
  const LOW_SECONDS = 60; // the progress bar turns red in the last minute

  const progress = document.getElementById("countdown");
  const timeLeft = document.getElementById("time-left");
  const statusLine = document.getElementById("status");

  // The status line for each answer. "pending" keeps the server's own wording, so the first
  // answer does not make screen readers announce the same thing again in other words.
  const STATUS_TEXT = {
    pending: (statusLine && statusLine.textContent.trim()) || "Waiting for approval on your other device…",
    slowed: "Webex asked us to slow down; polling less often…",
    granted: "Approved. Redirecting…",
    denied: "The sign-in was denied.",
    expired: "The code expired.",
    error: "Something went wrong while waiting for Webex.",
  };

  let deadline = Date.now() + (Number(flow.dataset.expiresIn) || 0) * 1000;
  // Only a countdown that reaches 0 while this page is open reloads it (once); a page that
  // starts at 0 must not reload itself in a loop.
  const canExpireHere = Number(flow.dataset.expiresIn) > 0;

  let finished = false; // set once we navigate away; stops every timer
  let inFlight = false; // at most one status request at a time
  let failures = 0; // consecutive failed requests, for the backoff
  let tickTimer = 0;
  let pollTimer = 0;

  /** Seconds left before the code expires, by our clock. */
  function secondsLeft() {
    return Math.max(0, Math.ceil((deadline - Date.now()) / 1000));
  }

  /** "mm:ss" for a number of seconds. */
  function formatSeconds(total) {
    const minutes = Math.floor(total / 60);
    const seconds = total % 60;
    return String(minutes).padStart(2, "0") + ":" + String(seconds).padStart(2, "0");
  }

  /** Writes a status line, only when it changes (the live region announces each change). */
  function setStatus(text) {
    if (statusLine && statusLine.textContent !== text) {
      statusLine.textContent = text;
    }
  }

  /** Stops the countdown and the polling for good. */
  function stop() {
    finished = true;
    clearInterval(tickTimer);
    clearTimeout(pollTimer);
  }

  /** Stops everything and goes to `url` (a GET, so never a form re-submission). */
  function leave(url) {
    if (!finished) {
      stop();
      location.assign(url);
    }
  }

  /** Redraws the progress bar and the "mm:ss left" text; reloads once at 0. */
  function tick() {
    const left = secondsLeft();
    if (progress) {
      progress.value = left;
      progress.toggleAttribute("data-low", left <= LOW_SECONDS);
    }
    if (timeLeft) {
      timeLeft.textContent = formatSeconds(left) + " left";
    }
    if (left === 0 && !finished) {
      setStatus(STATUS_TEXT.expired);
      if (canExpireHere) {
        // Reload once: the server renders the expired state with "Start again".
        leave("/sign-in");
      } else {
        // This page was already at 0 when it loaded: stop here rather than reload in a loop.
        stop();
        flow.dataset.status = "expired";
      }
    }
  }

  /** Acts on one answer of GET /device/status. */
  function handle(answer) {
    if (typeof answer.expires_in === "number") {
      deadline = Date.now() + answer.expires_in * 1000;
    }
    flow.dataset.status = answer.status;
    switch (answer.status) {
      case "pending":
        setStatus(answer.slowed_down ? STATUS_TEXT.slowed : STATUS_TEXT.pending);
        break;
      case "granted":
        setStatus(STATUS_TEXT.granted);
        leave("/granted");
        break;
      case "denied":
      case "expired":
      case "error":
        // Reload: the server shows the final state and the "Start again" button.
        setStatus(STATUS_TEXT[answer.status]);
        leave("/sign-in");
        break;
      default:
        // An unknown status: keep polling, the next answer may be clearer.
        break;
    }
    tick();
  }

  /** Schedules the next status request. */
  function schedule(delay) {
    if (!finished) {
      pollTimer = setTimeout(poll, delay);
    }
  }

  /** One status request; then schedules the next one. */
  function poll() {
    if (finished || inFlight) {
      return;
    }
    inFlight = true;
    fetch("/device/status", {
      cache: "no-store",
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    })
      .then(function (response) {
        if (response.status === 404) {
          // No flow in this session any more (cancelled elsewhere, server restarted...).
          leave("/sign-in");
          return null;
        }
        if (!response.ok) {
          throw new Error("HTTP " + response.status);
        }
        return response.json();
      })
      .then(function (answer) {
        inFlight = false;
        if (answer) {
          failures = 0;
          handle(answer);
        }
        schedule(POLL_MS);
      })
      .catch(function () {
        // Network error or server hiccup: keep trying, waiting longer each time (4 s, 8 s, 10 s...).
        inFlight = false;
        failures += 1;
        schedule(Math.min(POLL_MS * Math.pow(2, failures), MAX_BACKOFF_MS));
      });
  }

  tickTimer = setInterval(tick, TICK_MS);
  tick();
  schedule(POLL_MS);

  /** The Copy button next to the user code. */
  function wireCopyButton() {
    const button = document.getElementById("copy-code");
    const code = document.getElementById("user-code");
    if (!button || !code) {
      return;
    }
    const label = button.textContent;
    let resetTimer = 0;

    function show(text) {
      button.textContent = text;
      button.toggleAttribute("data-copied", text === "Copied");
      clearTimeout(resetTimer);
      resetTimer = setTimeout(function () {
        button.textContent = label;
        button.removeAttribute("data-copied");
      }, 2000);
    }

    /** Without the clipboard API (plain http on a LAN address), select the code instead. */
    function selectCode() {
      const range = document.createRange();
      range.selectNodeContents(code);
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      show("Selected: copy it");
    }

    button.addEventListener("click", function () {
      const text = code.textContent.trim();
      if (!navigator.clipboard || !window.isSecureContext) {
        selectCode();
        return;
      }
      navigator.clipboard.writeText(text).then(function () {
        show("Copied");
      }, selectCode);
    });
  }
})();
