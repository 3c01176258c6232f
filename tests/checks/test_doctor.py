"""`radvlm-verl doctor` lists which metric weights are present, with how to get the missing ones."""

import os
import re
import subprocess
import sys


def test_doctor_reports_found_and_missing_weights(tmp_path):
    (tmp_path / "chexbert.pth").write_bytes(b"not a real checkpoint, only its presence is checked")
    env = dict(os.environ, RADVLM_VERL_WEIGHTS=str(tmp_path), HF_HUB_CACHE=str(tmp_path / "empty-cache"))
    proc = subprocess.run([sys.executable, "-m", "radvlm_verl.cli", "doctor"], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    weights = proc.stdout.split("metric weights:")[1]
    assert re.search(r"chexbert\s+found\s+" + re.escape(str(tmp_path / "chexbert.pth")), weights), weights
    missing = [line for line in weights.splitlines() if " missing " in line]
    assert missing and all("used by" in line for line in missing), weights
