"""Install without make: the wheel built from this checkout, installed into a fresh virtual environment that borrows
the project's installed libraries (torch and the rest: no network), runs `taller --help` and a 5-second demo from
another folder, with TALLER_DATA pointing at a small refranes.txt written here."""

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from conftest import PROVERBS, THREADS

ROOT = Path(__file__).resolve().parents[1]


def run(args, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def test_the_wheel_installs_into_a_fresh_venv_and_runs_the_demo(tmp_path):
    wheels = tmp_path / "wheels"
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "-q",
            "-w",
            wheels,
            ROOT,
        ],
        cwd=tmp_path,
    )
    (wheel,) = wheels.glob("taller-*.whl")
    venv = tmp_path / "v"
    run([sys.executable, "-m", "venv", "--without-pip", venv])  # this pip installs into it (--python): no ensurepip
    bin_dir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bin_dir / "python"
    # the project's libraries (torch, numpy…), read after the venv's own: the wheel's taller comes first
    own = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip()
    (Path(own) / "borrowed.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel])

    elsewhere = tmp_path / "aula"
    elsewhere.mkdir()
    data = tmp_path / "datos"
    data.mkdir()
    (data / "refranes.txt").write_text("\n".join(PROVERBS * 20) + "\n", encoding="utf-8")
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "TALLER_DATA": str(data),
        "TALLER_CACHE": str(tmp_path / "cache"),
        "OMP_NUM_THREADS": str(THREADS),
    }
    where = run([python, "-c", "import taller; print(taller.__file__)"], cwd=elsewhere, env=env).stdout
    assert where.startswith(str(venv))  # the installed wheel, not this checkout
    assert "generate" in run(["taller", "--help"], cwd=elsewhere, env=env).stdout
    demo = run(["taller", "demo", "--max-time", "5", "--out", "runs/demo"], cwd=elsewhere, env=env).stdout
    assert "Todo está en runs/demo/" in demo and (elsewhere / "runs" / "demo" / "report.html").is_file()
    assert "Prueba: taller generate runs/demo" in demo  # the taller on PATH: the venv's
