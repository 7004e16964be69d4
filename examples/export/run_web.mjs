// Runs an onnxviz explainer with onnxruntime-web's wasm backend under node: the runtime a browser
// page uses, with no onnxviz and no Python. The tests call it to compare with onnxruntime.
//
//   NODE_PATH=path/to/node_modules node run_web.mjs '[{"model": "explainer.onnx", "input": "input",
//       "shape": [1, 3, 224, 224], "data": "input.bin"}, ...]'
//
// "data" holds the input as raw little-endian float32; each run's outputs are printed as JSON,
// a list of {name: {"dims": [...], "data": [...]}}, one per run, in order.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const ort = require("onnxruntime-web");

async function run(request) {
  const session = await ort.InferenceSession.create(readFileSync(request.model), {
    executionProviders: ["wasm"],
  });
  const bytes = readFileSync(request.data);
  const values = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
  const feeds = { [request.input]: new ort.Tensor("float32", values, request.shape) };
  const outputs = await session.run(feeds);
  const printed = {};
  for (const [name, tensor] of Object.entries(outputs)) {
    printed[name] = { dims: tensor.dims, data: Array.from(tensor.data, Number) };
  }
  return printed;
}

ort.env.wasm.numThreads = 1;
const results = [];
for (const request of JSON.parse(process.argv[2])) {
  results.push(await run(request));
}
process.stdout.write(JSON.stringify(results));
