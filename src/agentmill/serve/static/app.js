// The agentmill chat page: conversations from the session store, a task selector, and the
// agent's steps (route, tool calls, tool results, answer) rendered as they stream in.
//
// No framework and no build step: the DOM is built by hand with the small helpers below.
// Model text only ever reaches the page through textContent or the escaping markdown renderer.

import { api, ApiError, getApiKey, mediaBlob, setApiKey, speak, streamMessage, transcribe } from "./api.js";
import { renderMarkdown } from "./markdown.js";

const TASK_STORAGE = "agentmill.task";
const SESSION_STORAGE = "agentmill.session";
const ICONS = "static/icons.svg";

const $ = (id) => document.getElementById(id);
const els = {
  sidebar: $("sidebar"),
  scrim: $("scrim"),
  openSidebar: $("open-sidebar"),
  closeSidebar: $("close-sidebar"),
  newChat: $("new-chat"),
  conversations: $("conversations"),
  listEmpty: $("list-empty"),
  modelInfo: $("model-info"),
  keyButton: $("key-button"),
  title: $("chat-title"),
  task: $("task-select"),
  messages: $("messages"),
  thread: $("thread"),
  welcome: $("welcome"),
  taskCards: $("task-cards"),
  composer: $("composer"),
  input: $("input"),
  composerBox: $("composer-box"),
  attachments: $("attachments"),
  fileInput: $("file-input"),
  attach: $("attach"),
  mic: $("mic"),
  send: $("send"),
  stop: $("stop"),
  keyDialog: $("key-dialog"),
  keyForm: $("key-form"),
  keyInput: $("key-input"),
  keyText: $("key-dialog-text"),
  keyClear: $("key-clear"),
  toast: $("toast"),
};

const state = {
  sessionId: null,
  sessions: [],
  tasks: [],
  streaming: null, // {controller, turn} while an answer streams
  loadToken: 0, // guards against a slow session load overwriting a newer one
  attached: [], // {kind: "image"|"audio", name, type, dataUrl, url} waiting for the next message
  accepts: ["text"], // what the server reads (GET /v1/models: agentmill.input)
  recorder: null, // the MediaRecorder while recording
  playing: null, // {audio, button} while an answer is read aloud
};

// ---------------------------------------------------------------- small DOM helpers

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== undefined && child !== null && child !== false) el.append(child);
  }
  return el;
}

function icon(name, cls = "icon") {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", cls);
  svg.setAttribute("aria-hidden", "true");
  const use = document.createElementNS("http://www.w3.org/2000/svg", "use");
  use.setAttribute("href", `${ICONS}#${name}`);
  svg.append(use);
  return svg;
}

let toastTimer = 0;
function toast(message, kind = "info") {
  els.toast.textContent = message;
  els.toast.dataset.kind = kind;
  els.toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (els.toast.hidden = true), kind === "error" ? 6000 : 2500);
}

function storage(key, value) {
  try {
    if (value === undefined) return localStorage.getItem(key);
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch {
    /* storage disabled */
  }
  return null;
}

async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    // Not a secure context (plain http on a LAN address): the old way.
    const area = h("textarea", { class: "sr-only", "aria-hidden": "true" });
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
}

function copyButton(getText, label = "Copy answer") {
  const btn = h("button", { class: "ghost-btn copy-btn", type: "button", "aria-label": label, title: label },
    icon("copy"), h("span", { class: "btn-label", text: "Copy" }));
  btn.addEventListener("click", async () => {
    await copyText(getText());
    btn.classList.add("copied");
    btn.querySelector("use").setAttribute("href", `${ICONS}#check`);
    btn.querySelector(".btn-label").textContent = "Copied";
    setTimeout(() => {
      btn.classList.remove("copied");
      btn.querySelector("use").setAttribute("href", `${ICONS}#copy`);
      btn.querySelector(".btn-label").textContent = "Copy";
    }, 1600);
  });
  return btn;
}

function pretty(value) {
  if (value === undefined || value === null) return "";
  if (typeof value === "string") {
    try {
      return JSON.stringify(JSON.parse(value), null, 2);
    } catch {
      return value;
    }
  }
  return JSON.stringify(value, null, 2);
}

