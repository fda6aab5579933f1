"""The package as pipx or uv would install it: a wheel built from this tree, installed into a
fresh virtual environment, gives a working ``portalctl`` (the migrations ship inside it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_the_wheel_installs_a_working_portalctl(tmp_path):
    dist = tmp_path / "dist"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(dist), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = list(dist.glob("portalctl-*.whl"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    installed = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-qq", str(wheel)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert installed.returncode == 0, installed.stderr
    program = str(venv / "bin" / "portalctl")
    version = subprocess.run([program, "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("portalctl ")
    work = tmp_path / "work"
    work.mkdir()
    init = subprocess.run(
        [program, "db", "init", "-f", "json"],
        cwd=work,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert init.returncode == 0, init.stderr
    assert '"pending": []' in init.stdout
    found = subprocess.run(
        [program, "accounts", "find", "--name", "x"],
        cwd=work,
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert found.returncode == 0 and "(no rows)" in found.stdout
