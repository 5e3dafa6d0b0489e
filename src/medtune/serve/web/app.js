// medtune case analysis page: no framework, no CDN, no inline script (the server's CSP allows 'self' only).
"use strict";

const $ = (id) => document.getElementById(id);
let controller = null;

// The tab remembers the key while the field holds it: a cleared field forgets it, so a reload cannot bring back
// a key the user removed. Called as the field changes and before each request.
function rememberKey() {
  const key = $("api-key").value.trim();
  if (key) sessionStorage.setItem("medtune-key", key);
  else sessionStorage.removeItem("medtune-key");
  return key;
}

function authHeaders() {
  const key = rememberKey();
  return key ? { Authorization: `Bearer ${key}` } : {};
}

// Options are lettered in order, one per line: "A. …", then "B. …" ("A)", "(A)" and "A:" too). Only the next
// letter of that sequence starts an option; any other line continues the option above it, so a wrapped line
// such as "E. coli sepsis" under "B. Gram-negative" stays part of B. A letter already used is an error shown
// to the user, never a silent overwrite; so is a first line that is not option A.
function parseOptions(text) {
  const options = {};
  let last = null;
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line) continue;
    const m = line.match(/^\(?([A-Za-z])[.):]\s*(.+)$/);
    const letter = m ? m[1].toUpperCase() : null;
    if (letter && letter === String.fromCharCode(65 + Object.keys(options).length)) {
      options[letter] = m[2].trim();
      last = letter;
    } else if (letter && letter in options) {
      throw new Error(`Options: the letter ${letter} is used twice ("${line}"); give each option its own letter.`);
    } else if (letter && last) {  // a skipped letter, or text such as "E. coli" at a line start: never merged silently
      const next = String.fromCharCode(65 + Object.keys(options).length);
      throw new Error(`Options: expected option ${next} next, not "${line}"; if this line continues option ${last}, ` +
                      `join it to that line.`);
    } else if (last) {
      options[last] += ` ${line}`;
    } else if (letter) {
      throw new Error(`Options: the first option is lettered A, not "${line}" (e.g. "A. Pneumonia").`);
    } else {
      throw new Error(`Options: "${line}" does not start with a letter (e.g. "A. Pneumonia").`);
    }
  }
  return last ? options : null;
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

function setBusy(busy) {
  $("submit").disabled = busy;
  $("stop").disabled = !busy;
}

function text(tag, content, cls) {
  const el = document.createElement(tag);
  el.textContent = content;
  if (cls) el.className = cls;
  return el;
}

function renderDifferential(items) {
  const list = $("differential");
  list.replaceChildren();
  for (const item of items) {
    const li = document.createElement("li");
    const row = document.createElement("div");
    row.className = "dx";
    const name = item.letter ? `${item.letter}. ${item.diagnosis}` : item.diagnosis;
    row.append(text("span", name, "dx-name"));
    const bar = document.createElement("div");
    bar.className = "bar";
    const fill = document.createElement("span");
    const pct = item.probability === null ? null : Math.round(item.probability * 1000) / 10;
    fill.style.width = pct === null ? "0%" : `${pct}%`; // CSSOM, not a style attribute: allowed by the CSP
    bar.append(fill);
    bar.setAttribute("role", "img");
    bar.setAttribute("aria-label", pct === null ? "no probability" : `probability ${pct} percent`);
    row.append(bar, text("span", pct === null ? "–" : `${pct}%`, "pct"));
    li.append(row);
    list.append(li);
  }
  if (!items.length) list.append(text("li", "none given"));
}

