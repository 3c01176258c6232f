"""`radvlm-verl demo` (the README's first command) converts the bundled sample and scores it through verl."""

import pytest

pytestmark = [pytest.mark.ray, pytest.mark.slow]


def test_demo_scores_every_candidate_through_the_reward_loop(tmp_path, capsys):
    from radvlm_verl.demo.run import run_demo

    results = run_demo(tmp_path / "demo")
    assert (tmp_path / "demo" / "train.parquet").exists() and (tmp_path / "demo" / "val.parquet").exists()
    by_row: dict[str, dict[str, float]] = {}
    for r in results:
        by_row.setdefault(r["id"], {})[r["candidate"]] = r["score"]
    assert len(results) == 3 * len(by_row) == 21
    grounding = {k: v for k, v in by_row.items() if "exact boxes" in v}
    reports = {k: v for k, v in by_row.items() if "copy of reference" in v}
    assert len(grounding) == 1 and len(reports) == 6
    for scores in reports.values():
        assert scores["copy of reference"] == pytest.approx(1.0)
        assert 0.0 < scores["first sentence only"] < 1.0
    for scores in grounding.values():
        assert scores["exact boxes"] == pytest.approx(1.0, abs=0.02)  # rendering rounds to 2 decimals
        assert 0.0 < scores["boxes shifted by 0.1"] < scores["exact boxes"]
        assert scores["no box"] == 0.0
    assert "rewards (rouge_l" in capsys.readouterr().out
