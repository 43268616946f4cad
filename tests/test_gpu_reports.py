"""The machinery of `make gpu-reports`, exercised in the smoke profile on the CPU (CI has no GPU)."""

import json
from pathlib import Path

import pytest

from attnlab.course import gpu_reports

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_report_holds_device_versions_time_and_the_recorded_metrics(tmp_path):
    report = gpu_reports.run_lab("lab03_transformer", tmp_path, root=ROOT, profile="smoke")
    written = json.loads((tmp_path / "lab03_transformer.json").read_text())
    assert written == report
    assert report["profile"] == "smoke" and report["torch"] and report["device"]
    assert report["seconds"] > 0
    accuracy = report["metrics"]["previous_token_accuracy"]   # recorded by the notebook's record_metric call
    assert 0.0 <= accuracy <= 1.0


def test_refuses_to_run_without_cuda_unless_asked(monkeypatch):
    monkeypatch.setattr(gpu_reports.torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="no CUDA"):
        gpu_reports.main(["lab03_transformer"])


@pytest.mark.slow
def test_the_exec_engine_needs_no_jupyter_and_records_the_same_metrics(tmp_path):
    """The GPU machines have torch but no papermill: the exec engine runs the cells in a plain process."""
    report = gpu_reports.run_lab("lab03_transformer", tmp_path, root=ROOT, profile="smoke", engine="exec")
    assert 0.0 <= report["metrics"]["previous_token_accuracy"] <= 1.0
    code = gpu_reports.notebook_code(ROOT / "solutions" / "lab03_transformer" / "lab03_transformer.ipynb", "full")
    assert code[1] == "profile = 'full'" and "profile" in code[0]
