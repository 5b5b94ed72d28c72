// The model of this page, a second time, in a second language: the same layers as taller's Python
// (src/taller/models/transformer.py, recurrent.py, lstm.py, rnn.py and bigram.py), the same weights (stored in
// this file as float16), the same numbers (within a thousandth). Plain JavaScript, no libraries, to be read.
//
// Every model here has the interface of the Python ones:
//   start(ids)       read a text (a list of character ids); return { logits, state }: the next character's scores
//   step(id, state)  read one more character; return { logits, state }
// and the Transformer also has attentionMaps(ids): [layer][head] → a T×T matrix of attention weights.
//
// Shapes in comments, as in the Python: T = characters read, C = d_model, H = heads, D = C / H, F = d_ff,
// V = vocabulary, E = d_embed, L = layers. A matrix of R rows and K columns is a Float32Array of R·K numbers, row
// after row (the row i, column j is at [i * K + j]), as PyTorch stores it.
"use strict";

// --- reading the weights ---------------------------------------------------------------------------------------------

// A float16 number (its 16 bits) as a JavaScript number: 1 sign bit, 5 exponent bits, 10 fraction bits.
function halfToFloat(bits) {
  const sign = bits & 0x8000 ? -1 : 1, exponent = (bits >> 10) & 0x1f, fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;  // subnormal: the tiny numbers next to 0
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

// One tensor of the page's data ({ dtype, shape, data: base64 of its little-endian bytes }) → { shape, data }.
function decodeTensor(record) {
  const bytes = Uint8Array.from(atob(record.data), (c) => c.charCodeAt(0));
  const view = new DataView(bytes.buffer), n = record.shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    if (record.dtype === "float16") data[i] = halfToFloat(view.getUint16(2 * i, true));
    else if (record.dtype === "float32") data[i] = view.getFloat32(4 * i, true);
    else if (record.dtype === "int32") data[i] = view.getInt32(4 * i, true);
    else throw new Error(`tipo de tensor desconocido: ${record.dtype}`);
  }
  return { shape: record.shape, data };
}

// All the weights, by their PyTorch names ("blocks.0.attention.query.weight" …). A tensor that is another one
// (tie_weights: the output matrix is the embedding matrix) is stored once and named twice.
function loadWeights(tensors) {
  const weights = {};
  for (const [name, record] of Object.entries(tensors)) if (!record.alias) weights[name] = decodeTensor(record);
  for (const [name, record] of Object.entries(tensors)) if (record.alias) weights[name] = weights[record.alias];
  return (name) => {
    if (!weights[name]) throw new Error(`falta el tensor ${name} en los datos de la página`);
    return weights[name].data;
  };
}

// --- the linear algebra the models need ------------------------------------------------------------------------------

// nn.Linear: x (T, K) → x · Wᵀ + b (T, N), with W (N, K) and b (N,).
function linear(x, T, K, W, b, N) {
  const y = new Float32Array(T * N);
  for (let t = 0; t < T; t++) {
    for (let n = 0; n < N; n++) {
      let sum = b ? b[n] : 0;
      for (let k = 0; k < K; k++) sum += x[t * K + k] * W[n * K + k];
      y[t * N + n] = sum;
    }
  }
  return y;
}

// nn.LayerNorm: each row of x (T, C) to mean 0 and variance 1, then scaled by gamma and shifted by beta (none: 0).
function layerNorm(x, T, C, gamma, beta, eps = 1e-5) {
  const y = new Float32Array(T * C);
  for (let t = 0; t < T; t++) {
    let mean = 0, variance = 0;
    for (let c = 0; c < C; c++) mean += x[t * C + c] / C;
    for (let c = 0; c < C; c++) variance += (x[t * C + c] - mean) ** 2 / C;
    const scale = 1 / Math.sqrt(variance + eps);
    for (let c = 0; c < C; c++) y[t * C + c] = (x[t * C + c] - mean) * scale * gamma[c] + (beta ? beta[c] : 0);
  }
  return y;
}

// nn.RMSNorm / F.rms_norm with eps=None: x / √(mean(x²) + eps) for each row of x (T, C), then scaled by gamma.
// PyTorch's eps when none is given is torch.finfo(float32).eps = 2⁻²³, the gap between 1 and the next float32.
const FLOAT32_EPS = 2 ** -23;

