// The page around the model (model.js): write a beginning, see the next character's probabilities, choose one,
// sample a line, look at the attention. Everything runs here, in the browser: no server, no network.
"use strict";

const $ = (id) => document.getElementById(id);
const TOP = 10;  // bars shown; the other characters are summed in one
const LINE = 200;  // the most characters "escribir una línea" adds
const show = (c) => ({ " ": "␣", "\n": "⏎", "\t": "⇥" }[c] ?? c);
const pct = (p) => (100 * p).toFixed(p >= 0.1 ? 1 : 2) + " %";

let DATA, model, index, busy = false;

// --- text → ids (the tokenizer: one id per character) ------------------------------------------------------------

// A character the model never saw: the same letter without its accent, else a space, else nothing (as
// `--reemplazar-desconocidos` does in taller).
function replacement(ch) {
  const base = ch.normalize("NFKD")[0] ?? "";
  for (const candidate of [base, base.toLowerCase(), base.toUpperCase(), " "]) if (index.has(candidate)) return candidate;
  return "";
}

// Text → { ids, unknown: the characters it had to replace }. An empty text starts a new line.
function encode(text) {
  const ids = [], unknown = new Set();
  for (const ch of text) {  // (for … of walks characters, not UTF-16 halves)
    const known = index.has(ch) ? ch : replacement(ch);
    if (known !== ch) unknown.add(ch);
    for (const c of known) ids.push(index.get(c));
  }
  if (ids.length === 0) ids.push(index.has("\n") ? index.get("\n") : 0);
  return { ids, unknown: [...unknown] };
}

// --- the model's distribution and its reshaping (taller's sampling.py) ---------------------------------------------

// The model's own probabilities of every next character (V,), after reading `text`.
function predict(text) {
  return Array.from(softmax(model.start(encode(text).ids).logits));
}

// Temperature, top-k and top-p, as taller's filter_logits: (V,) logits → (V,) logits, the excluded ones at -inf.
function reshape(logits, temperature, topK, topP) {
  let scores = Array.from(logits, (s) => s / Math.max(temperature, 1e-6));
  if (topK > 0 && topK < scores.length) {
    const kth = [...scores].sort((a, b) => b - a)[topK - 1];  // the k-th best score: keep it and every better one
    scores = scores.map((s) => (s < kth ? -Infinity : s));
  }
  if (topP < 1) {
    const order = scores.map((_, i) => i).sort((a, b) => scores[b] - scores[a]);
    const p = softmax(order.map((i) => scores[i]));
    let before = 0;  // the probability of the better candidates: keep adding until it reaches top-p
    order.forEach((i, rank) => { if (before >= topP) scores[i] = -Infinity; before += p[rank]; });
  }
  return scores;
}

function controls() {
  return { temperature: parseFloat($("temperature").value), topK: parseInt($("top-k").value, 10) || 0,
           topP: parseFloat($("top-p").value) };
}

// The distribution that sampling draws from: the model's, reshaped by the controls.
function shaped(logits) {
  const { temperature, topK, topP } = controls();
  return Array.from(softmax(reshape(logits, temperature, topK, topP)));
}

function draw(probs) {  // one index, at random, with these probabilities
  let r = Math.random();
  for (let i = 0; i < probs.length; i++) if ((r -= probs[i]) < 0) return i;
  return probs.findLastIndex((p) => p > 0);
}

// --- drawing ---------------------------------------------------------------------------------------------------------

function say(text, kind = "error") {
  $("message").hidden = !text;
  $("message").textContent = text || "";
  $("message").className = "message" + (kind === "note" ? " note" : "");
}

function drawBars(text, probs, own) {
  const bars = $("bars"), order = probs.map((_, i) => i).sort((a, b) => probs[b] - probs[a]).slice(0, TOP);
  bars.innerHTML = "";
  for (const i of order) {
    const ch = DATA.chars[i], row = document.createElement("button");
    row.className = "bar";
    Object.assign(row.dataset, { char: ch, prob: probs[i], own: own[i] });
    row.title = `añadir «${show(ch)}» · el modelo le da ${pct(own[i])}`;
    row.innerHTML = `<span class="ch"></span><span class="track"><span class="fill"></span></span><span class="pct"></span>`;
    row.querySelector(".ch").textContent = show(ch);
    row.querySelector(".fill").style.width = (100 * probs[i]).toFixed(1) + "%";
    row.querySelector(".pct").textContent = pct(probs[i]);
    row.addEventListener("click", () => { $("prompt").value += ch; refresh(); $("prompt").focus(); });
    bars.append(row);
  }
  const rest = 1 - order.reduce((s, i) => s + probs[i], 0), row = document.createElement("div");
  row.className = "rest";
  row.dataset.prob = rest;
  row.innerHTML = `<span>resto</span><span class="track"><span class="fill"></span></span><span class="pct"></span>`;
  row.querySelector(".fill").style.width = (100 * Math.max(0, rest)).toFixed(1) + "%";
  row.querySelector(".pct").textContent = pct(Math.max(0, rest));
  row.title = `los otros ${probs.length - order.length} caracteres juntos`;
  bars.append(row);
  bars.dataset.text = text;  // which text these bars belong to (the browser test waits on it)
}



