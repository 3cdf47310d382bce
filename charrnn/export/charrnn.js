// charrnn.js: a character-level RNN (LSTM, GRU or tanh RNN) trained by charrnn, run in
// plain JavaScript (no dependencies, no network beyond fetching its own two files).
//
//   import { load } from "./charrnn.js";
//   const model = await load("model.json");             // model.json + its weights file
//   for (const ch of model.generate({ prime: "The ", length: 200, temperature: 0.8 }))
//     document.body.append(ch);
//
// The cells are the equations of torch's nn.LSTM / nn.GRU / nn.RNN (gate order i, f, g, o
// and r, z, n), as charrnn's numpy engine computes them; sampling is charrnn's pick: the
// softmax of logits / temperature, cut to the top-k characters (ties at the k-th kept),
// then to the nucleus (top-p), then to min-p, and drawn by inverting the cumulative
// distribution at one uniform number from Python's random.Random(seed): the same seed
// gives the text `charrnn sample --seed` gives. The products are float32 sums as the
// numpy engine's are, the state float32, the gates and the softmax float64: next-character
// probabilities agree with the numpy engine to about 1e-8.

export const FORMAT = "charrnn-web";
export const FORMAT_VERSION = 1;

// Every decoding control, as charrnn's Decoding declares it (a test keeps them in step).
export const CONTROLS = {
  temperature: { default: 1.0, min: 0, max: null, step: 0.05, help: "0 is greedy" },
  top_k: { default: 0, min: 0, max: null, step: 1, help: "the k likeliest only; 0 all" },
  top_p: { default: 1.0, min: 0, max: 1, step: 0.01, open: true,
           help: "nucleus: the fewest likeliest whose probability reaches p; 1 all" },
  min_p: { default: 0.0, min: 0, max: 1, step: 0.01,
           help: "only characters at least min-p times as likely as the likeliest; 0 off" },
};

// A model from model.json and the weights file it names (relative to it).
export async function load(url) {
  const base = new URL(url, globalThis.location ? globalThis.location.href : undefined);
  const meta = await (await need(fetch(base))).json();
  const weights = await (await need(fetch(new URL(meta.weights, base)))).arrayBuffer();
  return new Model(meta, weights);
}

async function need(pending) {
  const r = await pending;
  if (!r.ok) throw new Error(`cannot fetch ${r.url}: ${r.status} ${r.statusText}`);
  return r;
}

// Base64 text (the single-file page's weights) to an ArrayBuffer.
export function decodeBase64(text) {
  const raw = atob(text);
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes.buffer;
}

// IEEE half-precision bits to float32 values.
function fromHalf(bits) {
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) {
    const b = bits[i], sign = b & 0x8000 ? -1 : 1, e = (b >> 10) & 0x1f, f = b & 0x3ff;
    out[i] = sign * (e === 0 ? f * 2 ** -24 : e === 31 ? (f ? NaN : Infinity)
                     : (1 + f / 1024) * 2 ** (e - 15));
  }
  return out;
}

// Drop a byte-order mark, turn CRLF / CR into LF: what charrnn does to every text.
export function normalize(text) {
  return text.replace(/^\ufeff/, "").replace(/\r\n?/g, "\n");
}

const sigmoid = (x) => 1 / (1 + Math.exp(-x));
const up4 = (n) => (n + 3) & ~3;

