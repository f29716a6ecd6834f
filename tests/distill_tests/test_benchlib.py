"""scripts/benchlib.run_jobs: finished runs are reused only when the same flags made them."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

from benchlib import run_jobs  # noqa: E402

FAKE_TRAIN = '''
import json, sys
from pathlib import Path
out = Path(sys.argv[sys.argv.index("--output-dir") + 1])
out.mkdir(parents=True, exist_ok=True)
(out / "report.json").write_text(json.dumps({"student": {"dev_metric": 0.5}, "argv": sys.argv[1:]}))
'''


def test_a_finished_run_is_reused_by_its_own_flags_and_refused_under_others(tmp_path, monkeypatch):
    (tmp_path / "fake_train.py").write_text(FAKE_TRAIN)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    run = tmp_path / "runs" / "a"
    argv = ["--dropout", "0.2", "--output-dir", str(run)]
    run_jobs([(run, argv)], 2, module="fake_train")
    report = json.loads((run / "report.json").read_text())
    assert report["bench_argv"] == argv and report["argv"] == [*argv, "--threads", "1"]

    (run / "report.json").write_text(json.dumps({**report, "marker": 1}))
    run_jobs([(run, argv)], 1, module="fake_train")  # the same flags: reused, not run again
    assert json.loads((run / "report.json").read_text())["marker"] == 1

    with pytest.raises(SystemExit, match=r"a was trained with other flags \(--dropout 0.2 "):
        run_jobs([(run, ["--dropout", "0.5", "--output-dir", str(run)])], 1, module="fake_train")


def test_bench_default_reuses_a_run_spelled_from_another_folder_and_refuses_other_flags(tmp_path, capsys,
                                                                                        monkeypatch):
    import bench_default

    run = tmp_path / "moved" / "s0-used"
    run.mkdir(parents=True)
    made = ["--student", "bilstm", "--seed", "0", "--output-dir", "runs/bench-default/s0-used", "--width", "300"]
    (run / "bench.json").write_text(json.dumps({"dev": 88.0, "argv": made}))
    same = [*made[:5], str(run), "--width", "300"]
    assert bench_default.run_one(same, run, dense=False)["dev"] == 88.0  # nothing trained
    with pytest.raises(SystemExit, match="made by other flags.*--width 300"):
        bench_default.run_one([*made[:5], str(run)], run, dense=False)
    monkeypatch.setattr(sys, "argv", ["bench_default.py", "--train-flags=--width 150", "--report-only"])
    with pytest.raises(SystemExit):  # flags without a tag would overwrite the default's table
        bench_default.main()
    assert "give it a --tag" in capsys.readouterr().err
