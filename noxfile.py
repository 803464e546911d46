"""Every developer task is a nox session: `pip install nox`, then `nox -s <name>`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["lint", "infra", "tests"]

REPO = Path(__file__).resolve().parent
DATASETS = os.environ.get("BLOODCELL_DATASETS", str(REPO.parent / "shared" / "datasets"))
# Every session runs on the interpreter that runs nox (`pip install nox` with the Python you
# want): bloodcell supports 3.11 to 3.13, the versions every runtime dependency has wheels for.
# Anything else is an error, never a silently skipped session.
SUPPORTED = ((3, 11), (3, 13))
if not SUPPORTED[0] <= sys.version_info[:2] <= SUPPORTED[1]:
    sys.exit(
        f"bloodcell needs Python 3.11 to 3.13; nox runs on {sys.version.split()[0]} "
        f"({sys.executable}). Install nox with a supported Python, e.g. `python3.12 -m pip install nox`."
    )
PYTHON = None


def _install_runtime(session: nox.Session) -> None:
    session.install(
        "-r",
        "functions/predict/requirements.txt",
        "-r",
        "functions/preprocess/requirements.txt",
        "-r",
        "webapp/requirements.txt",
    )
    session.install("--no-deps", "-e", ".")


@nox.session(python=PYTHON, reuse_venv=False)  # a fresh venv every time, as a user's would be
def package(session: nox.Session) -> None:
    """Build the wheel and run it as users install it: a fresh venv, outside the checkout.

    Once with the core install (the pipeline and `classify`; `serve` must name the
    missing extra), once with the `web` extra. Versions follow the pinned requirements.
    """
    dist = Path(session.create_tmp()).resolve() / "dist"
    session.install("build==1.6.1")
    session.run("python", "-m", "build", "--wheel", "--outdir", str(dist), silent=True)
    (wheel,) = dist.glob("bloodcell-*.whl")
    pins = (
        "-c",
        str(REPO / "functions/predict/requirements.txt"),
        "-c",
        str(REPO / "webapp/requirements.txt"),
    )
    image = str(Path(DATASETS) / "bccd" / "JPEGImages" / "BloodImage_00001.jpg")
    smoke = str(REPO / "tools" / "smoke_installed.py")
    session.install(*pins, str(wheel))
    with session.chdir(session.create_tmp()):
        session.run("python", smoke, image, "--expect-no-web")
        session.install(*pins, f"{wheel}[web]")
        session.run("python", smoke, image)


@nox.session(python=PYTHON)
def serve(session: nox.Session) -> None:
    """Run the whole system locally: folder buckets, both functions, event source, web app."""
    _install_runtime(session)
    session.run("bloodcell", "serve", *session.posargs)


@nox.session(python=PYTHON, venv_backend="none")
def bloodcell(session: nox.Session) -> None:
    """Any `bloodcell` command, from the venv `nox -s serve` installs: `nox -s bloodcell -- user add NAME`.

    The same command is `.nox/serve/bin/bloodcell` (put that folder on PATH for
    `knative/secrets/generate.sh`); this session makes that venv first if it is missing.
    """
    command = REPO / ".nox" / "serve" / "bin" / "bloodcell"
    if not command.exists():
        session.run(sys.executable, "-m", "nox", "-s", "serve", "--install-only", external=True)
    session.run(str(command), *session.posargs, external=True)


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    """The test suite, slow fault-injection and browser tests included (`-- -m "not slow"` to skip)."""
    _install_runtime(session)
    session.install("-r", "requirements-test.txt")
    session.run("pytest", *session.posargs, env={"BLOODCELL_DATASETS": DATASETS})


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff (check and format, the whole tree) and mypy strict on the package, training/ and tests/."""
    _install_runtime(session)
    session.install("-r", "requirements-test.txt")  # the tests' libraries, for mypy to read
    session.install("ruff==0.17.5", "mypy==2.4.1", "import-linter==2.17")
    session.run("lint-imports")  # the layers contract in pyproject.toml: no package cycles, no upward imports
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")  # the whole tree: tests, tools, bench, training too
    session.run("mypy")
    session.run("mypy", "-p", "training", env={"MYPYPATH": "src"})
    session.run("mypy", "--explicit-package-bases", "tests", env={"MYPYPATH": "src"})