// The one hot loop, out = W v for a row-major float32 matrix W (rows and cols multiples
// of 4, zero-padded) on a float32 heap: WebAssembly SIMD where the browser has it (about
// five times the speed of plain JavaScript), else the same loop in JavaScript.
//
// The module, in WebAssembly's text format (pointers in bytes; four rows at a time, each
// v[k..k+3] loaded once for all four):
//
// (module (import "env" "mem" (memory 1))
//  (func (export "mv") (param $w i32) (param $rows i32) (param $cols i32) (param $v i32)
//                      (param $out i32)
//   (local $k i32) (local $stride i32) (local $a0 v128) (local $a1 v128) (local $a2 v128)
//   (local $a3 v128) (local $x v128)
//   (local.set $stride (i32.shl (local.get $cols) (i32.const 2)))       ;; bytes per row
//   (block (loop                                                         ;; over rows
//    (br_if 1 (i32.eqz (local.get $rows)))
//    (local.set $a0 (v128.const i64x2 0 0)) ... (local.set $a3 (v128.const i64x2 0 0))
//    (local.set $k (i32.const 0))
//    (loop                                                               ;; over columns
//     (local.set $x (v128.load align=4 (i32.add (local.get $v) (local.get $k))))
//     (local.set $a0 (f32x4.add (local.get $a0) (f32x4.mul (v128.load align=4
//      (i32.add (local.get $w) (local.get $k))) (local.get $x))))
//     ... $a1, $a2, $a3 likewise at $w + $k + 1, 2, 3 times $stride
//     (br_if 0 (i32.lt_u (local.tee $k (i32.add (local.get $k) (i32.const 16)))
//                        (local.get $stride))))
//    (f32.store offset=0 (local.get $out) (f32.add (f32.add (f32x4.extract_lane 0 (local.get
//     $a0)) (f32x4.extract_lane 1 (local.get $a0))) (f32.add (f32x4.extract_lane 2 ...) ...)))
//    ... offset=4, 8, 12 for $a1, $a2, $a3
//    (local.set $w (i32.add (local.get $w) (i32.shl (local.get $stride) (i32.const 2))))
//    (local.set $out (i32.add (local.get $out) (i32.const 16)))
//    (local.set $rows (i32.sub (local.get $rows) (i32.const 4)))
//    (br 0))))
function simdKernel() {
  const leb = (n) => { const b = []; do { b.push((n & 0x7f) | (n > 0x7f ? 0x80 : 0)); n >>>= 7; } while (n); return b; };
  const name = (s) => [s.length, ...Array.from(s, (c) => c.charCodeAt(0))];
  const section = (id, body) => [id, ...leb(body.length), ...body];
  const I32 = 0x7f, V128 = 0x7b, W = 0, ROWS = 1, COLS = 2, VEC = 3, OUT = 4, K = 5, STRIDE = 6, ACC = 7, X = 11;
  const get = (i) => [0x20, i], set = (i) => [0x21, i], tee = (i) => [0x22, i];
  const i32 = (n) => [0x41, n]; // small non-negative constants (< 64) only
  const [add, sub, mul, shl, ltu, eqz, fadd] = [0x6a, 0x6b, 0x6c, 0x74, 0x49, 0x45, 0x92];
  const vload = [0xfd, 0x00, 0x02, 0x00], vmul = [0xfd, 0xe6, 0x01], vadd = [0xfd, 0xe4, 0x01];
  const zero = [0xfd, 0x0c, ...new Array(16).fill(0)], lane = (i) => [0xfd, 0x1f, i];
  const rows = [0, 1, 2, 3];
  const body = [
    2, 2, I32, 5, V128, // locals: k, stride (bytes per row); four sums and x (v128)
    ...get(COLS), ...i32(2), shl, ...set(STRIDE),
    0x02, 0x40, 0x03, 0x40, // block, loop over rows
    ...get(ROWS), eqz, 0x0d, 1,
    ...rows.flatMap((j) => [...zero, ...set(ACC + j)]), ...i32(0), ...set(K),
    0x03, 0x40, // loop over k
    ...get(VEC), ...get(K), add, ...vload, ...set(X),
    ...rows.flatMap((j) => [...get(ACC + j), ...get(W), ...get(K), add,
      ...(j ? [...get(STRIDE), ...i32(j), mul, add] : []), ...vload, ...get(X), ...vmul, ...vadd,
      ...set(ACC + j)]),
    ...get(K), ...i32(16), add, ...tee(K), ...get(STRIDE), ltu, 0x0d, 0,
    0x0b,
    ...rows.flatMap((j) => [...get(OUT), ...get(ACC + j), ...lane(0), ...get(ACC + j), ...lane(1),
      fadd, ...get(ACC + j), ...lane(2), ...get(ACC + j), ...lane(3), fadd, fadd, 0x38, 0x02, 4 * j]),
    ...get(W), ...get(STRIDE), ...i32(2), shl, add, ...set(W),
    ...get(OUT), ...i32(16), add, ...set(OUT),
    ...get(ROWS), ...i32(4), sub, ...set(ROWS),
    0x0c, 0, 0x0b, 0x0b, 0x0b,
  ];
  return new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0,
    ...section(1, [1, 0x60, 5, I32, I32, I32, I32, I32, 0]), // type: (i32 x5) -> ()
    ...section(2, [1, ...name("env"), ...name("mem"), 2, 0, 1]), // import the memory
    ...section(3, [1, 0]), ...section(7, [1, ...name("mv"), 0, 0]),
    ...section(10, [1, ...leb(body.length), ...body])]);
}

