"""A real ComfyUI server in a subprocess, with this repository installed as a custom node pack.

Used by the end-to-end tests and the main job to exercise the pack the way users run it:
`main.py` from the host checkout, the pack symlinked into `<base>/custom_nodes/`, prompts sent
over HTTP. Everything the server writes (models/, input/, output/, temp/, user/, the database)
stays under a throw-away base directory, and bytecode caching is off, so the host's own folder
is never touched. It listens on 127.0.0.1 only.
"""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

_TESTS = str(Path(__file__).resolve().parents[1])
if _TESTS not in sys.path:  # same module names as tests/conftest.py uses: `host`, `support.*`
    sys.path.insert(0, _TESTS)

from host import REPO, comfy_path  # noqa: E402

PACK_DIR_NAME = "comfyui-ipadapter-kit"


class ComfyServerError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    """Context manager: `with ComfyServer() as srv: srv.wait_for(srv.post_prompt(api))`.

    `base` is the ComfyUI base directory (created as a temp dir unless given; a given one is
    kept on exit). `srv.models_dir`, `srv.input_dir`, `srv.output_dir` point inside it.
    """

    def __init__(self, base: str | os.PathLike | None = None, python: str | None = None,
                 start_timeout: float = 120.0, extra_args: tuple[str, ...] = ()):
        self._own_base = base is None
        self.base = Path(base) if base else Path(tempfile.mkdtemp(prefix="ipakit-server-"))
        self.python = python or sys.executable
        self.start_timeout = start_timeout
        self.extra_args = tuple(extra_args)
        self.port = None
        self.proc = None
        self.client_id = uuid.uuid4().hex
        for sub in ("models", "input", "output", "temp", "user", "custom_nodes"):
            (self.base / sub).mkdir(parents=True, exist_ok=True)
        self.log_path = self.base / "server.log"

    models_dir = property(lambda self: self.base / "models")
    input_dir = property(lambda self: self.base / "input")
    output_dir = property(lambda self: self.base / "output")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> "ComfyServer":
        link = self.base / "custom_nodes" / PACK_DIR_NAME
        if not link.exists():
            os.symlink(REPO, link, target_is_directory=True)
        self.port = free_port()
        cmd = [self.python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
               "--base-directory", str(self.base), "--database-url", "sqlite:///:memory:",
               "--disable-auto-launch", "--disable-api-nodes", *self.extra_args]
        env = dict(os.environ, PYTHONDONTWRITEBYTECODE="1", PYTHONUNBUFFERED="1")
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(cmd, cwd=comfy_path(), env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.time() + self.start_timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self._fail(f"server exited with code {self.proc.returncode} during start-up")
            try:
                with urllib.request.urlopen(self.url + "/system_stats", timeout=2) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
                pass
            time.sleep(0.25)
        self._fail(f"no 200 on /system_stats within {self.start_timeout:.0f} s")

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if getattr(self, "_log", None):
            self._log.close()
        if self._own_base:
            shutil.rmtree(self.base, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc):
        self.stop()

    # ------------------------------------------------------------------ HTTP
    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no server log)"

    def _fail(self, message: str):
        raise ComfyServerError(f"{message}\n--- server log tail ({self.log_path}) ---\n{self.log_tail()}")

    def request(self, path: str, payload: dict | None = None, timeout: float = 30):
        data = None if payload is None else json.dumps(payload).encode()
        req = urllib.request.Request(self.url + path, data=data,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            self._fail(f"{req.get_method()} {path} -> HTTP {e.code}: {e.read().decode(errors='replace')[:4000]}")

    def request_bytes(self, path: str, timeout: float = 30) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            return r.read()

    def object_info(self) -> dict:
        return self.request("/object_info")

    def post_prompt(self, api_prompt: dict) -> str:
        """Queue an API-format prompt; returns its prompt_id (validation errors raise)."""
        reply = self.request("/prompt", {"prompt": api_prompt, "client_id": self.client_id})
        if reply.get("node_errors"):
            self._fail(f"prompt rejected: {json.dumps(reply['node_errors'])[:4000]}")
        return reply["prompt_id"]

    def wait_for(self, prompt_id: str, timeout: float = 600) -> dict:
        """Poll /history until the prompt finished; returns its history entry or raises."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                self._fail(f"server died (code {self.proc.returncode}) while running {prompt_id}")
            entry = self.request(f"/history/{prompt_id}").get(prompt_id)
            if entry and entry.get("status", {}).get("completed") is not None:
                status = entry["status"]
                if status.get("status_str") != "success" or not status.get("completed"):
                    errors = [m for m in status.get("messages", []) if m[0] == "execution_error"]
                    self._fail(f"prompt {prompt_id} failed: {json.dumps(errors or status)[:4000]}")
                return entry
            time.sleep(0.2)
        self._fail(f"prompt {prompt_id} not finished within {timeout:.0f} s")

    def output_files(self, entry: dict) -> list[Path]:
        """Paths of the images a history entry reports (SaveImage outputs)."""
        files = []
        for out in entry.get("outputs", {}).values():
            for img in out.get("images", []):
                root = {"output": self.output_dir, "temp": self.base / "temp",
                        "input": self.input_dir}[img.get("type", "output")]
                files.append(root / img.get("subfolder", "") / img["filename"])
        return files
