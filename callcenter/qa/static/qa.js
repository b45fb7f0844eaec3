// The QA analyst's page: log in, find a recording, listen, score it with an evaluation form, and
// read the scores per agent and team. Everything shown that came from the server (names, customer
// numbers, form texts, errors) is put into the page with textContent, never parsed as HTML.
"use strict";

const $ = (id) => document.getElementById(id);

let me = null;          // {username, role} of the logged-in staff user
let forms = [];         // the evaluation forms, as /api/qa/forms gives them
let selected = null;    // the recording being scored

// ------------------------------------------------------------------ small helpers
async function api(method, path, body) {
  const options = {method, headers: {accept: "application/json"}, credentials: "same-origin"};
  if (body !== undefined) {
    options.headers["content-type"] = "application/json";
    options.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, options);
  } catch (err) {
    return {status: 0, data: {error: "The server cannot be reached."}};
  }
  let data = null;
  try {
    data = await response.json();
  } catch (err) {
    data = {error: `The server answered ${response.status}.`};
  }
  return {status: response.status, data};
}

// An element with text and attributes; children are elements or strings (as text nodes).
function el(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined && value !== null && value !== false) node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children) node.append(typeof child === "string" ? document.createTextNode(child) : child);
  return node;
}

function row(cells, attributes) {
  return el("tr", attributes, ...cells.map((cell) => el("td", {}, cell === null || cell === undefined ? "" : String(cell))));
}

function moment(value) {
  if (value === null || value === undefined || value === "") return "";
  const when = typeof value === "number" ? new Date(value * 1000) : new Date(value);
  return Number.isNaN(when.getTime()) ? String(value) : when.toLocaleString();
}

function percent(value) {
  return typeof value === "number" ? value.toFixed(1) : "";
}

function duration(seconds) {
  if (typeof seconds !== "number") return "";
  const whole = Math.round(seconds);
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

function query(fields) {
  const params = new URLSearchParams();
  for (const [name, input] of Object.entries(fields)) {
    const value = $(input).value.trim();
    if (value) params.set(name, value);
  }
  const text = params.toString();
  return text ? `?${text}` : "";
}

// ------------------------------------------------------------------ logging in
async function start() {
  const {status, data} = await api("GET", "/api/staff/me");
  if (status === 200) {
    await enter(data);
  } else {
    showLogin();
  }
}

function showLogin() {
  me = null;
  for (const id of ["tabs", "who", "evaluate-view", "scores-view"]) $(id).hidden = true;
  $("login-view").hidden = false;
  $("login-username").focus();
}

async function enter(user) {
  me = user;
  $("login-view").hidden = true;
  $("tabs").hidden = false;
  $("who").hidden = false;
  $("me-name").textContent = user.username || "";
  $("me-role").textContent = user.role || "";
  const mayScore = user.role === "qa" || user.role === "admin";
  $("submit-evaluation").hidden = !mayScore;
  $("read-only-note").hidden = mayScore;
  showTab("evaluate");
  await loadForms();
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("login-error").textContent = "";
  const {status, data} = await api("POST", "/api/staff/login",
    {username: $("login-username").value.trim(), password: $("login-password").value});
  if (status !== 200) {
    $("login-error").textContent = (data && data.error) || "Wrong user name or password.";
    return;
  }
  $("login-password").value = "";
  const who = await api("GET", "/api/staff/me");
  if (who.status === 200) {
    await enter(who.data);
  } else {
    $("login-error").textContent = (who.data && who.data.error) || "The login did not hold.";
  }
});

$("logout").addEventListener("click", async () => {
  await api("POST", "/api/staff/logout", {});
  showLogin();
});

// ------------------------------------------------------------------ tabs
function showTab(name) {
  $("evaluate-view").hidden = name !== "evaluate";
  $("scores-view").hidden = name !== "scores";
  for (const tab of document.querySelectorAll(".tab")) tab.setAttribute("aria-pressed", String(tab.dataset.tab === name));
  if (name === "scores") loadScores();
}

for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => showTab(tab.dataset.tab));

