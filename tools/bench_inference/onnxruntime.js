// ONNX Runtime latency for bench_inference (npm onnxruntime-node, CPU build):
//   node onnxruntime.js MODEL.onnx INPUT.npy THREADS ITERS   ->  "median_ms <ms>"
// Runs ITERS calls after 3 warm-ups with intra-op THREADS, one inter-op thread and every
// graph optimisation, as the inference anchor does.
const ort = require('onnxruntime-node'); const fs = require('fs');
function npy(p) {
  const b = fs.readFileSync(p); const hl = b.readUInt16LE(8); const h = b.toString('latin1', 10, 10 + hl);
  const shape = h.match(/shape': \(([^)]*)\)/)[1].split(',').filter(s => s.trim()).map(Number);
  return [new Float32Array(b.buffer.slice(b.byteOffset + 10 + hl, b.byteOffset + b.length)), shape];
}
(async () => {
  const [model, xp, th, iters] = process.argv.slice(2); const [data, shape] = npy(xp);
  const s = await ort.InferenceSession.create(model, { intraOpNumThreads: +th, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
  const feeds = { [s.inputNames[0]]: new ort.Tensor('float32', data, shape) }; const ts = [];
  for (let i = 0; i < +iters + 3; i++) { const a = performance.now(); await s.run(feeds); ts.push(performance.now() - a); }
  const m = ts.slice(3).sort((a, b) => a - b); const n = m.length;
  console.log(`median_ms ${(n % 2 ? m[(n - 1) / 2] : (m[n / 2 - 1] + m[n / 2]) / 2).toFixed(3)}`);
})();
