"""Runs a script inside a venv holding its pinned packages: the checks in scripts/ that need
packages beyond the standard library call `in_venv(VENV, REQUIREMENTS)` first."""
import os
import pathlib
import subprocess
import sys


def in_venv(venv: pathlib.Path, requirements: pathlib.Path):
    """Re-runs the calling script in `venv`, installing `requirements` there first when
    they changed (a stamp file holds the last installed copy)."""
    python = venv / "bin" / "python"
    if pathlib.Path(sys.prefix).resolve() == venv.resolve():
        return
    stamp = venv / ".requirements"
    if not stamp.exists() or stamp.read_text() != requirements.read_text():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(requirements)],
                       check=True)
        stamp.write_text(requirements.read_text())
    os.execv(str(python), [str(python), *sys.argv])


def with_package(venv: pathlib.Path, package: pathlib.Path) -> pathlib.Path:
    """The python of `venv` (made when missing) with the local package `package` installed
    into it afresh, as `pip install ./package` gives it to a user (its version does not
    change while its code does, hence --force-reinstall)."""
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                    "--force-reinstall", "--no-deps", str(package)], check=True)
    return python
