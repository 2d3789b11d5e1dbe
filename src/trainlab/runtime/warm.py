"""Warm start: a server that has imported torch, Lightning and trainlab forks each job.

A fresh ``python -m trainlab.train`` spends about 4.5 s importing torch and Lightning before
its first step. ``python -m trainlab.warm`` imports them once and waits on a socket of its
own (this user's, this Python environment's); while it runs, ``python -m trainlab.train``
(and ``eval``, ``predict``, ``export``) hands its command line, working directory,
environment, standard streams, umask and CPU affinity to it, and the server forks a child
that runs the command as a fresh process would. The command's process stays: it forwards
signals to the child (Ctrl-C, SLURM's SIGTERM/SIGUSR1) and exits with the child's status; if
it is killed, the child is killed with it.

The server refuses a job it cannot run as a fresh process would, naming why, and the command
then starts cold: an environment variable read at import (``OMP_NUM_THREADS``, ``PYTHON*``,
``LD_*``, ...) that differs from the server's, another cgroup or SLURM job, a module file
changed since the server imported it (the server then exits), a working directory that would
shadow an imported package, threads running in the server, or CUDA started in it. The
child's unseeded generators (Python's, NumPy's, torch's) are seeded afresh from the OS.
``TRAINLAB_WARM=0`` never uses a server.
"""

from __future__ import annotations

import array
import contextlib
import hashlib
import json
import os
import signal
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ENV_OFF = "TRAINLAB_WARM"  # 0: never use a warm server
# Read by a job at run time, never at import: a job may bring its own. Everything else in
# the environment must equal the server's.
RUNTIME_ENV_PREFIXES = ("SLURM_", "SUBMITIT_", "WANDB_", "TRAINLAB_", "HYDRA_", "PMI_", "MLFLOW_")
RUNTIME_ENV = {
    "PWD",
    "OLDPWD",
    "SHLVL",
    "_",
    "TERM",
    "COLUMNS",
    "LINES",
    "MASTER_ADDR",
    "MASTER_PORT",
    "RANK",
    "LOCAL_RANK",
    "WORLD_SIZE",
    "NODE_RANK",
    "GROUP_RANK",
    "LOCAL_WORLD_SIZE",
    "CUDA_VISIBLE_DEVICES",  # read when CUDA starts, which the server never does
}
FORWARDED = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGCONT,
)
MAX_MESSAGE = 1 << 22
IN_CHILD = False  # set in a server's child: its entry point runs the job itself


def socket_path() -> Path:
    """Where this user's server for this Python environment and trainlab listens."""
    import trainlab

    key = "\0".join(
        [os.path.realpath(sys.executable), sys.prefix, str(Path(trainlab.__file__).parent)]
    )
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or "/tmp") / f"trainlab-warm-{os.getuid()}"
    return base / f"{hashlib.sha256(key.encode()).hexdigest()[:16]}.sock"


def runtime_key(name: str) -> bool:
    return name in RUNTIME_ENV or name.startswith(RUNTIME_ENV_PREFIXES)