function jsKernel(heap) {
  return (w, rows, cols, v, out) => {
    w >>= 2; v >>= 2; out >>= 2;
    for (let r = 0; r < rows; r += 4, w += 4 * cols) {
      const w1 = w + cols, w2 = w1 + cols, w3 = w2 + cols;
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (let k = 0; k < cols; k++) {
        const x = heap[v + k];
        s0 += heap[w + k] * x; s1 += heap[w1 + k] * x; s2 += heap[w2 + k] * x; s3 += heap[w3 + k] * x;
      }
      heap[out + r] = s0; heap[out + r + 1] = s1; heap[out + r + 2] = s2; heap[out + r + 3] = s3;
    }
  };
}

export class Model {
  // meta: model.json's object; buffer: the weights file's bytes; options.simd = false runs
  // the plain JavaScript loop even where WebAssembly SIMD is available.
  constructor(meta, buffer, options = {}) {
    if (meta.format !== FORMAT || meta.format_version > FORMAT_VERSION)
      throw new Error(`not a ${FORMAT} model (version ${FORMAT_VERSION} or older)`);
    const c = meta.model;
    this.meta = meta;
    this.cell = c.cell;
    this.layers = c.num_layers;
    this.hidden = c.hidden_size;
    this.vocab = meta.vocab;
    this.index = new Map(this.vocab.map((ch, i) => [ch, i]));
    const w = {};
    for (const t of meta.tensors) {
      const n = t.shape.reduce((a, b) => a * b, 1);
      w[t.name] = meta.dtype === "float16" ? fromHalf(new Uint16Array(buffer, t.offset, n))
        : new Float32Array(buffer, t.offset, n);
    }
    const H = this.hidden, G = { lstm: 4, gru: 3, rnn: 1 }[this.cell], V = this.vocab.length;
    const E = c.embed_size, gru = this.cell === "gru", Hp = up4(H), R = up4(G * H);
    this.gates = G;
    // The heap: every matrix the loop multiplies, rows and columns padded with zeros to
    // multiples of 4, then the input vector and the outputs. LSTM and RNN layers above the
    // first multiply [x; h] by [W_ih W_hh] at once; the GRU keeps them apart (its
    // candidate needs W_hn h alone).
    let size = 0;
    const alloc = (n) => { const at = size; size += up4(n); return at; };
    const plan = [];
    for (let l = 0; l < this.layers; l++) {
      const fused = l > 0 && !gru;
      plan.push({ w: alloc(R * (fused ? 2 * Hp : Hp)), cols: fused ? 2 * Hp : Hp,
                  wih: l > 0 && gru ? alloc(R * Hp) : -1 });
    }
    const headAt = alloc(up4(V) * Hp), inAt = alloc(2 * Hp), outAt = alloc(R), out2At = alloc(R);
    const logitsAt = alloc(up4(V));
    let heap, mv;
    const simd = options.simd !== false && globalThis.WebAssembly
      && WebAssembly.validate(simdKernel());
    if (simd) {
      const memory = new WebAssembly.Memory({ initial: Math.ceil((size * 4) / 65536) + 1 });
      const module = new WebAssembly.Module(simdKernel());
      mv = new WebAssembly.Instance(module, { env: { mem: memory } }).exports.mv;
      heap = new Float32Array(memory.buffer);
    } else {
      heap = new Float32Array(size);
      mv = jsKernel(heap);
    }
    this.engine = simd ? "wasm-simd" : "javascript";
    const place = (at, stride, col0, m, rows, cols) => {
      for (let r = 0; r < rows; r++) heap.set(m.subarray(r * cols, (r + 1) * cols), at + r * stride + col0);
    };
    // Per layer: the bias added to the input part (LSTM and RNN: both; GRU: b_ih, as it
    // keeps b_hn with the recurrent part) and to the recurrent part (GRU only).
    this.cells = plan.map((p, l) => {
      const wih = w[`rnn.weight_ih_l${l}`], whh = w[`rnn.weight_hh_l${l}`];
      const bih = w[`rnn.bias_ih_l${l}`], bhh = w[`rnn.bias_hh_l${l}`];
      const bx = new Float64Array(G * H);
      for (let j = 0; j < G * H; j++) bx[j] = bih[j] + (gru ? 0 : bhh[j]);
      const layer = { ...p, bx, bh: gru ? Float64Array.from(bhh) : null };
      if (l === 0) { // the embedding folded into the input product: one row per character
        layer.table = new Float64Array(V * G * H);
        const emb = w["embed.weight"];
        for (let v = 0; v < V; v++)
          for (let j = 0; j < G * H; j++) {
            let s = bx[j];
            for (let e = 0; e < E; e++) s += wih[j * E + e] * emb[v * E + e];
            layer.table[v * G * H + j] = s;
          }
        place(p.w, p.cols, 0, whh, G * H, H);
      } else if (gru) {
        place(p.wih, Hp, 0, wih, G * H, H);
        place(p.w, Hp, 0, whh, G * H, H);
      } else {
        place(p.w, p.cols, 0, wih, G * H, H);
        place(p.w, p.cols, Hp, whh, G * H, H);
      }
      return layer;
    });
    place(headAt, Hp, 0, w["head.weight"], V, H);
    Object.assign(this, { heap, mv, headAt, inAt, outAt, out2At, logitsAt, Hp, R });
    this.headB = w["head.bias"];
    this.logits = new Float64Array(V);
  }

