"""search.space: every sampled configuration builds; the smallest corner is the smallest; seeds repeat."""

import json

import optuna
import pytest

import students
from search.space import SpaceLimits, smallest, suggest, suggest_student

optuna.logging.set_verbosity(optuna.logging.WARNING)


def _build(cand, vocab=60):
    return students.build_student(cand.student, vocab_size=vocab, num_labels=2, width=cand.train["width"],
                                  depth=cand.train["depth"], embed_dim=cand.train["embed_dim"],
                                  dropout=cand.train["dropout"], **cand.arch)


@pytest.mark.parametrize("name", ["bilstm", "cnn", "transformer"])
def test_sampled_configurations_build_and_the_corner_is_smallest(name):
    lim = SpaceLimits(max_width=64, max_embed_dim=32)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    corner = _build(smallest(name, limits=lim)).num_parameters()
    for _ in range(12):
        trial = study.ask()
        cand = suggest_student(trial, name, limits=lim)
        model = _build(cand)  # raises if the space produced an invalid config
        assert model.num_parameters() >= corner
        assert 16 <= cand.train["width"] <= 64 and 16 <= cand.train["embed_dim"] <= 32
        assert 0 <= cand.train["alpha"] <= 0.5 and cand.train["lr"] > 0
        assert all(p.startswith(f"{name}.") for p in trial.params)
        study.tell(trial, 0.0)


def test_transformer_heads_always_divide_the_width():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(30):
        cand = suggest_student(study.ask(), "transformer")
        assert cand.train["width"] % cand.arch["heads"] == 0
        assert cand.arch["ff_dim"] in {m * cand.train["width"] for m in (1, 2, 4)}


def test_cnn_filter_widths_replace_depth():
    cand = suggest_student(optuna.trial.FixedTrial(
        {"cnn.depth": 2, "cnn.first_width": 2, "cnn.width": 20, "cnn.embed_dim": 16, "cnn.mlp_hidden": 0,
         "cnn.context_layers": 2, "cnn.dropout": 0.1, "cnn.lr": 1e-3, "cnn.alpha": 0.0,
         "cnn.freeze_embeddings": False}), "cnn")
    assert cand.arch["filter_widths"] == (2, 3) and cand.train["depth"] is None
    assert (_build(cand).config.filter_widths, _build(cand).config.context_layers) == ((2, 3), 2)
    assert "context=2" in cand.describe() and smallest("cnn").arch["context_layers"] == 0


def test_students_share_a_study_through_a_categorical_and_word_vocab_is_searched():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(15):
        trial = study.ask()
        cand = suggest(trial, ("bilstm", "cnn"), tokenizer="word")
        assert trial.params["student"] == cand.student
        assert "vocab_size" in trial.params and cand.train["vocab_max_size"] == trial.params["vocab_size"]
        seen.add(cand.student)
        study.tell(trial, 0.0)
    assert seen == {"bilstm", "cnn"}
    # one student: no categorical, and the teacher's tokenizer has no vocabulary to search
    trial = study.ask()
    suggest(trial, ("cnn",))
    assert "student" not in trial.params and "vocab_size" not in trial.params


def test_a_seeded_sampler_gives_the_same_sequence():
    from search.run import SearchArgs, make_sampler

    def sequence(seed):
        args = SearchArgs(student="bilstm,cnn,transformer", trials=12, seed=seed)
        study = optuna.create_study(direction="maximize", sampler=make_sampler(args, seed))
        for _ in range(12):  # past TPE's random start-up trials
            trial = study.ask()
            cand = suggest(trial, args.students)
            study.tell(trial, cand.train["width"] / 512 - cand.train["dropout"])
        return [t.params for t in study.trials]

    assert sequence(3) == sequence(3)
    assert sequence(3) != sequence(4)


