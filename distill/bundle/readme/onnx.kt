// build.gradle: implementation("com.microsoft.onnxruntime:onnxruntime-android:<version>")
val env = OrtEnvironment.getEnvironment()
val session = env.createSession(modelBytes)               // model.onnx from assets
val ids: LongArray = tokenize(text)                       // <= $T ids, see "Tokenizer" below
val shape = longArrayOf(1, ids.size.toLong())
val inputs = mapOf(
    "input_ids" to OnnxTensor.createTensor(env, LongBuffer.wrap(ids), shape),
    "attention_mask" to OnnxTensor.createTensor(env, LongBuffer.wrap(LongArray(ids.size) { 1L }), shape))
session.run(inputs).use { out ->
    val logits = (out[0].value as Array<FloatArray>)[0]   // one score per label
}