@nox.session(python=PYTHON)
def infra(session: nox.Session) -> None:
    """terraform fmt, yamllint, schemas (Kubernetes and Knative CRDs), image pins, checkov, secrets scan.

    A venv of its own: checkov pins boto3 and ships its own `hcl2` module, which
    would clash with the runtime's.
    """
    session.install("checkov==3.3.30", "yamllint==1.38.0", "kubernetes-validate==1.37.0")
    session.run("bash", "tools/check_infra.sh", external=True)


# Each deployable's direct pins (requirements.txt) -> its lock file with every
# transitive dependency and its hashes, which the Dockerfiles install with
# --require-hashes. Resolved against PyPI itself (the files images download),
# for the images' platform: CPython 3.11 on linux x86_64.
LOCKS = {
    "functions/preprocess/requirements.txt": "functions/preprocess/requirements.lock",
    "functions/predict/requirements.txt": "functions/predict/requirements.lock",
    "webapp/requirements.txt": "webapp/requirements.lock",
    "tools/build-requirements.in": "tools/build-requirements.lock",
}


@nox.session(python=PYTHON)
def lock(session: nox.Session) -> None:
    """Regenerate the images' hashed lock files from the requirements files (needs PyPI)."""
    session.install("pip-tools==7.6.2")
    # Only PyPI: a local mirror or wheel cache could hash files PyPI does not serve.
    env = {"PIP_CONFIG_FILE": os.devnull, "PIP_CONSTRAINT": "", "PIP_FIND_LINKS": ""}
    for source, target in LOCKS.items():
        session.run(
            "pip-compile", "--quiet", "--no-config", "--generate-hashes", "--allow-unsafe", "--strip-extras",
            "--index-url=https://pypi.org/simple", "--no-emit-index-url", "--no-emit-find-links",
            "--output-file", target, source, env=env,
        )  # fmt: skip


@nox.session(python=PYTHON)
def images(session: nox.Session) -> None:
    """Build the four images with buildah on a debootstrap-made bookworm base, run and classify (root).

    Then every container runs as each platform's manifests start it (tools/run_as_deployed.py).
    """
    _install_runtime(session)
    session.install("-r", "tools/run-as-deployed-requirements.txt")
    session.run("bash", "tools/build_images.sh", external=True, env={"BLOODCELL_DATASETS": DATASETS})


@nox.session(python=PYTHON)
def classify(session: nox.Session) -> None:
    """`bloodcell classify` on files or folders given after `--`."""
    _install_runtime(session)
    session.run("bloodcell", "classify", *session.posargs)


@nox.session(python=PYTHON)
def train(session: nox.Session) -> None:
    """Reproduce the shipped model from scratch (TensorFlow, fixed seed): `-- --data DIR`."""
    session.install("-r", "training/requirements.txt")
    # Only to know where evaluate should look; train.py parses its own arguments.
    known = argparse.ArgumentParser(add_help=False)
    known.add_argument("--data", default=DATASETS)
    known.add_argument("--out", default="functions/predict/model")
    known.add_argument("--sources", default="all")
    opts, _ = known.parse_known_args(session.posargs)
    env = {"PYTHONPATH": "src", "BLOODCELL_DATASETS": opts.data}
    session.run("python", "-m", "training.train", *session.posargs, env=env)
    # The figures come from the shipped .tflite on the runtime path, in the runtime's own venv; a
    # leave-one-lab-out model (--sources kaggle|pbc) is fitted on its own lab and tested on the other.
    lolo = [] if opts.sources == "all" else ["--lolo", opts.sources]
    session.notify("evaluate", posargs=["--data", opts.data, "--model", opts.out, *lolo])


@nox.session(python=PYTHON)
def evaluate(session: nox.Session) -> None:
    """Evaluate the shipped .tflite through the runtime path; writes its metadata and card."""
    _install_runtime(session)
    env = {"PYTHONPATH": "src", "BLOODCELL_DATASETS": DATASETS}
    session.run("python", "-m", "training.evaluate", *session.posargs, env=env)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """The benchmark suite: prints a table, writes bench/results.json (`-- --quick` for a smoke run)."""
    _install_runtime(session)
    session.install("selenium==4.51.0")  # the slide page in Chromium (bench/reviewpage.py)
    session.install("py-spy==0.4.3")  # bench/profile.py: where the local stack spends its CPU
    session.install("moto[server]==5.2.1")  # bench/scale.py: the receive mode against an S3 API
    session.run("python", "bench/run.py", *session.posargs, env={"BLOODCELL_DATASETS": DATASETS})