function renderAnalysis(doc) {
  $("analysis").hidden = false;
  const review = $("review");
  review.replaceChildren();
  review.className = "review " + (doc.needs_human_review ? "flagged" : "clear");
  review.append(text("span", doc.needs_human_review ? "Needs human review" : "No review flag raised"));
  if (doc.review_reasons.length) {
    const ul = document.createElement("ul");
    for (const r of doc.review_reasons) ul.append(text("li", r));
    review.append(ul);
  }
  const fa = doc.final_answer;
  $("final-answer").textContent = fa.text ? (fa.letter ? `${fa.letter}. ${fa.text}` : fa.text) : "not stated";
  const c = doc.confidence;
  $("confidence").textContent = c.value === null ? "unknown" : `${Math.round(c.value * 100)}%`;
  $("confidence-method").textContent = c.method === "option_loglik"
    ? "(option probability by log-likelihood)"
    : `(agreement of ${c.samples} sampled answers)`;
  renderDifferential(doc.differential);
  const flags = $("red-flags");
  flags.replaceChildren();
  for (const f of doc.red_flags) flags.append(text("li", f));
  if (!doc.red_flags.length) flags.append(text("li", "none named by the model"));
  $("parse-error").hidden = !doc.parse_error;
  $("parse-error").textContent = doc.parse_error ? `Parse note: ${doc.parse_error}` : "";
  $("provenance").textContent = `Request ${doc.request_id} · model ${doc.model.name} (${doc.model.backend}` +
    (doc.model.sha256 ? `, sha256 ${doc.model.sha256.slice(0, 12)}…` : "") + ")";
  $("disclaimer-text").textContent = doc.disclaimer;
  $("analysis-title").focus();
}

async function readEvents(response, onEvent) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      const data = block.split("\n").filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
      if (data && data !== "[DONE]") onEvent(JSON.parse(data));
    }
  }
}

async function analyze(event) {
  event.preventDefault();
  showError("");
  const body = { case: $("case").value, stream: true };
  if (!body.case.trim()) { showError("Enter the case first."); $("case").focus(); return; }
  try {
    const options = parseOptions($("options").value);
    if (options) body.options = options;
  } catch (e) { showError(e.message); $("options").focus(); return; }
  if ($("question").value.trim()) body.question = $("question").value.trim();
  $("answer").textContent = "";
  $("analysis").hidden = true;
  $("status").textContent = "Analysing…";
  setBusy(true);
  controller = new AbortController();
  try {
    const response = await fetch("/v1/analyze_case", {
      method: "POST", signal: controller.signal,
      headers: { "Content-Type": "application/json", ...authHeaders() }, body: JSON.stringify(body),
    });
    if (!response.ok) {
      const err = await response.json().catch(() => ({}));
      throw new Error((err.error && err.error.message) || `HTTP ${response.status}`);
    }
    let analysed = false;
    await readEvents(response, (ev) => {
      if (ev.type === "delta") $("answer").textContent += ev.text;
      else if (ev.type === "analysis") { renderAnalysis(ev.analysis); $("status").textContent = "Done."; analysed = true; }
      else if (ev.error) throw new Error(ev.error.message);
    });
    // a stream cut off (a proxy timeout, a dropped connection) ends without either: never leave "Analysing…"
    if (!analysed) throw new Error("The answer stream ended before the analysis arrived; try again.");
  } catch (e) {
    $("status").textContent = e.name === "AbortError" ? "Stopped." : "Failed.";
    if (e.name !== "AbortError") showError(e.message);
  } finally {
    setBusy(false);
    controller = null;
  }
}

async function loadModel() {
  try {
    const response = await fetch("/v1/models", { headers: authHeaders() });
    if (response.status === 401 || response.status === 403) {
      // the server needs a (clinician) key: open the Connection box so the user sees where it goes
      $("connection").open = true;
      $("model-line").textContent = response.status === 401
        ? "Model: not shown. This server needs an API key: enter it under Connection."
        : "Model: not shown. This API key may not use the case API (it needs the clinician role).";
      return;
    }
    const data = await response.json();
    const m = data.data[0];
    $("model-line").textContent = `Model: ${m.id} (${m.medtune.backend}${m.medtune.sha256 ? ", sha256 " + m.medtune.sha256.slice(0, 12) + "…" : ""})`;
  } catch (e) {
    $("model-line").textContent = "Model: unknown (the server did not answer)";
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("api-key").value = sessionStorage.getItem("medtune-key") || "";
  $("api-key").addEventListener("input", rememberKey);
  $("api-key").addEventListener("change", loadModel); // a key typed in (kept for this tab only) is tried at once
  $("case-form").addEventListener("submit", analyze);
  $("stop").addEventListener("click", () => controller && controller.abort());
  for (const id of ["case", "question", "options"]) {
    $(id).addEventListener("keydown", (e) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) $("case-form").requestSubmit();
    });
  }
  loadModel();
});