// ------------------------------------------------------------------ recordings
$("search-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  $("search-status").textContent = "Searching…";
  const path = "/api/recordings" + query({agent: "search-agent", queue: "search-queue", customer: "search-customer",
                                          from: "search-from", to: "search-to"});
  const {status, data} = await api("GET", path);
  const body = $("recordings");
  body.replaceChildren();
  if (status !== 200) {
    $("search-status").textContent = (data && data.error) || `Search failed (${status}).`;
    return;
  }
  const recordings = (data && data.recordings) || [];
  $("search-status").textContent = recordings.length ? `${recordings.length} recording(s).` : "No recordings match.";
  for (const recording of recordings) {
    const line = row([moment(recording.started_at), recording.agent_id, recording.queue, recording.customer,
                      duration(recording.duration)], {"data-testid": "recording-row", tabindex: "0"});
    line.dataset.callId = recording.call_id || "";
    line.addEventListener("click", () => selectRecording(recording, line));
    line.addEventListener("keydown", (e) => { if (e.key === "Enter") selectRecording(recording, line); });
    body.append(line);
  }
});

function selectRecording(recording, line) {
  selected = recording;
  for (const other of document.querySelectorAll("#recordings tr")) other.classList.toggle("chosen", other === line);
  $("no-recording").hidden = true;
  $("selected").hidden = false;
  $("selected-call").textContent = recording.call_id || "";
  $("selected-agent").textContent = recording.agent_id || "";
  $("selected-queue").textContent = recording.queue || "";
  $("selected-customer").textContent = recording.customer || "";
  $("selected-started").textContent = moment(recording.started_at);
  $("audio").src = `/api/recordings/${encodeURIComponent(recording.id)}/audio`;
  $("result").hidden = true;
  $("evaluation-error").textContent = "";
  $("comment").value = "";
  renderForm();  // a new call starts with a blank form
  loadPrevious();
}

async function loadPrevious() {
  const list = $("previous-list");
  list.replaceChildren();
  if (!selected) return;
  const {status, data} = await api("GET", `/api/qa/evaluations?call=${encodeURIComponent(selected.call_id)}`);
  const evaluations = status === 200 ? data.evaluations : [];
  $("previous").hidden = evaluations.length === 0;
  for (const evaluation of evaluations) {
    list.append(el("li", {}, `${percent(evaluation.total)} % on "${evaluation.form}" by ${evaluation.evaluator}, `
      + moment(evaluation.created_at)
      + (evaluation.critical_failed.length ? ` (critical: ${evaluation.critical_failed.join(", ")})` : "")));
  }
}

// ------------------------------------------------------------------ the evaluation form
async function loadForms() {
  const {status, data} = await api("GET", "/api/qa/forms");
  forms = status === 200 ? data : [];
  const select = $("form-select");
  select.replaceChildren(...forms.map((form) => el("option", {value: form.name}, form.title)));
  if (status !== 200) $("evaluation-error").textContent = (data && data.error) || "The forms cannot be read.";
  renderForm();
}

$("form-select").addEventListener("change", renderForm);

function currentForm() {
  return forms.find((form) => form.name === $("form-select").value) || null;
}

function renderForm() {
  const form = currentForm();
  const holder = $("questions");
  holder.replaceChildren();
  $("form-description").textContent = form ? form.description || "" : "No evaluation form is available.";
  if (!form) return;
  for (const section of form.sections) {
    const fieldset = el("fieldset", {class: "section"}, el("legend", {}, section.title));
    for (const question of section.questions) fieldset.append(renderQuestion(question));
    holder.append(fieldset);
  }
}

function renderQuestion(question) {
  const box = el("div", {class: "question", id: `q-${question.id}`},
                 el("p", {class: "text"}, question.text, question.critical ? el("span", {class: "badge"}, "critical") : ""));
  const testid = `question-${question.id}`;
  if (question.kind === "yes_no") {
    const choices = [["yes", "Yes"], ["no", "No"]].concat(question.allow_na ? [["na", "N/A"]] : []);
    const group = el("div", {class: "choices", role: "radiogroup"});
    for (const [value, label] of choices) {
      group.append(el("label", {}, el("input", {type: "radio", name: testid, value, "data-testid": testid}), label));
    }
    box.append(group);
  } else {
    const options = [el("option", {value: ""}, "–")];
    for (let value = 0; value <= question.max; value += 1) {
      options.push(el("option", {value: String(value)}, `${value} / ${question.max}`));
    }
    if (question.allow_na) options.push(el("option", {value: "na"}, "N/A"));
    box.append(el("select", {name: testid, "data-testid": testid, "aria-label": question.text}, ...options));
  }
  return box;
}

