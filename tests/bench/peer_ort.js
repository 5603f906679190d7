// peer_ort.js — ONNX Runtime (onnxruntime-node, CPU) runner for tests/bench/peers.py.
//
//   NODE_PATH=build/peers/node_modules node peer_ort.js MODEL.onnx INPUT.f32 THREADS
//
// Same protocol as `bench_engine --serve`: prints "ready" once the session is built,
// then answers each stdin line "BATCH SECONDS" with "lat MS MS ..." (one warm-up run,
// then at least 2 timed runs and about SECONDS) or "err MESSAGE".
// INPUT.f32 holds 8 float32 images of 3x224x224; batch B uses the first B.
'use strict';
const readline = require('readline');
const ort = require('onnxruntime-node');
const {IMG, readImages, sessionOptions} = require('./ort_session');

async function measure(session, data, batch, seconds) {
  const feeds = {};
  const x = new Float32Array(data.buffer, data.byteOffset, batch * IMG);
  feeds[session.inputNames[0]] = new ort.Tensor('float32', x, [batch, 3, 224, 224]);
  await session.run(feeds);
  const lat = [];
  const start = process.hrtime.bigint();
  const limit = BigInt(Math.round(seconds * 1e9));
  while (lat.length < 2 || process.hrtime.bigint() - start < limit) {
    const t = process.hrtime.bigint();
    await session.run(feeds);
    lat.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  return lat;
}

async function main() {
  const [model, input, threads] = process.argv.slice(2);
  const data = readImages(input, 8);
  const session = await ort.InferenceSession.create(model, sessionOptions(parseInt(threads, 10) || 2));
  console.log('ready');
  const rl = readline.createInterface({input: process.stdin});
  for await (const line of rl) {
    const [b, s] = line.trim().split(/\s+/).map(Number);
    if (!(b >= 1 && b <= 8 && s > 0 && s < 600)) {
      console.log('err bad command');
      continue;
    }
    try {
      const lat = await measure(session, data, b, s);
      console.log('lat ' + lat.map((v) => v.toFixed(4)).join(' '));
    } catch (e) {
      console.log('err ' + String(e.message).replace(/\n/g, ' '));
    }
  }
}

main().catch((e) => {
  console.error(`peer_ort: ${e.message}`);
  process.exit(1);
});
