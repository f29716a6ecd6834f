"""A killed search resumes with the same command; two workers share one study without losing or
duplicating a trial."""

import time

import optuna
import pytest
import sqlalchemy.exc
from search_helpers import make_labels, start, tiny, trials_of

from search.run import main

FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


@pytest.fixture(scope="module")
def labels(tmp_path_factory, tiny_teacher, sst_dir):
    return make_labels(tmp_path_factory, tiny_teacher, sst_dir)


def _wait_for(db, name, n, proc, timeout=180.0):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            trials = trials_of(f"sqlite:///{db}", name) if db.is_file() else []
        except KeyError:  # the study is not created yet
            trials = []
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError):
            # the search is creating the database's tables right now, and this reader raced it to do the same
            # (the search itself retries: search.storage.open_storage)
            trials = []
        if sum(t.state in FINISHED for t in trials) >= n:
            return
        assert proc.poll() is None, "the search ended before it could be killed"
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_killed_search_resumes_with_every_finished_trial_intact(labels, tmp_path):
    out = tmp_path / "s"
    storage, name = f"sqlite:///{out}/study.db", "sst2-cnn+bilstm-metric"
    argv = tiny(labels, out, "--student", "cnn,bilstm", "--trials", 6, "--epochs", 3)
    proc = start(argv, tmp_path / "log.txt")
    try:
        _wait_for(out / "study.db", name, 2, proc)
    finally:
        proc.kill()  # SIGKILL: no handler runs, whatever was running stays RUNNING in the study
        proc.wait()
    before = {t.number: (t.state, t.params, t.values) for t in trials_of(storage, name) if t.state in FINISHED}
    running = [t.number for t in trials_of(storage, name) if t.state == optuna.trial.TrialState.RUNNING]
    assert len(before) >= 2

    summary = main(argv)  # the same command
    after = trials_of(storage, name)
    for n, (state, params, values) in before.items():  # every finished trial intact
        assert (after[n].state, after[n].params, after[n].values) == (state, params, values)
    finished = [t for t in after if t.state in FINISHED]
    assert len(finished) == 6 == summary["trials"] - summary["failed"]
    for n in running:  # a trial killed mid-way is failed and queued again with its parameters
        assert after[n].state == optuna.trial.TrialState.FAIL
        retry = [t for t in after if t.user_attrs.get("retry_of") == n]
        if after[n].params:  # (unless it was killed before sampling any)
            assert len(retry) == 1 and retry[0].state in FINISHED
            assert retry[0].params.items() >= after[n].params.items()


def _assert_no_duplicate_or_lost(trials, target):
    numbers = [t.number for t in trials]
    assert numbers == list(range(len(trials)))  # no trial number lost or recorded twice
    assert all(t.state in FINISHED for t in trials)
    assert target <= len(trials) <= target + 1  # a race can start one more than asked, never fewer
    configs = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(configs)) == len(configs)  # no configuration run twice
    return {t.user_attrs["worker"] for t in trials}


def test_two_workers_share_one_sqlite_study(labels, tmp_path):
    out = tmp_path / "w"
    summary = main(tiny(labels, out, "--student", "cnn,bilstm", "--trials", 6, "--workers", 2))
    trials = trials_of(f"sqlite:///{out}/study.db", "sst2-cnn+bilstm-metric")
    workers = _assert_no_duplicate_or_lost(trials, 6)
    assert len(workers) == 2 and summary["trials"] == len(trials)
    for t in trials:
        if "rejected" not in t.user_attrs:
            assert (out / "trials" / f"{t.number:04d}" / "tb").is_dir()


@pytest.mark.slow
def test_two_workers_share_one_journal_file(labels, tmp_path):
    out = tmp_path / "j"
    out.mkdir()
    journal = f"journal:{out / 'study.log'}"
    main(tiny(labels, out / "run", "--student", "cnn", "--trials", 6, "--workers", 2, "--storage", journal))
    from optuna.storages.journal import JournalFileBackend, JournalStorage

    storage = JournalStorage(JournalFileBackend(str(out / "study.log")))
    trials = optuna.load_study(study_name="sst2-cnn-metric", storage=storage).get_trials()
    assert len(_assert_no_duplicate_or_lost(trials, 6)) == 2