def _send(conn: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    data = json.dumps(message).encode() + b"\n"
    if fds:
        conn.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        conn.sendall(data)


def _receive(conn: socket.socket, with_fds: int = 0) -> tuple[dict[str, Any] | None, list[int]]:
    """One newline-ended JSON message (None at end of stream) and the descriptors sent with
    its first part."""
    chunks: list[bytes] = []
    fds: list[int] = []
    size = 0
    while True:
        space = socket.CMSG_SPACE(with_fds * array.array("i").itemsize) if with_fds else 0
        data, ancillary, _, _ = conn.recvmsg(65536, space)
        for level, kind, payload in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                got = array.array("i")
                got.frombytes(payload[: len(payload) - len(payload) % got.itemsize])
                fds.extend(got)
        if not data:
            return None, fds
        chunks.append(data)
        size += len(data)
        if data.endswith(b"\n") or size > MAX_MESSAGE:
            return json.loads(b"".join(chunks)), fds


# --- the command's side ------------------------------------------------------------------


def run_warm(module: str) -> int | None:
    """Run ``python -m <module> <sys.argv[1:]>`` in the warm server's child, if a server
    for this environment is running and takes it: the child's exit status, or None to start
    cold (no server, ``TRAINLAB_WARM=0``, or the server refused, which is said on stderr)."""
    if IN_CHILD or os.environ.get(ENV_OFF) == "0":
        return None
    path = socket_path()
    if not path.exists():
        return None
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(path))
    except OSError:
        conn.close()
        return None
    request = {
        "module": module,
        "argv": sys.argv,
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "umask": _umask(),
        "affinity": sorted(os.sched_getaffinity(0)),
        "flags": list(sys.flags),
        "warnoptions": sys.warnoptions,
        "pid": os.getpid(),
    }
    with conn:
        try:
            _send(conn, request, fds=[0, 1, 2])
            answer, _ = _receive(conn)
        except OSError:  # the server went away meanwhile
            answer = None
        if answer is None or "refused" in answer:
            reason = answer["refused"] if answer else "the server closed the connection"
            print(f"trainlab: warm server not used: {reason}; starting cold", file=sys.stderr)
            return None
        child = int(answer["pid"])
        with _forwarding(child):
            status, _ = _receive(conn)
    if status is None:
        print("trainlab: the warm server went away before the job ended", file=sys.stderr)
        return 1
    if "signal" in status:  # die as the child died, so a caller sees the same
        number = int(status["signal"])
        signal.signal(number, signal.SIG_DFL)
        os.kill(os.getpid(), number)
        return 128 + number
    return int(status["exit"])


def take_over(module: str) -> None:
    """What an entry point calls first: exit with the job's status when a warm server ran
    it; return, to run the job here, when none did."""
    if (code := run_warm(module)) is not None:
        raise SystemExit(code)


def stop_server() -> bool:
    """Ask this environment's server to stop once its running jobs end; False if none runs."""
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(str(socket_path()))
    except OSError:
        return False
    with conn:
        _send(conn, {"stop": True})
        answer, _ = _receive(conn)
    return bool(answer and answer.get("stopping"))


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def _forwarding(child: int) -> Iterator[None]:
    def forward(number: int, frame: object) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, number)

    before = {number: signal.signal(number, forward) for number in FORWARDED}
    try:
        yield
    finally:
        for number, handler in before.items():
            signal.signal(number, handler)


# --- the server's side -------------------------------------------------------------------


