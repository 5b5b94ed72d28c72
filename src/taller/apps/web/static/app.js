// The explorer: type a prompt, see the model's next-character probabilities and the attention of every head.
// Plain JavaScript; talks to /api/* (see app.py and replies.py).
"use strict";

const $ = (id) => document.getElementById(id);
const prompt = $("prompt"), bars = $("bars"), runSelect = $("run"), message = $("message");
let runs = [], latest = 0, timer = null;

const show = (c) => ({ " ": "␣", "\n": "⏎", "\t": "⇥" }[c] ?? c);
const pct = (p) => (100 * p).toFixed(p >= 0.1 ? 1 : 2) + " %";

async function api(path, body) {
  const response = await fetch(path, body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  const data = await response.json();
  if (!response.ok) throw new Error(data.error || `error ${response.status}`);
  return data;
}

function say(text, kind = "error") {
  message.hidden = !text;
  message.textContent = text || "";
  message.className = "message" + (kind === "note" ? " note" : "");
}

// --- runs ------------------------------------------------------------------------------------------------------
async function loadRuns() {
  const data = await api("/api/runs");
  runs = data.runs;
  prompt.maxLength = data.max_text;
  runSelect.innerHTML = "";
  for (const r of runs) runSelect.add(new Option(r.error ? `${r.name} (no se puede abrir)` : r.name, r.name));
  for (const r of runs) if (!r.error) $("against").add(new Option(r.name, r.name));
  for (const r of runs) if (r.tildes) $("tildes-run").add(new Option(r.name, r.name));
  $("tildes-card").hidden = !runs.some((r) => r.tildes);
  for (const r of runs) if (r.fills) $("fill-run").add(new Option(r.name, r.name));
  $("fill-card").hidden = !runs.some((r) => r.fills);
  for (const r of runs) if (r.classifies) $("classify-run").add(new Option(r.name, r.name));
  $("classify-card").hidden = !runs.some((r) => r.classifies);
  const wanted = new URLSearchParams(location.search).get("run");
  if (wanted && runs.some((r) => r.name === wanted)) runSelect.value = wanted;
  chooseRun(true);
}

function chooseRun(first) {
  const r = runs.find((x) => x.name === runSelect.value);
  if (!r) return say("No hay ejecuciones en esta carpeta.");
  if (r.error) { $("run-info").textContent = ""; return say(r.error); }
  const bpc = r.val_bpc == null ? "" : ` · ${r.val_bpc.toFixed(2)} bits/carácter`;
  $("run-info").textContent = `${r.kind} · ${(r.parameters || 0).toLocaleString("es-ES")} parámetros · ` +
                              `corpus ${r.corpus} · ${r.block_size ? `ve ${r.block_size} caracteres` : "ve todo el texto"}${bpc}`;
  if (first && !prompt.value) prompt.value = r.prompt || "";
  refresh();
}

// --- next character ----------------------------------------------------------------------------------------------
function knobs() {  // how the sampling reshapes the model's probabilities (the same three as `taller generate`)
  return { temperature: parseFloat($("temperature").value), top_k: parseInt($("top-k").value, 10) || 0,
           top_p: Math.min(1, parseFloat($("top-p").value) || 1) };
}

function howShaped(k) {  // "temperatura 0.5 · top-k 3", in words
  return [k.temperature !== 1 ? `temperatura ${k.temperature}` : "", k.top_k ? `top-k ${k.top_k}` : "",
          k.top_p < 1 ? `top-p ${k.top_p}` : ""].filter(Boolean).join(" · ");
}

function addFills(row, model, drawn) {  // the model's bar and, when the sampling reshapes it, the drawn one below
  const track = row.querySelector(".track");
  track.innerHTML = `<span class="fill"></span>` + (drawn === undefined ? "" : `<span class="fill drawn"></span>`);
  track.firstChild.style.width = (100 * model).toFixed(1) + "%";
  if (drawn !== undefined) track.lastChild.style.width = (100 * drawn).toFixed(1) + "%";
  row.querySelector(".pct").textContent = drawn === undefined ? pct(model) : `${pct(model)} → ${pct(drawn)}`;
}

function drawBars(data, how) {
  const shaped = data.rest_sampled !== undefined;
  bars.innerHTML = "";
  bars.classList.toggle("shaped", shaped);
  $("legend").hidden = !shaped;
  $("how").textContent = how;
  for (const b of data.bars) {
    const row = document.createElement("button");
    row.className = "bar";
    row.dataset.char = b.char;
    row.dataset.prob = b.prob;
    row.title = `añadir «${b.shown}»`;
    row.innerHTML = `<span class="ch"></span><span class="track"><span class="fill"></span></span><span class="pct"></span>`;
    row.querySelector(".ch").textContent = b.shown;
    if (shaped) row.dataset.sampled = b.sampled;
    addFills(row, b.prob, b.sampled);
    row.addEventListener("click", () => { prompt.value += b.char; refresh(); prompt.focus(); });
    bars.append(row);
  }
  const rest = document.createElement("div");
  rest.className = "rest";
  rest.dataset.prob = data.rest;
  rest.innerHTML = `<span>resto</span><span class="track"></span><span class="pct"></span>`;
  addFills(rest, data.rest, data.rest_sampled);
  rest.title = `los otros ${data.rest_count} caracteres juntos`;
  bars.append(rest);
  bars.classList.remove("stale");
  bars.dataset.text = data.text;  // which text these bars belong to (the browser test waits on it)
}

// --- attention ---------------------------------------------------------------------------------------------------


function drawContext(chars) {  // the characters the model reads to make its guess
  const r = runs.find((x) => x.name === runSelect.value), box = $("context");
  box.innerHTML = `<div></div><div class="chips"></div>`;
  box.firstChild.textContent = `Lo que lee el modelo (${r && r.block_size ? `como mucho ${r.block_size} caracteres, los últimos` : "todo el texto"}):`;
  for (const c of chars) { const chip = document.createElement("span"); chip.textContent = c; box.lastChild.append(chip); }
}

function drawAttention(data) {
  const box = $("attention-maps");
  box.innerHTML = "";
  if (data.chars) drawContext(data.chars); else $("context").innerHTML = "";
  if (data.note) { box.innerHTML = `<p class="message note"></p>`; box.firstChild.textContent = data.note; return; }
  drawLayers(box, data.layers, data.chars);
}

// --- refresh: ask for both, keep only the answers to the latest text -------------------------------------------------
async function refresh() {
  const id = ++latest, body = { run: runSelect.value, text: prompt.value }, shape = knobs();
  bars.classList.add("stale");
  try {
    const [next, attention] = await Promise.all([api("/api/predict", { ...body, ...shape }), api("/api/attention", body)]);
    if (id !== latest) return;
    say("");
    drawBars(next, howShaped(shape));
    drawAttention(attention);
  } catch (e) {
    if (id === latest) say(e.message);
  }
}

async function sample(mode) {
  const buttons = [$("sample"), $("generate")];
  buttons.forEach((b) => (b.disabled = true));
  try {
    const data = await api("/api/sample", { run: runSelect.value, text: prompt.value, mode, ...knobs() });
    prompt.value = data.text;
    await refresh();
  } catch (e) {
    say(e.message);
  } finally {
    buttons.forEach((b) => (b.disabled = false));
  }
}

// --- surprise map ------------------------------------------------------------------------------------------------
const STOPS = [[255, 255, 255], [254, 217, 118], [253, 141, 60], [227, 26, 28], [128, 0, 38]];
function heat(bits) {  // 0 bits → white, 8 or more → dark red (as surprise.py's heat)
  if (bits == null) return "#e5e7eb";
  const t = Math.min(1, Math.max(0, bits / 8)) ** 0.8, x = t * (STOPS.length - 1), i = Math.min(Math.floor(x), STOPS.length - 2);
  return `rgb(${STOPS[i].map((p, k) => Math.round(p + (STOPS[i + 1][k] - p) * (x - i))).join(",")})`;
}
function diverging(d) {  // negative (the chosen run wins) → blue, positive → red
  if (d == null) return "#e5e7eb";
  const t = Math.min(1, Math.abs(d) / 4) ** 0.7, end = d < 0 ? [33, 102, 172] : [178, 24, 43];
  return `rgb(${end.map((e) => Math.round(255 + (e - 255) * t)).join(",")})`;
}
const esc = (t) => String(t).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);  // a run's name is not HTML
const fmt = (x, digits = 2) => x == null ? "∞" : x.toLocaleString("es-ES", { minimumFractionDigits: digits, maximumFractionDigits: digits });