// question id -> true/false, a number, or "na"; unanswered questions are left out
function collectAnswers(form) {
  const answers = {};
  for (const section of form.sections) {
    for (const question of section.questions) {
      const name = `question-${question.id}`;
      if (question.kind === "yes_no") {
        const checked = document.querySelector(`input[name="${name}"]:checked`);
        if (checked) answers[question.id] = checked.value === "na" ? "na" : checked.value === "yes";
      } else {
        const value = document.querySelector(`select[name="${name}"]`).value;
        if (value) answers[question.id] = value === "na" ? "na" : Number(value);
      }
    }
  }
  return answers;
}

function markQuestion(questionId) {
  for (const box of document.querySelectorAll(".question.invalid")) box.classList.remove("invalid");
  const box = questionId && $(`q-${questionId}`);
  if (box) {
    box.classList.add("invalid");
    box.scrollIntoView({block: "center"});
  }
}

$("evaluation-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = $("evaluation-error");
  error.textContent = "";
  markQuestion(null);
  const form = currentForm();
  if (!selected) {
    error.textContent = "Choose a recording first.";
    return;
  }
  if (!form) {
    error.textContent = "No evaluation form is available.";
    return;
  }
  const answers = collectAnswers(form);
  const missing = form.sections.flatMap((s) => s.questions).filter((q) => !(q.id in answers));
  if (missing.length) {
    error.textContent = `Answer every question (${missing.length} left).`;
    markQuestion(missing[0].id);
    return;
  }
  const body = {call_id: selected.call_id, form: form.name, answers, comment: $("comment").value.trim()};
  const {status, data} = await api("POST", "/api/qa/evaluations", body);
  if (status !== 200) {
    error.textContent = (data && data.error) || `The evaluation was not saved (${status}).`;
    const field = (data && data.field) || "";
    if (field.startsWith("answers.")) markQuestion(field.slice("answers.".length));
    return;
  }
  showResult(form, data);
  loadPrevious();
});

function showResult(form, evaluation) {
  $("result").hidden = false;
  $("score-total").textContent = percent(evaluation.total);
  const critical = $("score-critical");
  critical.hidden = evaluation.critical_failed.length === 0;
  const questionText = Object.fromEntries(form.sections.flatMap((s) => s.questions).map((q) => [q.id, q.text]));
  critical.textContent = "Failed on a critical question: "
    + evaluation.critical_failed.map((id) => questionText[id] || id).join("; ");
  $("score-sections").replaceChildren(...form.sections.map((section) => {
    const value = evaluation.sections[section.id];
    return el("li", {"data-testid": `score-section-${section.id}`},
              `${section.title}: ${typeof value === "number" ? `${percent(value)} %` : "N/A (every answer N/A)"}`);
  }));
}

// ------------------------------------------------------------------ scores
$("scores-form").addEventListener("submit", (event) => {
  event.preventDefault();
  loadScores();
});

async function loadScores() {
  $("scores-error").textContent = "";
  const {status, data} = await api("GET", "/api/qa/scores" + query({from: "scores-from", to: "scores-to"}));
  const agents = $("scores-agents");
  const teams = $("scores-teams");
  agents.replaceChildren();
  teams.replaceChildren();
  if (status !== 200) {
    $("scores-error").textContent = (data && data.error) || `The scores cannot be read (${status}).`;
    return;
  }
  for (const agent of data.agents) {
    agents.append(row([agent.agent_id, agent.team, agent.evaluations, percent(agent.average), percent(agent.min),
                       percent(agent.max), agent.critical_failures], {"data-testid": "scores-agent-row"}));
  }
  for (const team of data.teams) {
    teams.append(row([team.team, team.agents, team.evaluations, percent(team.average)],
                     {"data-testid": "scores-team-row"}));
  }
}

start();