function argsPreview(args) {
  let obj = args;
  if (typeof obj === "string") {
    try {
      obj = JSON.parse(obj);
    } catch {
      return obj.length > 60 ? `${obj.slice(0, 57)}…` : obj;
    }
  }
  if (!obj || typeof obj !== "object") return String(obj ?? "");
  const text = Object.entries(obj).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(", ");
  return text.length > 60 ? `${text.slice(0, 57)}…` : text;
}

// ---------------------------------------------------------------- scrolling

function nearBottom() {
  const m = els.messages;
  return m.scrollHeight - m.scrollTop - m.clientHeight < 120;
}

function scrollToBottom(force = false) {
  if (force || nearBottom()) els.messages.scrollTop = els.messages.scrollHeight;
}

// ---------------------------------------------------------------- a conversation's turns

/** The assistant's side of one turn: route chip, text blocks, tool cards, notices, answer. */
class AssistantTurn {
  constructor({ streaming = false } = {}) {
    this.chip = h("span", { class: "route-chip", hidden: true });
    this.steps = h("div", { class: "steps" });
    this.usage = h("span", { class: "usage" });
    this.answerText = "";
    this.copy = copyButton(() => this.answerText);
    this.read = readAloudButton(() => this.answerText);
    this.actions = h("div", { class: "actions", hidden: true }, this.copy, this.read, this.usage);
    this.typing = h("div", { class: "typing", "aria-label": "The agent is working" },
      h("span"), h("span"), h("span"));
    this.el = h("article", { class: "msg assistant", "aria-label": "Agent" },
      h("div", { class: "avatar", "aria-hidden": "true" }, icon("logo")),
      h("div", { class: "msg-body" }, h("div", { class: "msg-meta" }, this.chip), this.steps, this.actions));
    this.block = null; // the text block tokens go to
    this.cards = []; // tool cards waiting for their result
    this.notices = [];
    this.pending = false;
    if (streaming) {
      this.el.classList.add("streaming");
      this.el.setAttribute("aria-busy", "true");
      this.steps.append(this.typing);
    }
  }

  route(task, { scores = null, forced = false } = {}) {
    const name = task || "base";
    this.chip.replaceChildren(icon("route", "icon chip-icon"), h("span", { class: "chip-task", text: name }));
    this.chip.setAttribute("aria-label", `Answered by task ${name}`);
    this.chip.prepend(h("span", { class: "sr-only", text: "→ " }));
    this.chip.dataset.task = name;
    let title = forced ? `task ${name}, chosen in the selector` : `task ${name}, chosen by the router`;
    if (scores && Object.keys(scores).length) {
      title += "\nrouter scores (log-prob): " +
        Object.entries(scores).map(([t, s]) => `${t} ${Number(s).toFixed(2)}`).join(" · ");
    }
    this.chip.title = title;
    this.chip.classList.toggle("forced", !!forced);
    this.chip.hidden = false;
  }

  _textBlock() {
    if (!this.block) {
      this.block = { source: "", el: h("div", { class: "md live" }) };
      this.typing.before(this.block.el);
      if (!this.typing.isConnected) this.steps.append(this.block.el);
    }
    return this.block;
  }

  _render(block) {
    block.el.innerHTML = renderMarkdown(block.source);
  }

  token(text) {
    const block = this._textBlock();
    block.source += text;
    this.el.classList.add("has-text");
    if (!this.pending) {
      this.pending = true;
      requestAnimationFrame(() => {
        this.pending = false;
        const stick = nearBottom();
        if (this.block) this._render(this.block);
        if (stick) scrollToBottom(true);
      });
    }
  }