function spotList(title, spots) {
  const box = document.createElement("div");
  box.innerHTML = `<b></b><ol></ol>`;
  box.firstChild.textContent = title;
  for (const s of spots) {
    const li = document.createElement("li");
    li.innerHTML = `<code>…<span></span><b></b><span></span>…</code> `;
    const parts = li.querySelectorAll("code > *");
    [s.before, s.char, s.after].forEach((t, k) => (parts[k].textContent = [...t].map(show).join("")));
    li.append(`${fmt(s.bits)} bits (posición ${s.position + 1})`);
    box.lastChild.append(li);
  }
  return box;
}

function drawSurprise(data) {
  const other = data.against, values = other ? other.difference : data.bits, colour = other ? diverging : heat;
  const map = $("surprise-map"), spots = $("surprise-spots");
  map.innerHTML = "";
  data.chars.forEach((c, i) => {
    const span = document.createElement("span");
    span.textContent = c === "\n" ? "⏎\n" : c;
    span.style.background = colour(values[i]);
    span.title = `«${show(c)}»: ` + (data.bits[i] == null ? "sin contexto, no se puntúa" : `${fmt(data.bits[i])} bits` +
                 (other && other.bits[i] != null ? ` · ${other.run}: ${fmt(other.bits[i])} bits` : ""));
    map.append(span);
  });
  let total = `${esc(data.run)}: <b>${fmt(data.total)} bits</b> en ${data.scored.toLocaleString("es-ES")} caracteres puntuados = <b>${fmt(data.bpc, 3)} bits/carácter</b>`;
  if (other) total += ` · ${esc(other.run)}: ${fmt(other.total)} bits = ${fmt(other.bpc, 3)} bits/carácter`;
  $("surprise-total").innerHTML = total + ` <span class="hint">(${data.source}${data.shown < data.length ? `; se colorean los primeros ${data.shown}` : ""})</span>`;
  $("surprise-total").dataset.total = data.total;  // the browser test reads it
  spots.innerHTML = "";
  spots.append(other ? spotList(`Donde más gana ${data.run}`, other.wins) : spotList("Los puntos más sorprendentes", data.top));
  if (other) spots.append(spotList(`Donde más gana ${other.run}`, other.losses));
}