def test_a_teacher_initialised_table_is_searched_frozen_or_tuned():
    from distill.train import TrainArgs
    from search.objective import trial_args

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(12):
        trial = study.ask()
        cand = suggest_student(trial, "cnn", tokenizer="teacher")
        seen.add(cand.train["freeze_embeddings"])
        assert ("static" in cand.describe()) == cand.train["freeze_embeddings"]
        command = trial_args(TrainArgs(), cand).command()
        assert ("--freeze-embeddings" in command) == cand.train["freeze_embeddings"], command
        study.tell(trial, 0.0)
    assert seen == {False, True}
    word = suggest_student(optuna.trial.FixedTrial({**trial.params, "vocab_size": 2_000}), "cnn", tokenizer="word")
    assert "freeze_embeddings" not in word.train  # a word vocabulary starts from a random table
    assert smallest("cnn").train["freeze_embeddings"] is False


def test_a_trial_from_before_a_knob_existed_replays_with_its_old_behaviour():
    from search.space import replay

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for names in (("bilstm", "cnn"), ("cnn",)):
        trial = study.ask()
        cand = suggest(trial, names)
        assert replay(trial.params, names) == cand
        older = {k: v for k, v in trial.params.items() if not k.endswith((".freeze_embeddings", ".context_layers"))}
        again = replay(older, names)
        assert again.train == cand.train | {"freeze_embeddings": False}
        # the CNN had no context layers before they were searched
        assert again.arch == cand.arch | ({"context_layers": 0} if cand.student == "cnn" else {})


@pytest.mark.parametrize("name", ["bilstm", "cnn", "transformer"])
def test_the_recipe_space_keeps_the_default_architecture_and_samples_the_training_knobs(name):
    from distill.train import TrainArgs
    from search.objective import trial_args
    from search.space import BATCH_SIZES, LOSSES, replay

    default = students.build_student(name, vocab_size=60, num_labels=2).num_parameters()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    losses, frozen = set(), set()
    for _ in range(16):
        trial = study.ask()
        cand = suggest_student(trial, name, limits=SpaceLimits(recipe=True))
        assert not {"width", "depth", "embed_dim"} & cand.train.keys()
        assert set(cand.arch) <= {"heads"}  # size-neutral only: the transformer's head count
        args = trial_args(TrainArgs(), cand)
        config = json.loads(args.student_config) if args.student_config else {}
        model = students.build_student(name, vocab_size=60, num_labels=2, **config)
        assert model.num_parameters() == default  # the architecture is the default one
        assert args.batch_size in BATCH_SIZES and args.loss in LOSSES and 0 <= args.warmup_ratio <= 0.2
        assert ("kl" == args.loss) == (f"{name}.temperature" in trial.params)  # T only where it is used
        assert "default-arch" in cand.describe() and ("kl T=" in cand.describe()) == (args.loss == "kl")
        assert replay(trial.params, (name,), limits=SpaceLimits(recipe=True)) == cand
        losses.add(args.loss)
        frozen.add(args.freeze_embeddings)
        study.tell(trial, 0.0)
    assert losses == set(LOSSES) and frozen == {False, True}


def test_the_recipe_space_has_no_vocabulary_knob_with_a_word_tokenizer():
    cand = suggest_student(optuna.create_study().ask(), "cnn", tokenizer="word", limits=SpaceLimits(recipe=True))
    assert "vocab_max_size" not in cand.train and "freeze_embeddings" not in cand.train


@pytest.mark.parametrize("name", ["bilstm", "cnn", "transformer"])
def test_the_default_recipe_replays_to_distill_trains_defaults(name):
    from distill.train import LR, TrainArgs
    from search.objective import trial_args
    from search.space import default_recipe, replay

    cand = replay(default_recipe(name), (name,), limits=SpaceLimits(recipe=True))
    dropout = students.build_student(name, vocab_size=60, num_labels=2).config.dropout  # the student's default
    heads = '{"heads": 4}' if name == "transformer" else None  # the transformer's default, written out
    # the learning rate too is written out: a random encoder's default (a trial has no teacher to start from)
    assert trial_args(TrainArgs(student=name), cand) == TrainArgs(student=name, dropout=dropout, student_config=heads,
                                                                  lr=LR)