function rmsNorm(x, T, C, gamma) {
  const y = Float32Array.from(x);
  rmsNormInPlace(y, T, C);
  for (let t = 0; t < T; t++) for (let c = 0; c < C; c++) y[t * C + c] *= gamma[c];
  return y;
}

// The same without a scale, in place: each of the R rows of K numbers of x divided by its root mean square.
function rmsNormInPlace(x, R, K) {
  for (let r = 0; r < R; r++) {
    let meanSquare = 0;
    for (let k = 0; k < K; k++) meanSquare += x[r * K + k] ** 2 / K;
    const scale = 1 / Math.sqrt(meanSquare + FLOAT32_EPS);
    for (let k = 0; k < K; k++) x[r * K + k] *= scale;
  }
}

// The error function erf (JavaScript has none): a rational approximation with a relative error below 1.2e-7.
function erf(x) {
  const z = Math.abs(x), t = 1 / (1 + 0.5 * z);
  const tail = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? 1 - tail : tail - 1;
}

// F.gelu (exact): x · Φ(x), Φ the standard normal's cumulative probability.
const gelu = (x) => 0.5 * x * (1 + erf(x / Math.SQRT2));
const sigmoid = (x) => 1 / (1 + Math.exp(-x));

// Scores → probabilities that add up to 1 (subtracting the largest first, so that exp never overflows).
function softmax(scores) {
  let largest = -Infinity;
  for (const s of scores) largest = Math.max(largest, s);
  const p = Float64Array.from(scores, (s) => Math.exp(s - largest));
  const total = p.reduce((a, b) => a + b, 0);
  return p.map((v) => v / total);
}

// --- the Transformer (transformer.py) --------------------------------------------------------------------------------
//   characters ──► embedding + position ──► [ attention ─► feed-forward ] × n_layers ──► norm ──► logits
// Each block is pre-norm: x = x + attention(norm(x)); x = x + feed_forward(norm(x)).
// The [model] switches of transformer.py each have one branch below (a value the page does not know is refused):
//   pos_encoding      sinusoidal | learned (added to the input, in positions) | rotary (turns q and k, in rotate)
//   norm              layernorm | rmsnorm                                    (in norm)
//   bias              false: no biases in the Linear layers and LayerNorms  (in bias)
//   activation        gelu | relu | relu2                                    (in bend)
//   qk_norm           queries and keys RMS-normalised per head, before rotary (in attention)
//   bigram_buckets    a learned vector per hashed (previous, current) pair  (in bigramRows, forward)
//   value_embeddings  a second embedding of each character, gated into every layer's values (in attention)
//   logit_cap         logits = cap · tanh(logits / cap)                       (in forward)
//   tie_weights       the output matrix is the embedding matrix (the weights name it twice: nothing to compute)
//   zero_init         how the projections start (training only): nothing to compute
//   attention         fused | explicit: the same numbers; the page always computes it written out, as "explicit"
//   dropout           off when the model is used (eval), as in taller generate
class Transformer {
  constructor(cfg, weight) {
    this.cfg = cfg;
    this.weight = weight;
    this.C = cfg.d_model;
    this.H = cfg.n_heads;
    this.D = cfg.d_model / cfg.n_heads;
    const known = { pos_encoding: ["sinusoidal", "learned", "rotary"], norm: ["layernorm", "rmsnorm"],
                    activation: ["gelu", "relu", "relu2"] };
    for (const [switchName, values] of Object.entries(known))
      if (!values.includes(cfg[switchName] ?? values[0]))  // (a page of an older taller lacks the newer switches)
        throw new Error(`esta página no sabe calcular ${switchName}='${cfg[switchName]}'`);
  }

  get blockSize() { return this.cfg.block_size; }

  // bias = false: nn.Linear(…, bias=False) and nn.LayerNorm(…, bias=False) have no bias tensor at all.
  bias(name) { return this.cfg.bias === false ? null : this.weight(name); }

  // make_norm: LayerNorm ((x − mean) / std · weight + bias) or RMSNorm (x / rms(x) · weight, no bias), by the switch.
  norm(x, T, prefix) {
    if (this.cfg.norm === "rmsnorm") return rmsNorm(x, T, this.C, this.weight(`${prefix}.weight`));
    return layerNorm(x, T, this.C, this.weight(`${prefix}.weight`), this.bias(`${prefix}.bias`));
  }

