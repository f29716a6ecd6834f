"""Two search commands, as on two machines, against one PostgreSQL study on loopback.

Runs when SEARCH_TEST_POSTGRES_URL names a database it may write to; .ci/run starts a throwaway
PostgreSQL from Debian's packages, sets it, and tears the server down afterwards. Skipped otherwise."""

import os
import uuid

import optuna
import pytest
from search_helpers import make_labels, start, tiny, trials_of

URL = os.environ.get("SEARCH_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not URL, reason="set SEARCH_TEST_POSTGRES_URL (see .ci/run) to run it")
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


@pytest.fixture(scope="module")
def labels(tmp_path_factory, tiny_teacher, sst_dir):
    return make_labels(tmp_path_factory, tiny_teacher, sst_dir)


def test_two_commands_share_one_postgresql_study(labels, tmp_path):
    name = f"ci-{uuid.uuid4().hex[:8]}"
    procs = [start(tiny(labels, tmp_path / f"machine{i}", "--student", "cnn,bilstm", "--trials", 8,
                        "--storage", URL, "--study-name", name, "--seed", i), tmp_path / f"log{i}.txt")
             for i in range(2)]
    for p in procs:
        assert p.wait(timeout=300) == 0, [(tmp_path / f"log{i}.txt").read_text()[-2000:] for i in range(2)]
    trials = trials_of(URL, name)
    assert [t.number for t in trials] == list(range(len(trials)))  # none lost, none twice
    assert all(t.state in FINISHED for t in trials) and 8 <= len(trials) <= 9
    configs = [tuple(sorted(t.params.items())) for t in trials]
    assert len(set(configs)) == len(configs)
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both commands ran trials
    for i in range(2):  # each machine reports the whole study
        assert (tmp_path / f"machine{i}" / "leaderboard.md").is_file()
    optuna.delete_study(study_name=name, storage=URL)
