// crosspatch dispatch console.
//
// The page talks to the MQTT broker directly over WebSockets (MQTT.js, vendor/mqtt.min.js) with
// the dispatcher's own broker login: the broker's password file and ACL decide what this login
// may read and command. What it shows comes from the topics every gateway publishes
// (docs/mqtt-api.yaml): retained present state (status, info, ports, patches, calls/active,
// alarms/active, access/<login>) and the live calls and events. Commands go to
// PREFIX/GW/cmd/<login> as MQTT 5 requests with a response topic; the gateway decides, and its
// reply is shown as it worded it.
//
// Rendering: messages only update the model and mark a panel dirty; panels are redrawn at most
// once per animation frame, and rows are kept by key and rewritten only when their content
// changed, so a burst of events costs one redraw, not one per message.
"use strict";

(() => {
  const LAST_CALLS_KEPT = 200;
  const REPLIES_KEPT = 30;
  const REPLY_TIMEOUT_MS = 10000;

  const model = {
    prefix: "crosspatch",
    user: null,
    gateways: new Map(), // gw -> {id, status, since, info, access}
    ports: new Map(), // "gw\u0000port" -> port state + {gateway}
    patches: new Map(), // "gw\u0000patch" -> patch state + {gateway}
    calls: new Map(), // "gw\u0000call_id" -> call_start + {gateway}
    alarms: new Map(), // "gw\u0000kind/subject" -> alarm + {gateway}
    lastCalls: [], // call_end events, newest first
    replies: [], // {id, text, cls}
    waiting: new Map(), // command id -> {gw, patch, verb, timer, entry}
  };
  const dirty = new Set();
  let client = null;
  let replyTag = null;
  let frameRequested = false;
  // Measurements for tests and benchmarks: when each panel was last drawn (performance.now()).
  const stats = { renders: 0, messages: 0, lastRender: 0, malformed: 0, renderErrors: 0 };
  window.crosspatchConsole = { model, stats };

  // ------------------------------------------------------------------ small DOM helpers
  const $ = (id) => document.getElementById(id);
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    if (props) {
      for (const [k, v] of Object.entries(props)) {
        if (v === undefined || v === null || v === false) continue;
        if (k === "class") node.className = v;
        else if (k === "text") node.textContent = v;
        else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
        else if (k === "dataset") Object.assign(node.dataset, v);
        else node.setAttribute(k, v === true ? "" : v);
      }
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // Keeps a tbody's rows in the order of `items`, keyed; a row is rebuilt only when the
  // signature of its content changed (a carrier light, a duration).
  function syncRows(tbody, items, keyOf, signatureOf, build) {
    const existing = new Map();
    for (const row of tbody.rows) existing.set(row.dataset.key, row);
    let previous = null;
    for (const item of items) {
      const key = keyOf(item);
      const signature = signatureOf(item);
      let row = existing.get(key);
      if (row) {
        existing.delete(key);
        if (row.dataset.sig !== signature) {
          const fresh = build(item);
          fresh.dataset.key = key;
          fresh.dataset.sig = signature;
          row.replaceWith(fresh);
          row = fresh;
        }
      } else {
        row = build(item);
        row.dataset.key = key;
        row.dataset.sig = signature;
      }
      const wanted = previous ? previous.nextSibling : tbody.firstChild;
      if (wanted !== row) tbody.insertBefore(row, wanted);
      previous = row;
    }
    for (const row of existing.values()) row.remove();
  }

  function markDirty(...panels) {
    for (const p of panels) dirty.add(p);
    if (frameRequested) return;
    frameRequested = true;
    // An animation frame when the page is shown; a timer when it is not (a hidden tab gets no
    // frames, and its model must not fall behind).
    const run = () => {
      if (!frameRequested) return;
      frameRequested = false;
      render();
    };
    requestAnimationFrame(run);
    setTimeout(run, 100);
  }

  // ------------------------------------------------------------------ formatting
  const sep = "\u0000";
  function gatewayOf(id) {
    let gw = model.gateways.get(id);
    if (!gw) {
      gw = { id, status: null, since: null, info: null, access: null };
      model.gateways.set(id, gw);
      markDirty("gateways", "filters");
    }
    return gw;
  }
  function online(gwId) {
    const gw = model.gateways.get(gwId);
    return !!gw && gw.status === "online";
  }
  function country(gwId, agency) {
    const info = model.gateways.get(gwId)?.info;
    return info?.agencies?.[agency]?.country || "";
  }
  function agencyNode(gwId, agency) {
    if (!agency) return el("span", { class: "muted", text: "-" });
    const c = country(gwId, agency);
    return el("span", null, agency, c ? el("span", { class: "country", text: c }) : null);
  }
  function endpoint(gwId, end) {
    if (!end) return "?";
    const tg = end.talkgroup || end.port;
    const c = country(gwId, end.agency);
    return el("span", { class: "endpoint" }, tg, c ? el("span", { class: "country", text: c }) : null);
  }
  function clock(iso) {
    if (!iso) return "";
    const d = new Date(iso);
    return isNaN(d) ? String(iso) : d.toLocaleTimeString([], { hour12: false });
  }
  function duration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const m = Math.floor(s / 60);
    const h = Math.floor(m / 60);
    const two = (n) => String(n).padStart(2, "0");
    return h ? `${h}:${two(m % 60)}:${two(s % 60)}` : `${m}:${two(s % 60)}`;
  }
  function mhz(port) {
    const rx = port.rx_mhz, tx = port.tx_mhz;
    if (rx == null && tx == null) return "-";
    if (tx == null || tx === rx) return Number(rx).toFixed(4);
    return `${Number(rx).toFixed(4)} / ${Number(tx).toFixed(4)}`;
  }
  const byText = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

  // ------------------------------------------------------------------ panels
  function renderGateways() {
    const list = $("gateways");
    const gws = [...model.gateways.values()].sort((a, b) => byText(a.id, b.id));
    const items = gws.map((gw) => {
      const ports = [...model.ports.values()].filter((p) => p.gateway === gw.id);
      const alarms = [...model.alarms.values()].filter((a) => a.gateway === gw.id).length;
      const state = gw.status === "online" ? "online" : gw.status === "offline" ? "offline" : "unknown";
      return { gw, ports, alarms, state };
    });
    list.replaceChildren(
      ...items.map(({ gw, ports, alarms, state }) => {
        const up = ports.filter((p) => p.online).length;
        const who = gw.access
          ? `you: ${gw.access.role}${gw.access.agency ? ` (${gw.access.agency})` : ""}`
          : "you: view only";
        return el(
          "li",
          { class: state, dataset: { gateway: gw.id, state } },
          el("div", null, el("span", { class: "gw-id", text: gw.id }), " ",
            el("span", { class: "gw-state", text: state === "unknown" ? "no status" : state })),
          el("div", { class: "gw-site", text: gw.info?.site || "" }),
          el("div", { class: "gw-meta",
            text: `${state === "offline" ? "last known: " : ""}${up}/${ports.length} ports up · ` +
              `${alarms} alarm${alarms === 1 ? "" : "s"} · ${who}` +
              (state === "offline" && gw.since ? ` · since ${clock(gw.since)}` : "") }),
        );
      }),
    );
  }

  function renderPorts() {
    const ports = [...model.ports.values()].sort(
      (a, b) => byText(a.gateway, b.gateway) || byText(a.port, b.port));
    syncRows(
      $("ports"), ports,
      (p) => `${p.gateway}${sep}${p.port}`,
      (p) => JSON.stringify([p, online(p.gateway), portAlarms(p).length]),
      (p) => {
        const up = online(p.gateway);
        const alarms = portAlarms(p);
        const stateText = !up ? "gateway offline" : !p.online ? "offline" : alarms.length
          ? alarms.map((a) => a.kind).join(", ") : "ok";
        return el("tr", { class: up ? "" : "stale", dataset: { gateway: p.gateway, port: p.port } },
          el("td", { text: p.gateway }),
          el("td", { text: p.port }),
          el("td", null, agencyNode(p.gateway, p.agency)),
          el("td", { text: p.talkgroup || "-" }),
          el("td", { text: mhz(p) }),
          el("td", null, el("span", { class: `light rx ${p.carrier && up ? "rx-on" : ""}`,
            dataset: { light: "carrier", on: String(!!(p.carrier && up)) }, text: "RX" })),
          el("td", null, el("span", { class: `light tx ${p.ptt && up ? "tx-on" : ""}`,
            dataset: { light: "ptt", on: String(!!(p.ptt && up)) }, text: "TX" })),
          el("td", { class: p.online && up && !alarms.length ? "" : "alarm-kind", text: stateText }),
        );
      },
    );
    $("ports-empty").hidden = ports.length > 0;
  }
  function portAlarms(p) {
    return [...model.alarms.values()].filter((a) => a.gateway === p.gateway && a.port === p.port);
  }

  function patchActions(p) {
    const gw = model.gateways.get(p.gateway);
    const access = gw?.access;
    const allowed = access?.patches?.[p.patch] || [];
    if (!access || !allowed.length) return el("span", { class: "view-only", text: "view only" });
    const offered = [];
    const mine = access.role === "technician" || (p.waiting_for || []).includes(access.agency);
    if (p.state === "disabled" && allowed.includes("enable")) offered.push("enable");
    if (p.state === "pending" && mine && allowed.includes("approve")) offered.push("approve");
    if (p.state === "pending" && mine && allowed.includes("deny")) offered.push("deny");
    if (p.state !== "disabled" && allowed.includes("disable")) offered.push("disable");
    const up = online(p.gateway);
    const busy = [...model.waiting.values()].some((w) => w.gw === p.gateway && w.patch === p.patch);
    const label = { enable: "Enable", approve: "Approve", deny: "Deny",
      disable: p.state === "pending" ? "Withdraw" : "Disable" };
    return el("span", { class: "actions" }, ...offered.map((verb) => el("button", {
      type: "button", class: `act-${verb}`, disabled: !up || busy,
      title: up ? `${label[verb]} ${p.patch} on ${p.gateway}` : "gateway offline",
      dataset: { verb, patch: p.patch, gateway: p.gateway },
      onclick: () => send(p.gateway, p.patch, verb),
      text: label[verb],
    })));
  }

  function requestNode(p) {
    if (p.state !== "pending") return "";
    const left = p.expires ? (Date.parse(p.expires) - Date.now()) / 1000 : null;
    return el("span", null,
      p.requested_by ? `asked by ${p.requested_by}` : "asked",
      (p.waiting_for || []).length
        ? el("span", { class: "waiting" }, ` · waiting for ${p.waiting_for.join(", ")}`) : null,
      left !== null ? ` · ${left > 0 ? `expires in ${duration(left)}` : "expiring"}` : null);
  }

  function renderPatches() {
    const patches = [...model.patches.values()].sort(
      (a, b) => byText(a.gateway, b.gateway) || byText(a.patch, b.patch));
    const access = (gw) => JSON.stringify(model.gateways.get(gw)?.access || null);
    const now = Math.floor(Date.now() / 1000);
    syncRows(
      $("patches"), patches,
      (p) => `${p.gateway}${sep}${p.patch}`,
      (p) => JSON.stringify([p, online(p.gateway), access(p.gateway),
        p.state === "pending" ? now : 0,
        [...model.waiting.values()].filter((w) => w.gw === p.gateway && w.patch === p.patch).length]),
      (p) => {
        const up = online(p.gateway);
        const members = (p.members || []).map((m) => el("div", { class: "member" },
          m.talkgroup || m.port, m.agency && country(p.gateway, m.agency)
            ? el("span", { class: "country", text: country(p.gateway, m.agency) }) : null,
          m.mode && m.mode !== "talk+listen" ? ` (${m.mode})` : ""));
        return el("tr", { class: up ? "" : "stale",
          dataset: { gateway: p.gateway, patch: p.patch, state: p.state } },
          el("td", null, el("div", { class: "patch-name", text: p.patch }),
            el("div", { class: "small", text: p.gateway })),
          el("td", null, el("span", { class: `badge ${p.state}`, text: p.state }),
            p.floor ? el("div", { class: "small", text: `floor: ${p.floor}` }) : null),
          el("td", null, ...members),
          el("td", { class: "request" }, requestNode(p)),
          el("td", null, patchActions(p)),
        );
      },
    );
    $("patches-empty").hidden = patches.length > 0;
  }

  function renderCalls() {
    const calls = [...model.calls.values()].sort((a, b) => byText(a.time, b.time));
    const now = Date.now();
    syncRows(
      $("calls"), calls,
      (c) => `${c.gateway}${sep}${c.call_id}`,
      (c) => JSON.stringify([c.call_id, online(c.gateway), Math.floor((now - Date.parse(c.time)) / 1000)]),
      (c) => {
        const up = online(c.gateway);
        return el("tr", { class: up ? "" : "stale", dataset: { gateway: c.gateway, call: c.call_id } },
          el("td", { text: c.gateway }),
          el("td", null, endpoint(c.gateway, c.source)),
          el("td", { class: "arrow", text: "\u2192" }),
          el("td", null, ...(c.destinations || []).flatMap((d, i) =>
            [i ? ", " : null, endpoint(c.gateway, d)])),
          el("td", { text: c.patch || "" }),
          el("td", { text: up ? duration((now - Date.parse(c.time)) / 1000) : "gateway offline" }),
        );
      },
    );
    $("calls-empty").hidden = calls.length > 0;
  }

  function renderLastCalls() {
    const agency = $("filter-agency").value;
    const gateway = $("filter-gateway").value;
    const shown = model.lastCalls.filter((c) =>
      (!gateway || c.gateway === gateway) &&
      (!agency || c.source?.agency === agency ||
        (c.destinations || []).some((d) => d.agency === agency)));
    syncRows(
      $("last-calls"), shown,
      (c) => `${c.gateway}${sep}${c.call_id}`,
      () => "",
      (c) => el("tr", { dataset: { gateway: c.gateway, call: c.call_id } },
        el("td", null, el("div", { text: clock(c.end || c.time) }),
          el("div", { class: "small", text: c.gateway })),
        el("td", null, endpoint(c.gateway, c.source), el("span", { class: "arrow", text: " \u2192 " }),
          ...(c.destinations || []).flatMap((d, i) => [i ? ", " : null, endpoint(c.gateway, d)])),
        el("td", { text: c.patch || "" }),
        el("td", { text: typeof c.duration_s === "number" ? `${c.duration_s.toFixed(1)} s` : "" }),
        el("td", { text: c.reason || "" }),
      ),
    );
    $("last-empty").hidden = shown.length > 0;
  }

  function renderFilters() {
    const fill = (select, values) => {
      const chosen = select.value;
      const have = [...select.options].map((o) => o.value);
      const want = ["", ...values];
      if (JSON.stringify(have) === JSON.stringify(want)) return;
      select.replaceChildren(...want.map((v) => el("option", { value: v, text: v || "all" })));
      select.value = want.includes(chosen) ? chosen : "";
    };
    const agencies = new Set();
    for (const gw of model.gateways.values())
      for (const a of Object.keys(gw.info?.agencies || {})) agencies.add(a);
    fill($("filter-agency"), [...agencies].sort());
    fill($("filter-gateway"), [...model.gateways.keys()].sort());
  }

  function renderAlarms() {
    const alarms = [...model.alarms.values()].sort((a, b) => byText(a.time, b.time));
    syncRows(
      $("alarms"), alarms,
      (a) => `${a.gateway}${sep}${a.key}`,
      (a) => JSON.stringify([a, online(a.gateway)]),
      (a) => el("tr", { class: online(a.gateway) ? "" : "stale",
        dataset: { gateway: a.gateway, kind: a.kind } },
        el("td", { text: a.gateway }),
        el("td", { class: "alarm-kind", text: a.kind }),
        el("td", { text: a.port || a.patch || "gateway" }),
        el("td", { text: clock(a.time) }),
        el("td", { text: a.detail || "" }),
      ),
    );
    $("alarms-empty").hidden = alarms.length > 0;
    $("alarm-count").textContent = alarms.length ? `(${alarms.length})` : "";
  }

  function renderReplies() {
    $("replies").replaceChildren(...model.replies.map((r) =>
      el("li", { class: r.cls, dataset: { id: r.id, outcome: r.cls } }, r.text)));
  }

  const PANELS = [
    ["gateways", renderGateways], ["filters", renderFilters], ["ports", renderPorts],
    ["patches", renderPatches], ["calls", renderCalls], ["last", renderLastCalls],
    ["alarms", renderAlarms], ["replies", renderReplies],
  ];

  function render() {
    stats.renders += 1;
    const all = new Set(dirty);
    dirty.clear();
    if (all.has("filters")) all.add("last");
    for (const [name, draw] of PANELS) {
      if (!all.has(name)) continue;
      try {
        draw();
      } catch (err) {
        // One panel that cannot draw what it was given never stops the others.
        stats.renderErrors += 1;
        console.error(`crosspatch console: the ${name} panel could not be drawn`, err);
      }
    }
    stats.lastRender = performance.now();
  }

  // ------------------------------------------------------------------ messages
  function parse(payload) {
    const text = new TextDecoder().decode(payload);
    if (!text) return null; // an empty retained message: the state is cleared
    try {
      const value = JSON.parse(text);
      // Every payload a gateway publishes is one JSON object; anything else is ignored.
      return typeof value === "object" && value !== null && !Array.isArray(value) ? value : undefined;
    } catch (e) {
      return undefined;
    }
  }

  function onMessage(topic, payload, packet) {
    stats.messages += 1;
    const head = `${model.prefix}/`;
    if (!topic.startsWith(head)) return;
    const parts = topic.slice(head.length).split("/");
    const gwId = parts[0];
    const kind = parts[1];
    if (!gwId || !kind) return;
    if (kind === "status") {
      const text = new TextDecoder().decode(payload);
      const gw = gatewayOf(gwId);
      if (gw.status !== text) {
        gw.status = text || null;
        gw.since = new Date().toISOString();
      }
      markDirty("gateways", "ports", "patches", "calls", "alarms");
      return;
    }
    if (kind === "reply") return onReply(payload, packet);
    const value = parse(payload);
    if (value === undefined) {
      stats.malformed += 1; // not JSON: a gateway never sends it; ignore, never break
      return;
    }
    if (value && !wellFormed(kind, parts, value)) {
      stats.malformed += 1;
      return;
    }
    const gw = gatewayOf(gwId);
    const rest = parts.slice(2).join("/");
    const key = `${gwId}${sep}${rest}`;
    switch (kind) {
      case "info":
        gw.info = value;
        markDirty("gateways", "filters", "ports", "patches", "calls");
        break;
      case "access":
        if (rest !== model.user) break;
        gw.access = value;
        markDirty("gateways", "patches");
        break;
      case "ports":
        if (value) model.ports.set(key, { ...value, gateway: gwId });
        else model.ports.delete(key);
        markDirty("ports", "gateways");
        break;
      case "patches":
        if (value) model.patches.set(key, { ...value, gateway: gwId });
        else model.patches.delete(key);
        markDirty("patches");
        break;
      case "alarms":
        if (parts[2] !== "active") break;
        {
          const akey = `${gwId}${sep}${parts.slice(3).join("/")}`;
          if (value) model.alarms.set(akey, { ...value, gateway: gwId, key: parts.slice(3).join("/") });
          else model.alarms.delete(akey);
        }
        markDirty("alarms", "ports", "gateways");
        break;
      case "calls":
        if (parts[2] === "active") {
          const ckey = `${gwId}${sep}${parts.slice(3).join("/")}`;
          if (value) model.calls.set(ckey, { ...value, gateway: gwId });
          else model.calls.delete(ckey);
          markDirty("calls");
        } else if (value && parts.length === 2) {
          onCallEvent(gwId, value);
        }
        break;
      case "events":
        if (value && parts.length === 2) onLiveEvent(gwId, value);
        break;
      default:
        break;
    }
  }

  // The fields each kind of message must have, of the right types, to be shown at all.
  const isText = (v) => typeof v === "string" && v.length > 0;
  const isEnd = (v) => typeof v === "object" && v !== null && typeof v.port === "string";
  function isCall(v) {
    return isText(v.call_id) && isEnd(v.source) && Array.isArray(v.destinations) &&
      v.destinations.every(isEnd);
  }
  function wellFormed(kind, parts, v) {
    switch (kind) {
      case "ports": return isText(v.port);
      case "patches": return isText(v.patch) && isText(v.state) &&
        (v.members === undefined || Array.isArray(v.members));
      case "alarms": return isText(v.kind);
      case "calls":
        if (parts[2] === "active") return isCall(v);
        return v.type === "call_start" || v.type === "call_end" ? isCall(v) : true;
      case "access": return typeof v.patches === "object" && v.patches !== null;
      default: return true;
    }
  }

  function onCallEvent(gwId, event) {
    const key = `${gwId}${sep}${event.call_id}`;
    if (event.type === "call_start") {
      model.calls.set(key, { ...event, gateway: gwId });
      markDirty("calls");
    } else if (event.type === "call_end") {
      model.calls.delete(key);
      if (!model.lastCalls.some((c) => c.gateway === gwId && c.call_id === event.call_id)) {
        model.lastCalls.unshift({ ...event, gateway: gwId });
        model.lastCalls.length = Math.min(model.lastCalls.length, LAST_CALLS_KEPT);
      }
      markDirty("calls", "last");
    }
  }

  function onLiveEvent(gwId, event) {
    // Carrier and PTT: light the port at once (its retained state follows within 0.2 s).
    if ((event.type === "carrier" || event.type === "ptt") && typeof event.port === "string") {
      const port = model.ports.get(`${gwId}${sep}${event.port}`);
      if (port) {
        port[event.type] = !!event.on;
        markDirty("ports");
      }
    }
  }

  // ------------------------------------------------------------------ commands
  function send(gwId, patch, verb) {
    if (!client || !client.connected) {
      addReply(null, `${gwId} · ${patch}: not sent, the broker is not connected`, "refused");
      return;
    }
    const id = `console-${replyTag}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 6)}`;
    const entry = { id, text: `${gwId} · ${verb} ${patch}: sent, waiting for the gateway…`,
      cls: "waiting-reply" };
    model.replies.unshift(entry);
    model.replies.length = Math.min(model.replies.length, REPLIES_KEPT);
    const timer = setTimeout(() => {
      model.waiting.delete(id);
      entry.text = `${gwId} · ${verb} ${patch}: no reply within ${REPLY_TIMEOUT_MS / 1000} s ` +
        "(the gateway may be busy or offline; the command may still have been carried out)";
      entry.cls = "refused";
      markDirty("replies", "patches");
    }, REPLY_TIMEOUT_MS);
    model.waiting.set(id, { gw: gwId, patch, verb, timer, entry });
    const base = `${model.prefix}/${gwId}`;
    client.publish(
      `${base}/cmd/${model.user}`,
      JSON.stringify({ command: `patch.${verb}`, patch, id }),
      { qos: 1, properties: { responseTopic: `${base}/reply/${model.user}/${replyTag}`,
        correlationData: new TextEncoder().encode(id) } },
      (err) => {
        if (!err) return;
        clearTimeout(timer);
        model.waiting.delete(id);
        entry.text = `${gwId} · ${verb} ${patch}: not sent (${err.message || err})`;
        entry.cls = "refused";
        markDirty("replies", "patches");
      },
    );
    markDirty("replies", "patches");
  }

  function onReply(payload, packet) {
    const reply = parse(payload);
    if (!reply) return;
    let id = reply.id;
    const corr = packet?.properties?.correlationData;
    if (!id && corr) id = new TextDecoder().decode(corr);
    const pending = model.waiting.get(id);
    if (!pending) return; // another console of this login, or a late reply
    clearTimeout(pending.timer);
    model.waiting.delete(id);
    const { gw, patch, verb, entry } = pending;
    if (reply.ok) {
      entry.text = `${gw} · ${verb} ${patch}: ${reply.result?.message || "done"}`;
      entry.cls = "ok";
    } else {
      entry.text = `${gw} · ${verb} ${patch}: refused: ${reply.error || "no reason given"}`;
      entry.cls = "refused";
    }
    markDirty("replies", "patches");
  }

  function addReply(id, text, cls) {
    model.replies.unshift({ id: id || "", text, cls });
    model.replies.length = Math.min(model.replies.length, REPLIES_KEPT);
    markDirty("replies");
  }

  // ------------------------------------------------------------------ connection
  function setConnection(text, cls) {
    const node = $("connection");
    node.textContent = text;
    node.className = `conn ${cls}`;
  }

  function loginRefused(err) {
    const code = err && (err.code ?? err.reasonCode);
    if (code === 4 || code === 5 || code === 134 || code === 135)
      return "The broker refused the login: wrong user name or password, or not allowed.";
    return `Cannot reach the broker (${(err && err.message) || err}).`;
  }

  function connect(config, username, password) {
    $("login-error").textContent = "";
    $("login-button").disabled = true;
    setConnection("connecting…", "conn-wait");
    replyTag = `c${Math.random().toString(36).slice(2, 10)}`;
    let everConnected = false;
    const c = mqtt.connect(config.broker_url, {
      username, password, protocolVersion: 5, clean: true, reconnectPeriod: 0,
      connectTimeout: 8000, clientId: `crosspatch-console-${username}-${replyTag}`,
      resubscribe: true,
    });
    client = c;
    c.on("connect", () => {
      if (!everConnected) {
        everConnected = true;
        model.user = username;
        showConsole(username);
      }
      // Reconnect after a lost link (the first attempt alone decides a login).
      c.options.reconnectPeriod = 2000;
      setConnection(`connected to ${config.broker_url}`, "conn-on");
      const p = model.prefix;
      const topics = [
        `${p}/+/status`, `${p}/+/info`, `${p}/+/ports/+`, `${p}/+/patches/+`, `${p}/+/calls`,
        `${p}/+/events`, `${p}/+/calls/active/+`, `${p}/+/alarms/active/#`,
        `${p}/+/access/${username}`, `${p}/+/reply/${username}/${replyTag}`,
      ];
      c.subscribe(topics, { qos: 1 });
    });
    c.on("message", onMessage);
    c.on("error", (err) => {
      if (!everConnected) {
        $("login-error").textContent = loginRefused(err);
        $("login-button").disabled = false;
        $("password").value = "";
        $("password").focus();
        setConnection("not connected", "conn-off");
        c.end(true);
        client = null;
      }
    });
    c.on("close", () => {
      if (everConnected && client === c) setConnection("connection lost: reconnecting…", "conn-off");
      else if (!everConnected && client === c && !$("login-error").textContent) {
        $("login-error").textContent = `Cannot reach the broker at ${config.broker_url}.`;
        $("login-button").disabled = false;
        setConnection("not connected", "conn-off");
        c.end(true);
        client = null;
      }
    });
  }

  function showConsole(username) {
    $("login-view").hidden = true;
    $("console-view").hidden = false;
    $("logout").hidden = false;
    $("who").textContent = `logged in as ${username}`;
    $("password").value = "";
    markDirty("gateways", "filters", "ports", "patches", "calls", "last", "alarms", "replies");
  }

  async function start() {
    let config;
    try {
      const response = await fetch("config.json", { cache: "no-store" });
      config = await response.json();
    } catch (e) {
      $("login-error").textContent = "The console server did not give its settings (config.json).";
      return;
    }
    model.prefix = config.topic_prefix || "crosspatch";
    $("broker-hint").textContent = `Broker: ${config.broker_url}`;
    $("login").addEventListener("submit", (ev) => {
      ev.preventDefault();
      connect(config, $("username").value.trim(), $("password").value);
    });
    $("logout").addEventListener("click", () => location.reload());
    $("filter-agency").addEventListener("change", () => markDirty("last"));
    $("filter-gateway").addEventListener("change", () => markDirty("last"));
    // Running durations and expiry countdowns.
    setInterval(() => { if (client) markDirty("calls", "patches"); }, 1000);
    $("username").focus();
  }

  document.addEventListener("DOMContentLoaded", start);
})();
