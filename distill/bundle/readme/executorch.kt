// build.gradle: implementation("org.pytorch:executorch-android:<version>")
val module = Module.load(modelPath)                       // model.pte copied to the app's files
val ids: LongArray = tokenize(text)                       // $n_ids ids, see "Tokenizer" below
val mask = LongArray(ids.size) { if (ids[it] == ${pad_id}L) 0L else 1L }
val shape = longArrayOf(1, ids.size.toLong())
val out = module.forward(EValue.from(Tensor.fromBlob(ids, shape)), EValue.from(Tensor.fromBlob(mask, shape)))
val logits = out[0].toTensor().dataAsFloatArray           // one score per label
