"""The training room: the one training loop, losses, fitting a student, building it, its embedding
tables, the comparison report, compression, and the run folder.

Modules: `engine` (the loop, checkpoints and resume), `losses`, `fit` (a student on teacher logits),
`student` (building and initialising a student), `embeddings` (teacher-initialised tables, low-rank
factors), `compress` (`python -m distill.compress`), `report` (sizes, latency, the comparison table),
`runfolder` (what a run folder holds).
"""
