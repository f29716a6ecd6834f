// ExecuTorch has no JavaScript runtime: for Node and the web, export this run with
//   python -m distill.export <run> --format onnx
// and use that bundle's snippet (transformers.js for the tokenizer, onnxruntime-node or -web for the model).
// The tokenizer part is the same for every bundle:
import { AutoTokenizer, env } from "@huggingface/transformers";

env.allowRemoteModels = false;
env.localModelPath = "/path/to/";
const tokenizer = await AutoTokenizer.from_pretrained("$bundle_name");
let { input_ids: ids } = tokenizer(text, { add_special_tokens: false, truncation: true, max_length: $T,
                                           return_tensor: false });
if (ids.length === 0) ids = [$unk_id];         // an empty text gives no ids: [UNK], as in training
