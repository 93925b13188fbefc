// Fulmen's dashboard: the pages are rendered by the server; this script only keeps them
// current and handy. Everything it fetches is an HTML fragment or a small JSON document
// from the same server, and every page works (without live updates) when it does not run.
//
//   [data-live][data-src]   re-read when /ui/events says something changed (data-run: this
//                           run only), and replaced when it changed; stops once the fragment
//                           says data-final. Without the stream: every data-interval ms.
//   #status[data-src]       the header's figures (JSON)
//   #logs                   log lines a page at a time, the next page fetched as the reader
//                           scrolls near it; a run in flight is followed (data-follow), read
//                           as the fragments are
//   details[data-src]       a dataclip, fetched the first time it is opened
//   [data-copy]             copies its value (webhook URLs)
//   button[data-confirm]    asks before its form is sent
"use strict";

(function () {
  const FETCH = { headers: { "x-fulmen-fetch": "1" }, cache: "no-store", credentials: "same-origin" };

  async function get(url) {
    const response = await fetch(url, FETCH);
    if (response.status === 401) {
      location.href = "/ui/login?next=" + encodeURIComponent(location.pathname + location.search);
      throw new Error("signed out");
    }
    if (!response.ok) throw new Error(url + ": " + response.status);
    return response;
  }

  // Times: the server writes UTC; show the reader's own zone (log lines keep their UTC clock,
  // as the worker stamped them).
  function localTimes(root) {
    for (const el of root.querySelectorAll("time[datetime]:not([data-local])")) {
      const when = new Date(el.getAttribute("datetime"));
      if (isNaN(when)) continue;
      el.title = el.textContent;
      el.textContent = when.toLocaleString();
      el.dataset.local = "1";
    }
  }



  // Re-read a fragment; swap it in only when it changed. Returns the page's way to ask for
  // that (see watch): refresh() re-reads once (a call while one is under way asks for one
  // more after it), done() says the fragment is final and needs no more.
  function live(el) {
    let last = null;
    let busy = false;
    let again = false;
    let seen = new Set(Array.from(el.querySelectorAll("[data-id]"), (row) => row.dataset.id));
    async function read() {
      const html = await (await get(el.dataset.src)).text();
      if (html === last) return;
      last = html;
      const ticked = new Set(Array.from(el.querySelectorAll("input:checked"), (box) => box.value));
      el.innerHTML = html;
      for (const box of el.querySelectorAll("input[type=checkbox]")) box.checked = ticked.has(box.value);
      el.dispatchEvent(new CustomEvent("fulmen:swapped"));
      for (const row of el.querySelectorAll("[data-id]")) {
        if (!seen.has(row.dataset.id)) row.classList.add("fresh");
      }
      seen = new Set(Array.from(el.querySelectorAll("[data-id]"), (row) => row.dataset.id));
      enhance(el);
      if (el.querySelector("[data-final]")) {
        el.dataset.done = "";
        el.dispatchEvent(new CustomEvent("fulmen:final", { bubbles: true }));
      }
    }
    async function refresh() {
      if ("done" in el.dataset) return;
      if (busy) {
        again = true;
        return;
      }
      busy = true;
      try {
        do {
          again = false;
          await read();
        } while (again && !("done" in el.dataset));
      } catch (error) {
        console.warn(error);
      } finally {
        busy = false;
      }
    }
    return {
      refresh,
      done: () => "done" in el.dataset,
      interval: Number(el.dataset.interval || 2000),
      run: el.dataset.run || null,
    };
  }

  // Keep the page's live parts current. Where the browser has EventSource, one stream per
  // page (/ui/events, only this run's news on a run page) says when something changed, and
  // every part re-reads then; a slow poll (the stream's hello says how slow) catches a
  // notice missed. Without EventSource, or when the stream keeps failing (3 errors with no
  // hello between, or refused), each part re-reads on its own timer as before.
  function watch(parts) {
    if (!parts.length || parts.every((part) => part.done())) return;
    const runs = new Set(parts.map((part) => part.run));
    const run = runs.size === 1 ? parts[0].run : null;
    let stale = false;
    let stream = null;

    const finished = () => parts.every((part) => part.done());
    function refreshAll() {
      if (document.hidden) {
        stale = true; // re-read when the tab is shown again
        return;
      }
      stale = false;
      for (const part of parts) part.refresh();
    }
    document.addEventListener("visibilitychange", () => {
      if (!document.hidden && stale) refreshAll();
    });

    function pollEach() {
      document.documentElement.dataset.liveBy = "poll"; // what keeps the page current
      for (const part of parts) {
        const tick = async () => {
          if (part.done()) return;
          if (!document.hidden) await part.refresh();
          setTimeout(tick, part.interval);
        };
        setTimeout(tick, part.interval);
      }
    }
    if (!("EventSource" in window)) {
      pollEach();
      return;
    }

    let slow = 20000;
    let timer = null;
    function rearm() {
      clearTimeout(timer);
      if (stream) timer = setTimeout(() => { refreshAll(); rearm(); }, slow);
    }
    function stop() {
      if (stream) stream.close();
      stream = null;
      clearTimeout(timer);
    }
    let failures = 0;
    stream = new EventSource("/ui/events" + (run ? "?run=" + encodeURIComponent(run) : ""));
    stream.addEventListener("hello", (event) => {
      failures = 0;
      document.documentElement.dataset.liveBy = "stream";
      slow = Number(JSON.parse(event.data).poll) || slow;
      refreshAll(); // what changed while the stream was not open
      rearm();
    });
    stream.addEventListener("change", () => {
      refreshAll();
      rearm();
    });
    stream.addEventListener("error", () => {
      // a stream that ends (every few minutes) reconnects by itself: only one that keeps
      // failing, or is refused (signed out: the poll's 401 goes to the sign-in page), is left
      failures += 1;
      if (stream && (stream.readyState === EventSource.CLOSED || failures >= 3)) {
        stop();
        pollEach();
      }
    });
    document.addEventListener("fulmen:final", () => {
      if (finished()) stop();
    });
  }

  function status(el) {
    async function read() {
      try {
        const figures = await (await get(el.dataset.src)).json();
        for (const b of el.querySelectorAll("[data-key]")) {
          b.textContent = figures[b.dataset.key];
        }
        for (const span of el.querySelectorAll("[data-warn-when-zero]")) {
          span.classList.toggle("warn", !figures[span.dataset.warnWhenZero]);
        }
      } catch (error) {
        console.warn(error);
      }
    }
    async function tick() {
      if (!document.hidden) await read();
      setTimeout(tick, 3000);
    }
    document.addEventListener("fulmen:final", () => read());
    setTimeout(tick, 3000);
  }

  // Logs: pages of lines appended as chunks (CSS keeps off-screen chunks unrendered).
  function logs(el) {
    const end = document.getElementById("logs-end");
    const count = document.getElementById("log-count");
    const ids = new Set(Array.from(el.querySelectorAll(".line"), (line) => line.dataset.id));
    let cursor = el.dataset.next; // the next page, or "" at the end
    let tail = ""; // the cursor of the last (partial) page: re-read while following
    let busy = false;

    function counted() {
      if (!cursor) document.getElementById("logs-jump").hidden = true;
      count.textContent = ids.size.toLocaleString() + " line" + (ids.size === 1 ? "" : "s");
      if (ids.size && end.textContent.startsWith("No log")) end.textContent = "";
    }

    async function load(from) {
      const url = el.dataset.src + (from ? "?cursor=" + encodeURIComponent(from) : "");
      const response = await get(url);
      const next = response.headers.get("x-next-cursor") || "";
      const holder = document.createElement("div");
      holder.innerHTML = await response.text();
      const chunk = document.createElement("div");
      chunk.className = "chunk";
      for (const line of Array.from(holder.children)) {
        if (ids.has(line.dataset.id)) continue;
        ids.add(line.dataset.id);
        chunk.appendChild(line);
      }
      if (chunk.children.length) el.appendChild(chunk);
      if (next) tail = next;
      return next;
    }

    async function more() {
      if (busy || !cursor) return;
      busy = true;
      try {
        cursor = await load(cursor);
        counted();
      } finally {
        busy = false;
      }
      if (cursor && near()) more();
    }

    function near() {
      return end.getBoundingClientRect().top < window.innerHeight + 1500;
    }

    // A run in flight: read the lines after the last one (when watch says so).
    async function follow() {
      if (!("follow" in el.dataset) || busy || cursor) return;
      busy = true;
      try {
        cursor = await load(tail);
        counted();
      } catch (error) {
        console.warn(error);
      } finally {
        busy = false;
      }
    }

    // Everything up to the last line (where a failure usually is), then scroll there.
    const jump = document.getElementById("logs-jump");
    jump.addEventListener("click", async () => {
      jump.disabled = true;
      while (cursor) {
        if (busy) {
          await new Promise((resolve) => setTimeout(resolve, 50));
          continue;
        }
        busy = true;
        try {
          cursor = await load(cursor);
        } finally {
          busy = false;
        }
        counted();
      }
      jump.hidden = true;
      end.scrollIntoView({ block: "end" });
    });

    new IntersectionObserver((entries) => {
      if (entries.some((entry) => entry.isIntersecting)) more();
    }, { rootMargin: "1500px 0px" }).observe(end);

    // The run ended: read what is left once more, then stop following.
    document.addEventListener("fulmen:final", async () => {
      delete el.dataset.follow;
      while (busy) await new Promise((resolve) => setTimeout(resolve, 50));
      if (!cursor) cursor = await load(tail);
      counted();
      el.dataset.settled = "";
    });

    for (const box of document.querySelectorAll("input[data-level]")) {
      box.addEventListener("change", () => {
        el.classList.toggle("hide-" + box.dataset.level, !box.checked);
      });
    }
    counted();
    return { refresh: follow, done: () => !("follow" in el.dataset), interval: 2000, run: el.dataset.run || null };
  }

  function enhance(root) {
    localTimes(root);
    for (const details of root.querySelectorAll("details[data-src]")) {
      details.addEventListener("toggle", async () => {
        if (!details.open || details.dataset.loaded) return;
        details.dataset.loaded = "1";
        const body = details.querySelector(".clip");
        try {
          body.innerHTML = await (await get(details.dataset.src)).text();
          localTimes(body);
        } catch (error) {
          body.textContent = "Could not load it: " + error.message;
          delete details.dataset.loaded;
        }
      });
    }
    for (const button of root.querySelectorAll("[data-copy]")) {
      button.addEventListener("click", async () => {
        const text = button.dataset.copy;
        try {
          await navigator.clipboard.writeText(text);
        } catch (error) {
          const input = button.parentElement.querySelector("input");
          if (input) {
            input.select();
            document.execCommand("copy");
          }
        }
        button.textContent = "Copied";
        setTimeout(() => (button.textContent = "Copy"), 1500);
      });
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    enhance(document);
    for (const form of document.querySelectorAll("form[data-autosubmit]")) {
      form.addEventListener("change", (event) => {
        if (event.target.tagName === "SELECT") form.submit();
      });
    }
    // A button with data-confirm asks first (cancel a run, rerun many).
    document.addEventListener("submit", (event) => {
      const question = event.submitter && event.submitter.dataset.confirm;
      if (question && !confirm(question)) event.preventDefault();
    });
    const parts = Array.from(document.querySelectorAll("[data-live][data-src]"), live);
    const figures = document.getElementById("status");
    if (figures) status(figures);
    const lines = document.getElementById("logs");
    if (lines) parts.push(logs(lines));
    watch(parts);
  });
})();
