// ort_session.js — what peer_ort.js and ort_profile.js share: the input file's images and
// the ONNX Runtime session options (graphOptimizationLevel 'all': its NCHWc convolutions
// with fused activations), so both time the same session.
'use strict';
const fs = require('fs');

const IMG = 3 * 224 * 224; // floats per image

// The first n float32 images of 3x224x224 in path (an error when it holds fewer).
function readImages(path, n) {
  const buf = fs.readFileSync(path);
  if (buf.length < n * IMG * 4) throw new Error(`${path}: fewer than ${n} images`);
  return new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + n * IMG * 4));
}

function sessionOptions(threads, extra = {}) {
  return {intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all',
          executionMode: 'sequential', ...extra};
}

module.exports = {IMG, readImages, sessionOptions};
