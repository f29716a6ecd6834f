"""Building a student the one way every command builds it: `distill.train`, the search's trials and
its retrains all go through `build_model`, so the same flags give the same initial weights.

    tok = make_tokenizer(args, ls)
    model, init = build_model(args, ls, tok)     # architecture, fresh layers, teacher-initialised table

Order matters for reproducibility: the student is built from the flags (--width, --depth,
--embed-dim, --dropout and --student-config), every layer but the token table is then initialised
afresh from the seed (so that two vocabularies differ in their tables alone), and the table is
filled as --embedding-init asks. A transformer started from its teacher (--encoder-init teacher)
takes the teacher's width, heads and feed-forward size, and its tables and bottom blocks are the
teacher's (distill/training/teacher_init.py):

    teacher = encoder_teacher(args, ls)          # None: the encoder starts from random weights
    model, init = build_model(args, ls, tok, pruned, teacher)
"""

from __future__ import annotations

import json

import numpy as np
import torch

import students
from distill.data.augment import MASK
from distill.data.tokenizer import StudentTokenizer, from_teacher, train_word_level
from distill.data.vocab import Pruned
from distill.errors import DistillError
from distill.teacher.labelset import LabelSet
from distill.training.embeddings import auto_init, autoencoder_table, pca_table
from distill.training.teacher_init import TEACHER_LAYERS, copy_teacher_layers, teacher_shape, unsupported

ENCODER_INITS = ("auto", "teacher", "random")
SHAPE_FLAGS = {"d_model": "--width", "embed_dim": "--embed-dim"}  # teacher_shape fields that flags also set


def make_tokenizer(args, ls: LabelSet, max_length: int | None = None) -> StudentTokenizer:
    """The student's tokenizer: the teacher's (from the label set), or a word vocabulary of its training text.
    `max_length`: tokens per text, if not --max-length."""
    max_length = max_length or args.max_length
    if args.tokenizer == "word":
        texts = (t.replace(MASK, " ") for part in ls.iter_texts("train") for row in part for t in row)
        return train_word_level(texts, max_length, args.vocab_min_freq, args.vocab_max_size)
    tok_json = ls.tokenizer_json()
    if tok_json is None:
        raise DistillError(f"{ls.path} holds no teacher tokenizer (the teacher's is not a fast "
                           "tokenizer); use --tokenizer word")
    return from_teacher(tok_json, max_length)


def student_overrides(args) -> dict:
    """The student config fields the flags set besides width and depth."""
    fields = {k: v for k, v in (("embed_dim", args.embed_dim), ("dropout", args.dropout)) if v is not None}
    return fields | (json.loads(args.student_config) if args.student_config else {})


def encoder_teacher(args, ls: LabelSet):
    """The teacher whose bottom layers start the student (--encoder-init), loaded on the CPU; None when
    the encoder starts from random weights. `auto` starts the transformer from its teacher when --teacher
    names a BERT-layout model, the student reads the teacher's tokens and --embedding-init is left at auto."""
    choice = args.encoder_init
    if choice == "random" or (choice == "auto" and args.student != "transformer"):
        return None
    asked = choice == "teacher"
    if not args.teacher:
        if asked:
            raise DistillError("--encoder-init teacher needs the teacher's weights: pass --teacher (with --labels: "
                               "the teacher that made them)")
        print("encoder: random weights (with --teacher, the transformer starts from the teacher's bottom layers)")
        return None
    if args.tokenizer != "teacher" or args.embedding_init != "auto":
        return None  # auto only: TrainArgs refuses these with --encoder-init teacher before any work
    from transformers import AutoConfig

    from distill.teacher.load import fingerprint, load_teacher, quiet_transformers

    try:
        with quiet_transformers():
            config = AutoConfig.from_pretrained(args.teacher, trust_remote_code=args.trust_remote_code)
    except (OSError, ValueError) as e:
        raise DistillError(f"--teacher {args.teacher}: could not read its config ({str(e).splitlines()[0]})") from None
    why = unsupported(config)
    if why:
        if asked:
            raise DistillError(f"--encoder-init teacher: teacher {args.teacher} cannot start the student ({why}); "
                               "use --encoder-init random")
        print(f"encoder: random weights (teacher {args.teacher} cannot start it: {why})")
        return None
    teacher = load_teacher(args.teacher, ls.task, torch.device("cpu"), args.trust_remote_code)[0]
    known = ls.teacher.get("fingerprint")  # without --labels the set was made (or found by key) from this teacher
    if args.labels and known and fingerprint(teacher) != known:
        raise DistillError(f"--teacher {args.teacher} is not the teacher of {ls.path} (its weights differ from the "
                           "ones that made the labels); pass that teacher, or --encoder-init random")
    return teacher


