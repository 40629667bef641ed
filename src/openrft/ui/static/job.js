// The job page: status, live metric curves, checkpoints, hyperparameters, rollouts, events.
// Polls every 2 s until the job is finished.

import { api, listAll } from "./api.js";
import { lineChart } from "./chart.js";
import {
  TERMINAL, badge, errorBox, h, number, playgroundHref, section, table, time,
} from "./dom.js";

// Which metrics share a chart; a chart appears when any of its keys is in the events.
const CHARTS = [
  { title: "Reward", keys: ["critic_rewards_mean", "train_reward_mean", "valid_reward_mean"] },
  { title: "Loss", keys: ["train_loss", "valid_loss"] },
  { title: "Token accuracy", keys: ["train_mean_token_accuracy", "valid_mean_token_accuracy"] },
  { title: "Entropy", keys: ["actor_entropy"] },
  { title: "Grad norm", keys: ["actor_grad_norm"] },
  { title: "KL", keys: ["actor_kl"] },
  { title: "Response length", keys: ["response_length_mean"] },
];
const POLL_MS = 2000;

export async function renderJob(view, jobId, ctx) {
  const parts = {
    header: h("div"), charts: h("div", { class: "charts" }), checkpoints: h("div"),
    hyper: h("div"), rollouts: h("div"), events: h("div"),
  };
  const showMetricEvents = h("input", { type: "checkbox" });
  view.replaceChildren(
    h("p", {}, h("a", { href: "#/jobs" }, "← Jobs")),
    parts.header,
    section("Curves", parts.charts),
    h("div", { class: "columns" },
      section("Checkpoints", parts.checkpoints),
      section("Hyperparameters", parts.hyper)),
    section("Sample rollouts", parts.rollouts),
    section("Events", h("label", { class: "muted" }, showMetricEvents, " show metrics events"),
      parts.events),
  );
  const seen = {}; // section -> last JSON drawn, so unchanged sections keep their state
  const draw = (name, data, render) => {
    const key = JSON.stringify(data);
    if (seen[name] === key) return;
    seen[name] = key;
    parts[name].replaceChildren(...[render(data)].flat().filter(Boolean));
  };
  let events = [];
  showMetricEvents.addEventListener("change", () => drawEvents(parts.events, events, showMetricEvents.checked));

  for (;;) {
    let job;
    try {
      const id = encodeURIComponent(jobId);
      // The job first: once it reads finished, the events fetched after it are complete.
      job = await api(`/fine_tuning/jobs/${id}`);
      let checkpoints, rollouts;
      [events, checkpoints, rollouts] = await Promise.all([
        listAll(`/fine_tuning/jobs/${id}/events`, { limit: 1000 }),
        listAll(`/fine_tuning/jobs/${id}/checkpoints`, { limit: 100 }),
        api(`/fine_tuning/jobs/${id}/rollouts?limit=50`).then((page) => page.data),
      ]);
      if (!ctx.alive()) return;
      const metrics = metricsByStep(events);
      draw("header", { job, last: metrics.at(-1) }, () => jobHeader(job, metrics.at(-1)));
      draw("charts", metrics, charts);
      draw("checkpoints", checkpoints, checkpointTable);
      draw("hyper", job.method, hyperparameters);
      draw("rollouts", rollouts, rolloutList);
      drawEvents(parts.events, events, showMetricEvents.checked);
    } catch (error) {
      if (!ctx.alive()) return;
      if (error.status === 401) throw error; // the router asks to sign in again
      parts.header.replaceChildren(errorBox(error));
    }
    if (job && TERMINAL.has(job.status)) return;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    if (!ctx.alive()) return;
  }
}

/** The data of metrics events, one per step (the newest if a resumed job repeated one). */
function metricsByStep(events) {
  const byStep = new Map();
  for (const event of events) {
    const step = event.type === "metrics" && event.data && event.data.step;
    if (typeof step === "number" && !byStep.has(step)) byStep.set(step, event.data);
  }
  return [...byStep.values()].sort((a, b) => a.step - b.step);
}

function jobHeader(job, last) {
  const actions = [];
  const act = (label, verb) => h("button", {
    onclick: async (e) => {
      e.target.disabled = true;
      try { await api(`/fine_tuning/jobs/${job.id}/${verb}`, { method: "POST" }); }
      catch (error) { alert(error.message); }
    },
  }, label);
  if (job.status === "running" || job.status === "queued") actions.push(act("Pause", "pause"));
  if (job.status === "paused") actions.push(act("Resume", "resume"));
  if (!TERMINAL.has(job.status)) actions.push(act("Cancel", "cancel"));
  if (job.fine_tuned_model) {
    actions.push(h("a", { class: "button", href: playgroundHref(job.fine_tuned_model) }, "Chat with model"));
  }
  const progress = last && last.total_steps
    ? h("progress", { max: last.total_steps, value: last.step }) : null;
  return h("div", { class: "card job-header" },
    h("h1", {}, job.id, " ", badge(job.status)),
    h("dl", {},
      h("dt", {}, "Method"), h("dd", {}, job.method ? job.method.type : "—"),
      h("dt", {}, "Base model"), h("dd", {}, job.model),
      h("dt", {}, "Fine-tuned model"), h("dd", { class: "mono" }, job.fine_tuned_model || "—"),
      h("dt", {}, "Step"), h("dd", {}, last ? `${last.step} / ${last.total_steps ?? "?"} ` : "—", progress),
      h("dt", {}, "Created"), h("dd", {}, time(job.created_at)),
      h("dt", {}, "Finished"), h("dd", {}, time(job.finished_at)),
      h("dt", {}, "Training file"), h("dd", { class: "mono" }, job.training_file),
      h("dt", {}, "Validation file"), h("dd", { class: "mono" }, job.validation_file || "—"),
    ),
    job.error && job.error.message ? h("p", { class: "error" }, job.error.message) : null,
    h("div", { class: "actions" }, actions),
  );
}

