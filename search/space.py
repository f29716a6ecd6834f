"""Search spaces: one per student, over what decides its size and speed, plus its training knobs.

    from search.space import suggest, smallest
    cand = suggest(trial, ("bilstm", "cnn"), tokenizer="teacher", limits=SpaceLimits())
    cand.train   # TrainArgs fields: width, depth, embed_dim, dropout, lr, alpha, freeze_embeddings, vocab_max_size
    cand.arch    # other student config fields: filter_widths, context_layers, heads, ff_dim, mlp_hidden

    recipe = suggest(trial, ("cnn",), limits=SpaceLimits(recipe=True))
    recipe.train # the training recipe of the default architecture: lr, dropout, alpha, loss, temperature,
                 # batch_size, warmup_ratio, weight_decay, freeze_embeddings (and heads for the transformer)

Each student's parameters are named "<student>.<knob>" so that several students can share one
study: the student is then the categorical parameter "student" and each student's knobs are
conditional on it (TPE with `group=True` models them per student). The vocabulary size is searched
only with a word-level tokenizer; the teacher's tokenizer has a fixed vocabulary, and a table that starts
from the teacher's (its PCA) may be frozen, as Kim 2014's CNN-static keeps its word2vec vectors.

With `SpaceLimits(recipe=True)` (`search.run --space recipe`) the architecture stays the student's
default (its size and speed are fixed) and the training recipe is searched instead: the learning rate,
dropout, the loss (MSE on logits, or KL at a temperature) and its mix with gold labels, batch size,
warm-up, weight decay, the frozen or tuned table, and the transformer's head count (which leaves its
size unchanged). This is how the students' defaults were chosen (README, "The students' recipes").

`smallest(student)` is the corner of the space with the fewest parameters and the least compute;
the search checks it against the budget before any trial, so an impossible budget is an error at
no training cost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import students

# word-level vocabulary sizes (categorical: the tokenizer and encoded data are cached per size)
VOCAB_SIZES = (2_000, 5_000, 10_000, 20_000, 50_000)
TRANSFORMER_HEADS = (1, 2, 4, 8)
TRANSFORMER_FF_MULT = (1, 2, 4)
CNN_MLP_HIDDEN = (0, 128, 256)  # 0: Kim's plain dropout + linear head
CNN_CONTEXT_LAYERS = (0, 1, 2, 3)  # dilated convolutions before the filters; 0: Kim's CNN, 3: the default
FREEZE = (False, True)  # the token table tuned (non-static), or kept as initialised (static); first: tuned
# the recipe space (--space recipe): choices of the knobs that are not continuous; the first is the default
LOSSES = ("mse", "kl")
BATCH_SIZES = (50, 32, 64, 128)
WEIGHT_DECAYS = (0.0, 0.01, 0.1)
# both spaces: each student's learning-rate range (log scale) and largest dropout
LR_RANGES = {"bilstm": (3e-4, 3e-3), "cnn": (3e-4, 3e-3), "transformer": (1e-4, 2e-3)}
DROPOUT_MAX = {"bilstm": 0.5, "cnn": 0.6, "transformer": 0.3}


@dataclass(frozen=True)
class SpaceLimits:
    """Bounds of the searched knobs (the flags --max-width, --max-depth, --max-embed-dim)."""

    min_width: int = 16
    max_width: int = 512
    max_depth: int = 4
    min_embed_dim: int = 16
    max_embed_dim: int = 300
    recipe: bool = False  # search the training recipe of the default architecture, not the architecture

    def __post_init__(self) -> None:
        if not 1 <= self.min_width <= self.max_width:
            raise ValueError(f"width range [{self.min_width}, {self.max_width}] is empty")
        if self.max_depth < 1:
            raise ValueError(f"max depth {self.max_depth} must be >= 1")
        if not 1 <= self.min_embed_dim <= self.max_embed_dim:
            raise ValueError(f"embedding range [{self.min_embed_dim}, {self.max_embed_dim}] is empty")


@dataclass(frozen=True)
class Candidate:
    """One point of the space: which student, its TrainArgs fields and its other config fields."""

    student: str
    # width, depth, embed_dim, dropout, lr, alpha[, freeze_embeddings][, vocab_max_size]
    train: dict = field(default_factory=dict)
    # filter_widths, context_layers (cnn), heads, ff_dim (transformer), mlp_hidden
    arch: dict = field(default_factory=dict)

    def describe(self) -> str:
        """A short one-line label: 'cnn width=64 depth=2 emb=48 widths=2-3 ...'."""
        t, a = self.train, self.arch
        if "width" not in t:  # a recipe of the default architecture
            heads = [f"heads={a['heads']}"] if "heads" in a else []
            return " ".join([self.student, "default-arch", *heads,
                f"lr={t['lr']:.1e} drop={t['dropout']:.2f} alpha={t['alpha']:.2f}",
                f"kl T={t['temperature']:.1f}" if t["loss"] == "kl" else "mse",
                f"batch={t['batch_size']} warmup={t['warmup_ratio']:.2f} wd={t['weight_decay']:g}",
                *(["static"] if t.get("freeze_embeddings") else [])])
        parts = [self.student, f"width={t['width']}"]
        if "depth" in t and t["depth"] is not None:
            parts.append(f"depth={t['depth']}")
        parts.append(f"emb={t['embed_dim']}")
        if "filter_widths" in a:
            parts.append("widths=" + "-".join(str(k) for k in a["filter_widths"]))
        if "heads" in a:
            parts.append(f"heads={a['heads']} ff={a['ff_dim']}")
        if "mlp_hidden" in a:
            parts.append(f"mlp={a['mlp_hidden']}")
        if a.get("context_layers"):
            parts.append(f"context={a['context_layers']}")
        if t.get("freeze_embeddings"):
            parts.append("static")
        if "vocab_max_size" in t:
            parts.append(f"vocab={t['vocab_max_size']}")
        parts.append(f"drop={t['dropout']:.2f} lr={t['lr']:.1e} alpha={t['alpha']:.2f}")
        return " ".join(parts)


def _common(trial, name: str) -> dict:
    """Dropout, learning rate and the loss mix (alpha: weight of gold-label cross-entropy)."""
    return {
        "dropout": trial.suggest_float(f"{name}.dropout", 0.0, DROPOUT_MAX[name]),
        "lr": trial.suggest_float(f"{name}.lr", *LR_RANGES[name], log=True),
        "alpha": trial.suggest_float(f"{name}.alpha", 0.0, 0.5),
    }


def _width(trial, name: str, lim: SpaceLimits) -> int:
    return trial.suggest_int(f"{name}.width", lim.min_width, lim.max_width, log=True)


def _embed(trial, name: str, lim: SpaceLimits) -> int:
    return trial.suggest_int(f"{name}.embed_dim", lim.min_embed_dim, lim.max_embed_dim, log=True)


def _bilstm(trial, lim: SpaceLimits) -> Candidate:
    train = {"width": _width(trial, "bilstm", lim),
             "depth": trial.suggest_int("bilstm.depth", 1, min(2, lim.max_depth)),
             "embed_dim": _embed(trial, "bilstm", lim)}
    arch = {"mlp_hidden": trial.suggest_int("bilstm.mlp_hidden", 32, 512, log=True)}
    return Candidate("bilstm", train | _common(trial, "bilstm"), arch)


def _cnn(trial, lim: SpaceLimits) -> Candidate:
    # depth = how many consecutive filter widths, starting at `first`: 1 -> (1,), 3 with first 3 -> (3, 4, 5)
    depth = trial.suggest_int("cnn.depth", 1, min(4, lim.max_depth))
    first = trial.suggest_int("cnn.first_width", 1, 3)
    train = {"width": _width(trial, "cnn", lim), "depth": None, "embed_dim": _embed(trial, "cnn", lim)}
    arch = {"filter_widths": tuple(range(first, first + depth)),
            "mlp_hidden": trial.suggest_categorical("cnn.mlp_hidden", CNN_MLP_HIDDEN),
            "context_layers": trial.suggest_categorical("cnn.context_layers", CNN_CONTEXT_LAYERS)}
    return Candidate("cnn", train | _common(trial, "cnn"), arch)


def _transformer(trial, lim: SpaceLimits) -> Candidate:
    # d_model in steps of 32 so that every head count in TRANSFORMER_HEADS divides it
    lo = max(32, -(-lim.min_width // 32) * 32)
    hi = max(lo, min(256, lim.max_width) // 32 * 32)
    d_model = trial.suggest_int("transformer.width", lo, hi, step=32)
    train = {"width": d_model, "depth": trial.suggest_int("transformer.depth", 1, min(4, lim.max_depth)),
             "embed_dim": _embed(trial, "transformer", lim)}
    heads = trial.suggest_categorical("transformer.heads", TRANSFORMER_HEADS)
    mult = trial.suggest_categorical("transformer.ff_mult", TRANSFORMER_FF_MULT)
    arch = {"heads": heads, "ff_dim": mult * d_model}
    return Candidate("transformer", train | _common(trial, "transformer"), arch)


SPACES = {"bilstm": _bilstm, "cnn": _cnn, "transformer": _transformer}


def _recipe(trial, name: str) -> Candidate:
    """The training recipe of `name`'s default architecture (--space recipe)."""
    train = _common(trial, name)
    train["loss"] = trial.suggest_categorical(f"{name}.loss", LOSSES)
    # a temperature only matters for KL; MSE keeps distill.train's default (unused)
    train["temperature"] = trial.suggest_float(f"{name}.temperature", 1.0, 4.0) if train["loss"] == "kl" else 2.0
    train["batch_size"] = trial.suggest_categorical(f"{name}.batch_size", BATCH_SIZES)
    train["warmup_ratio"] = trial.suggest_float(f"{name}.warmup_ratio", 0.0, 0.2)
    train["weight_decay"] = trial.suggest_categorical(f"{name}.weight_decay", WEIGHT_DECAYS)
    arch = {}
    if name == "transformer":  # heads split d_model: the size and the FLOPs stay the same
        arch["heads"] = trial.suggest_categorical("transformer.heads", TRANSFORMER_HEADS)
    return Candidate(name, train, arch)