  toolCall(call) {
    if (this.block) {
      this._render(this.block); // the text the model wrote before calling the tool
      this.block.el.classList.replace("live", "pre-tool");
      this.block = null;
    }
    const fn = call.function || call;
    const name = fn.name || "tool";
    const status = h("span", { class: "tool-status", text: "running" });
    const result = h("pre", { class: "tool-pre tool-result-pre" });
    const resultSection = h("div", { class: "tool-section", hidden: true }, h("div", { class: "tool-label", text: "Result" }), result);
    const card = h("details", { class: "tool-card running" },
      h("summary", {},
        icon("chevron", "icon chevron"), icon("tool", "icon tool-icon"),
        h("span", { class: "tool-name", text: name }),
        h("span", { class: "tool-args", text: argsPreview(fn.arguments) }),
        status),
      h("div", { class: "tool-detail" },
        h("div", { class: "tool-section" }, h("div", { class: "tool-label", text: "Arguments" }),
          h("pre", { class: "tool-pre", text: pretty(fn.arguments) || "{}" })),
        resultSection));
    card.querySelector("summary").setAttribute("aria-label", `Tool call ${name}`);
    const entry = { id: call.id, name, card, status, result, resultSection };
    this.cards.push(entry);
    this._insert(card);
    return entry;
  }

  toolResult({ id: eventId, name, content, error, call_id: callId, tool_call_id: toolCallId }) {
    const id = eventId || callId || toolCallId;
    let entry = this.cards.find((c) => !c.done && id && c.id === id) ||
      this.cards.find((c) => !c.done && c.name === name) || this.cards.find((c) => !c.done);
    if (!entry) entry = this.toolCall({ function: { name, arguments: "" } });
    entry.done = true;
    entry.card.classList.remove("running");
    entry.card.classList.add(error ? "failed" : "ok");
    entry.status.textContent = error ? "error" : "done";
    entry.result.textContent = pretty(content);
    entry.resultSection.hidden = false;
  }

  notice({ reason, text }) {
    this.notices.push(text);
    this._insert(h("div", { class: `notice notice-${reason || "info"}`, role: "note" }, icon("alert"), h("span", { text })));
  }

  error(message) {
    this._insert(h("div", { class: "notice notice-error", role: "alert" }, icon("alert"), h("span", { text: message })));
  }

  answer({ content, task, usage, latency_ms: latency }) {
    const text = content ?? "";
    if (!this.block && this.notices.includes(text)) {
      this.answerText = text; // a turn cut by a rule: its notice already says it
    } else {
      const block = this._textBlock();
      block.source = text;
      this._render(block);
      block.el.classList.replace("live", "answer");
      this.answerText = text;
    }
    this.block = null;
    if (task !== undefined && this.chip.hidden) this.route(task);
    const parts = [];
    if (usage && usage.completion_tokens) parts.push(`${usage.completion_tokens} tokens`);
    if (latency) parts.push(`${(latency / 1000).toFixed(1)} s`);
    this.usage.textContent = parts.join(" · ");
    this.actions.hidden = !this.answerText;
  }

  finish(stopped = false) {
    if (this.block) {
      this._render(this.block);
      if (!this.answerText) this.answerText = this.block.source;
      this.block.el.classList.replace("live", "answer");
      this.block = null;
    }
    for (const c of this.cards.filter((c) => !c.done)) {
      c.card.classList.remove("running");
      c.status.textContent = stopped ? "stopped" : "no result";
    }
    this.typing.remove();
    if (stopped) this.steps.append(h("div", { class: "notice notice-stopped", role: "note" }, h("span", { text: "Stopped." })));
    this.el.classList.remove("streaming");
    this.el.removeAttribute("aria-busy");
    this.actions.hidden = !this.answerText;
  }

  _insert(node) {
    if (this.typing.isConnected) this.typing.before(node);
    else this.steps.append(node);
    scrollToBottom();
  }
}

/** The typed part of a stored user message: its content without the media's labelled text
 * (media/parts.py `compose` appends "[image NAME, OCR] text" lines after what was typed). */
function typedText(content, media) {
  let text = content || "";
  for (const m of media) {
    const label = `[${m.type}${m.name ? " " + m.name : ""}, ${m.engine}] `;
    const at = text.indexOf(label);
    if (at >= 0) text = text.slice(0, at);
  }
  return text.replace(/\n+$/, "");
}