function charts(metrics) {
  const figures = [];
  for (const { title, keys } of CHARTS) {
    const series = keys
      .map((key) => ({
        name: key,
        points: metrics.filter((m) => Number.isFinite(m[key])).map((m) => [m.step, m[key]]),
      }))
      .filter((line) => line.points.length > 0);
    if (series.length) figures.push(lineChart(title, series));
  }
  return figures.length ? figures : h("p", { class: "muted" }, "No metrics yet.");
}

function checkpointTable(checkpoints) {
  if (!checkpoints.length) return h("p", { class: "muted" }, "No checkpoints yet.");
  return table(
    ["Step", "Model", "Metrics", ""],
    checkpoints.map((ck) => [
      String(ck.step_number),
      h("span", { class: "mono" }, ck.fine_tuned_model_checkpoint),
      checkpointMetrics(ck.metrics || {}),
      h("a", { class: "button open-playground", href: playgroundHref(ck.fine_tuned_model_checkpoint) },
        "Open in playground"),
    ]),
    { class: "checkpoints" },
  );
}

// The checkpoint metrics worth a glance; the rest are in the cell's tooltip.
const HEADLINE = ["train_reward_mean", "valid_reward_mean", "train_loss", "valid_loss"];

function checkpointMetrics(metrics) {
  const entries = Object.entries(metrics).filter(([k, v]) => k !== "step" && typeof v === "number");
  const headline = entries.filter(([k]) => HEADLINE.includes(k));
  const shown = headline.length ? headline : entries.slice(0, 2);
  return h("span", { title: entries.map(([k, v]) => `${k} ${number(v)}`).join("\n") },
    shown.map(([k, v]) => `${k} ${number(v)}`).join(", "));
}

function hyperparameters(method) {
  const config = (method && method[method.type]) || {};
  const rows = Object.entries(config.hyperparameters || {}).map(([k, v]) => [k, number(v)]);
  const grader = config.grader
    ? h("details", {}, h("summary", {}, `Grader: ${config.grader.type} ${config.grader.name || ""}`),
      h("pre", {}, JSON.stringify(config.grader, null, 2)))
    : null;
  return [table(["Name", "Value"], rows, { class: "hyperparameters" }), grader];
}

function rolloutList(rollouts) {
  if (!rollouts.length) return h("p", { class: "muted" }, "No rollouts (supervised jobs have none).");
  return h("div", { class: "rollouts" }, rollouts.map((r) => {
    const prompt = (r.messages || []).filter((m) => m.role !== "assistant").at(-1);
    const grader = r.grader || {};
    return h("details", { class: "rollout" },
      h("summary", {},
        h("span", { class: "reward" }, number(r.reward)),
        ` step ${r.step} · prompt ${r.prompt_index} · sample ${r.sample_index} · `,
        h("span", { class: "mono" }, preview(r.completion, 80))),
      h("div", { class: "rollout-body" },
        h("h4", {}, "Prompt"), h("pre", {}, prompt ? String(prompt.content) : "—"),
        h("h4", {}, `Completion (${r.finish_reason || "?"})`), h("pre", {}, r.completion ?? ""),
        h("h4", {}, `Grader ${grader.name || ""} (${grader.type || "?"})`),
        h("pre", {}, JSON.stringify(
          { errors: grader.errors, sub_rewards: grader.sub_rewards, metrics: grader.metrics },
          null, 2)),
        h("h4", {}, "Item"), h("pre", {}, JSON.stringify(r.item, null, 2))));
  }));
}

function preview(text, n) {
  const flat = String(text ?? "").replace(/\s+/g, " ");
  return flat.length > n ? `${flat.slice(0, n)}…` : flat;
}

function drawEvents(target, events, withMetrics) {
  const shown = events.filter((e) => withMetrics || e.type !== "metrics").slice(0, 300);
  target.replaceChildren(table(
    ["Time", "Level", "Message"],
    shown.map((e) => [time(e.created_at), h("span", { class: `level-${e.level}` }, e.level), e.message]),
    { class: "events" },
  ));
}
