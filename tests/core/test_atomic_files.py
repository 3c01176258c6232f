"""atomic_path: the target appears whole or not at all, and no temporary file is left behind."""

import pytest

from radvlm_verl.core.atomic_files import atomic_path, write_text_atomic


def test_failed_write_keeps_the_previous_file_and_leaves_no_temporary(tmp_path):
    target = write_text_atomic(tmp_path / "sub" / "table.md", "old\n")
    with pytest.raises(RuntimeError, match="disk full"):
        with atomic_path(target) as tmp:
            tmp.write_text("half of the new")
            raise RuntimeError("disk full")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in target.parent.iterdir()) == ["table.md"]


def test_successful_write_replaces_the_target(tmp_path):
    target = write_text_atomic(tmp_path / "table.md", "old\n")
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent and tmp != target
        tmp.write_text("new\n")
        assert target.read_text() == "old\n"  # nothing visible before the block ends
    assert target.read_text() == "new\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.md"]
