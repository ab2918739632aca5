"""One place holds the install source (cijepa_lite/release.py): every notebook's install cell and the README's Colab
links agree with it, and `python -m cijepa_lite release` rewrites them for a fork or a new version."""
import shutil
from pathlib import Path

import nbformat
import pytest

from cijepa_lite import __version__, release
from cijepa_lite.cli import main

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_notebook_installs_the_release_tag_from_the_one_place(path):
    code = [c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code"]
    assert code[0] == release.install_cell()  # the first code cell, before anything imports the kit
    assert f"git+{release.REPOSITORY}@v{release.VERSION}'" in code[0]
    assert sum(release.REPOSITORY in src for src in code) == 1  # no other cell names where the kit comes from


def test_the_package_version_and_the_readme_links_come_from_release_py(capsys):
    assert __version__ == release.VERSION and release.tag() == f"v{__version__}"
    assert 'attr = "cijepa_lite.release.VERSION"' in (ROOT / "pyproject.toml").read_text()
    links = (ROOT / "README.md").read_text().count("https://colab.research.google.com/github/")
    assert links == (ROOT / "README.md").read_text().count(release.colab_link()) >= 5
    assert main(["release", "--check"]) == 0


def test_a_fork_changes_one_line_and_the_release_command_rewrites_every_notebook_and_link(tmp_path, monkeypatch):
    for part in ("notebooks", "README.md"):
        copy = shutil.copytree if (ROOT / part).is_dir() else shutil.copy
        copy(ROOT / part, tmp_path / part)
    monkeypatch.setattr(release, "REPOSITORY", "https://github.com/someone/my-fork")
    monkeypatch.setattr(release, "VERSION", "0.3.1")
    assert release.sync(tmp_path, write=False) == [*(tmp_path / "notebooks" / p.name for p in NOTEBOOKS),
                                                   tmp_path / "README.md"]
    release.sync(tmp_path)
    assert release.sync(tmp_path, write=False) == []
    for path in NOTEBOOKS:
        first = next(c for c in nbformat.read(tmp_path / "notebooks" / path.name, 4).cells if c.cell_type == "code")
        assert "'cijepa-lite @ git+https://github.com/someone/my-fork@v0.3.1'" in first.source
    readme = (tmp_path / "README.md").read_text()
    assert "colab.research.google.com/github/someone/my-fork/blob/main/notebooks/02_pretrain.ipynb" in readme
    assert "colab.research.google.com/github/cijepa-lite/" not in readme


def test_a_notebook_without_an_install_cell_is_named(tmp_path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "README.md").write_text("")
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(1)")]),
                   tmp_path / "notebooks" / "06_new.ipynb")
    with pytest.raises(ValueError, match="06_new.ipynb: no install cell"):
        release.sync(tmp_path)