  // Zeros: h for each layer, and c for each layer of an LSTM (float32, as charrnn keeps it).
  initState() {
    const n = this.cell === "lstm" ? 2 : 1;
    return Array.from({ length: n * this.layers }, () => new Float32Array(this.hidden));
  }

  // Ids of a (normalised) text; characters the model never saw are an error naming them,
  // or are dropped with dropUnknown.
  encode(text, dropUnknown = false) {
    const ids = [], unknown = new Set();
    for (const ch of text) {
      const id = this.index.get(ch);
      if (id === undefined) unknown.add(ch);
      else ids.push(id);
    }
    if (unknown.size && !dropUnknown)
      throw new Error(`the prime has characters the model never saw: ${JSON.stringify([...unknown].sort().join(""))}`);
    return ids;
  }

  // One step: feed character id, update state in place, return the next character's
  // logits (a buffer reused by the next step: copy it to keep it).
  step(id, state) {
    const H = this.hidden, L = this.layers, G = this.gates, heap = this.heap, mv = this.mv;
    const Hp = this.Hp, R = this.R, inp = this.inAt, o1 = this.outAt, o2 = this.out2At;
    let x = null;
    for (let l = 0; l < L; l++) {
      const layer = this.cells[l], h = state[l];
      // gi: the input part (from the table, or the product below), gh: the recurrent part
      let gi, gio, gh = o1;
      if (l === 0) {
        heap.set(h, inp);
        this.mv(layer.w * 4, R, Hp, inp * 4, o1 * 4);
        gi = layer.table; gio = id * G * H;
      } else if (layer.wih >= 0) { // GRU above the first layer: two products
        heap.set(x, inp);
        mv(layer.wih * 4, R, Hp, inp * 4, o2 * 4);
        heap.set(h, inp);
        mv(layer.w * 4, R, Hp, inp * 4, o1 * 4);
        gi = null; gio = o2;
      } else { // [W_ih W_hh] [x; h]
        heap.set(x, inp);
        heap.set(h, inp + Hp);
        mv(layer.w * 4, R, 2 * Hp, inp * 4, o1 * 4);
        gi = null; gio = -1;
      }
      // a[j]: gate pre-activation j, input and recurrent parts summed (GRU: input part)
      const bx = layer.bx;
      const a = gi ? (j) => gi[gio + j] + heap[gh + j]
        : gio >= 0 ? (j) => heap[gio + j] + bx[j] : (j) => heap[gh + j] + bx[j];
      if (this.cell === "lstm") {
        const c = state[L + l];
        for (let j = 0; j < H; j++) {
          const i = sigmoid(a(j)), f = sigmoid(a(H + j)), g = Math.tanh(a(2 * H + j));
          const o = sigmoid(a(3 * H + j));
          c[j] = f * c[j] + i * g;
          h[j] = o * Math.tanh(c[j]);
        }
      } else if (this.cell === "gru") {
        const bh = layer.bh, ai = gi ? (j) => gi[gio + j] : (j) => heap[gio + j] + bx[j];
        for (let j = 0; j < H; j++) {
          const r = sigmoid(ai(j) + heap[gh + j] + bh[j]);
          const z = sigmoid(ai(H + j) + heap[gh + H + j] + bh[H + j]);
          const n = Math.tanh(ai(2 * H + j) + r * (heap[gh + 2 * H + j] + bh[2 * H + j]));
          h[j] = (1 - z) * n + z * h[j];
        }
      } else {
        for (let j = 0; j < H; j++) h[j] = Math.tanh(a(j));
      }
      x = h;
    }
    heap.set(x, inp);
    mv(this.headAt * 4, up4(this.vocab.length), Hp, inp * 4, this.logitsAt * 4);
    for (let v = 0; v < this.logits.length; v++) this.logits[v] = heap[this.logitsAt + v] + this.headB[v];
    return this.logits;
  }