def default_recipe(name: str, tokenizer: str = "teacher") -> dict:
    """The recipe-space params of `distill.train --student NAME` with every default: search.run enqueues it
    as a recipe study's first trial, so the leaderboard shows where today's default stands."""
    import dataclasses

    from distill.train import LR, TrainArgs

    train = {f.name: f.default for f in dataclasses.fields(TrainArgs)} | {"lr": LR}  # a trial's encoder is random
    config = {f.name: f.default for f in dataclasses.fields(students.STUDENTS[name].config_class)}
    params = {f"{name}.dropout": config["dropout"], f"{name}.lr": train["lr"], f"{name}.alpha": train["alpha"],
              f"{name}.loss": train["loss"], f"{name}.batch_size": train["batch_size"],
              f"{name}.warmup_ratio": train["warmup_ratio"], f"{name}.weight_decay": train["weight_decay"]}
    if train["loss"] == "kl":
        params[f"{name}.temperature"] = train["temperature"]
    if name == "transformer":
        params["transformer.heads"] = config["heads"]
    if tokenizer == "teacher":
        params[f"{name}.freeze_embeddings"] = train["freeze_embeddings"]
    return params


def suggest_student(trial, name: str, tokenizer: str = "teacher", limits: SpaceLimits | None = None) -> Candidate:
    """Sample one student's configuration from `trial` (any Optuna trial, FixedTrial included)."""
    if name not in SPACES:
        raise ValueError(f"unknown student {name!r}; choose one of: {', '.join(SPACES)}")
    limits = limits or SpaceLimits()
    cand = _recipe(trial, name) if limits.recipe else SPACES[name](trial, limits)
    if tokenizer == "teacher":  # the table starts from the teacher's: keep it (Kim's static) or tune it
        frozen = trial.suggest_categorical(f"{name}.freeze_embeddings", FREEZE)
        cand = Candidate(cand.student, cand.train | {"freeze_embeddings": frozen}, cand.arch)
    if tokenizer == "word" and not limits.recipe:  # the recipe keeps the default vocabulary
        vocab = trial.suggest_categorical("vocab_size", VOCAB_SIZES)
        cand = Candidate(cand.student, cand.train | {"vocab_max_size": vocab}, cand.arch)
    return cand


