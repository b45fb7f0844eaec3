// The supervisor's wallboard: a staff login, then a board pushed by the engine over Server-Sent
// Events (/live/wallboard). The page never polls; every value from the engine is put into the
// page as text. ?tv=1 shows the board without actions, in large type, for a screen on the wall.
"use strict";

const $ = (id) => document.getElementById(id);
const tv = new URLSearchParams(location.search).has("tv");
let board = null;
let stream = null;
let pauseReasons = ["break", "lunch", "training", "meeting", "coaching"];

async function api(method, path, body) {
  const response = await fetch(path, {
    method, credentials: "same-origin",
    headers: body === undefined ? {} : {"content-type": "application/json"},
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = {};
  try { data = await response.json(); } catch (e) { /* empty body */ }
  if (!response.ok) throw new Error(data.error || response.statusText);
  return data;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.max(0, Math.round(seconds));
  const m = Math.floor(s / 60);
  return m >= 60 ? `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}` : `${m}:${String(s % 60).padStart(2, "0")}`;
}

function percent(value) { return value === null || value === undefined ? "–" : `${Math.round(value * 100)}%`; }

function el(tag, text, cls) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = String(text);
  if (cls) node.className = cls;
  return node;
}

function button(label, testid, onClick) {
  const b = el("button", label);
  b.type = "button";
  b.dataset.testid = testid;
  b.addEventListener("click", onClick);
  return b;
}

async function act(label, method, path, body) {
  const result = $("action-result");
  try {
    await api(method, path, body);
    result.textContent = `${label}: done`;
  } catch (e) {
    result.textContent = `${label}: ${e.message}`;
  }
}

function renderQueues() {
  const holder = $("queues");
  holder.replaceChildren();
  const queueNames = board.queues.map((q) => q.queue);
  for (const q of board.queues) {
    const tile = $("queue-tile").content.firstElementChild.cloneNode(true);
    tile.dataset.queue = q.queue;
    tile.querySelector(".name").textContent = q.queue;
    const set = (cls, text, lvl) => {
      const dd = tile.querySelector(cls);
      dd.textContent = text;
      if (lvl) dd.className = `${dd.className.split(" ")[0]} level-${lvl}`;
    };
    set(".waiting", q.waiting, q.levels.waiting);
    set(".longest", duration(q.longest_wait), q.levels.longest_wait);
    set(".estimated", duration(q.estimated_wait));
    set(".sl", `${percent(q.sl_today)} / ${percent(q.sl_target)} in ${q.sl_seconds}s`, q.levels.sl);
    set(".answered", q.answered_today);
    set(".abandoned", q.abandoned_today);
    set(".free", `${q.agents_available} / ${q.agents_logged_in}`);
    const list = tile.querySelector(".calls");
    for (const c of q.calls) {
      const li = el("li");
      li.dataset.testid = "waiting-call";
      li.dataset.call = c.call_id;
      li.append(el("span", `${duration(c.wait)} · p${c.priority} · ${c.state}`));
      if (!tv && c.state === "waiting") {
        li.append(button("Priority +1", "raise-priority", () =>
          act("Priority", "POST", `/api/supervisor/calls/${encodeURIComponent(c.call_id)}/priority`, {priority: c.priority + 1})));
        const move = el("select");
        move.dataset.testid = "move-call";
        move.append(el("option", "Move to…"));
        for (const name of queueNames.filter((n) => n !== q.queue)) {
          const option = el("option", name);
          option.value = name;
          move.append(option);
        }
        move.addEventListener("change", () => move.value && move.selectedIndex > 0 &&
          act("Move", "POST", `/api/supervisor/calls/${encodeURIComponent(c.call_id)}/move`, {queue: move.value}));
        li.append(move);
      }
      list.append(li);
    }
    holder.append(tile);
  }
}

function renderAgents() {
  const body = $("agents");
  body.replaceChildren();
  for (const a of board.agents) {
    const row = el("tr");
    row.dataset.testid = "agent-row";
    row.dataset.agent = a.agent_id;
    row.className = `level-${a.level}`;
    const state = a.reason ? `${a.state} (${a.reason})` : a.state;
    for (const [text, testid] of [[a.agent_id], [a.team || ""], [state, "agent-state"], [duration(a.seconds_in_state)],
                                  [a.call_seconds === null ? "" : duration(a.call_seconds)], [a.calls_today, "calls-today"],
                                  [duration(a.aht_today)]]) {
      const td = el("td", text);
      if (testid) td.dataset.testid = testid;
      row.append(td);
    }
    const actions = el("td", null, "actions");
    const path = `/api/supervisor/agents/${encodeURIComponent(a.agent_id)}`;
    if (a.state === "on_call") {
      for (const mode of ["listen", "whisper", "barge"]) {
        actions.append(button(mode[0].toUpperCase() + mode.slice(1), `spy-${mode}`,
          () => act(`${mode} ${a.agent_id}`, "POST", `${path}/spy`, {mode})));
      }
    }
    if (a.state === "paused") {
      actions.append(button("Unpause", "unpause", () => act(`Unpause ${a.agent_id}`, "POST", `${path}/unpause`, {})));
    } else {
      const reason = el("select");
      reason.dataset.testid = "pause-reason";
      for (const r of pauseReasons) reason.append(el("option", r));
      actions.append(reason, button("Pause", "pause",
        () => act(`Pause ${a.agent_id}`, "POST", `${path}/pause`, {reason: reason.value})));
    }
    actions.append(button("Skills", "edit-skills", () => editSkills(a)));
    actions.append(button("Log out", "logout-agent", () => act(`Log out ${a.agent_id}`, "POST", `${path}/logout`, {})));
    row.append(actions);
    body.append(row);
  }
}

function editSkills(agent) {
  const current = Object.entries(agent.skills).map(([k, v]) => `${k}=${v}`).join(", ");
  const answer = window.prompt(`Skills of ${agent.agent_id} (name=level, ...)`, current);
  if (answer === null) return;
  const skills = {};
  for (const part of answer.split(",").map((p) => p.trim()).filter(Boolean)) {
    const [name, level] = part.split("=").map((p) => p.trim());
    skills[name] = Number(level);
  }
  act(`Skills ${agent.agent_id}`, "POST", `/api/supervisor/agents/${encodeURIComponent(agent.agent_id)}/skills`, {skills});
}

function renderTotals() {
  const t = board.totals;
  const holder = $("totals");
  holder.replaceChildren(
    el("span", `Waiting ${t.waiting}`), el("span", `Longest ${duration(t.longest_wait)}`),
    el("span", `Answered ${t.answered_today}`), el("span", `Abandoned ${t.abandoned_today}`),
    el("span", Object.entries(t.agents_by_state).map(([s, n]) => `${s} ${n}`).join(" · ")));
}

function render() {
  if (!board) return;
  renderTotals();
  renderQueues();
  renderAgents();
  $("clock").textContent = new Date(board.at * 1000).toLocaleTimeString();
}

function connect() {
  if (stream) stream.close();
  stream = new EventSource("/live/wallboard");
  stream.addEventListener("board", (e) => {
    board = JSON.parse(e.data);
    if (board.pause_reasons) pauseReasons = board.pause_reasons;
    render();
  });
  stream.addEventListener("open", () => { $("live").textContent = "live"; $("live").classList.add("on"); });
  stream.addEventListener("error", () => { $("live").textContent = "reconnecting"; $("live").classList.remove("on"); });
}

async function show() {
  try {
    const me = await api("GET", "/api/staff/me");
    $("username").textContent = `${me.username || "admin"} (${me.role})`;
    $("who").hidden = false;
    $("login-view").hidden = true;
    $("board-view").hidden = false;
    connect();
  } catch (e) {
    $("login-view").hidden = false;
    $("board-view").hidden = true;
  }
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  try {
    await api("POST", "/api/staff/login", {username: $("login-username").value, password: $("login-password").value});
    $("login-error").textContent = "";
    show();
  } catch (e) {
    $("login-error").textContent = e.message;
  }
});
$("logout").addEventListener("click", async () => {
  await api("POST", "/api/staff/logout", {}).catch(() => {});
  if (stream) stream.close();
  location.reload();
});
if (tv) document.body.classList.add("tv");
show();
