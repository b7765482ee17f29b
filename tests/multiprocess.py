"""One way to run a real ``accelerate launch`` from a test: a reserved port, a clean environment, a hang guard that
kills the whole process tree, and each rank's own output in the failure message.

Why not ``--main_process_port 0``: accelerate 1.x turns 0 into ``get_free_port()`` (bind port 0, read it, close the
socket) and torchrun's static rendezvous binds that number again later, in its TCPStore. In between the port is free
for anyone: an outgoing connection's source port, a listener of another test or of another job on the machine. On a
busy machine that race loses now and then. :func:`reserve_port` closes it: the port it returns sits in TIME_WAIT, which
the kernel never hands out to ``bind(0)`` nor to outgoing connections, while TCPStore (which binds with SO_REUSEADDR)
can still take it.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

#: The hang guard of every subprocess a test starts, not a speed check: a loaded 2-core machine runs them many times
#: slower than an idle one.
TIMEOUT = int(os.environ.get("HF_MTL_TEST_TIMEOUT", "1800"))

# Variables that would make the launched processes join (or configure) some other process group.
_LEAKY_PREFIXES = ("TORCHELASTIC_", "ACCELERATE_", "TORCH_ELASTIC_", "PET_")
_LEAKY_NAMES = {"RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "ROLE_RANK", "ROLE_WORLD_SIZE",
                "MASTER_ADDR", "MASTER_PORT", "CUDA_VISIBLE_DEVICES"}


def accelerate_cli() -> str | None:
    """The ``accelerate`` script next to this Python (the venv's), else the one on PATH."""
    local = os.path.join(os.path.dirname(sys.executable), "accelerate")
    return local if os.path.exists(local) else shutil.which("accelerate")


requires_accelerate = pytest.mark.skipif(accelerate_cli() is None, reason="accelerate CLI not installed")


def reserve_port(host: str = "127.0.0.1") -> int:
    """A free port held in TIME_WAIT for the next minute: ``bind(0)`` and outgoing connections skip it, and a server
    that binds with SO_REUSEADDR (torch's TCPStore) gets it (the trick of Yelp's ``ephemeral-port-reserve``)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind((host, 0))
        server.listen(1)
        port = server.getsockname()[1]
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as client:
            client.connect((host, port))
            accepted, _ = server.accept()
            accepted.close()  # the accepting side closes first, so the port (not the client's) goes to TIME_WAIT
    return port


def launch_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """This process's environment minus any process-group settings, offline, one thread per process, and a private
    ``HF_HOME`` (no shared caches, no user accelerate config)."""
    env = {k: v for k, v in os.environ.items() if k not in _LEAKY_NAMES and not k.startswith(_LEAKY_PREFIXES)}
    env.update({"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
                "HF_HOME": str(tmp_path / "hf_home")})
    env.update(extra)
    return env


@dataclass
class Launch:
    """What a launch did: its exit status, console output, and each rank's own stderr (torchrun's per-rank logs)."""

    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    rank_logs: dict[str, str]

    def report(self, tail: int = 6000) -> str:
        """The launcher's output tail, then each rank's stderr tail: the root cause, not only elastic's summary."""
        parts = [f"$ {' '.join(self.command)}\nexit status {self.returncode}",
                 f"--- launcher stdout (tail)\n{self.stdout[-tail // 2:]}",
                 f"--- launcher stderr (tail)\n{self.stderr[-tail:]}"]
        parts += [f"--- {name} (tail)\n{text[-tail:]}" for name, text in self.rank_logs.items()]
        return "\n".join(parts)

    def check(self) -> Launch:
        assert self.returncode == 0, self.report()
        return self


def _rank_logs(log_dir: Path) -> dict[str, str]:
    """``<log_dir>/<run>/attempt_<n>/<rank>/{stderr.log,error.json}`` as ``{"rank 0 stderr.log": text, ...}``."""
    logs = {}
    for path in sorted(log_dir.glob("*/attempt_*/*/*")):
        if path.name in ("stderr.log", "error.json") and path.stat().st_size:
            logs[f"rank {path.parent.name} {path.name}"] = path.read_text(errors="replace")
    return logs


def accelerate_launch(args: list[str], tmp_path: Path, *, num_processes: int = 2, env: dict[str, str] | None = None,
                      timeout: int = TIMEOUT) -> Launch:
    """``accelerate launch`` of ``args`` (a script and its arguments, or ``-m module ...``) on CPU.

    Several processes go through accelerate's torchrun launcher (``--multi_gpu``; the scripts set ``use_cpu`` so they
    form one gloo group) on a reserved port, with each rank's output teed into ``tmp_path/launch-logs-*``; one process
    runs through ``--cpu``. On timeout the whole process tree is killed and the test fails with what it printed.
    """
    cli = accelerate_cli()
    if cli is None:
        pytest.skip("accelerate CLI not installed")
    log_dir = Path(tempfile.mkdtemp(prefix="launch-logs-", dir=tmp_path))  # one per launch: no mixed-up rank logs
    if num_processes > 1:
        # --tee 3: each rank's stdout and stderr go to its own files under log_dir AND to this console.
        launcher = ["--multi_gpu", "--main_process_port", str(reserve_port()), "--tee", "3", "--log_dir", str(log_dir)]
    else:
        launcher = ["--cpu"]
    command = [cli, "launch", *launcher, "--num_processes", str(num_processes), "--num_machines", "1",
               "--mixed_precision", "no", "--dynamo_backend", "no", *args]
    # A session of its own, so a timeout kills the ranks too, not only the launcher (orphans would hold CPU and ports).
    process = subprocess.Popen(command, cwd=REPO, env=env if env is not None else launch_env(Path(tmp_path)),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        result = Launch(command, -9, stdout, stderr, _rank_logs(log_dir))
        pytest.fail(f"accelerate launch still running after {timeout} s (killed):\n{result.report()}")
    return Launch(command, process.returncode, stdout, stderr, _rank_logs(log_dir))
