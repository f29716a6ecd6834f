"""The teacher room: loading encoders and teachers, fine-tuning a teacher, labelling data with its
logits, and the label set that holds them.

Modules: `load` (hub ids and local folders, one-line errors), `finetune` (`python -m distill.finetune`),
`labelling` (the teacher's logits on a dataset and its augmented copies, cached and resumable),
`labelset` (the label set on disk).
"""
