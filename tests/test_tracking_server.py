"""Export to and import from a real ``mlflow server`` on loopback.

The server is started as a subprocess on 127.0.0.1 and a free port, in its own
session so the whole process group (the CLI and its uvicorn worker) is always
killed at the end. Every wait is bounded.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

pytest.importorskip("mlflow")
pytest.importorskip("flask")

from optax_lode.runs import Trajectories
from optax_lode.tracking import from_mlflow, log_trajectories_to_mlflow

START_TIMEOUT = 150.0  # seconds; a loaded 2-core machine takes 15-40 s


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group, then SIGKILL what is left."""
    for sig, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
        # The CLI exited; its worker may linger in the group a moment longer.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return


@pytest.fixture
def server(tmp_path):
    port = _free_port()
    log = open(tmp_path / "server.log", "wb")  # closed in the finally below
    env = dict(os.environ)
    # The job runner (huey workers) is not needed to log and read runs.
    env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                log.flush()
                tail = (tmp_path / "server.log").read_text()[-3000:]
                pytest.fail(f"mlflow server exited with {proc.returncode}:\n{tail}")
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not answer within {START_TIMEOUT} s")
            time.sleep(0.5)
        yield url
    finally:
        _stop(proc)
        log.close()


@pytest.mark.slow
def test_log_through_server_and_import_from_it(server):
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    rng = np.random.default_rng(1)
    runs, ticks = 6, 15
    mask = np.ones((runs, ticks), bool)
    mask[4, 9:] = False
    src = Trajectories.from_arrays(
        rng.uniform(0.2, 2.0, (runs, ticks)),
        rng.uniform(0.0, 1.0, (runs, ticks)),
        rng.uniform(1e-3, 1e-1, (runs, ticks)),
        mask=mask,
        run_ids=[f"ran-ü-{i}" for i in range(runs)],
        info={"schedule": ["cosine"] * runs, "seed": list(range(runs))},
    )
    ids = log_trajectories_to_mlflow(src, experiment="served", tracking_uri=server)
    # Plus one run logged the way a training script would, at irregular steps.
    client = MlflowClient(tracking_uri=server)
    exp = client.get_experiment_by_name("served").experiment_id
    rid = client.create_run(exp, run_name="live").info.run_id
    t0 = int(time.time() * 1000)
    steps = [0, 1, 2, 4, 5, 7, 8, 9, 10, 12, 13, 14]
    client.log_batch(
        rid,
        metrics=[Metric("train_loss", 1.0 + s, t0 + s, s) for s in steps]
        + [Metric("lr", 0.01, t0, 0), Metric("val_accuracy", 0.5, t0 + 9, 9)],
    )
    client.set_terminated(rid)

    back = from_mlflow("served", tracking_uri=server, tick=1)
    order = [back.run_ids.index(i) for i in ids]
    np.testing.assert_array_equal(back.loss[order], src.loss)
    np.testing.assert_array_equal(back.mask[order], src.mask)
    live = back.run_ids.index(rid)
    assert back.mask[live].tolist() == [s in steps for s in range(15)]
    np.testing.assert_array_equal(back.metric[live][back.mask[live]], 0.5)

    with pytest.raises(ValueError, match="no MLflow experiment named 'servd'"):
        from_mlflow("servd", tracking_uri=server)