def suggest(trial, names: tuple[str, ...], tokenizer: str = "teacher",
            limits: SpaceLimits | None = None) -> Candidate:
    """Sample a student type (categorical when there are several) and then its configuration."""
    name = names[0] if len(names) == 1 else trial.suggest_categorical("student", list(names))
    return suggest_student(trial, name, tokenizer, limits)


# Knobs added to the space after studies were made with it: a trial from before replays with these
# (what it ran with: a tuned table, and the CNN's context layers as a config saved before them has).
LATER_KNOBS = {"freeze_embeddings": FREEZE[0],
               "context_layers": students.TextCNNConfig.saved_before["context_layers"]}


def replay(params: dict, names: tuple[str, ...], tokenizer: str = "teacher",
           limits: SpaceLimits | None = None) -> Candidate:
    """The candidate of a finished trial from its params (`trial.params`), as `suggest` sampled it; a
    trial of a study made before a knob of LATER_KNOBS existed gets that knob's old behaviour."""
    import optuna

    student = params.get("student", names[0])
    old = {f"{student}.{knob}": value for knob, value in LATER_KNOBS.items()}
    return suggest(optuna.trial.FixedTrial(old | params), names, tokenizer, limits)


def smallest(name: str, tokenizer: str = "teacher", limits: SpaceLimits | None = None) -> Candidate:
    """The corner of `name`'s space with the fewest parameters and the least compute."""
    lim = limits or SpaceLimits()

    class _Low:
        """Answers every suggest_* with its lowest choice (for a categorical: its first)."""

        def suggest_int(self, _n, low, high, step=1, log=False):
            return low

        def suggest_float(self, _n, low, high, step=None, log=False):
            return low

        def suggest_categorical(self, _n, choices):
            return choices[0]

    return suggest_student(_Low(), name, tokenizer, lim)


def check_students(names: tuple[str, ...]) -> None:
    """Raise ValueError naming the unknown student, if any (the space and the students agree)."""
    for n in names:
        if n not in SPACES or n not in students.STUDENTS:
            raise ValueError(f"unknown student {n!r}; choose from: {', '.join(SPACES)}")