  // make_activation: the feed-forward's bend, one number at a time.
  bend(x) {
    if (this.cfg.activation === "relu") return Math.max(x, 0);
    if (this.cfg.activation === "relu2") return Math.max(x, 0) ** 2;  // ReLUSquared: relu(x)²
    return gelu(x);
  }

  // The code of each position 0 … T-1 added to the input: (T, C); rotary adds nothing (zeros).
  positions(T) {
    const C = this.C;
    if (this.cfg.pos_encoding === "learned") return this.weight("position.weight").slice(0, T * C);  // a learned row each
    const pe = new Float32Array(T * C);
    if (this.cfg.pos_encoding === "rotary") return pe;  // rotary: positions turn queries and keys instead (rotate)
    for (let t = 0; t < T; t++) {  // sinusoidal: sines and cosines of geometric frequencies, nothing learned
      for (let i = 0; i < C; i += 2) {
        const frequency = Math.exp(i * (-Math.log(10000) / C));
        pe[t * C + i] = Math.sin(t * frequency);
        if (i + 1 < C) pe[t * C + i + 1] = Math.cos(t * frequency);
      }
    }
    return pe;
  }

  // rotary_angles + rotate: the pair (x[d], x[d + D/2]) of a head's numbers at position t is turned by the angle
  // t · 10000^(−2d/D). x (T, C) holds every head side by side; each head's D numbers are turned in place.
  rotate(x, T) {
    const { C, H, D } = this, half = D / 2;
    for (let t = 0; t < T; t++) {
      for (let d = 0; d < half; d++) {
        const angle = t * 10000 ** (-(2 * d) / D), cos = Math.cos(angle), sin = Math.sin(angle);
        for (let h = 0; h < H; h++) {
          const i = t * C + h * D + d, x1 = x[i], x2 = x[i + half];
          x[i] = x1 * cos - x2 * sin;
          x[i + half] = x1 * sin + x2 * cos;
        }
      }
    }
  }

  // bigram_rows: the row of the pair table of each character, a hash of (previous character, this one); row 0 is for
  // the first character, which has no previous one. ids (T,) → rows (T,).
  bigramRows(ids) {
    const buckets = this.cfg.bigram_buckets;
    return ids.map((id, t) => (t === 0 ? 0 : (ids[t - 1] * 36313 + id * 27191) % (buckets - 1) + 1));
  }

  // Causal self-attention of block l: x (T, C) → (T, C); ve (T, C) the value embedding or null; `maps` receives this
  // layer's weights [head] (T, T).
  attention(x, T, l, maps, ve) {
    const { C, H, D } = this, w = (name) => this.weight(`blocks.${l}.attention.${name}`);
    const b = (name) => this.bias(`blocks.${l}.attention.${name}`);
    const q = linear(x, T, C, w("query.weight"), b("query.bias"), C);  // what am I looking for?   (T, C)
    const k = linear(x, T, C, w("key.weight"), b("key.bias"), C);  // what do I contain?              (T, C)
    const v = linear(x, T, C, w("value.weight"), b("value.bias"), C);  // what do I pass on if chosen? (T, C)
    if (ve) {  // value_embeddings: v = v + value_gate · ve, the gate one learned number per layer
      const gate = w("value_gate")[0];
      for (let i = 0; i < T * C; i++) v[i] += gate * ve[i];
    }
    if (this.cfg.qk_norm) {  // every head's query and key to the same length, √D (F.rms_norm over D, no weight)
      rmsNormInPlace(q, T * H, D);
      rmsNormInPlace(k, T * H, D);
    }
    if (this.cfg.pos_encoding === "rotary") { this.rotate(q, T); this.rotate(k, T); }  // after qk_norm, as in Python
    const y = new Float32Array(T * C);  // the heads' outputs side by side
    for (let h = 0; h < H; h++) {  // head h reads columns h·D … h·D + D-1 of q, k and v
      const map = [];
      for (let i = 0; i < T; i++) {  // the character that looks
        const scores = [];
        for (let j = 0; j <= i; j++) {  // causal: only itself and the characters before it (the rest are -inf)
          let dot = 0;
          for (let d = 0; d < D; d++) dot += q[i * C + h * D + d] * k[j * C + h * D + d];
          scores.push(dot / Math.sqrt(D));
        }
        const weights = softmax(scores);  // (i + 1,) adds up to 1
        for (let j = 0; j <= i; j++)
          for (let d = 0; d < D; d++) y[i * C + h * D + d] += weights[j] * v[j * C + h * D + d];
        map.push(Array.from({ length: T }, (_, j) => (j <= i ? weights[j] : 0)));
      }
      maps.push(map);
    }
    return linear(y, T, C, w("proj.weight"), b("proj.bias"), C);  // heads back into the residual stream
  }

