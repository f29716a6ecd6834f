// Swift Package: https://github.com/microsoft/onnxruntime-swift-package-manager
import onnxruntime_objc
let env = try ORTEnv(loggingLevel: .warning)
let session = try ORTSession(env: env, modelPath: modelPath, sessionOptions: nil)
var ids: [Int64] = tokenize(text)                         // <= $T ids, see "Tokenizer" below
var mask = [Int64](repeating: 1, count: ids.count)
let shape: [NSNumber] = [1, NSNumber(value: ids.count)]
let idsValue = try ORTValue(tensorData: NSMutableData(bytes: &ids, length: ids.count * 8),
                            elementType: .int64, shape: shape)
let maskValue = try ORTValue(tensorData: NSMutableData(bytes: &mask, length: mask.count * 8),
                             elementType: .int64, shape: shape)
let out = try session.run(withInputs: ["input_ids": idsValue, "attention_mask": maskValue],
                          outputNames: ["logits"], runOptions: nil)
let data = try out["logits"]!.tensorData() as Data
let logits = data.withUnsafeBytes { Array($$0.bindMemory(to: Float.self)) }
