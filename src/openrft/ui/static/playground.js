// The playground: pick any model of the project and stream a chat from it.

import { api, stream } from "./api.js";
import { errorBox, h } from "./dom.js";

let conversation = []; // kept while the page lives, across visits to other views

export async function renderPlayground(view, params) {
  const picker = h("select", { id: "model" });
  const system = h("textarea", { id: "system", rows: 2, placeholder: "System prompt (optional)" });
  const temperature = h("input", { id: "temperature", type: "number", min: 0, max: 2, step: 0.1, value: 0 });
  const maxTokens = h("input", { id: "max-tokens", type: "number", min: 1, value: 64 });
  const seed = h("input", { id: "seed", type: "number", placeholder: "random" });
  const transcript = h("div", { class: "transcript" });
  const input = h("textarea", { id: "prompt", rows: 3, placeholder: "Say something…" });
  const send = h("button", { id: "send", type: "submit" }, "Send");
  const stop = h("button", { type: "button", disabled: true }, "Stop");
  const clear = h("button", { type: "button" }, "Clear");
  const status = h("p", { class: "muted" });
  let controller = null;

  const bubble = (role, text) => h("div", { class: `msg ${role}` }, h("b", {}, role), h("div", { class: "text" }, text));
  const redraw = () => transcript.replaceChildren(...conversation.map((m) => bubble(m.role, m.content)));

  async function submit(event) {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || controller) return;
    input.value = "";
    conversation.push({ role: "user", content: text });
    redraw();
    const answer = bubble("assistant", "");
    answer.dataset.state = "streaming";
    answer.dataset.chunks = 0; // content deltas received, for tests and curiosity
    transcript.append(answer);
    const out = answer.querySelector(".text");
    const messages = system.value.trim()
      ? [{ role: "system", content: system.value.trim() }, ...conversation] : conversation;
    controller = new AbortController();
    stop.disabled = false;
    send.disabled = true;
    status.textContent = "";
    try {
      const request = {
        model: picker.value, messages,
        temperature: Number(temperature.value), max_tokens: Number(maxTokens.value),
      };
      if (seed.value !== "") request.seed = Number(seed.value);
      await stream("/chat/completions", request, (chunk) => {
        const choice = chunk.choices && chunk.choices[0];
        if (choice && choice.delta && choice.delta.content) {
          out.textContent += choice.delta.content;
          answer.dataset.chunks = Number(answer.dataset.chunks) + 1;
        }
        if (choice && choice.finish_reason) status.textContent = `finish_reason: ${choice.finish_reason}`;
      }, controller.signal);
    } catch (error) {
      if (error.name !== "AbortError") answer.append(errorBox(error));
    } finally {
      conversation.push({ role: "assistant", content: out.textContent });
      answer.dataset.state = "done";
      controller = null;
      stop.disabled = true;
      send.disabled = false;
    }
  }

  stop.addEventListener("click", () => controller && controller.abort());
  clear.addEventListener("click", () => { conversation = []; redraw(); });
  view.replaceChildren(h("section", { class: "card playground" },
    h("h1", {}, "Playground"),
    h("div", { class: "settings" },
      h("label", {}, "Model ", picker),
      h("label", {}, "Temperature ", temperature),
      h("label", {}, "Max tokens ", maxTokens),
      h("label", {}, "Seed ", seed)),
    system, transcript,
    h("form", { class: "composer", onsubmit: submit }, input, h("div", { class: "actions" }, send, stop, clear)),
    status));
  redraw();
  input.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey) submit(e);
  });

  try {
    const models = (await api("/models")).data.map((m) => m.id);
    const wanted = params.get("model");
    if (wanted && !models.includes(wanted)) models.unshift(wanted);
    picker.replaceChildren(...models.map((id) => h("option", { value: id }, id)));
    if (wanted) picker.value = wanted;
  } catch (error) {
    view.prepend(errorBox(error));
  }
}
