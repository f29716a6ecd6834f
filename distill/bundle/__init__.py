"""The bundle room: exporting a student for a phone or a service, checking it, and running it.

Modules: `build` (`python -m distill.export`), `onnx` and `executorch` (the exporters), `trace` (what
they share), `policy` (which ops go int8 and when int8 is kept), `check` (parity and timing against the
PyTorch student), `files` (tokenizer files and the README, rendered from `readme/`), `runtime` (the
Bundle that `python -m distill.predict` runs; numpy, tokenizers and onnxruntime, never torch for ONNX).
"""
