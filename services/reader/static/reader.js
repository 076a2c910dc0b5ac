// The reader page, live: subscribe with `since` the rendered version, apply each change in place.
//
// CONTRACT.md "Reader page" and "Websocket gateway". Rules:
// - the server rendered the page at <html data-version>; we subscribe with since = that version,
//   so nothing falls between render and subscribe; each change must be version last + 1, and a
//   jump means we missed something: resubscribe with since = last;
// - after a disconnect (close, error, no answer to our ping, the browser going offline) we
//   reconnect with exponential backoff (0.5 s doubling to 30 s, with jitter) and resume with since;
//   a snapshot with `reset` re-renders the page from its state;
// - new entries above the reader's scroll position wait behind the #new-updates control instead
//   of moving the page; clicking it (or scrolling back to the top) shows them;
// - the DOM is built with createElement and textContent; the one exception is an entry body,
//   which is stored exactly as validated against the safe subset: it is parsed in a <template>
//   (inert), then every link gets rel="noopener nofollow ugc";
// - renderEntry/renderEmbed/playerUrl mirror services/reader/render.py and embeds.py element for element.
"use strict";

(() => {
  const root = document.documentElement;
  const story = root.dataset.story;
  const wsUrl = root.dataset.ws;
  if (!story || !wsUrl) return;

  const LINK_REL = "noopener nofollow ugc";
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const PROVIDERS = [
    ["youtube.com", "YouTube"], ["youtube-nocookie.com", "YouTube"], ["youtu.be", "YouTube"],
    ["vimeo.com", "Vimeo"], ["dailymotion.com", "Dailymotion"], ["x.com", "X"],
    ["twitter.com", "X"], ["bsky.app", "Bluesky"], ["instagram.com", "Instagram"],
    ["facebook.com", "Facebook"], ["threads.net", "Threads"], ["tiktok.com", "TikTok"],
    ["openstreetmap.org", "OpenStreetMap"], ["google.com", "Google Maps"],
    ["datawrapper.dwcdn.net", "Datawrapper"],
  ];
  const FRAME_SOURCES = [
    "https://www.youtube-nocookie.com/", "https://player.vimeo.com/",
    "https://www.dailymotion.com/", "https://datawrapper.dwcdn.net/",
    "https://www.openstreetmap.org/",
  ];
  const BACKOFF_FIRST = 500;
  const BACKOFF_MAX = 30000;
  const PING_EVERY = 25000;
  const SILENCE_LIMIT = 35000;
  const STEADY = 10000; // a connection open this long resets the backoff

  const $ = (id) => document.getElementById(id);
  const list = $("entries");
  const pinnedSlot = $("pinned");
  const button = $("new-updates");
  const keyList = $("key-events");
  const announcer = $("announcer");
  const connection = $("connection");
  const pagedBefore = root.hasAttribute("data-paged") ? Number(root.dataset.paged) : null;

  const live = { version: Number(root.dataset.version) || 0, connected: false };
  window.__dateline = live;
  root.classList.add("js");

  const pending = new Map(); // entry id -> entry JSON, waiting behind #new-updates
  const loaded = new Set(); // "entry/embed" the reader chose to load: keep them loaded

  // -- building blocks ------------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child !== null && child !== undefined && child !== "") node.append(child);
    }
    return node;
  }

  const pad = (n) => String(n).padStart(2, "0");
  const clock = (iso) => {
    const d = new Date(iso);
    return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())} UTC`;
  };
  const fullDate = (iso) => {
    const d = new Date(iso);
    return `${d.getUTCDate()} ${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()}, ${clock(iso)}`;
  };

  function ago(iso, now = Date.now()) {
    const seconds = (now - new Date(iso).getTime()) / 1000;
    if (!(seconds >= 60)) return "just now";
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `${minutes} min ago`;
    const hours = Math.floor(minutes / 60);
    if (hours < 24) return `${hours} hr ago`;
    const days = Math.floor(hours / 24);
    return days === 1 ? "1 day ago" : `${days} days ago`;
  }

  const stamp = (iso, css = "published") => [
    el("time", { class: css, datetime: iso, title: fullDate(iso) }, clock(iso)),
    el("span", { class: "ago", "data-ago": iso }, ago(iso)),
  ];
  const noteTime = (iso) => el("time", { datetime: iso, title: fullDate(iso) }, clock(iso));

  function refreshTimes() {
    const now = Date.now();
    for (const span of document.querySelectorAll("span.ago[data-ago]")) {
      const text = ago(span.dataset.ago, now);
      if (span.textContent !== text) span.textContent = text;
    }
  }

  // -- embeds ---------------------------------------------------------------------------------

  const hostIs = (host, domain) => host === domain || host.endsWith(`.${domain}`);
  const parseUrl = (url) => {
    try {
      return new URL(url);
    } catch {
      return null;
    }
  };

  function provider(url) {
    const parsed = parseUrl(url);
    const host = parsed ? parsed.hostname.toLowerCase() : "";
    for (const [domain, name] of PROVIDERS) if (hostIs(host, domain)) return name;
    return host.startsWith("www.") ? host.slice(4) : host;
  }

  function playerUrl(kind, url) {
    if (kind !== "video" && kind !== "map") return null;
    const parsed = parseUrl(url);
    if (!parsed || parsed.protocol !== "https:") return null;
    const host = parsed.hostname.toLowerCase();
    const segments = parsed.pathname.split("/").filter(Boolean);
    if (kind === "video") {
      let video = null;
      if (host === "youtu.be") video = segments[0] ?? null;
      else if (hostIs(host, "youtube.com") || hostIs(host, "youtube-nocookie.com")) {
        if (segments[0] === "watch") video = parsed.searchParams.get("v") ?? "";
        else if (segments.length >= 2 && ["embed", "shorts", "live", "v"].includes(segments[0])) {
          video = segments[1];
        }
      }
      if (video !== null && /^[A-Za-z0-9_-]{11}$/.test(video)) {
        return `https://www.youtube-nocookie.com/embed/${video}`;
      }
      if (hostIs(host, "vimeo.com")) {
        const numbers = segments.filter((s) => /^[0-9]+$/.test(s));
        if (numbers.length) return `https://player.vimeo.com/video/${numbers.at(-1)}?dnt=1`;
      }
      if (hostIs(host, "dailymotion.com")) {
        const at = segments.indexOf("video");
        if (at >= 0 && at + 1 < segments.length) {
          const clip = segments[at + 1].split("_")[0];
          if (/^[A-Za-z0-9]+$/.test(clip)) return `https://www.dailymotion.com/embed/video/${clip}`;
        }
      }
      return null;
    }
    if (host === "datawrapper.dwcdn.net" && segments.length) {
      return `https://datawrapper.dwcdn.net${parsed.pathname}`;
    }
    if ((host === "openstreetmap.org" || host === "www.openstreetmap.org")
        && parsed.pathname === "/export/embed.html") {
      return `https://www.openstreetmap.org/export/embed.html?${parsed.search.slice(1)}`;
    }
    return null;
  }

  function frameFor(player, title, kind) {
    if (!FRAME_SOURCES.some((source) => player.startsWith(source))) return null;
    let src = player;
    if (kind === "video") {
      const url = new URL(player);
      url.searchParams.set("autoplay", "1"); // the reader just asked for it
      src = url.href;
    }
    return el("div", { class: "embed-frame" }, el("iframe", {
      src,
      title,
      allow: "autoplay; encrypted-media; fullscreen; picture-in-picture",
      allowfullscreen: true,
      referrerpolicy: "strict-origin-when-cross-origin",
      sandbox: "allow-scripts allow-same-origin allow-presentation allow-popups",
    }));
  }

  function renderEmbed(entryId, embed) {
    const { kind, url, caption, alt } = embed;
    // The decision accepts only https, its scheme in any case (HTTPS:// too); never render another.
    if (String(url).slice(0, 8).toLowerCase() !== "https://") return null;
    const figure = el("figure", { class: `embed embed-${kind}`, "data-embed-id": embed.embed_id });
    const cap = caption ? el("figcaption", {}, caption) : null;
    const name = provider(url);
    if (kind === "image") {
      figure.append(el("img", {
        src: url, alt: alt || "", loading: "lazy", decoding: "async", referrerpolicy: "no-referrer",
      }));
      if (cap) figure.append(cap);
      return figure;
    }
    const link = (...content) => el("a", { class: "embed-out", href: url, rel: LINK_REL }, ...content);
    if (kind === "link") {
      figure.append(link(el("span", { class: "embed-host" }, name), caption || url));
      return figure;
    }
    const player = playerUrl(kind, url);
    const noun = { video: "video", map: "map", social: "post" }[kind] || "embed";
    const title = caption || alt || `${name} ${noun}`;
    const frame = player && loaded.has(`${entryId}/${embed.embed_id}`)
      ? frameFor(player, title, kind) : null;
    if (frame) {
      figure.append(frame);
    } else {
      const box = el("div", { class: "embed-placeholder" }, el("p", { class: "embed-host" }, name));
      if (alt) box.append(el("p", { class: "embed-alt" }, alt));
      if (player) {
        box.append(
          el("button", { type: "button", class: "embed-load", "data-player": player, "data-title": title },
            `Load ${noun} from ${name}`),
          el("p", { class: "embed-notice" }, `Loading it connects to ${new URL(player).hostname}.`),
        );
      }
      box.append(link(`View ${noun} on ${name}`));
      figure.append(box);
    }
    if (cap) figure.append(cap);
    return figure;
  }

  document.addEventListener("click", (event) => {
    const load = event.target.closest("button.embed-load");
    if (!load) return;
    const figure = load.closest("figure.embed");
    const article = load.closest("article.entry");
    const kind = figure.classList.contains("embed-video") ? "video" : "map";
    const frame = frameFor(load.dataset.player, load.dataset.title, kind);
    if (!frame) return;
    if (article) loaded.add(`${article.dataset.entryId}/${figure.dataset.embedId}`);
    load.closest(".embed-placeholder").replaceWith(frame);
  });

  // -- entries --------------------------------------------------------------------------------

  function body(html) {
    const template = document.createElement("template");
    template.innerHTML = html; // validated subset; a template's content is inert
    for (const link of template.content.querySelectorAll("a")) link.rel = LINK_REL;
    const div = el("div", { class: "body" });
    div.append(template.content);
    return div;
  }

  const pinBadge = () => el("span", { class: "badge badge-pinned" }, "Pinned");

  function renderEntry(entry, pinned = false) {
    const retracted = entry.status === "retracted";
    const classes = ["entry"];
    if (pinned) classes.push("pinned");
    if (entry.key_event && !retracted) classes.push("key-event");
    if (retracted) classes.push("retracted");
    const article = el("article", {
      class: classes.join(" "),
      id: `entry-${entry.entry_id}`,
      "data-entry-id": entry.entry_id,
      "data-published-version": entry.published_version,
    });
    const meta = el("header", { class: "entry-meta" });
    if (pinned) meta.append(pinBadge());
    if (entry.key_event && !retracted) meta.append(el("span", { class: "badge badge-key" }, "Key event"));
    if (entry.time_label) meta.append(el("span", { class: "time-label" }, entry.time_label));
    meta.append(...stamp(entry.published_at));
    article.append(meta);
    if (retracted) {
      const retraction = entry.retraction || {};
      article.append(el("p", { class: "retraction" }, el("strong", {}, "Retracted"), " (",
        noteTime(retraction.at || entry.updated_at), `): ${retraction.note || ""}`));
      return article;
    }
    if (entry.headline) article.append(el("h2", { class: "headline" }, entry.headline));
    article.append(body(entry.body || ""));
    const embeds = (entry.embeds || []).map((e) => renderEmbed(entry.entry_id, e)).filter(Boolean);
    if (embeds.length) article.append(el("div", { class: "embeds" }, ...embeds));
    const corrections = entry.corrections || [];
    if (corrections.length) {
      article.append(el("div", { class: "corrections" }, ...corrections.map((c) =>
        el("p", { class: "correction" }, el("strong", {}, "Correction"), " (", noteTime(c.at),
          `): ${c.note}`))));
      article.append(correctionHistory(corrections, findEntry(entry.entry_id)));
    }
    return article;
  }

  // The "what changed" disclosure, as the server renders it (render.correction_history); a
  // reader who had it open keeps it open when the entry changes.
  const DIFF_TAGS = { "-": "del", "+": "ins" };

  function correctionHistory(corrections, before) {
    const items = corrections.map((c) => {
      const item = el("li", { class: "change", "data-version": c.version },
        el("p", { class: "change-note" }, el("strong", {}, "Correction"), " (", noteTime(c.at),
          `): ${c.note}`));
      if (c.diff && c.diff.length) {
        item.append(el("p", { class: "change-diff" }, ...c.diff.map(([op, text]) =>
          DIFF_TAGS[op] ? el(DIFF_TAGS[op], {}, text) : document.createTextNode(text))));
      }
      return item;
    });
    const label = corrections.length === 1 ? "What changed" : `What changed (${corrections.length} corrections)`;
    const wasOpen = !!(before && before.querySelector("details.correction-history[open]"));
    return el("details", { class: "correction-history", open: wasOpen },
      el("summary", {}, label), el("ol", { class: "changes" }, ...items));
  }

  function markPinned(article, on) {
    article.classList.toggle("pinned", on);
    const header = article.querySelector(".entry-meta");
    const badge = header.querySelector(".badge-pinned");
    if (on && !badge) header.prepend(pinBadge());
    if (!on && badge) badge.remove();
  }

  const findEntry = (id) => document.querySelector(`article.entry[data-entry-id="${CSS.escape(id)}"]`);
  const versionOf = (node) => Number(node.dataset.publishedVersion);

  function belongsHere(version) {
    if (pagedBefore !== null && version >= pagedBefore) return false;
    const last = list.lastElementChild;
    return !($("older") && last && version < versionOf(last));
  }

  // Put an entry in the list at its place (newest first); false when it belongs to another page.
  function placeInList(article) {
    const id = article.dataset.entryId;
    if ([...list.children].some((n) => n !== article && n.dataset.entryId === id)) return false;
    const version = versionOf(article);
    if (!belongsHere(version)) return false;
    const after = [...list.children].find((n) => n !== article && versionOf(n) < version);
    list.insertBefore(article, after || null);
    $("empty")?.remove();
    return true;
  }

  function replaceEntry(old, entry) {
    const fresh = renderEntry(entry, old.parentElement === pinnedSlot);
    old.replaceWith(fresh);
    return fresh;
  }

  // The reader has scrolled past the top of the updates: new ones would push the page around.
  const holding = () => pagedBefore !== null || list.getBoundingClientRect().top < 0;

  function applyEntry(entry, event) {
    const id = entry.entry_id;
    const old = findEntry(id);
    if (old) {
      replaceEntry(old, entry);
    } else if (pending.has(id)) {
      pending.set(id, entry);
    } else if (event === "entry.published" && holding()) {
      pending.set(id, entry);
      showPending();
    } else {
      const article = renderEntry(entry);
      if (placeInList(article) && event === "entry.published") article.classList.add("is-new");
    }
  }

  function showPending() {
    const n = pending.size;
    button.hidden = n === 0;
    if (!n) return;
    const text = n === 1 ? "1 new update" : `${n} new updates`;
    button.textContent = text;
    announcer.textContent = `${text} above`;
  }

  function revealPending({ scroll }) {
    if (pagedBefore !== null) {
      window.location.assign(`/live/${encodeURIComponent(story)}`);
      return;
    }
    const entries = [...pending.values()].sort((a, b) => a.published_version - b.published_version);
    pending.clear();
    showPending();
    let newest = null;
    for (const entry of entries) {
      const article = renderEntry(entry);
      if (placeInList(article)) {
        article.classList.add("is-new");
        newest = article;
      }
    }
    if (scroll) {
      const top = (pinnedSlot.hidden ? list : pinnedSlot).getBoundingClientRect().top;
      window.scrollTo({ top: window.scrollY + top - 16, behavior: "smooth" });
      if (newest) {
        newest.setAttribute("tabindex", "-1");
        newest.focus({ preventScroll: true });
      }
    }
  }

  button.addEventListener("click", () => revealPending({ scroll: true }));
  list.addEventListener("animationend", (event) => event.target.classList?.remove("is-new"));

  let scrollQueued = false;
  window.addEventListener("scroll", () => {
    if (scrollQueued || !pending.size) return;
    scrollQueued = true;
    requestAnimationFrame(() => {
      scrollQueued = false;
      if (pending.size && !holding()) revealPending({ scroll: false });
    });
  }, { passive: true });

  // -- the story ------------------------------------------------------------------------------

  function setUpdated(iso) {
    const holder = document.querySelector(".updated");
    const shown = holder.querySelector("time")?.getAttribute("datetime");
    if (!iso || (shown && new Date(shown) > new Date(iso))) return;
    holder.replaceChildren("Updated ", ...stamp(iso, "story-updated"));
  }

  function renderKeyEvents(items) {
    keyList.replaceChildren(...items.map((k) =>
      el("li", {}, el("a", { href: `#entry-${k.entry_id}` }, k.headline || "Key event"))));
    keyList.closest("nav").hidden = items.length === 0;
  }

  function pin(entry) {
    const id = entry ? entry.entry_id : null;
    const current = pinnedSlot.querySelector("article.entry");
    if (current && current.dataset.entryId !== id) {
      markPinned(current, false);
      if (!placeInList(current)) current.remove();
    }
    if (entry) {
      const old = findEntry(id);
      const fresh = renderEntry(entry, true);
      if (old) old.remove();
      if (pending.delete(id)) showPending();
      pinnedSlot.replaceChildren(fresh);
      $("empty")?.remove();
    }
    pinnedSlot.hidden = !entry;
  }

  function applyMeta(meta) {
    const closed = meta.status === "closed";
    $("story-title").textContent = meta.title;
    document.title = meta.title;
    const summary = $("story-summary");
    summary.textContent = meta.summary || "";
    summary.hidden = !meta.summary;
    const status = $("story-status");
    status.textContent = closed ? "Ended" : "Live";
    status.className = `status status-${closed ? "closed" : "live"}`;
    const note = $("closed-note");
    note.textContent = meta.closed_note || (closed ? "This live blog has ended." : "");
    note.hidden = !closed;
    setUpdated(meta.updated_at);
    renderKeyEvents(meta.key_events || []);
    pin(meta.pinned || null);
  }

  function reset(state) {
    pending.clear();
    showPending();
    if (pagedBefore === null) {
      const pinnedId = state.pinned ? state.pinned.entry_id : null;
      pinnedSlot.replaceChildren();
      list.replaceChildren(...state.entries.filter((e) => e.entry_id !== pinnedId)
        .map((e) => renderEntry(e)));
    }
    applyMeta(state);
  }

  function setVersion(version) {
    live.version = version;
    root.dataset.version = String(version);
  }

  // -- the connection -------------------------------------------------------------------------

  let socket = null;
  let attempt = 0;
  let retryTimer = 0;
  let resyncing = false;
  let resyncTimer = 0;
  let lastHeard = 0;
  let openedAt = 0;
  let stopped = false;

  function send(message) {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  }

  function subscribe() {
    send({ op: "subscribe", story, since: live.version });
  }

  function resubscribe() {
    resyncing = true;
    clearTimeout(resyncTimer);
    resyncTimer = setTimeout(() => { resyncing = false; }, 5000);
    subscribe();
  }

  function onMessage(message) {
    if (message.story !== undefined && message.story !== story) return;
    if (message.type === "snapshot") {
      resyncing = false;
      reset(message.state);
      setVersion(message.version);
    } else if (message.type === "change") {
      if (message.version <= live.version) return; // already applied
      if (message.version !== live.version + 1) {
        if (!resyncing) resubscribe(); // a gap: fetch what we missed, in order
        return;
      }
      resyncing = false;
      if (message.entry) {
        applyEntry(message.entry, message.event);
        setUpdated(message.entry.updated_at);
      }
      if (message.story_meta) applyMeta(message.story_meta);
      setVersion(message.version);
    } else if (message.type === "resumed") {
      showConnection("live"); // the store is back: changes flow again, in order
    } else if (message.type === "error") {
      if (message.subscribed) {
        showConnection("reconnecting"); // the store is away; the subscription stays
      } else if (message.code === "unknown_story") {
        showConnection("gone");
        stop();
      } else {
        lost(); // anything else (the store unavailable, ...): start over with since
      }
    }
  }

  function showConnection(state) {
    live.connected = state === "live";
    connection.hidden = false;
    connection.dataset.state = state;
    connection.textContent = {
      live: "Updating automatically",
      connecting: "Connecting…",
      reconnecting: "Reconnecting…",
      offline: "Offline: updates paused",
      gone: "This live blog is no longer available",
    }[state];
  }

  function connect() {
    clearTimeout(retryTimer);
    retryTimer = 0;
    if (socket || stopped) return;
    let ws;
    try {
      ws = new WebSocket(wsUrl);
    } catch {
      schedule();
      return;
    }
    socket = ws;
    ws.onopen = () => {
      if (socket !== ws) return;
      openedAt = lastHeard = Date.now();
      showConnection("live");
      subscribe();
    };
    ws.onmessage = (event) => {
      if (socket !== ws) return;
      lastHeard = Date.now();
      let message;
      try {
        message = JSON.parse(event.data);
      } catch {
        return;
      }
      onMessage(message);
    };
    ws.onclose = () => {
      if (socket === ws) lost();
    };
    ws.onerror = () => {}; // a close event follows
  }

  // Forget the socket at once (even a half-open one) and try again later.
  function lost() {
    const ws = socket;
    socket = null;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      try {
        ws.close();
      } catch {
        // already closed
      }
    }
    if (openedAt && Date.now() - openedAt > STEADY) attempt = 0;
    openedAt = 0;
    showConnection(navigator.onLine === false ? "offline" : "reconnecting");
    schedule();
  }

  function schedule() {
    if (retryTimer || stopped) return;
    const ceiling = Math.min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** attempt);
    attempt += 1;
    const delay = ceiling / 2 + Math.random() * (ceiling / 2); // jitter: no thundering herd
    retryTimer = setTimeout(connect, delay);
  }

  function stop() {
    stopped = true;
    const ws = socket;
    socket = null;
    clearTimeout(retryTimer);
    if (ws) {
      ws.onclose = null;
      ws.close();
    }
  }

  function now() {
    if (stopped) return;
    attempt = 0;
    if (!socket) connect();
  }

  setInterval(() => {
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    if (Date.now() - lastHeard > SILENCE_LIMIT) lost(); // no answer: the line is dead
    else send({ op: "ping" });
  }, PING_EVERY);
  setInterval(refreshTimes, 30000);

  window.addEventListener("online", now);
  window.addEventListener("offline", () => {
    if (socket) lost();
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState !== "visible") return;
    refreshTimes();
    if (!socket) now();
  });

  refreshTimes();
  showConnection("connecting");
  connect();
})();