function drawAttention(ids) {
  const box = $("attention-maps");
  box.innerHTML = "";
  if (!model.attentionMaps) {
    box.innerHTML = `<p class="message note">Este modelo no tiene atención: no hay mapas que mostrar.</p>`;
    return;
  }
  const seen = ids.slice(-model.blockSize), chars = seen.map((i) => show(DATA.chars[i]));
  drawLayers(box, model.attentionMaps(seen), chars);
}

function drawContext(ids) {  // the characters the model reads to make its guess
  const seen = model.blockSize ? ids.slice(-model.blockSize) : ids, box = $("context");
  box.innerHTML = `<div></div><div class="chips"></div>`;
  box.firstChild.textContent = `Lo que lee el modelo (${model.blockSize ? `como mucho ${model.blockSize} ` +
    `carácter${model.blockSize === 1 ? "" : "es"}, los últimos` : "todo el texto"}):`;
  for (const i of seen.slice(-200)) { const chip = document.createElement("span"); chip.textContent = show(DATA.chars[i]); box.lastChild.append(chip); }
}

// --- the page's actions ------------------------------------------------------------------------------------------------

function refresh() {
  const text = $("prompt").value, { ids, unknown } = encode(text);
  try {
    const logits = model.start(ids).logits;
    say(unknown.length ? `El modelo nunca vio ${unknown.map((c) => `«${c}»`).join(" ")}: lo leo sin acento, ` +
                         "como espacio o no lo leo." : "", "note");
    drawBars(text, shaped(logits), Array.from(softmax(logits)));
    drawContext(ids);
    drawAttention(ids);
  } catch (e) {
    say(e.message);
  }
}

const pause = () => new Promise((resolve) => setTimeout(resolve, 0));  // let the page draw between characters

async function sample(line) {
  if (busy) return;
  busy = true;
  document.querySelectorAll("button.action").forEach((b) => (b.disabled = true));
  try {
    let { logits, state } = model.start(encode($("prompt").value).ids);
    for (let n = 0; n < (line ? LINE : 1); n++) {
      const id = draw(shaped(logits)), ch = DATA.chars[id];
      $("prompt").value += ch;
      if (line && ch === "\n") break;
      ({ logits, state } = model.step(id, state));
      if (line) await pause();
    }
    refresh();
  } catch (e) {
    say(e.message);
  } finally {
    busy = false;
    document.querySelectorAll("button.action").forEach((b) => (b.disabled = false));
  }
}

function describe() {
  const info = DATA.info, parts = [info.title, `${info.parameters.toLocaleString("es-ES")} parámetros`];
  if (info.corpus) parts.push(`corpus ${info.corpus}`);
  if (info.val_bpc != null) parts.push(`${info.val_bpc.toFixed(2).replace(".", ",")} bits/carácter`);
  $("run-info").textContent = parts.join(" · ");
  document.title = `taller · ${info.name}`;
  $("run-name").textContent = info.name;
}

function main() {
  try {
    DATA = JSON.parse($("taller-data").textContent);
    index = new Map(DATA.chars.map((c, i) => [c, i]));
    model = buildModel(DATA);
  } catch (e) {
    return say(`No puedo leer el modelo de esta página: ${e.message}`);
  }
  describe();
  $("prompt").value = DATA.info.prompt || "";
  $("prompt").addEventListener("input", refresh);
  for (const id of ["temperature", "top-k", "top-p"]) $(id).addEventListener("input", () => {
    $("temp-value").textContent = parseFloat($("temperature").value).toFixed(1);
    $("top-p-value").textContent = parseFloat($("top-p").value).toFixed(2);
    refresh();
  });
  $("sample").addEventListener("click", () => sample(false));
  $("line").addEventListener("click", () => sample(true));
  $("clear").addEventListener("click", () => { $("prompt").value = ""; refresh(); $("prompt").focus(); });
  window.taller = { predict, reshape, encode, model };  // for whoever opens the console (and for taller's tests)
  refresh();
}

window.addEventListener("DOMContentLoaded", main);