class Server:
    """Imports what a job needs, then forks one child per accepted command."""

    def __init__(self, path: Path, idle_seconds: float) -> None:
        self.path = path
        self.idle_seconds = idle_seconds
        self.children: dict[int, socket.socket] = {}
        self.imported: dict[str, float] = {}
        self.native_threads = 1
        self.cgroup = _cgroup(os.getpid())
        self.stopping = False
        self.started_env = dict(os.environ)  # before the imports
        self.import_env: dict[str, str | None] = {}  # what the imports set (None: removed)

    def warm_up(self) -> None:
        """Import what a job imports before its first step, and note each module file's
        modification time."""
        import importlib

        for name in WARM_IMPORTS:
            importlib.import_module(name)
        self.imported = _module_times()
        self.native_threads = _threads()
        # torch and Lightning set a few variables when imported (KMP_INIT_AT_FORK, ...): a
        # cold process would have them too, so each child gets them over the command's.
        self.import_env = {
            key: os.environ.get(key)
            for key in set(os.environ) | set(self.started_env)
            if os.environ.get(key) != self.started_env.get(key)
        }

    def refusal(self, request: dict[str, Any], peer_pid: int) -> str | None:
        """Why this request cannot run as a fresh process would; None when it can."""
        env, mine = request["env"], self.started_env
        differs = sorted(
            key
            for key in set(env) | set(mine)
            if not runtime_key(key) and env.get(key) != mine.get(key)
        )
        if differs:
            return f"the environment differs from the server's in {', '.join(differs[:5])}"
        if env.get("SLURM_JOB_ID") != mine.get("SLURM_JOB_ID"):
            return "the command runs in another SLURM job than the server"
        if _cgroup(peer_pid) != self.cgroup:
            return "the command runs in another cgroup than the server (its limits would not hold)"
        if request["flags"] != list(sys.flags) or request["warnoptions"] != sys.warnoptions:
            return "the command's Python options differ from the server's"
        now = _module_times(self.imported)
        if changed := [name for name, t in now.items() if t != self.imported[name]]:
            self.stopping = True
            return (
                f"{changed[0]} changed since the server imported it (the server stops; "
                "start it again)"
            )
        tops = {name.split(".")[0] for name in sys.modules}
        with contextlib.suppress(OSError):
            if shadow := sorted(tops & {Path(e).stem for e in os.listdir(request["cwd"])}):
                return f"the working directory holds {shadow[0]}, which would shadow the package"
        return _untouched(self.native_threads)

    def serve(self) -> None:
        import selectors
        import time

        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        folder = self.path.parent.stat()
        if folder.st_uid != os.getuid() or folder.st_mode & 0o077:
            raise SystemExit(f"trainlab: {self.path.parent} must be this user's alone (mode 700)")
        if listening(self.path):
            raise SystemExit(f"trainlab: a warm server already listens at {self.path}")
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # a server that died left it
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.path))
        bound = self.path.stat().st_ino  # removed at exit only if it is still this one
        listener.listen(16)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        selector = selectors.DefaultSelector()
        selector.register(listener, selectors.EVENT_READ)
        last = time.monotonic()
        print(f"trainlab: warm server {os.getpid()} listening at {self.path}", flush=True)
        try:
            while not (self.stopping and not self.children):
                if self.children:
                    last = time.monotonic()
                elif time.monotonic() - last > self.idle_seconds:
                    break
                for _ in selector.select(timeout=0.1):
                    conn, _ = listener.accept()
                    self._take(conn, listener)
                    last = time.monotonic()
                self._reap()
        finally:
            with contextlib.suppress(FileNotFoundError):
                if self.path.stat().st_ino == bound:
                    self.path.unlink()
            listener.close()

    def _stop(self, number: int, frame: object) -> None:
        self.stopping = True  # the running jobs finish and get their status first

    def _take(self, conn: socket.socket, listener: socket.socket) -> None:
        creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
        peer_pid, peer_uid = array.array("i", creds)[0], array.array("i", creds)[1]
        fds: list[int] = []
        try:
            if peer_uid != os.getuid():
                return
            request, fds = _receive(conn, with_fds=3)
            if request is not None and request.get("stop"):
                self.stopping = True
                _send(conn, {"stopping": os.getpid()})
                return
            if request is None or len(fds) != 3:
                return
            if self.stopping:
                _send(conn, {"refused": "the server is stopping"})
                return
            if reason := self.refusal(request, peer_pid):
                _send(conn, {"refused": reason})
                return
            pid = os.fork()
            if pid == 0:
                listener.close()
                for other in self.children.values():
                    other.close()
                env = {**request["env"], **self.import_env}
                _child(
                    conn, fds, {**request, "env": {k: v for k, v in env.items() if v is not None}}
                )
            self.children[pid] = conn
            _send(conn, {"pid": pid})
            conn = None  # type: ignore[assignment]  # kept until the child's status is sent
        except OSError:
            pass
        finally:
            for fd in fds:
                os.close(fd)
            if conn is not None:
                conn.close()

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            conn = self.children.pop(pid, None)
            if conn is None:
                continue
            code = os.waitstatus_to_exitcode(status)
            with contextlib.suppress(OSError):
                _send(conn, {"signal": -code} if code < 0 else {"exit": code})
            conn.close()


def _module_times(names: dict[str, float] | None = None) -> dict[str, float]:
    """Modification time of each imported module's file (of ``names`` only when given)."""
    found = {}
    for name, module in list(sys.modules.items()):
        if names is not None and name not in names:
            continue
        file = getattr(module, "__file__", None)
        if file:
            with contextlib.suppress(OSError):
                found[name] = os.stat(file).st_mtime
    if names is not None:
        for name in names.keys() - found.keys():
            found[name] = -1.0  # gone
    return found