async function measure() {
  $("measure").disabled = true;
  try {
    drawSurprise(await api("/api/surprise", { run: runSelect.value, text: $("surprise-text").value, against: $("against").value }));
    say("");
  } catch (e) {
    say(e.message);
  } finally {
    $("measure").disabled = false;
  }
}

// --- tildes --------------------------------------------------------------------------------------------------------
async function fixAccents() {
  $("tildes-fix").disabled = true;
  const out = $("tildes-out");
  try {
    const data = await api("/api/tildes", { run: $("tildes-run").value, text: $("tildes-text").value });
    const changed = new Set(data.changed);
    out.innerHTML = "";
    [...data.text].forEach((c, i) => {
      const span = document.createElement(changed.has(i) ? "mark" : "span");
      span.textContent = c;
      out.appendChild(span);
    });
  } catch (e) {
    out.textContent = e.message;
  } finally {
    $("tildes-fix").disabled = false;
  }
}

// --- fill and classify: the runs that read both sides ---------------------------------------------------------------
async function fillBlanks() {
  $("fill-go").disabled = true;
  const out = $("fill-out"), steps = $("fill-steps");
  steps.innerHTML = "";
  delete out.dataset.filled;
  try {
    const data = await api("/api/fill", { run: $("fill-run").value, text: $("fill-text").value,
                                          candidates: $("fill-candidates").value.trim() });
    out.textContent = data.filled;
    for (const s of data.steps || []) {
      const li = document.createElement("li");
      li.textContent = `${s.token} (${pct(s.probability)}) · ${s.top.map(([c, p]) => `${c} ${pct(p)}`).join("  ")} → ${s.text}`;
      steps.appendChild(li);
    }
    for (const c of data.candidates || []) {
      const li = document.createElement("li");
      li.className = "candidate";
      li.dataset.word = c.word;
      li.textContent = `${c.word}: ${pct(c.probability)}`;
      steps.appendChild(li);
    }
    out.dataset.filled = data.filled;
  } catch (e) {
    out.textContent = e.message;
  } finally {
    $("fill-go").disabled = false;
  }
}

async function classifyText() {
  $("classify-go").disabled = true;
  const out = $("classify-out");
  out.innerHTML = "";
  try {
    const data = await api("/api/classify", { run: $("classify-run").value, text: $("classify-text").value });
    for (const a of data.answers) {
      const row = document.createElement("div");
      row.className = "answer";
      row.dataset.label = a.label;
      row.dataset.prob = a.probability;
      row.textContent = `${a.label}: ${pct(a.probability)}`;
      out.appendChild(row);
    }
  } catch (e) {
    out.textContent = e.message;
  } finally {
    $("classify-go").disabled = false;
  }
}

const later = () => { clearTimeout(timer); timer = setTimeout(refresh, 120); };
prompt.addEventListener("input", later);
runSelect.addEventListener("change", () => chooseRun(false));
$("temperature").addEventListener("input", (e) => { $("temp-value").textContent = parseFloat(e.target.value).toFixed(1); later(); });
$("top-k").addEventListener("input", later);
$("top-p").addEventListener("input", later);
$("sample").addEventListener("click", () => sample("char"));
$("generate").addEventListener("click", () => sample("line"));
$("measure").addEventListener("click", measure);
$("tildes-fix").addEventListener("click", fixAccents);
$("fill-go").addEventListener("click", fillBlanks);
$("classify-go").addEventListener("click", classifyText);
$("clear").addEventListener("click", () => { prompt.value = ""; refresh(); prompt.focus(); });
loadRuns().catch((e) => say(e.message));
