// The agent desktop. Everything shown comes from /api/desktop and the /live/desk stream, and every
// string that came from a caller or the CRM is put into the page with textContent, never as HTML.
"use strict";

const TEXT = {
  en: {
    title: "Agent desktop", agent: "Agent", logout: "Log out", login: "Log in", agent_id: "Agent id",
    password: "Password", my_state: "My state", ready: "Ready", pause: "Pause", today: "Today", calls: "Calls",
    aht: "AHT", avg_talk: "Average talk", occupancy: "Occupancy", current_call: "Current call", no_call: "No call.",
    caller: "Caller", queue: "Queue", waited: "Waited", language: "Language", phones: "Phones",
    accounts: "Accounts", notes: "Notes", open_issues: "Open issues", history: "Previous contacts", ivr: "IVR path",
    pci_pause: "Pause recording (card)", pci_resume: "Resume recording", recording_paused: "recording paused",
    hold: "Hold", resume: "Resume", transfer: "Transfer", end_wrapup: "End wrap-up", wrapup: "Wrap-up",
    disposition: "Disposition", fcr: "Resolved on first contact?", yes: "Yes", no: "No", save: "Save",
    saved: "Saved.", none: "none", on_hold: "on hold", serving: "Queues",
    stage_ringing: "Ringing…", stage_connected: "On call", stage_wrap_up: "Wrap-up", stage_done: "Last call",
    state_logged_out: "Logged out", state_available: "Ready", state_reserved: "Ringing", state_on_call: "On call",
    state_wrap_up: "Wrap-up", state_paused: "Paused",
    match_phone: "The calling number matches this customer (caller ID, not verified).",
    match_account: "The account number the caller entered matches this customer (not verified).",
    crm_pending: "Looking the caller up…", crm_not_found: "Unknown caller: no customer has this number.",
    crm_unavailable: "Unknown caller: the CRM did not answer in time.", crm_found: "",
    to_queue: "queue", to_agent: "agent", resolved_yes: "resolved", resolved_no: "not resolved",
    wrong_login: "Wrong agent id or password.", anonymous: "anonymous",
    tier_vip: "VIP", tier_gold: "Gold", tier_regular: "Regular",
  },
  zh: {
    title: "坐席工作台", agent: "坐席", logout: "退出", login: "登录", agent_id: "工号", password: "密码",
    my_state: "我的状态", ready: "就绪", pause: "小休", today: "今日", calls: "接听", aht: "平均处理时长",
    avg_talk: "平均通话", occupancy: "占用率", current_call: "当前通话", no_call: "暂无通话。", caller: "来电",
    queue: "队列", waited: "等待", language: "语言", phones: "电话", accounts: "账号", notes: "备注",
    open_issues: "未解决问题", history: "历史联系", ivr: "IVR 路径", hold: "保持", resume: "恢复",
    pci_pause: "暂停录音（银行卡）", pci_resume: "恢复录音", recording_paused: "录音已暂停",
    transfer: "转接", end_wrapup: "结束话后", wrapup: "话后处理", disposition: "处理结果",
    fcr: "首次联系即解决？", yes: "是", no: "否", save: "保存", saved: "已保存。", none: "无",
    on_hold: "保持中", serving: "队列",
    stage_ringing: "振铃中…", stage_connected: "通话中", stage_wrap_up: "话后处理", stage_done: "上一通",
    state_logged_out: "未签入", state_available: "就绪", state_reserved: "振铃", state_on_call: "通话中",
    state_wrap_up: "话后处理", state_paused: "小休",
    match_phone: "来电号码与此客户匹配（来电显示，未验证身份）。",
    match_account: "来电者输入的账号与此客户匹配（未验证身份）。",
    crm_pending: "正在查询客户…", crm_not_found: "未知来电：没有客户使用此号码。",
    crm_unavailable: "未知来电：客户系统未及时响应。", crm_found: "",
    to_queue: "队列", to_agent: "坐席", resolved_yes: "已解决", resolved_no: "未解决",
    wrong_login: "工号或密码错误。", anonymous: "匿名",
    tier_vip: "VIP", tier_gold: "金卡", tier_regular: "普通",
    // codes the settings ship with; codes a site adds show as written
    code_resolved: "已解决", code_follow_up: "需跟进", code_escalated: "已升级", code_transferred: "已转接",
    code_sales_lead: "销售线索", code_complaint: "投诉", code_wrong_number: "打错电话",
    code_break: "休息", code_lunch: "午餐", code_training: "培训", code_meeting: "会议", code_coaching: "辅导",
    code_after_call_work: "话后工作",
  },
};

let lang = localStorage.getItem("desktop-lang") || (navigator.language.startsWith("zh") ? "zh" : "en");
let desk = null;      // the last desk the engine sent
let options = null;   // pause reasons, dispositions, queues, agents
let stream = null;
let outcomeCallId = null;

const $ = (id) => document.getElementById(id);
const t = (key) => (key in TEXT[lang] ? TEXT[lang][key] : key in TEXT.en ? TEXT.en[key] : key);
const code = (c) => TEXT[lang]["code_" + c] || c.replace(/_/g, " ");
const put = (id, text) => { $(id).textContent = text == null || text === "" ? "–" : String(text); };

