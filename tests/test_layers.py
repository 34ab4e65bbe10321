"""The layers point one way (docs/architecture.md): checked by import-linter's contracts in pyproject.toml and by
importing scaling_env in a fresh interpreter."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is a dev dependency: pip install -e '.[dev]'"
    proc = subprocess.run([exe, "--config", str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 broken" in proc.stdout


def test_importing_scaling_env_loads_no_agents_gymnasium_free_core():
    code = (
        "import sys, scaling_env\n"
        "assert not any(m.split('.')[0] == 'agents' for m in sys.modules), 'scaling_env imported agents'\n"
        "assert 'stable_baselines3' not in sys.modules and 'torch' not in sys.modules, 'SB3/torch loaded eagerly'\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
