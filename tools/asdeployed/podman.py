"""A RunSpec as one `podman run` command line: nothing added that the platform would not give.

`--read-only-tmpfs=false`: podman's --read-only otherwise mounts its own writable
/tmp, /run and /var/tmp, which a Kubernetes pod does not get; only the manifest's
emptyDirs are writable, mode 0777 as the kubelet makes them. The environment
travels in a file, not as `-e` arguments, which would put the secrets in the
process list and in the command printed on failure.
"""

from __future__ import annotations

import json
from pathlib import Path

from tools.asdeployed.spec import LOCAL_IMAGE, RunSpec


def env_file(spec: RunSpec, path: Path) -> Path:
    """The environment as podman's --env-file reads it: NAME=value lines, values without newlines."""
    lines = []
    for name, value in sorted(spec.env.items()):
        if "\n" in value:
            raise ValueError(f"{spec.title}: {name} holds a newline, which an env file cannot carry")
        lines.append(f"{name}={value}\n")
    path.write_text("".join(lines))
    path.chmod(0o600)
    return path


def podman_argv(spec: RunSpec, name: str, env_path: Path) -> list[str]:
    """`podman run -d` for the spec, naming the container ``name``."""
    # --http-proxy=false: podman would otherwise copy the host's proxy variables in.
    argv = ["podman", "run", "-d", "--name", name, "--http-proxy=false", "--env-file", str(env_path)]
    if spec.user is not None:
        argv += ["--user", spec.user]
    if spec.read_only:
        argv += ["--read-only", "--read-only-tmpfs=false"]
    if spec.drop_all_capabilities:
        argv += ["--cap-drop", "ALL"]
    if spec.no_new_privileges:
        argv += ["--security-opt", "no-new-privileges"]
    for tmpfs in spec.tmpfs:
        options = ["type=tmpfs", f"destination={tmpfs.target}", "tmpfs-mode=0777"]
        if tmpfs.size_bytes is not None:
            options.append(f"tmpfs-size={tmpfs.size_bytes}")
        argv += ["--mount", ",".join(options)]
    for secret in spec.secrets:
        argv += ["--mount", f"type=bind,source={secret.source},destination={secret.target},ro=true"]
    if spec.command is not None:
        argv += ["--entrypoint", json.dumps(list(spec.command))]
    argv.append(LOCAL_IMAGE.format(name=spec.image))
    if spec.args is not None:
        argv += list(spec.args)
    return argv


def prepare_secrets(spec: RunSpec) -> None:
    """Files with the volume's mode, folders that the container's user can list."""
    for secret in spec.secrets:
        secret.source.chmod(0o755)
        for file in secret.files:
            (secret.source / file).chmod(secret.mode)