function duration(seconds) {
  if (seconds == null) return "–";
  const s = Math.max(0, Math.round(seconds));
  const m = Math.floor(s / 60);
  return m ? `${m}:${String(s % 60).padStart(2, "0")}` : `${s}s`;
}

function when(epoch) {
  return new Date(epoch * 1000).toLocaleString(lang === "zh" ? "zh-CN" : "en-GB");
}

async function api(method, path, body) {
  const post = method !== "GET";
  const response = await fetch(path, {  // POSTs are always JSON: the API refuses anything else
    method, credentials: "same-origin",
    headers: post ? { "content-type": "application/json" } : {},
    body: post ? JSON.stringify(body === undefined ? {} : body) : undefined,
  });
  const data = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(data.error || response.statusText);
    error.status = response.status;
    throw error;
  }
  return data;
}

function applyLanguage() {
  document.documentElement.lang = lang === "zh" ? "zh-CN" : "en";
  document.title = t("title");
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const b of document.querySelectorAll("[data-lang]")) b.setAttribute("aria-pressed", String(b.dataset.lang === lang));
  if (options) fillOptions();
  if (desk) render();
}

function fillSelect(select, items) {
  const chosen = select.value;
  select.replaceChildren(...items.map(([value, label]) => {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = label;
    return option;
  }));
  if (items.some(([value]) => value === chosen)) select.value = chosen;
}

function fillOptions() {
  fillSelect($("pause-reason"), options.pause_reasons.map((r) => [r, code(r)]));
  fillSelect($("disposition"), options.dispositions.map((d) => [d, code(d)]));
  fillSelect($("transfer-target"), [
    ...options.queues.map((q) => ["queue:" + q, `${t("to_queue")} ${q}`]),
    ...options.agents.map((a) => ["agent:" + a, `${t("to_agent")} ${a}`]),
  ]);
}

function listInto(id, items, format) {
  const list = $(id);
  list.replaceChildren(...(items.length ? items : [null]).map((item) => {
    const li = document.createElement("li");
    li.textContent = item === null ? t("none") : format(item);
    return li;
  }));
}

function contactLine(item) {
  const parts = [when(item.at), item.queue, item.agent_id && `${t("agent")} ${item.agent_id}`,
    item.disposition && code(item.disposition),
    item.resolved === true ? t("resolved_yes") : item.resolved === false ? t("resolved_no") : null, item.notes];
  return parts.filter(Boolean).join(" · ");
}

function renderPop(pop) {
  put("caller-number", pop.caller.number || t("anonymous"));
  const name = pop.caller.name && pop.caller.name !== pop.caller.number ? pop.caller.name : "";
  $("caller-name").textContent = name ? `“${name}”` : "";
  put("call-queue", pop.queue);
  put("call-waited", duration(pop.waited));
  $("crm-status").textContent = t("crm_" + pop.crm);
  $("match").hidden = !pop.match;
  if (pop.match) $("match").textContent = t("match_" + pop.match.by);
  $("customer").hidden = !pop.customer;
  if (pop.customer) {
    const c = pop.customer;
    put("customer-name", c.name);
    $("customer-tier").textContent = t("tier_" + c.tier) === "tier_" + c.tier ? c.tier : t("tier_" + c.tier);  // a site's own tier as written
    $("customer-tier").className = "tier " + c.tier;
    put("customer-language", c.language);
    put("customer-phones", c.phones.join(", "));
    put("customer-accounts", c.accounts.join(", "));
    put("customer-notes", c.notes);
    listInto("open-issues", pop.open_issues, contactLine);
    listInto("history", pop.history, contactLine);
  }
  listInto("ivr-steps", pop.ivr.steps, (s) => [s.node, s.kind, s.key ?? s.variable ?? s.status ?? s.target ?? ""]
    .filter((x) => x !== "" && x != null).join(" · "));
  const inputs = $("ivr-inputs");
  inputs.replaceChildren(...Object.entries(pop.ivr.inputs).flatMap(([name, value]) => {
    const dt = document.createElement("dt"); dt.textContent = name;
    const dd = document.createElement("dd"); dd.textContent = value;
    return [dt, dd];
  }));
}