function mediaFigure(m, url) {
  const what = m.type === "image" ? `image${m.name ? " " + m.name : ""}` : `recording${m.name ? " " + m.name : ""}`;
  const shown = m.type === "image"
    ? h("img", { alt: m.text ? `${what}: ${m.text.slice(0, 200)}` : what, src: url || "" })
    : h("audio", { controls: true, src: url || "", "aria-label": what });
  if (!url && m.sha256) {
    mediaBlob(m.sha256).then((blob) => { shown.src = URL.createObjectURL(blob); })
      .catch(() => shown.replaceWith(h("span", { class: "media-missing", text: `${what} (not available)` })));
  }
  const engine = m.engine === "transcript" ? "Transcript" : m.engine === "OCR" ? "Text found (OCR)" : "Read by the model";
  return h("figure", { class: `media media-${m.type}` }, shown,
    h("details", {}, h("summary", { text: engine }),
      h("pre", { text: m.text || (m.type === "image" ? "(no text found in the image)" : "(no speech found)") })));
}

function userMessage(text, media = [], urls = []) {
  const el = h("article", { class: "msg user", "aria-label": "You" });
  if (media.length) el.append(h("div", { class: "user-media" }, ...media.map((m, i) => mediaFigure(m, urls[i]))));
  if (text) el.append(h("div", { class: "bubble", text }));
  return el;
}

function showWelcome(show) {
  els.welcome.hidden = !show;
  els.messages.classList.toggle("empty", show);
}

/** Rebuild a stored conversation from its messages (kinds: user, route, model, tool_result, answer, notice). */
function renderHistory(messages) {
  els.thread.replaceChildren();
  let turn = null;
  const assistant = () => {
    if (!turn) {
      turn = new AssistantTurn();
      els.thread.append(turn.el);
    }
    return turn;
  };
  for (const m of messages) {
    const kind = m.kind || (m.role === "user" ? "user" : m.role === "tool" ? "tool_result" : m.role);
    const meta = m.meta || {};
    if (kind === "user") {
      if (turn) turn.finish();
      turn = null;
      const media = meta.media || [];
      els.thread.append(userMessage(media.length ? typedText(m.content, media) : m.content || "", media));
    } else if (kind === "route") {
      assistant().route(meta.task !== undefined ? meta.task : m.task, { scores: meta.scores, forced: meta.forced });
    } else if (kind === "model") {
      const t = assistant();
      if (m.content) t.token(m.content);
      for (const call of m.tool_calls || []) t.toolCall(call);
    } else if (kind === "tool_result") {
      assistant().toolResult({ name: m.name, content: m.content, error: meta.error, call_id: m.tool_call_id });
    } else if (kind === "notice") {
      assistant().notice({ reason: meta.reason, text: m.content });
    } else if (kind === "answer" || m.role === "assistant") {
      assistant().answer({
        content: m.content, task: m.task,
        usage: { completion_tokens: meta.completion_tokens }, latency_ms: meta.latency_ms,
      });
    }
  }
  if (turn) turn.finish();
  showWelcome(!messages.length);
}

// ---------------------------------------------------------------- sessions and the sidebar

function dayGroup(seconds) {
  const then = new Date(seconds * 1000);
  const today = new Date();
  today.setHours(0, 0, 0, 0);
  const days = Math.floor((today - new Date(then).setHours(0, 0, 0, 0)) / 86400000);
  if (days <= 0) return "Today";
  if (days === 1) return "Yesterday";
  if (days < 7) return "Previous 7 days";
  if (days < 30) return "Previous 30 days";
  return "Older";
}

function renderSessionList() {
  els.conversations.querySelectorAll(".group").forEach((g) => g.remove());
  els.listEmpty.hidden = state.sessions.length > 0;
  let list = null;
  let current = null;
  for (const s of state.sessions) {
    const group = dayGroup(s.updated || s.created || 0);
    if (group !== current) {
      current = group;
      const heading = h("h2", { class: "group-title", text: group });
      list = h("ul", { class: "session-list" });
      els.conversations.append(h("div", { class: "group" }, heading, list));
    }
    const title = s.title || "New conversation";
    const active = s.id === state.sessionId;
    const open = h("a", {
      class: "session-link", href: `#${s.id}`, title, "aria-current": active ? "page" : null,
    }, h("span", { class: "session-title", text: title }));
    const del = h("button", {
      class: "icon-btn session-delete", type: "button", "aria-label": `Delete conversation “${title}”`, title: "Delete",
    }, icon("trash"));
    del.addEventListener("click", (event) => {
      event.preventDefault();
      deleteSession(s);
    });
    open.addEventListener("click", () => closeSidebar());
    list.append(h("li", { class: active ? "session active" : "session", "data-id": s.id }, open, del));
  }
}

