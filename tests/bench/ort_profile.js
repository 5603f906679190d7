// ort_profile.js — ONNX Runtime's own per-node times, to set beside `bench_engine --profile`.
//
//   NODE_PATH=build/peers/node_modules node tests/bench/ort_profile.js MODEL.onnx \
//       [BATCH [RUNS [THREADS]]]          (defaults 1, 60, 2)
//
// Builds the session as peer_ort.js does (ort_session.js: graphOptimizationLevel 'all', so
// ONNX Runtime's NCHWc convolutions with their fused activations), runs RUNS forwards on the first BATCH
// images of build/peers/input_b8.f32 with ONNX Runtime's profiler on, and prints each
// node's fastest and median kernel time over the runs (from the profiler's JSON trace,
// which it deletes), slowest first. Node names are ONNX Runtime's: a fused Conv + Relu is
// named after the Relu's output, e.g. /layer1/layer1.0/relu_1/Relu_output_0_nchwc for
// ResNet's layer1.0 conv2.
'use strict';
const fs = require('fs');
const path = require('path');
const ort = require('onnxruntime-node');
const {readImages, sessionOptions} = require('./ort_session');

async function main() {
  const [model, b = '1', r = '60', t = '2'] = process.argv.slice(2);
  const batch = parseInt(b, 10), runs = parseInt(r, 10), threads = parseInt(t, 10);
  if (!model || !(batch >= 1 && batch <= 8) || !(runs >= 1) || !(threads >= 1)) {
    throw new Error('usage: ort_profile.js MODEL.onnx [BATCH 1-8 [RUNS [THREADS]]]');
  }
  const input = path.join(__dirname, '..', '..', 'build', 'peers', 'input_b8.f32');
  const data = readImages(input, batch);
  const prefix = path.join(fs.mkdtempSync('/tmp/ort_profile-'), 'trace');
  const session = await ort.InferenceSession.create(
      model, sessionOptions(threads, {enableProfiling: true, profileFilePrefix: prefix}));
  const feeds = {[session.inputNames[0]]: new ort.Tensor('float32', data, [batch, 3, 224, 224])};
  for (let i = 0; i < runs; i++) await session.run(feeds);
  session.endProfiling();
  const dir = path.dirname(prefix);
  const file = fs.readdirSync(dir).find((f) => f.endsWith('.json'));
  if (!file) throw new Error('ONNX Runtime wrote no profile');
  const events = JSON.parse(fs.readFileSync(path.join(dir, file), 'utf8'));
  fs.rmSync(dir, {recursive: true, force: true});
  const times = new Map(), ops = new Map();
  for (const e of events) {
    if (e.cat !== 'Node' || !e.name.endsWith('_kernel_time')) continue;
    const name = e.name.slice(0, -'_kernel_time'.length);
    if (!times.has(name)) times.set(name, []), ops.set(name, e.args.op_name);
    times.get(name).push(e.dur / 1000);
  }
  const rows = [...times].map(([name, v]) => {
    v.sort((x, y) => x - y);
    return {name, op: ops.get(name), min: v[0], med: v[v.length >> 1]};
  });
  rows.sort((x, y) => y.min - x.min);
  const sum = (k) => rows.reduce((s, x) => s + x[k], 0);
  console.log(`${path.basename(model)} batch ${batch}, ${threads} threads, ${runs} runs: ` +
              `sum of node minima ${sum('min').toFixed(2)} ms, of medians ${sum('med').toFixed(2)}`);
  for (const x of rows) {
    console.log(`${x.min.toFixed(3).padStart(8)} ${x.med.toFixed(3).padStart(8)}  ` +
                `${x.op.padEnd(16)} ${x.name}`);
  }
}

main().catch((e) => {
  console.error(`ort_profile: ${e.message}`);
  process.exit(1);
});
