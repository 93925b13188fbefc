// Fulmen's dashboard: the pages are rendered by the server; this script only keeps them
// current and handy. Everything it fetches is an HTML fragment or a small JSON document
// from the same server, and every page works (without live updates) when it does not run.
//
//   [data-live][data-src]   re-read every data-interval ms while the tab is visible, and
//                           replaced when it changed; stops once the fragment says data-final
//   #status[data-src]       the header's figures (JSON)
//   #logs                   log lines a page at a time, the next page fetched as the reader
//                           scrolls near it; a run in flight is followed (data-follow)
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



  // Re-read a fragment on a timer; swap it in only when it changed.
  function live(el) {
    const interval = Number(el.dataset.interval || 2000);
    let last = null;
    let seen = new Set(Array.from(el.querySelectorAll("[data-id]"), (row) => row.dataset.id));
    async function tick() {
      if ("done" in el.dataset) return;
      if (!document.hidden) {
        try {
          const html = await (await get(el.dataset.src)).text();
          if (html !== last) {
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
              return;
            }
          }
        } catch (error) {
          console.warn(error);
        }
      }
      setTimeout(tick, interval);
    }
    setTimeout(tick, interval);
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

    async function follow() {
      if (!("follow" in el.dataset)) return;
      if (!document.hidden && !busy && !cursor) {
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
      setTimeout(follow, 2000);
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
    setTimeout(follow, 2000);
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
    for (const el of document.querySelectorAll("[data-live][data-src]")) live(el);
    const figures = document.getElementById("status");
    if (figures) status(figures);
    const lines = document.getElementById("logs");
    if (lines) logs(lines);
  });
})();