async function refreshSessions() {
  try {
    const body = await api.sessions();
    state.sessions = (body && body.data) || [];
    renderSessionList();
  } catch (err) {
    handleError(err);
  }
}

function setTitle(title) {
  els.title.textContent = title || "New chat";
  document.title = title ? `${title} · agentmill` : "agentmill";
}

function setSession(id, { push = true } = {}) {
  state.sessionId = id;
  storage(SESSION_STORAGE, id);
  const hash = id ? `#${id}` : "";
  if (location.hash !== hash && push) {
    history.pushState(null, "", hash || location.pathname + location.search);
  }
  for (const li of els.conversations.querySelectorAll(".session")) {
    const active = li.dataset.id === id;
    li.classList.toggle("active", active);
    const link = li.querySelector("a");
    if (active) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function openSession(id) {
  stopStreaming();
  const token = ++state.loadToken;
  setSession(id, { push: false });
  try {
    const body = await api.session(id);
    if (token !== state.loadToken) return;
    const session = body.session || body; // {session, messages} or the session's fields with messages
    setTitle(session.title);
    renderHistory(body.messages || []);
    scrollToBottom(true);
  } catch (err) {
    if (token !== state.loadToken) return;
    if (err instanceof ApiError && err.status === 404) {
      toast("That conversation no longer exists.");
      newChat();
    } else {
      handleError(err);
    }
  }
}

function newChat() {
  stopStreaming();
  state.loadToken++;
  setSession(null);
  setTitle("");
  els.thread.replaceChildren();
  showWelcome(true);
  els.input.focus();
  closeSidebar();
}

async function deleteSession(s) {
  if (!confirm(`Delete the conversation “${s.title || "New conversation"}”?`)) return;
  try {
    await api.deleteSession(s.id);
    if (s.id === state.sessionId) newChat();
    await refreshSessions();
  } catch (err) {
    handleError(err);
  }
}

// ---------------------------------------------------------------- tasks

async function loadModels() {
  try {
    const body = await api.models();
    const models = (body && body.data) || [];
    // agentmill marks each entry's kind (base, task, auto); plain OpenAI lists: tasks have a parent
    const kind = (m) => (m.agentmill && m.agentmill.kind) || (m.id === "auto" ? "auto" : m.parent ? "task" : "base");
    const base = models.find((m) => kind(m) === "base");
    state.tasks = models.filter((m) => kind(m) === "task").map((m) => m.id);
    state.accepts = (base && base.agentmill && base.agentmill.input) || ["text"];
    els.attach.hidden = !state.accepts.some((k) => k === "image" || k === "audio");
    els.mic.hidden = !state.accepts.includes("audio") || !window.MediaRecorder || !navigator.mediaDevices;
    const saved = storage(TASK_STORAGE);
    const auto = models.find((m) => kind(m) === "auto");
    const routed = !(auto && auto.agentmill && auto.agentmill.router === false);
    els.task.replaceChildren(h("option", { value: "auto", text: routed ? "auto (router)" : "auto (no router: base)" }),
      ...state.tasks.map((t) => h("option", { value: t, text: t })),
      h("option", { value: "base", text: base ? `base · ${base.id}` : "base model" }));
    const values = ["auto", "base", ...state.tasks];
    els.task.value = values.includes(saved) ? saved : "auto";
    els.modelInfo.textContent = base ? base.id : "";
    els.taskCards.replaceChildren(...state.tasks.map((t) => h("li", {},
      h("button", {
        class: "task-card", type: "button", "data-task": t, title: `Ask ${t} directly`,
        onclick: () => {
          chooseTask(els.task.value === t ? "auto" : t);
          els.input.focus();
        },
      }, icon("route", "icon"), h("span", { text: t })))));
    syncTaskCards();
  } catch (err) {
    els.modelInfo.textContent = "not connected";
    handleError(err);
  }
}

function chooseTask(task) {
  els.task.value = task;
  storage(TASK_STORAGE, task);
  syncTaskCards();
}

function syncTaskCards() {
  for (const card of els.taskCards.querySelectorAll(".task-card")) {
    card.setAttribute("aria-pressed", String(card.dataset.task === els.task.value));
  }
}

// ---------------------------------------------------------------- sending

function setStreaming(on) {
  els.send.hidden = on;
  els.stop.hidden = !on;
  els.composer.classList.toggle("busy", on);
  updateSend();
}

function updateSend() {
  els.send.disabled = (!els.input.value.trim() && !state.attached.length) || !!state.streaming;
}

function stopStreaming() {
  if (state.streaming) {
    state.streaming.controller.abort();
    state.streaming = null;
    setStreaming(false);
  }
}

/** Run `attempt`, retrying for a few seconds while the session still finishes a stopped turn (409). */
async function withRetryWhileBusy(attempt, signal) {
  for (let tries = 0; ; tries++) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof ApiError && err.status === 409) || tries >= 20 || signal.aborted) throw err;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  }
}

