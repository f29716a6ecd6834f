// Swift Package: https://github.com/pytorch/executorch (branch swiftpm-<version>),
// products executorch and backend_xnnpack
import ExecuTorch
let module = Module(filePath: modelPath)
let ids: [Int64] = tokenize(text)                         // $n_ids ids, see "Tokenizer" below
let mask: [Int64] = ids.map { $$0 == $pad_id ? 0 : 1 }
let shape = [1, ids.count]
let out: Tensor<Float> = try module.forward([Tensor<Int64>(ids, shape: shape),
                                             Tensor<Int64>(mask, shape: shape)])[0].tensor()!
let logits = out.scalars()                                // one score per label