  // Per-character thinking of block l: widen, bend (GELU, ReLU or ReLU²), narrow. (T, C) → (T, C).
  feedForward(x, T, l) {
    const { C } = this, F = this.cfg.d_ff, w = (name) => this.weight(`blocks.${l}.feed_forward.${name}`);
    const b = (name) => this.bias(`blocks.${l}.feed_forward.${name}`);
    const hidden = linear(x, T, C, w("up.weight"), b("up.bias"), F).map((value) => this.bend(value));  // (T, F)
    return linear(hidden, T, F, w("down.weight"), b("down.bias"), C);  // (T, C)
  }

  // embed: ids (T,) → (T, C): each character's vector, plus its position's (unless rotary) and its pair's (bigrams).
  embed(ids) {
    const T = ids.length, C = this.C, embedding = this.weight("embedding.weight"), pe = this.positions(T);
    const x = new Float32Array(T * C);
    for (let t = 0; t < T; t++) for (let c = 0; c < C; c++) x[t * C + c] = embedding[ids[t] * C + c] + pe[t * C + c];
    if (this.cfg.bigram_buckets) {  // bigram_buckets > 0: the pair table's row of each character is added
      const pairs = this.weight("bigram_embedding.weight"), rows = this.bigramRows(ids);
      for (let t = 0; t < T; t++) for (let c = 0; c < C; c++) x[t * C + c] += pairs[rows[t] * C + c];
    }
    return x;
  }

  // value_embeddings: the second table's vector of each character (T, C), read by every layer; else null.
  valueEmbedding(ids) {
    if (!this.cfg.value_embeddings) return null;
    const C = this.C, table = this.weight("value_embedding.weight"), ve = new Float32Array(ids.length * C);
    ids.forEach((id, t) => ve.set(table.subarray(id * C, id * C + C), t * C));
    return ve;
  }

  // ids (T,) → the next character's logits (V,) and every layer's attention [layer][head] (T, T).
  forward(ids) {
    const T = ids.length, C = this.C, V = this.cfg.vocab_size;  // V: the tokenizer's (model.n_ids of a Transformer)
    let x = this.embed(ids);  // the residual stream (T, C)
    const ve = this.valueEmbedding(ids), attention = [];
    for (let l = 0; l < this.cfg.n_layers; l++) {
      const maps = [], a = this.attention(this.norm(x, T, `blocks.${l}.norm1`), T, l, maps, ve);
      x = x.map((value, i) => value + a[i]);  // residual: add, don't replace
      const f = this.feedForward(this.norm(x, T, `blocks.${l}.norm2`), T, l);
      x = x.map((value, i) => value + f[i]);
      attention.push(maps);
    }
    const last = this.norm(x.slice((T - 1) * C), 1, "norm");  // only the last character's scores: the others are
    let logits = linear(last, 1, C, this.weight("output.weight"), this.bias("output.bias"), V);  // not needed
    const cap = this.cfg.logit_cap;
    if (cap) logits = logits.map((s) => cap * Math.tanh(s / cap));  // a smooth ceiling: never beyond ±cap
    return { logits, attention };
  }

  // Generation reads the whole text again at every step, as far back as the model sees (block_size characters).
  start(ids) { return { logits: this.forward(ids.slice(-this.blockSize)).logits, state: ids }; }
  step(id, state) { return this.start([...state, id]); }
  attentionMaps(ids) { return this.forward(ids.slice(-this.blockSize)).attention; }
}

// --- the recurrent networks (recurrent.py, lstm.py, rnn.py) ----------------------------------------------------------
//   characters ──► embedding (V → E) ──► recurrent layers × L (a state carried from left to right) ──► logits
// The state starts at zero and is carried character by character; there is no context limit.
class Recurrent {
  constructor(cfg, weight, core) {
    this.cfg = cfg;
    this.weight = weight;
    this.core = core;  // "lstm" or "rnn": the name of PyTorch's layers in the weights ("lstm.weight_ih_l0" …)
    this.E = cfg.d_embed || cfg.d_model;
    this.Hd = cfg.d_model;
  }

  get blockSize() { return null; }

