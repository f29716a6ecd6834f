"""Starting the transformer student from its teacher's bottom layers.

A student trained from random weights has to learn attention from the transfer set alone; one that
keeps the teacher's first layers starts from what pre-training learned. Sajjad et al. (2020, "On the
effect of dropping layers of pre-trained transformer models") found that dropping a BERT's top
layers keeps most of its accuracy, so the student is the teacher's bottom `layers` blocks with their
word, position and type-0 embeddings, then mean pooling and a fresh head:

    shape = teacher_shape(teacher.config)            # d_model, heads, ff_dim, ... of the teacher
    model = build_student("transformer", ..., layers=TEACHER_LAYERS, **shape)
    copy_teacher_layers(model, teacher)              # the tables and blocks 0..layers-1

The mapping is written for BERT's layout (`model_type` "bert": BERT, MiniLM, TinyBERT and other
checkpoints saved as BertModel). The student's tokenizer is the teacher's, without special tokens
(as every student here reads text), so the copied blocks first meet sentences without [CLS]/[SEP];
training on the teacher's logits adapts them.
"""

from __future__ import annotations

import torch

from distill.errors import DistillError

SUPPORTED = ("bert",)  # model_type values whose module names copy_teacher_layers maps
# the default depth: chosen on SST-2 dev with the 6-layer MiniLM teacher (README: "The transformer started
# from its teacher"); 2 layers stayed under Kim's CNN there
TEACHER_LAYERS = 3


def unsupported(config) -> str | None:
    """Why a teacher's config cannot start the student, or None when it can."""
    kind = getattr(config, "model_type", None)
    if kind not in SUPPORTED:
        return f"its model_type is {kind!r}; only {', '.join(SUPPORTED)} layers are mapped"
    if getattr(config, "hidden_act", "gelu") != "gelu":
        return f"its activation is {config.hidden_act!r}; the student's blocks use exact GELU"
    if getattr(config, "position_embedding_type", "absolute") != "absolute":
        return f"its positions are {config.position_embedding_type!r}; the student learns absolute positions"
    return None


def teacher_shape(config) -> dict:
    """The transformer student's config fields that must equal the teacher's for its layers to fit."""
    return {"d_model": config.hidden_size, "embed_dim": config.hidden_size, "heads": config.num_attention_heads,
            "ff_dim": config.intermediate_size, "max_len": config.max_position_embeddings, "norm": "post",
            "layer_norm_eps": config.layer_norm_eps}


def copy_teacher_layers(student: torch.nn.Module, teacher: torch.nn.Module,
                        rows: torch.Tensor | None = None) -> int:
    """Copy the teacher's embeddings and its bottom len(student.blocks) blocks into the student.

    `rows`: the teacher token id of each student token (a pruned vocabulary), else the student's table
    is the teacher's first rows. Returns the number of blocks copied."""
    base = teacher.base_model
    emb, blocks = base.embeddings, base.encoder.layer
    if len(student.blocks) > len(blocks):
        raise DistillError(f"--depth {len(student.blocks)}: the teacher has {len(blocks)} "
                           f"layer{'s' * (len(blocks) != 1)} to start from; "
                           f"use --depth {len(blocks)} or less")
    table = emb.word_embeddings.weight
    n = student.embedding.weight.shape[0]
    if rows is None and table.shape[0] < n:
        raise DistillError(f"the teacher's embedding table has {table.shape[0]} rows but the student's "
                           f"tokenizer has {n}; use --encoder-init random")
    with torch.no_grad():
        student.embedding.weight.copy_(table[rows] if rows is not None else table[:n])
        positions = emb.position_embeddings.weight[: student.config.max_len]
        types = getattr(emb, "token_type_embeddings", None)  # every student token is of type 0
        student.pos_embedding.weight.copy_(positions + (types.weight[0] if types is not None else 0))
        _copy(student.ln_embed, emb.LayerNorm)
        for mine, theirs in zip(student.blocks, blocks):
            att = theirs.attention
            qkv = (att.self.query, att.self.key, att.self.value)
            mine.attn.qkv.weight.copy_(torch.cat([m.weight for m in qkv]))
            mine.attn.qkv.bias.copy_(torch.cat([m.bias for m in qkv]))
            _copy(mine.attn.proj, att.output.dense)
            _copy(mine.ln1, att.output.LayerNorm)
            _copy(mine.mlp[0], theirs.intermediate.dense)
            _copy(mine.mlp[2], theirs.output.dense)
            _copy(mine.ln2, theirs.output.LayerNorm)
    return len(student.blocks)


def _copy(mine: torch.nn.Module, theirs: torch.nn.Module) -> None:
    """Weight and bias of a Linear or a LayerNorm."""
    mine.weight.copy_(theirs.weight)
    mine.bias.copy_(theirs.bias)