  // The next character's probabilities from logits: softmax of logits / temperature.
  probabilities(logits, temperature = 1) {
    let max = -Infinity;
    for (const z of logits) max = Math.max(max, z);
    const p = new Float64Array(logits.length);
    let total = 0;
    for (let i = 0; i < p.length; i++) total += p[i] = Math.exp((logits[i] - max) / temperature);
    for (let i = 0; i < p.length; i++) p[i] /= total;
    return p;
  }

  // Ids that warm the state: the prime, or a silent newline (a fresh line), as charrnn.
  startIds(prime, dropUnknown = false) {
    const ids = this.encode(normalize(prime), dropUnknown);
    if (ids.length) return ids;
    return [this.index.has("\n") ? this.index.get("\n") : 0];
  }

  // Yield the sample's characters one at a time (the prime itself is not yielded).
  // options: prime, length, seed (a fresh one if missing: see .seed of the generator's
  // options), temperature, top_k, top_p, min_p, drop_unknown.
  *generate(options = {}) {
    const o = settings(options);
    const rng = new Random(o.seed);
    const state = this.initState();
    let logits;
    for (const id of this.startIds(o.prime, o.drop_unknown)) logits = this.step(id, state);
    for (let t = 0; t < o.length; t++) {
      const id = pick(logits, rng.random(), o);
      yield this.vocab[id];
      if (t + 1 < o.length) logits = this.step(id, state);
    }
  }

  // A whole sample as one string (the prime not included).
  sample(options = {}) {
    return Array.from(this.generate(options)).join("");
  }
}

// Options with every default filled in and every bound checked (an Error names the bad
// one); a missing seed becomes a fresh random one, reported in the result.
export function settings(options) {
  const o = { prime: "", length: 1000, drop_unknown: false, ...options };
  for (const [name, spec] of Object.entries(CONTROLS)) {
    const v = o[name] === undefined || o[name] === null || o[name] === "" ? spec.default
      : Number(o[name]);
    const low = spec.open ? v > spec.min : v >= spec.min;
    const integer = spec.step === 1;
    if (!Number.isFinite(v) || !low || (spec.max !== null && v > spec.max)
        || (integer && !Number.isInteger(v))) {
      const range = spec.max === null ? `>= ${spec.min}`
        : `in ${spec.open ? "(" : "["}${spec.min}, ${spec.max}]`;
      throw new Error(`${name.replace("_", "-")} must be ${integer ? "an integer " : ""}${range}, got ${o[name]}`);
    }
    o[name] = v;
  }
  o.length = Number(o.length);
  if (!Number.isInteger(o.length) || o.length < 0) throw new Error(`length must be an integer >= 0, got ${options.length}`);
  if (o.seed === undefined || o.seed === null || o.seed === "") o.seed = freshSeed();
  o.seed = Number(o.seed);
  if (!Number.isSafeInteger(o.seed) || o.seed < 0) throw new Error(`seed must be an integer >= 0, got ${options.seed}`);
  return o;
}

