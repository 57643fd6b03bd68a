"""The trackers stay optional: not imported by the library, clear error if absent."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_core_never_imports_trackers_and_missing_extra_is_explained():
    code = textwrap.dedent(
        """
        import sys
        import optax_lode, optax_lode.tracking, optax_lode.cli
        optax_lode.cli.build_parser()
        heavy = sorted(m for m in sys.modules
                       if m.split(".")[0] in ("mlflow", "tensorboard", "sqlalchemy"))
        assert not heavy, heavy
        # Simulate an environment without the extra.
        sys.modules["mlflow"] = None
        sys.modules["tensorboard"] = None
        from optax_lode import Trajectories
        from optax_lode.tracking import LodeDiagnosticsLogger
        for call in (lambda: Trajectories.from_mlflow("x"),
                     lambda: Trajectories.from_tensorboard("."),
                     lambda: LodeDiagnosticsLogger(tensorboard=".")):
            try:
                call()
            except ImportError as err:
                assert "pip install -e '.[tracking]'" in str(err), err
            else:
                raise AssertionError("no ImportError")
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == "ok"
