// npm install $js_packages
//   (the onnxruntime-node that transformers.js depends on: two versions in one process fail to load; a browser:
//   onnxruntime-web; offline or CI installs: ONNXRUNTIME_NODE_INSTALL=skip npm install ..., which skips
//   onnxruntime-node's optional CUDA download)
import { AutoTokenizer, env } from "@huggingface/transformers";
import * as ort from "onnxruntime-node";

env.allowRemoteModels = false;                 // this folder only, never the hub
env.localModelPath = "/path/to/";              // the folder that holds this bundle's folder
const tokenizer = await AutoTokenizer.from_pretrained("$bundle_name");   // tokenizer.json + tokenizer_config.json
const session = await ort.InferenceSession.create("/path/to/$bundle_name/$model_file");
const labels = ["$labels_js"];

async function classify(text) {
  let { input_ids: ids } = tokenizer(text, { add_special_tokens: false, truncation: true, max_length: $T,
                                             return_tensor: false });
  if (ids.length === 0) ids = [$unk_id];       // an empty text gives no ids: [UNK], as in training
$js_pad
  const shape = [1, ids.length];
  const feeds = {
    input_ids: new ort.Tensor("int64", BigInt64Array.from(ids, BigInt), shape),
    attention_mask: new ort.Tensor("int64", BigInt64Array.from(mask, BigInt), shape),
  };
  const logits = (await session.run(feeds)).logits.data;   // one score per label
  return labels[logits.indexOf(Math.max(...logits))];
}