// ---------------------------------------------------------------- attachments, microphone, read aloud

function readAsDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

async function attachFiles(files) {
  for (const file of files) {
    const kind = file.type.startsWith("image/") ? "image" : file.type.startsWith("audio/") ? "audio" : null;
    if (!kind || !state.accepts.includes(kind)) {
      toast(`${file.name || "this file"}: the server takes ${state.accepts.filter((k) => k !== "text").join(" and ") || "no"} files`, "error");
      continue;
    }
    const dataUrl = await readAsDataUrl(file);
    state.attached.push({ kind, name: file.name || (kind === "image" ? "pasted image" : "recording"), type: file.type,
                          dataUrl, url: URL.createObjectURL(file) });
  }
  renderAttachments();
}

function renderAttachments() {
  els.attachments.replaceChildren(...state.attached.map((a, i) => h("li", { class: "attachment", title: a.name },
    a.kind === "image" ? h("img", { src: a.url, alt: a.name }) : icon("audio"),
    h("span", { class: "attachment-name", text: a.name }),
    h("button", { class: "remove", type: "button", "aria-label": `Remove ${a.name}`, text: "×",
                  onclick: () => { state.attached.splice(i, 1); renderAttachments(); } }))));
  els.attachments.hidden = !state.attached.length;
  updateSend();
}

/** The message as the agent takes it: text, or OpenAI content parts when something is attached. */
function messageContent(text, attached) {
  if (!attached.length) return text;
  const parts = text ? [{ type: "text", text }] : [];
  for (const a of attached) {
    if (a.kind === "image") parts.push({ type: "file", file: { filename: a.name, file_data: a.dataUrl } });
    else parts.push({ type: "input_audio", input_audio: { data: a.dataUrl.split(",", 2)[1],
                                                          format: (a.type.split("/")[1] || "wav").split(";")[0] } });
  }
  return parts;
}

async function toggleRecording() {
  if (state.recorder) {
    state.recorder.stop();
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: true });
  } catch (err) {
    toast(`no microphone: ${err.message}`, "error");
    return;
  }
  const recorder = new MediaRecorder(stream);
  const chunks = [];
  recorder.ondataavailable = (event) => { if (event.data.size) chunks.push(event.data); };
  recorder.onstop = async () => {
    stream.getTracks().forEach((t) => t.stop());
    state.recorder = null;
    els.mic.classList.remove("recording");
    els.mic.setAttribute("aria-pressed", "false");
    // the whole recording with its real type (Chrome: audio/webm;codecs=opus, Safari: audio/mp4)
    const blob = new Blob(chunks, { type: recorder.mimeType || "audio/webm" });
    const ext = blob.type.includes("mp4") ? "m4a" : blob.type.includes("ogg") ? "ogg" : "webm";
    els.mic.classList.add("busy");
    try {
      const text = (await transcribe(blob, `recording.${ext}`)).trim();
      if (text) {
        const before = els.input.value.trim();
        els.input.value = before ? `${before} ${text}` : text;
        autosize();
        els.input.focus();
      } else toast("no speech found in the recording", "info");
    } catch (err) {
      handleError(err);
    } finally {
      els.mic.classList.remove("busy");
    }
  };
  state.recorder = recorder;
  recorder.start();
  els.mic.classList.add("recording");
  els.mic.setAttribute("aria-pressed", "true");
}

