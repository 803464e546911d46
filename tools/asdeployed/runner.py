"""Start one container from its RunSpec and hold it to what its platform would: up, probes answered.

The container must answer every probe (an HTTP probe with 2xx, a TCP probe by
accepting) ``rounds`` times in a row, still running each time, within the start-up
budget; a poll with a bounded deadline, never a fixed sleep standing in for
readiness. Its log must hold no ERROR line and no traceback. On failure the log
and the exact podman command are part of the outcome.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from tools.asdeployed.podman import env_file, podman_argv, prepare_secrets
from tools.asdeployed.spec import Probe, RunSpec

BAD_LOG = re.compile(r"\bERROR\b|Traceback \(most recent call last\)")
PODMAN_TIMEOUT = 120


@dataclasses.dataclass(frozen=True)
class Outcome:
    spec: RunSpec
    ok: bool
    message: str
    command: str = ""
    log: str = ""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A probe takes the first answer: a redirect is not a 2xx."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())


def probe_once(probe: Probe, timeout: float = 5.0) -> str | None:
    """None when the probe passes, else why not."""
    if probe.path is None:
        try:
            with socket.create_connection(("127.0.0.1", probe.port), timeout=timeout):
                return None
        except OSError as exc:
            return f"{probe.kind} TCP :{probe.port}: {exc}"
    url = f"http://127.0.0.1:{probe.port}{probe.path}"
    try:
        with _OPENER.open(url, timeout=timeout) as answer:
            status = int(answer.status)
    except urllib.error.HTTPError as exc:
        status = exc.code
    except OSError as exc:
        return f"{probe.kind} GET {url}: {exc}"
    return None if 200 <= status < 300 else f"{probe.kind} GET {url}: HTTP {status}"


def _podman(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=PODMAN_TIMEOUT, check=False
    )


class Runner:
    """Runs specs one at a time (they share the host's ports); removes what it started."""

    def __init__(self, work: Path, run_id: str, start_seconds: float, rounds: int = 3) -> None:
        self.work, self.run_id, self.start_seconds, self.rounds = work, run_id, start_seconds, rounds
        self.started: list[str] = []

    def cleanup(self) -> None:
        for name in self.started:
            _podman("rm", "-f", "-t", "0", name)
        self.started.clear()

    def run(self, spec: RunSpec) -> Outcome:
        name = f"bc-deployed-{self.run_id}-{spec.platform}-{spec.workload}"
        ports = sorted({p.port for p in spec.probes} | {spec.port})
        busy = [port for port in ports if probe_once(Probe("free", port), timeout=1) is None]
        if busy:
            taken = f"loopback port(s) {busy} already taken: the container would share the host's"
            return Outcome(spec, False, taken)
        prepare_secrets(spec)
        argv = podman_argv(spec, name, env_file(spec, self.work / f"{name}.env"))
        command = shlex.join(argv)
        self.started.append(name)
        try:
            started = subprocess.run(
                argv, capture_output=True, text=True, timeout=PODMAN_TIMEOUT, check=False
            )
            if started.returncode != 0:
                return Outcome(spec, False, f"podman run failed: {started.stderr.strip()}", command)
            why = self._config_problem(spec, name) or self._hold(name, spec)
            log = _podman("logs", name)
            text = log.stdout + log.stderr
            if why is None and BAD_LOG.search(text):
                why = "its log has an ERROR line or a traceback"
            if why is not None:
                return Outcome(spec, False, why, command, text)
            answered = ", ".join(f"{p.kind} {p.path or 'TCP'} :{p.port}" for p in spec.probes)
            return Outcome(spec, True, f"up, answered {answered} x{self.rounds}", command)
        finally:
            _podman("rm", "-f", "-t", "0", name)
            self.started.remove(name)

    def _config_problem(self, spec: RunSpec, name: str) -> str | None:
        """What podman started must be what the spec says: its environment, and command + args exactly."""
        found = _podman("inspect", name, "--format", "{{json .Config.Env}}\t{{json .Path}}\t{{json .Args}}")
        env_json, path_json, args_json = found.stdout.strip().split("\t")
        env = dict(item.split("=", 1) for item in json.loads(env_json))
        differ = sorted(k for k, v in spec.env.items() if env.get(k) != v)
        if differ:
            return f"the container's environment differs from the manifest's in {', '.join(differ)}"
        if spec.command is None:
            return None
        argv = [json.loads(path_json), *json.loads(args_json)]
        wanted = [*spec.command, *(spec.args or ())]
        return None if argv == wanted else f"the container runs {argv}, the manifest says {wanted}"

    def _hold(self, name: str, spec: RunSpec) -> str | None:
        """None once every probe passed ``rounds`` polls in a row with the container running."""
        deadline = time.monotonic() + self.start_seconds
        streak, last = 0, "no probe ran yet"
        while time.monotonic() < deadline:
            state = _podman(
                "inspect", name, "--format", "{{.State.Status}} {{.State.ExitCode}}"
            ).stdout.split()
            if not state or state[0] != "running":
                return f"the container stopped ({' '.join(state) or 'gone'}) instead of staying up"
            failures = [why for why in map(probe_once, spec.probes) if why is not None]
            streak = 0 if failures else streak + 1
            if streak >= self.rounds:
                return None
            last = "; ".join(failures) or last
            time.sleep(1.0)  # the poll's period: the deadline above bounds it
        return f"probes not answered {self.rounds} times in a row within {self.start_seconds:.0f} s: {last}"
