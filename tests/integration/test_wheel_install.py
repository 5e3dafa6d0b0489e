"""The built wheel, installed (not editable) into a fresh venv, carries everything `medtune` needs.

No network: the wheel is built without build isolation (setuptools and wheel come from this
environment), installed with --no-deps --no-index, and the fresh venv sees this environment's
dependencies (torch, transformers, ...) through a .pth line. A .pth line only appends a folder to
sys.path, it does not run that folder's own .pth files, so the editable install of the source
tree stays invisible: the test asserts that the imported medtune is the wheel's.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD_JUNK = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "runs", ".pytest_cache",
                                    ".ruff_cache", "*.gguf")


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**env, "HF_HUB_OFFLINE": "1"}, **kw)
    assert proc.returncode == 0, f"{cmd}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """medtune-*.whl built from a copy of the tree (building in place would leave build/ behind)."""
    work = tmp_path_factory.mktemp("wheel")
    src = work / "src-tree"
    shutil.copytree(REPO, src, ignore=BUILD_JUNK)
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", str(work / "dist"), str(src)])
    (whl,) = (work / "dist").glob("medtune-*.whl")
    return whl


def test_wheel_contains_every_packaged_resource(wheel):
    resources = REPO / "src" / "medtune" / "resources"
    shipped = {str(p.relative_to(REPO / "src")) for p in resources.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    assert shipped and not shipped - names, sorted(shipped - names)[:10]
    assert not [n for n in names if n.startswith("tests/")]


def test_installed_wheel_runs_config_show(wheel, tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    purelib = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    # this environment's dependencies, after the venv's own site-packages (so the wheel comes first)
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (purelib / "zz_test_deps.pth").write_text("\n".join(sorted(deps)) + "\n")
    _run([sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", "--no-index", str(wheel)])

    where = _run([str(py), "-c", "import medtune; print(medtune.__file__)"], cwd=tmp_path).stdout.strip()
    assert Path(where).is_relative_to(purelib / "medtune"), where
    shown = _run([str(env_dir / "bin" / "medtune"), "config", "show"], cwd=tmp_path)
    assert "model:" in shown.stdout and "train:" in shown.stdout and "smollm2-135m" in shown.stdout
    listed = _run([str(env_dir / "bin" / "medtune"), "eval", "list"], cwd=tmp_path)  # packaged benchmark YAMLs
    assert "medqa" in listed.stdout and "pubmedqa" in listed.stdout