def listening(path: Path) -> bool:
    """Whether a server listens at ``path`` (a socket file left by a dead one does not)."""
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except OSError:
        return False
    finally:
        probe.close()
    return True


def _cgroup(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return ""


def _threads() -> int:
    return len(os.listdir("/proc/self/task"))


def _untouched(native_threads: int) -> str | None:
    """Why forking now would not give a fresh process's state, or None. The imports leave
    only idle native thread pools (OpenBLAS's, which stop themselves around a fork); a Python
    thread, or any thread started after them, would hand the child locks held mid-work."""
    import threading

    import torch

    if threading.active_count() > 1 or _threads() > native_threads:
        return "the server runs threads, and a fork would copy their locks"
    if torch.cuda.is_initialized():
        return "CUDA was started in the server"
    return None


def _child(conn: socket.socket, fds: list[int], request: dict[str, Any]) -> None:
    """In the forked child: become the command's process, run its module, exit."""
    code = 1
    try:
        os.setpgid(0, 0)  # signals for the server's group are not the job's
        global IN_CHILD
        IN_CHILD = True
        for number in FORWARDED:
            signal.signal(number, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        _reopen_streams()
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.umask(int(request["umask"]))
        os.sched_setaffinity(0, request["affinity"])
        _reseed()
        _die_with_the_command(conn)
        sys.argv = list(request["argv"])
        sys.path.insert(0, request["cwd"])  # as ``python -m`` puts the working directory first
        code = _run_module(str(request["module"]))
    except BaseException:  # the child must never return into the server's loop
        import traceback

        traceback.print_exc()
    finally:
        _exit_like_python(code)


def _run_module(module: str) -> int:
    import runpy

    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as stop:
        if stop.code is None:
            return 0
        if isinstance(stop.code, int):
            return stop.code
        print(stop.code, file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        import traceback

        traceback.print_exc()
        return 128 + signal.SIGINT
    return 0


def _exit_like_python(code: int) -> None:
    """What the interpreter does at exit: join non-daemon threads, run atexit, flush."""
    import atexit
    import threading

    with contextlib.suppress(BaseException):
        for thread in threading.enumerate():
            if thread is not threading.current_thread() and not thread.daemon:
                thread.join()
        atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(BaseException):
            stream.flush()
    os._exit(code)


def _reopen_streams() -> None:
    """``sys.stdin/stdout/stderr`` over the command's descriptors, buffered as Python buffers
    them at start (line-buffered on a terminal)."""
    encoding = sys.stdout.encoding
    sys.stdin = open(0, encoding=encoding, closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", encoding=encoding, buffering=-1, closefd=False)  # noqa: SIM115
    if os.isatty(1):
        sys.stdout.reconfigure(line_buffering=True)
    sys.stderr = open(  # noqa: SIM115
        2, "w", encoding=encoding, errors="backslashreplace", closefd=False
    )
    sys.stderr.reconfigure(line_buffering=True)


def _reseed() -> None:
    """A fresh process's unseeded generators: Python's, NumPy's and torch's, each from the
    OS's entropy, as each seeds itself at start (a seeded run seeds them all again)."""
    import random

    import numpy as np
    import torch

    random.seed()
    np.random.seed()
    torch.seed()


def _die_with_the_command(conn: socket.socket) -> None:
    """A thread that kills this child when the command's process goes (its end of the
    socket closes): a killed command is a killed job."""
    import threading

    def watch() -> None:
        with contextlib.suppress(OSError):
            while conn.recv(1024):
                pass
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="trainlab-warm-watch", daemon=True).start()


WARM_IMPORTS = (
    "torch",
    "lightning.pytorch",
    "sklearn.model_selection",
    "hydra.core.hydra_config",
    "trainlab.runtime.training",
    "trainlab.runtime.build",
    "trainlab.sweeps",
    "trainlab.train",
    "trainlab.calibration.plots",
    "matplotlib.pyplot",
)