function readAloudButton(getText) {
  const btn = h("button", { class: "ghost-btn read-btn", type: "button", "aria-label": "Read the answer aloud",
                            title: "Read aloud", "aria-pressed": "false" },
    icon("speaker"), h("span", { class: "btn-label", text: "Read aloud" }));
  btn.addEventListener("click", async () => {
    const playing = state.playing;
    if (playing) {
      playing.audio.pause();
      playing.button.setAttribute("aria-pressed", "false");
      state.playing = null;
      if (playing.button === btn) return;
    }
    try {
      const audio = new Audio(URL.createObjectURL(await speak(getText())));
      state.playing = { audio, button: btn };
      btn.setAttribute("aria-pressed", "true");
      audio.onended = () => {
        btn.setAttribute("aria-pressed", "false");
        if (state.playing && state.playing.audio === audio) state.playing = null;
      };
      await audio.play();
    } catch (err) {
      btn.setAttribute("aria-pressed", "false");
      if (err.name !== "NotAllowedError") handleError(err);
    }
  });
  return btn;
}

async function send() {
  const typed = els.input.value.trim();
  const attached = state.attached;
  if ((!typed && !attached.length) || state.streaming) return;
  const content = messageContent(typed, attached);
  state.attached = [];
  renderAttachments();
  const task = els.task.value || "auto";
  const controller = new AbortController();
  const turn = new AssistantTurn({ streaming: true });
  state.streaming = { controller, turn };
  setStreaming(true);
  els.input.value = "";
  autosize();
  showWelcome(false);
  const shown = attached.map((a) => ({ type: a.kind, name: a.name, engine: a.kind === "image" ? "OCR" : "transcript",
                                     text: "reading…" }));
  const user = userMessage(typed, shown, attached.map((a) => a.url));
  els.thread.append(user, turn.el);
  scrollToBottom(true);
  const isNew = !state.sessionId;
  let stopped = false;
  try {
    if (isNew) {
      const session = await api.createSession();
      state.loadToken++;
      setSession(session.id);
      // the server names a session after its first message: show that name at once
      const title = session.title || (typed || attached.map((a) => a.name).join(", ")).split(/\s+/).join(" ").slice(0, 60);
      setTitle(title);
      state.sessions = [{ ...session, title }, ...state.sessions.filter((s) => s.id !== session.id)];
      renderSessionList();
    }
    await withRetryWhileBusy(() => streamMessage(state.sessionId, content, task, (name, data) => {
      if (name === "media") {
        const notes = user.querySelectorAll("figure pre");
        (data.media || []).forEach((m, i) => {
          if (notes[i]) notes[i].textContent = m.text || (m.type === "image" ? "(no text found in the image)" : "(no speech found)");
        });
      } else if (name === "route") turn.route(data.task, { scores: data.scores, forced: data.forced ?? task !== "auto" });
      else if (name === "token") turn.token(data.text ?? "");
      else if (name === "tool_call") turn.toolCall(data);
      else if (name === "tool_result") turn.toolResult(data);
      else if (name === "notice") turn.notice(data);
      else if (name === "answer") turn.answer(data);
      else if (name === "error") turn.error(data.message || "the server reported an error");
    }, controller.signal), controller.signal);
  } catch (err) {
    if (err.name === "AbortError") stopped = true;
    else {
      turn.error(err.message);
      if (err instanceof ApiError && err.status === 401) askForKey(err.message);
    }
  } finally {
    turn.finish(stopped);
    if (state.streaming && state.streaming.turn === turn) {
      state.streaming = null;
      setStreaming(false);
    }
    if (!stopped || isNew) refreshSessions();
  }
}

// ---------------------------------------------------------------- errors and the API key

function handleError(err) {
  if (err instanceof ApiError && err.status === 401) askForKey(err.message);
  else toast(err.message || String(err), "error");
}