  // The weights of layer l: W_ih (G·H, K), W_hh (G·H, H) and their biases (G·H,): G = 4 gates for the LSTM, 1 for the RNN.
  layer(l) {
    const w = (name) => this.weight(`${this.core}.${name}_l${l}`);
    return { Wih: w("weight_ih"), Whh: w("weight_hh"), bih: w("bias_ih"), bhh: w("bias_hh"), K: l === 0 ? this.E : this.Hd };
  }

  // The pre-activations of one step: x (K,) and h (H,) → W_ih · x + b_ih + W_hh · h + b_hh (rows,).
  mix(p, x, h, rows) {
    const out = linear(x, 1, p.K, p.Wih, p.bih, rows), back = linear(h, 1, this.Hd, p.Whh, p.bhh, rows);
    return out.map((value, i) => value + back[i]);
  }

  // Read one character id with the state of every layer; return the logits (V,) and the new state.
  step(id, state) {
    const E = this.E;
    let x = this.weight("embedding.weight").slice(id * E, id * E + E);  // (E,) the character's vector
    const next = [];
    for (let l = 0; l < this.cfg.n_layers; l++) {
      const s = this.cell(x, state[l], this.layer(l));
      next.push(s);
      x = s.h;  // the layer's output is the next layer's input
    }
    const logits = linear(x, 1, this.Hd, this.weight("output.weight"), this.weight("output.bias"), this.cfg.vocab_size);
    return { logits, state: next };
  }

  start(ids) {
    let state = Array.from({ length: this.cfg.n_layers }, () => this.zeroState()), result = null;
    for (const id of ids) ({ state } = result = this.step(id, state));
    return result;
  }
}

// The LSTM cell (lstm.py): gates between 0 and 1 decide what the memory c forgets, writes and shows.
class LSTM extends Recurrent {
  constructor(cfg, weight) { super(cfg, weight, "lstm"); }
  zeroState() { return { h: new Float32Array(this.Hd), c: new Float32Array(this.Hd) }; }

  cell(x, { h, c }, p) {
    const H = this.Hd, gates = this.mix(p, x, h, 4 * H);  // (4H,) PyTorch's order: input, forget, candidate, output
    const newC = new Float32Array(H), newH = new Float32Array(H);
    for (let j = 0; j < H; j++) {
      const i = sigmoid(gates[j]), f = sigmoid(gates[H + j]), g = Math.tanh(gates[2 * H + j]), o = sigmoid(gates[3 * H + j]);
      newC[j] = f * c[j] + i * g;  // forget some of the old memory, write some of the new
      newH[j] = o * Math.tanh(newC[j]);  // show some of the memory as this step's output
    }
    return { h: newH, c: newC };
  }
}

// The plain (Elman) RNN cell (rnn.py): h_t = tanh(W_ih · x_t + b_ih + W_hh · h_{t−1} + b_hh).
class RNN extends Recurrent {
  constructor(cfg, weight) { super(cfg, weight, "rnn"); }
  zeroState() { return { h: new Float32Array(this.Hd) }; }
  cell(x, { h }, p) { return { h: this.mix(p, x, h, this.Hd).map(Math.tanh) }; }
}

// --- the bigram (bigram.py) ------------------------------------------------------------------------------------------
//   P(b | a) = (counts[a, b] + k) / (Σ_b' counts[a, b'] + k·V): one row of a table, the row of the last character.
class Bigram {
  constructor(cfg, weight) {
    this.cfg = cfg;
    this.counts = weight("counts");  // (V, V): row = current character, column = the next one
  }

  get blockSize() { return 1; }

  start(ids) {
    const V = this.cfg.vocab_size, k = this.cfg.smoothing, a = ids[ids.length - 1];
    const row = Array.from({ length: V }, (_, b) => this.counts[a * V + b] + k);
    const total = row.reduce((s, c) => s + c, 0);
    const logits = row.map((c) => (total > 0 ? Math.log(c / total) : -Math.log(V)));  // log-probabilities
    return { logits, state: null };
  }

  step(id) { return this.start([id]); }
}

// The kinds this page can run, by the name taller gives them (config.toml's model.kind).
const MODELS = { transformer: Transformer, lstm: LSTM, rnn: RNN, bigram: Bigram };

function buildModel(data) {
  const Kind = MODELS[data.config.kind];
  if (!Kind) throw new Error(`esta página no sabe ejecutar un modelo de tipo ${data.config.kind}`);
  return new Kind(data.config, loadWeights(data.tensors));
}