def build_student_model(args, ls: LabelSet, tok: StudentTokenizer, teacher=None) -> torch.nn.Module:
    """The student with fresh weights from the seed (its table not yet initialised from the teacher).
    With `teacher`, its architecture fields are the teacher's (teacher_init.teacher_shape)."""
    overrides, width, depth = student_overrides(args), args.width, args.depth
    if teacher is not None:
        shape = teacher_shape(teacher.config)
        given = {"d_model": width} if width is not None else {}
        in_config = json.loads(args.student_config) if args.student_config else {}
        for k, v in {**given, **overrides}.items():
            if k in shape and v != shape[k]:
                flag = f"--student-config {k}" if k in in_config else SHAPE_FLAGS[k]
                raise DistillError(f"{flag} {v}: a student started from the teacher's layers has the teacher's "
                                   f"{k} ({shape[k]}); drop it, or use --encoder-init random")
        if tok.max_length > shape["max_len"]:
            raise DistillError(f"--max-length {tok.max_length}: the teacher has {shape['max_len']} positions; "
                               f"use --max-length {shape['max_len']} or less")
        overrides, width = overrides | shape, None
        if depth is None:  # the default depth, or all of a shallower teacher's layers
            depth = min(TEACHER_LAYERS, teacher.config.num_hidden_layers)
    try:
        with torch.random.fork_rng():  # the table's random draws too depend on the seed alone
            torch.manual_seed(args.seed)
            model = students.build_student(
                args.student, vocab_size=tok.vocab_size, num_labels=ls.task.num_labels, pair=ls.task.pair,
                pad_id=tok.pad_id, width=width, depth=depth, **overrides)
    except ValueError as e:
        raise DistillError(f"--student {args.student}: {e}") from None
    reset_layers_after_embeddings(model, args.seed)
    return model


def build_model(args, ls: LabelSet, tok: StudentTokenizer, pruned: Pruned | None = None,
                teacher=None) -> tuple[torch.nn.Module, str]:
    """The student, with its embedding table initialised as asked, or its tables and bottom blocks the
    teacher's when `teacher` is given (encoder_teacher); returns (model, init used)."""
    model = build_student_model(args, ls, tok, teacher)
    if teacher is not None:
        copy_teacher_layers(model, teacher, torch.as_tensor(pruned.kept) if pruned else None)
        init = "teacher-layers"
    else:
        init = init_embeddings(model, args, ls, tok, pruned)
    if args.freeze_embeddings:  # Kim's static: the optimiser gets no table (engine.param_groups)
        model.embedding.requires_grad_(False)  # a plain table, or both factors of a low-rank one
    return model, init


def init_embeddings(model: torch.nn.Module, args, ls: LabelSet, tok: StudentTokenizer,
                    pruned: Pruned | None = None) -> str:
    """Fill the student's token table as --embedding-init asks; returns the init used.

    With a pruned vocabulary the teacher's table is brought down over the whole unpruned
    vocabulary, then the kept rows are taken: a pruned and an unpruned student start from the
    same vector for every token they share. `random` keeps the student's own initialisation."""
    init = args.embedding_init
    if init == "auto":
        init = auto_init(args.student, args.tokenizer, ls.has_contextual)
    if not init.startswith("teacher-"):
        return init
    stored = ls.teacher_contextual() if init == "teacher-contextual" else ls.teacher_embeddings()
    if stored is None:
        if init == "teacher-contextual":
            raise DistillError(f"{ls.path} stores no contextual table; label with distill.label "
                               "--contextual-layer middle, or use --embedding-init teacher-svd")
        raise DistillError(f"{ls.path} stores no teacher embeddings; use --embedding-init random")
    table, present = stored[:2]
    emb = model.embedding.weight
    n = pruned.old_size if pruned else emb.shape[0]  # the teacher tokenizer's vocabulary
    # Teachers often pad their table past the tokenizer's vocabulary; those rows are never used.
    if table.shape[0] < n:
        raise DistillError(f"the teacher's embedding table has {table.shape[0]} rows but the "
                           f"tokenizer has {n}; use --embedding-init random")
    if init in ("teacher-svd", "teacher-contextual"):
        full = pca_table(table[:n], emb.shape[1], args.seed, present[:n])
    else:
        full = autoencoder_table(table[:n], emb.shape[1], args.seed, present[:n], progress=not args.no_progress)
    with torch.no_grad():
        emb.copy_(full[torch.as_tensor(pruned.kept)] if pruned else full)
        emb[tok.pad_id].zero_()
    return init


def reset_layers_after_embeddings(model: torch.nn.Module, seed: int) -> None:
    """Initialise every layer but the token table afresh from `seed`.

    A student builds its table first, so the random draws of its other layers would otherwise
    depend on the vocabulary size: a pruned and an unpruned student (or two vocabularies) would
    differ in more than their tables. After this they start alike everywhere else."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for name, module in model.named_modules():
            if name != "embedding" and not name.startswith("embedding.") and hasattr(module, "reset_parameters"):
                module.reset_parameters()


def teacher_length(ls: LabelSet) -> int:
    """Median teacher tokens of a dev example (with its special tokens), for timing."""
    from tokenizers import Tokenizer

    tok_json = ls.tokenizer_json()
    dev = ls.splits["dev"]
    if tok_json is None:
        return int(np.median([sum(len(t.split()) for t in row) for row in dev.texts])) + 3
    tok = Tokenizer.from_str(tok_json)
    tok.no_padding()
    tok.enable_truncation(ls.teacher.get("max_length", 512))
    inputs = [tuple(row) if len(row) == 2 else row[0] for row in dev.texts]
    return int(np.median([len(e.ids) for e in tok.encode_batch(inputs)]))