function render() {
  const agent = desk.agent;
  put("agent-id", agent.id);
  const state = $("state");
  state.textContent = t("state_" + agent.state) + (agent.reason ? ` (${code(agent.reason)})` : "");
  state.className = "state " + agent.state;
  $("queues").textContent = agent.queues.length ? `${t("serving")}: ${agent.queues.join(", ")}` : "";
  $("ready").disabled = agent.state === "available" || agent.state === "on_call" || agent.state === "reserved";
  $("pause").disabled = agent.state === "on_call" || agent.state === "reserved";

  const call = desk.call;
  $("no-call").hidden = !!call;
  $("call").hidden = !call;
  $("stage").textContent = call ? t("stage_" + call.stage) + (call.held ? ` · ${t("on_hold")}` : "")
    + (call.recording_paused ? ` · ${t("recording_paused")}` : "") : "";
  $("stage").className = "stage " + (call ? call.stage : "");
  if (!call) return;
  if (call.pop) renderPop(call.pop);
  const connected = call.stage === "connected";
  $("hold").disabled = !connected || call.held;
  $("resume").disabled = !connected || !call.held;
  $("pci").disabled = !connected;
  $("pci").textContent = t(call.recording_paused ? "pci_resume" : "pci_pause");
  $("pci").dataset.paused = call.recording_paused ? "1" : "";
  $("transfer").disabled = !connected;
  $("end-wrapup").disabled = call.stage !== "wrap_up";
  if (outcomeCallId !== call.call_id) {  // a new call: a fresh form
    outcomeCallId = call.call_id;
    $("outcome-form").reset();
    delete $("outcome-status").dataset.i18n;
    $("outcome-status").textContent = "";
  }
}

function tick() {
  if (desk && desk.agent.since) {
    const offset = desk.now - Date.now() / 1000;  // the engine's clock, not the browser's
    $("state-time").textContent = duration(Date.now() / 1000 + offset - desk.agent.since);
  }
}

async function refreshFigures() {
  try {
    const f = await api("GET", "/api/desktop/figures");
    put("fig-answered", f.answered);
    put("fig-aht", duration(f.aht));
    put("fig-talk", duration(f.avg_talk));
    put("fig-occupancy", f.occupancy == null ? null : `${Math.round(f.occupancy * 100)}%`);
  } catch (e) { /* figures are a nicety; the desk works without them */ }
}

function onDesk(next) {
  const before = desk && desk.call ? desk.call.stage : null;
  desk = next;
  render();
  const after = desk.call ? desk.call.stage : null;
  // the event log is written in batches: ask a moment later, so the call just ended is counted
  if (before !== after && (after === "wrap_up" || after === "done")) setTimeout(refreshFigures, 1000);
}

function openStream() {
  if (stream) stream.close();
  stream = new EventSource("/live/desk");
  stream.addEventListener("desk", (e) => onDesk(JSON.parse(e.data)));
  stream.onerror = async () => {
    // the session may have ended (engine restarted): back to the login form
    try { await api("GET", "/api/desktop"); } catch (e) { if (e.status === 401) showLogin(); }
  };
}

function showLogin() {
  if (stream) { stream.close(); stream = null; }
  $("login-view").hidden = false;
  $("desk-view").hidden = true;
  $("who").hidden = true;
}

async function showDesk() {
  const data = await api("GET", "/api/desktop");
  options = data.options;
  fillOptions();
  $("login-view").hidden = true;
  $("desk-view").hidden = false;
  $("who").hidden = false;
  onDesk(data);
  openStream();
  refreshFigures();
}

async function act(method, path, body) {
  $("desk-error").textContent = "";
  try {
    return await api(method, path, body);
  } catch (e) {
    $("desk-error").textContent = e.message;
    if (e.status === 401) showLogin();
    return null;
  }
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    await api("POST", "/api/desktop/login", { agent_id: $("login-agent").value.trim(), password: $("login-password").value });
    $("login-password").value = "";
    await showDesk();
  } catch (e) {
    $("login-error").textContent = e.status === 401 ? t("wrong_login") : e.message;
  }
});
$("logout").addEventListener("click", async () => { if (await act("POST", "/api/desktop/logout")) showLogin(); });
$("ready").addEventListener("click", () => act("POST", "/api/desktop/ready"));
$("pause").addEventListener("click", () => act("POST", "/api/desktop/pause", { reason: $("pause-reason").value }));
$("hold").addEventListener("click", () => act("POST", "/api/desktop/hold"));
$("resume").addEventListener("click", () => act("POST", "/api/desktop/resume"));
$("pci").addEventListener("click", () =>
  act("POST", $("pci").dataset.paused ? "/api/desktop/recording/resume" : "/api/desktop/recording/pause"));
$("end-wrapup").addEventListener("click", () => act("POST", "/api/desktop/wrapup/end"));
$("transfer").addEventListener("click", () => {
  const [kind, target] = $("transfer-target").value.split(":");
  act("POST", "/api/desktop/transfer", kind === "agent" ? { agent: target } : { queue: target });
});
$("outcome-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!desk || !desk.call) return;
  const resolved = document.querySelector("input[name=resolved]:checked");
  const saved = await act("POST", `/api/desktop/calls/${encodeURIComponent(desk.call.call_id)}/outcome`, {
    disposition: $("disposition").value,
    resolved: resolved ? resolved.value === "yes" : null,
    notes: $("notes").value,
  });
  if (saved) $("outcome-status").dataset.i18n = "saved";
  applyLanguage();
});
for (const b of document.querySelectorAll("[data-lang]")) {
  b.addEventListener("click", () => { lang = b.dataset.lang; localStorage.setItem("desktop-lang", lang); applyLanguage(); });
}

applyLanguage();
setInterval(tick, 1000);
showDesk().catch(showLogin);
