// Talking to /v1: the API key, JSON calls with OpenAI's error envelope, SSE streams.

const KEY_NAME = "openrft.apiKey";

export const getKey = () => localStorage.getItem(KEY_NAME);
export const setKey = (key) => localStorage.setItem(KEY_NAME, key);
export const clearKey = () => localStorage.removeItem(KEY_NAME);

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function headers(extra = {}) {
  return { Authorization: `Bearer ${getKey()}`, ...extra };
}

async function raiseForStatus(response) {
  if (response.ok) return;
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = await response.json();
    if (body.error && body.error.message) message = body.error.message;
  } catch {
    // Not JSON: keep the status line.
  }
  throw new ApiError(response.status, message);
}

/** GET or POST a /v1 path and return the parsed JSON. */
export async function api(path, { method = "GET", body } = {}) {
  const init = { method, headers: headers() };
  if (body instanceof FormData) {
    init.body = body;
  } else if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(`/v1${path}`, init);
  await raiseForStatus(response);
  return response.json();
}

/** Every item of a cursor page, following `after` while `has_more` (at most maxPages). */
export async function listAll(path, { limit = 100, maxPages = 20 } = {}) {
  const items = [];
  let after = null;
  for (let page = 0; page < maxPages; page++) {
    const sep = path.includes("?") ? "&" : "?";
    const cursor = after ? `&after=${encodeURIComponent(after)}` : "";
    const body = await api(`${path}${sep}limit=${limit}${cursor}`);
    items.push(...body.data);
    if (!body.has_more || body.data.length === 0) break;
    after = body.data[body.data.length - 1].id;
  }
  return items;
}

/**
 * POST with `stream: true` and call onChunk(json) for each SSE `data:` line until
 * `data: [DONE]`. fetch + ReadableStream, since EventSource cannot send a POST body.
 */
export async function stream(path, body, onChunk, signal) {
  const response = await fetch(`/v1${path}`, {
    method: "POST",
    headers: headers({ "Content-Type": "application/json", Accept: "text/event-stream" }),
    body: JSON.stringify({ ...body, stream: true }),
    signal,
  });
  await raiseForStatus(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    const lines = buffer.split("\n");
    buffer = lines.pop(); // an incomplete line waits for the next read
    for (const line of lines) {
      if (!line.startsWith("data:")) continue;
      const data = line.slice(5).trim();
      if (data === "[DONE]") return;
      const chunk = JSON.parse(data);
      if (chunk.error) throw new ApiError(0, chunk.error.message);
      onChunk(chunk);
    }
  }
}