export function freshSeed() {
  const word = new Uint32Array(1);
  globalThis.crypto.getRandomValues(word);
  return word[0];
}

function argmax(a) {
  let best = 0;
  for (let i = 1; i < a.length; i++) if (a[i] > a[best]) best = i;
  return best;
}

// The next id from logits and one uniform number u in [0, 1), as charrnn's pick does.
export function pick(logits, u, d) {
  if (d.temperature === 0) return argmax(logits);
  const t = Math.max(d.temperature, 1e-300), V = logits.length;
  let max = -Infinity;
  for (const z of logits) max = Math.max(max, z);
  const p = new Float64Array(V);
  for (let i = 0; i < V; i++) p[i] = (logits[i] - max) / t; // shift first: never inf
  if (d.top_k > 0 && d.top_k < V) {
    const kth = Float64Array.from(p).sort()[V - d.top_k]; // ties at the k-th value stay
    for (let i = 0; i < V; i++) if (p[i] < kth) p[i] = -Infinity;
  }
  for (let i = 0; i < V; i++) p[i] = Math.exp(p[i]);
  if (d.top_p < 1) {
    const order = Array.from(p.keys()).sort((a, b) => p[b] - p[a] || a - b);
    let total = 0;
    for (const i of order) total += p[i];
    let before = 0; // mass of the likelier characters
    for (const i of order) {
      const here = p[i];
      if (before >= d.top_p * total) p[i] = 0;
      before += here;
    }
  }
  if (d.min_p > 0) {
    const floor = d.min_p * p[argmax(p)];
    for (let i = 0; i < V; i++) if (p[i] < floor) p[i] = 0;
  }
  let total = 0;
  for (let i = 0; i < V; i++) total += p[i];
  const target = u * total;
  let cdf = 0;
  for (let i = 0; i < V; i++) {
    cdf += p[i];
    if (cdf > target) return i;
  }
  return argmax(p); // u * total rounded up to total: the likeliest character
}

// Python's random.Random(seed).random() for an integer seed: MT19937 seeded by
// init_by_array with the seed's 32-bit words, 53-bit floats from two draws.
export class Random {
  constructor(seed) {
    this.mt = new Uint32Array(624);
    this.i = 624;
    const key = [seed % 2 ** 32];
    if (seed >= 2 ** 32) key.push(Math.floor(seed / 2 ** 32));
    const mt = this.mt;
    mt[0] = 19650218;
    for (let i = 1; i < 624; i++)
      mt[i] = Math.imul(1812433253, mt[i - 1] ^ (mt[i - 1] >>> 30)) + i;
    let i = 1, j = 0;
    for (let k = Math.max(624, key.length); k; k--) {
      mt[i] = (mt[i] ^ Math.imul(mt[i - 1] ^ (mt[i - 1] >>> 30), 1664525)) + key[j] + j;
      i++; j++;
      if (i >= 624) { mt[0] = mt[623]; i = 1; }
      if (j >= key.length) j = 0;
    }
    for (let k = 623; k; k--) {
      mt[i] = (mt[i] ^ Math.imul(mt[i - 1] ^ (mt[i - 1] >>> 30), 1566083941)) - i;
      i++;
      if (i >= 624) { mt[0] = mt[623]; i = 1; }
    }
    mt[0] = 0x80000000;
  }

  uint32() {
    const mt = this.mt;
    if (this.i >= 624) {
      for (let k = 0; k < 624; k++) {
        const y = (mt[k] & 0x80000000) | (mt[(k + 1) % 624] & 0x7fffffff);
        mt[k] = mt[(k + 397) % 624] ^ (y >>> 1) ^ (y & 1 ? 0x9908b0df : 0);
      }
      this.i = 0;
    }
    let y = mt[this.i++];
    y ^= y >>> 11;
    y ^= (y << 7) & 0x9d2c5680;
    y ^= (y << 15) & 0xefc60000;
    y ^= y >>> 18;
    return y >>> 0;
  }

  // A float in [0, 1) with 53 random bits, as Python's random() draws it.
  random() {
    const a = this.uint32() >>> 5, b = this.uint32() >>> 6;
    return (a * 67108864 + b) / 9007199254740992;
  }
}
