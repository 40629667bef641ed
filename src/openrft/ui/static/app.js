// The dashboard's entry point: sign-in, a hash router, the jobs list and the files page.

import { ApiError, api, clearKey, getKey, listAll, setKey } from "./api.js";
import { TERMINAL, badge, bytes, errorBox, h, section, table, time } from "./dom.js";
import { renderJob } from "./job.js";
import { renderPlayground } from "./playground.js";

const view = document.getElementById("view");
const nav = document.getElementById("nav");
let generation = 0; // bumps on every navigation, so a stale view stops polling

async function route() {
  const gen = ++generation;
  const ctx = { alive: () => gen === generation };
  const [path, query] = (location.hash.slice(1) || "/jobs").split("?");
  const params = new URLSearchParams(query || "");
  nav.hidden = !getKey();
  if (!getKey()) return renderSignIn();
  const parts = path.split("/").filter(Boolean);
  for (const link of nav.querySelectorAll("a")) {
    link.classList.toggle("active", link.dataset.nav === parts[0]);
  }
  try {
    if (parts[0] === "jobs" && parts[1]) await renderJob(view, decodeURIComponent(parts[1]), ctx);
    else if (parts[0] === "files") await renderFiles(ctx);
    else if (parts[0] === "playground") await renderPlayground(view, params);
    else await renderJobs(ctx);
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      clearKey();
      return renderSignIn("That API key was refused.");
    }
    if (ctx.alive()) view.replaceChildren(errorBox(error));
  }
}

function renderSignIn(message) {
  nav.hidden = true;
  const key = h("input", { id: "api-key", type: "password", placeholder: "sk-…", autocomplete: "off", required: true });
  const note = h("p", { class: "error" }, message || "");
  const submit = async (event) => {
    event.preventDefault();
    setKey(key.value.trim());
    try {
      await api("/models"); // any authenticated call checks the key
      if (location.hash.startsWith("#/")) route();
      else location.hash = "#/jobs";
    } catch (error) {
      clearKey();
      note.textContent = error.status === 401 ? "That API key was refused." : error.message;
    }
  };
  view.replaceChildren(h("section", { class: "card sign-in" },
    h("h1", {}, "Sign in"),
    h("p", { class: "muted" }, "Enter an API key of your project (", h("code", {}, "openrft keys create"), "). It stays in this browser."),
    h("form", { onsubmit: submit }, key, h("button", { type: "submit" }, "Sign in")),
    note));
  key.focus();
}

async function renderJobs(ctx) {
  const body = h("div");
  view.replaceChildren(section("Fine-tuning jobs", body));
  for (;;) {
    const jobs = await listAll("/fine_tuning/jobs", { limit: 100, maxPages: 5 });
    if (!ctx.alive()) return;
    body.replaceChildren(jobs.length ? table(
      ["Job", "Status", "Method", "Model", "Fine-tuned model", "Created"],
      jobs.map((job) => [
        h("a", { href: `#/jobs/${encodeURIComponent(job.id)}`, class: "mono" }, job.id),
        badge(job.status),
        job.method ? job.method.type : "—",
        job.model,
        h("span", { class: "mono" }, job.fine_tuned_model || "—"),
        time(job.created_at),
      ]),
      { class: "jobs" },
    ) : h("p", { class: "muted" }, "No jobs yet. Create one with the OpenAI SDK or `openrft jobs create`."));
    if (jobs.every((job) => TERMINAL.has(job.status))) return;
    await new Promise((resolve) => setTimeout(resolve, 2000));
    if (!ctx.alive()) return;
  }
}

async function renderFiles(ctx) {
  const body = h("div");
  const file = h("input", { type: "file", accept: ".jsonl", required: true });
  const purpose = h("select", {}, ["fine-tune", "user_data"].map((p) => h("option", { value: p }, p)));
  const note = h("span", { class: "muted" });
  const upload = async (event) => {
    event.preventDefault();
    const form = new FormData();
    form.append("purpose", purpose.value);
    form.append("file", file.files[0]);
    note.textContent = "Uploading…";
    try {
      const created = await api("/files", { method: "POST", body: form });
      note.textContent = `Uploaded ${created.id}`;
      await draw();
    } catch (error) {
      note.textContent = error.message;
    }
  };
  const draw = async () => {
    const files = (await api("/files")).data;
    if (!ctx.alive()) return;
    body.replaceChildren(files.length ? table(
      ["File", "Name", "Purpose", "Size", "Status", "Created"],
      files.map((f) => [h("span", { class: "mono" }, f.id), f.filename, f.purpose, bytes(f.bytes), f.status || "—", time(f.created_at)]),
      { class: "files" },
    ) : h("p", { class: "muted" }, "No files yet."));
  };
  view.replaceChildren(section("Files",
    h("form", { class: "upload", onsubmit: upload }, file, purpose, h("button", { type: "submit" }, "Upload"), note),
    body));
  await draw();
}

document.getElementById("sign-out").addEventListener("click", () => {
  clearKey();
  location.hash = "#/jobs";
  route();
});
window.addEventListener("hashchange", route);
route();