function askForKey(reason) {
  if (els.keyDialog.open) return;
  els.keyText.textContent = reason
    ? `This server asks for an API key (${reason.replace(/\.$/, "")}). It is kept in this browser only.`
    : "If the server was started with --api-key, enter one of its keys. It is kept in this browser only.";
  els.keyInput.value = getApiKey();
  els.keyDialog.showModal();
  els.keyInput.focus();
}

// ---------------------------------------------------------------- the composer

function autosize() {
  els.input.style.height = "auto";
  els.input.style.height = `${Math.min(els.input.scrollHeight, 240)}px`;
  updateSend();
}

function openSidebar() {
  els.sidebar.classList.add("open");
  els.scrim.hidden = false;
  els.openSidebar.setAttribute("aria-expanded", "true");
}

function closeSidebar() {
  els.sidebar.classList.remove("open");
  els.scrim.hidden = true;
  els.openSidebar.setAttribute("aria-expanded", "false");
}

function wire() {
  els.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    send();
  });
  els.input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      send();
    } else if (event.key === "Escape" && state.streaming) {
      stopStreaming();
    }
  });
  els.input.addEventListener("input", autosize);
  els.attach.addEventListener("click", () => els.fileInput.click());
  els.fileInput.addEventListener("change", async () => {
    await attachFiles([...els.fileInput.files]);
    els.fileInput.value = "";
    els.input.focus();
  });
  els.mic.addEventListener("click", toggleRecording);
  els.input.addEventListener("paste", (event) => {
    const files = [...(event.clipboardData ? event.clipboardData.files : [])];
    if (files.length) {
      event.preventDefault();
      attachFiles(files);
    }
  });
  for (const target of [els.composerBox, els.messages]) {
    target.addEventListener("dragover", (event) => {
      if (![...event.dataTransfer.types].includes("Files")) return;
      event.preventDefault();
      els.composerBox.classList.add("dragging");
    });
    target.addEventListener("dragleave", () => els.composerBox.classList.remove("dragging"));
    target.addEventListener("drop", (event) => {
      els.composerBox.classList.remove("dragging");
      if (!event.dataTransfer.files.length) return;
      event.preventDefault();
      attachFiles([...event.dataTransfer.files]);
    });
  }
  els.stop.addEventListener("click", () => {
    stopStreaming();
    els.input.focus();
  });
  els.newChat.addEventListener("click", newChat);
  els.task.addEventListener("change", () => chooseTask(els.task.value));
  els.openSidebar.addEventListener("click", openSidebar);
  els.closeSidebar.addEventListener("click", closeSidebar);
  els.scrim.addEventListener("click", closeSidebar);
  els.keyButton.addEventListener("click", () => askForKey(""));
  els.keyClear.addEventListener("click", () => {
    setApiKey("");
    els.keyInput.value = "";
    els.keyDialog.close("cleared");
  });
  els.keyDialog.addEventListener("close", () => {
    const value = els.keyDialog.returnValue;
    if (value === "save") setApiKey(els.keyInput.value.trim());
    if (value === "save" || value === "cleared") {
      loadModels();
      refreshSessions();
    }
  });
  window.addEventListener("hashchange", () => {
    const id = decodeURIComponent(location.hash.slice(1));
    if (id && id !== state.sessionId) openSession(id);
    else if (!id && state.sessionId) newChat();
  });
  window.addEventListener("popstate", () => {
    const id = decodeURIComponent(location.hash.slice(1));
    if (id && id !== state.sessionId) openSession(id);
    else if (!id && state.sessionId) newChat();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && els.sidebar.classList.contains("open")) closeSidebar();
  });
}

async function start() {
  wire();
  autosize();
  await loadModels();
  const fromHash = decodeURIComponent(location.hash.slice(1));
  const id = fromHash || storage(SESSION_STORAGE);
  await refreshSessions();
  if (id) {
    if (!fromHash) history.replaceState(null, "", `#${id}`);
    await openSession(id);
  } else {
    showWelcome(true);
  }
  els.input.focus();
  document.documentElement.dataset.ready = "true";
}

start();
