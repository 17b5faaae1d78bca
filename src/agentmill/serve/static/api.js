// The page's client of the agentmill server: JSON calls and the agent's SSE step stream.
//
// Paths are relative, so the page also works behind a reverse proxy under a sub-path.

const KEY_STORAGE = "agentmill.apiKey";

export class ApiError extends Error {
  constructor(message, status = 0, type = "", code = null) {
    super(message);
    this.status = status;
    this.type = type;
    this.code = code;
  }
}

export function getApiKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return "";
  }
}

export function setApiKey(key) {
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    /* storage disabled: the key lives for this page only */
  }
}

function headers(json = false) {
  const h = { Accept: json ? "application/json" : "text/event-stream" };
  if (json) h["Content-Type"] = "application/json";
  const key = getApiKey();
  if (key) h.Authorization = `Bearer ${key}`;
  return h;
}

async function errorFrom(response) {
  // Errors are OpenAI-shaped: {"error": {"message", "type", "param", "code"}}.
  let message = `${response.status} ${response.statusText}`.trim();
  let type = "";
  let code = null;
  try {
    const body = await response.json();
    if (body && body.error) {
      message = body.error.message || message;
      type = body.error.type || "";
      code = body.error.code ?? null;
    } else if (body && body.detail) {
      message = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    }
  } catch {
    /* not JSON: keep the status line */
  }
  const retry = response.headers.get("Retry-After");
  if (response.status === 429 && retry) message += ` (retry in ${retry} s)`;
  return new ApiError(message, response.status, type, code);
}

async function call(method, path, body) {
  let response;
  try {
    response = await fetch(path, {
      method,
      headers: headers(true),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (err) {
    throw new ApiError(`cannot reach the server (${err.message})`);
  }
  if (!response.ok) throw await errorFrom(response);
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

async function binary(method, path, body, headersExtra = {}) {
  let response;
  try {
    response = await fetch(path, { method, body, headers: { ...authOnly(), ...headersExtra } });
  } catch (err) {
    throw new ApiError(`cannot reach the server (${err.message})`);
  }
  if (!response.ok) throw await errorFrom(response);
  return response;
}

function authOnly() {
  const key = getApiKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

/** The transcript of a recording (a Blob with its real type, e.g. audio/webm;codecs=opus). */
export async function transcribe(blob, filename) {
  const form = new FormData();
  form.append("file", blob, filename);
  form.append("model", "whisper-1");
  form.append("response_format", "json");
  const response = await binary("POST", "v1/audio/transcriptions", form);
  return (await response.json()).text || "";
}

/** `text` spoken by the server (a WAV Blob). */
export async function speak(text) {
  const response = await binary("POST", "v1/audio/speech",
    JSON.stringify({ model: "tts-1", input: text.slice(0, 4096), voice: "alloy", response_format: "wav" }),
    { "Content-Type": "application/json" });
  return response.blob();
}

/** A stored message's image or recording, by its sha256 (fetched with the key: <img src> cannot send it). */
export async function mediaBlob(digest) {
  const response = await binary("GET", `v1/agent/media/${encodeURIComponent(digest)}`);
  return response.blob();
}

export const api = {
  models: () => call("GET", "v1/models"),
  sessions: () => call("GET", "v1/agent/sessions"),
  createSession: (title) => call("POST", "v1/agent/sessions", title ? { title } : {}),
  session: (id) => call("GET", `v1/agent/sessions/${encodeURIComponent(id)}`),
  deleteSession: (id) => call("DELETE", `v1/agent/sessions/${encodeURIComponent(id)}`),
};

/**
 * Post a message and call `onEvent(name, data)` for each SSE event as it arrives
 * (route, token, tool_call, tool_result, notice, answer, done; "error" for an error event).
 * Resolves when the stream ends; rejects with ApiError on an HTTP error, or AbortError when
 * `signal` aborts.
 */
export async function streamMessage(sessionId, content, task, onEvent, signal) {
  let response;
  try {
    response = await fetch(`v1/agent/sessions/${encodeURIComponent(sessionId)}/messages`, {
      method: "POST",
      headers: { ...headers(true), Accept: "text/event-stream" },
      body: JSON.stringify({ content, task, stream: true }),
      signal,
    });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(`cannot reach the server (${err.message})`);
  }
  if (!response.ok) throw await errorFrom(response);
  const type = response.headers.get("Content-Type") || "";
  if (!type.includes("text/event-stream")) {
    // A server that answered without streaming: hand its JSON over as one answer.
    const body = await response.json();
    onEvent("answer", body.answer || body);
    onEvent("done", {});
    return;
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let carry = ""; // a "\r" at the end of a chunk may be the first half of "\r\n"
  const dispatch = (block) => {
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue; // a comment (keep-alive)
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") name = value;
      else if (field === "data") data.push(value);
    }
    if (!data.length) return;
    const raw = data.join("\n");
    if (raw === "[DONE]") {
      onEvent("done", {});
      return;
    }
    let payload;
    try {
      payload = JSON.parse(raw);
    } catch {
      payload = { text: raw };
    }
    if (name === "error" || (payload && typeof payload.error === "object" && payload.error !== null)) {
      onEvent("error", payload.error || payload);
      return;
    }
    onEvent(name, payload);
  };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    let text = carry + decoder.decode(value, { stream: true });
    carry = text.endsWith("\r") ? "\r" : "";
    if (carry) text = text.slice(0, -1);
    buffer += text.replace(/\r\n?/g, "\n");
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      dispatch(buffer.slice(0, cut));
      buffer = buffer.slice(cut + 2);
    }
  }
  buffer += (carry + decoder.decode()).replace(/\r\n?/g, "\n");
  if (buffer.trim()) dispatch(buffer);
}
