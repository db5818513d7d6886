"""deploy/docker/Dockerfile read and followed without Docker.

Docker does not run where the suite runs, so ``build`` follows the Dockerfile's
own lines on this machine: every path the image has (``/opt/venv``, ``/src``,
``/data``…) lives under a ``root`` directory instead. The build stage's ENV,
WORKDIR, COPY (from the context, honouring ``.dockerignore``) and RUN lines are
carried out; the final stage's COPY from the context too, its ``COPY --from``
lines must copy a path to the same path (so the venv built under ``root`` is the
one the image has), and its RUN lines (user and directories) are left to the
caller, which makes ``root/data`` writable for the uid it runs as.

Only what the Dockerfile uses is understood; anything else fails loudly, so the
file cannot grow a step this reading would silently skip.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "docker" / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"


@dataclass
class Instruction:
    keyword: str
    args: str

    def words(self) -> list[str]:
        """Exec form (a JSON array) or shell words."""
        if self.args.startswith("["):
            return list(json.loads(self.args))
        return shlex.split(self.args)


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert found, f"the stage from {self.base} has no {keyword}"
        return found[-1]


def parse(text: str) -> list[Stage]:
    """The Dockerfile's stages and instructions (comments dropped, lines joined)."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
            continue
        assert stages, f"{keyword} before FROM"
        stages[-1].instructions.append(Instruction(keyword, args))
    return stages


def env_pairs(args: str) -> list[tuple[str, str]]:
    """``ENV A=1 B=2`` as pairs (the key=value form only)."""
    pairs = []
    for word in shlex.split(args):
        name, sep, value = word.partition("=")
        assert sep, f"ENV {args!r}: use the NAME=value form"
        pairs.append((name, value))
    return pairs


def expand(value: str, env: dict[str, str]) -> str:
    """$NAME and ${NAME} as Docker expands them in ENV, WORKDIR and COPY."""
    return re.sub(r"\$(?:\{(\w+)\}|(\w+))", lambda m: env.get(m.group(1) or m.group(2), ""), value)


def ignored_patterns() -> list[str]:
    lines = [line.strip() for line in DOCKERIGNORE.read_text().splitlines()]
    patterns = [line for line in lines if line and not line.startswith("#")]
    # Exclusions with "!" would need Docker's full matching rules; keep the file simple.
    assert not any(p.startswith("!") for p in patterns), ".dockerignore: no '!' patterns"
    return patterns


def is_ignored(relative: PurePosixPath, patterns: list[str]) -> bool:
    """Whether ``.dockerignore`` keeps ``relative`` (or a folder it is in) out."""
    candidates = [relative, *relative.parents][:-1]  # the path and its folders, not "."
    for pattern in patterns:
        pattern = pattern.strip("/")
        for path in candidates:
            if fnmatch.fnmatchcase(str(path), pattern):
                return True
            if pattern.startswith("**/") and fnmatch.fnmatchcase(path.name, pattern[3:]):
                return True
    return False


class Image:
    """The image's file system under ``root`` and its final-stage settings."""

    def __init__(self, root: Path, stages: list[Stage]) -> None:
        self.root = root
        self.stages = stages

    def path(self, image_path: str) -> Path:
        """Where an absolute path of the image lives here."""
        assert image_path.startswith("/"), image_path
        return self.root / image_path.lstrip("/")

    def mapped(self, value: str) -> str:
        """An ENV value with the image's paths (absolute, or in a PATH list) moved under root."""
        parts = value.split(":")
        return ":".join(
            str(self.path(p)) if p.startswith("/") and not p.startswith("//") else p for p in parts
        )

    def set_env(self, env: dict[str, str], instruction: Instruction) -> None:
        # The image's own paths move under root before $NAME is expanded, so the
        # value expanded in (e.g. this machine's PATH) stays as it is.
        for name, value in env_pairs(instruction.args):
            env[name] = expand(self.mapped(value), env)

    def container_env(self) -> dict[str, str]:
        """What a container of the image starts with: the base image's and the final
        stage's ENV (before Compose or Kubernetes add theirs)."""
        env = {
            "PATH": f"{self.path('/usr/local/bin')}:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
        }
        for instruction in self.final.all("ENV"):
            self.set_env(env, instruction)
        return env

    @property
    def final(self) -> Stage:
        return self.stages[-1]

    def entry_command(self) -> list[str]:
        """ENTRYPOINT + CMD of the final stage, with the image's paths moved under root."""
        entry = self.final.last("ENTRYPOINT").words()
        cmd = self.final.last("CMD").words()
        return [self.mapped(word) if word.startswith("/") else word for word in entry + cmd]

    def copy(self, instruction: Instruction, workdir: str, env: dict[str, str]) -> None:
        words = instruction.args.split()
        flags = [w for w in words if w.startswith("--")]
        sources, dest = words[len(flags) : -1], expand(words[-1], env)
        if not dest.startswith("/"):
            dest = str(PurePosixPath(workdir) / dest) + ("/" if dest.endswith("/") else "")
        mode = None
        for flag in flags:
            name, _, value = flag[2:].partition("=")
            if name == "from":
                # The final stage takes the build stage's tree at the same path.
                assert sources == [dest], f"COPY --from must keep the path: {instruction.args}"
                return
            assert name == "chmod", f"COPY {flag}: not understood here"
            mode = int(value, 8)
        patterns = ignored_patterns()
        for source in sources:
            relative = PurePosixPath(source)
            assert not is_ignored(relative, patterns), f"{source} is in .dockerignore"
            origin = REPO / source
            target = self.path(dest)
            if dest.endswith("/") or len(sources) > 1:
                target = target / origin.name
            target.parent.mkdir(parents=True, exist_ok=True)
            if origin.is_dir():

                def ignore(folder: str, names: list[str]) -> list[str]:
                    where = PurePosixPath(os.path.relpath(folder, REPO))
                    return [n for n in names if is_ignored(where / n, patterns)]

                shutil.copytree(origin, target, ignore=ignore)
            else:
                shutil.copy2(origin, target)
                if mode is not None:
                    target.chmod(mode)


def build(root: Path, python: str, base_env: dict[str, str]) -> Image:
    """Carry out the Dockerfile under ``root`` with ``python`` as the base image's
    ``python`` (a link in ``root/usr/local/bin``, first on PATH as in python:3.11-slim)."""
    image = Image(root, parse(DOCKERFILE.read_text()))
    assert len(image.stages) == 2, "a build stage and the final stage"
    bin_dir = image.path("/usr/local/bin")
    bin_dir.mkdir(parents=True)
    for name in ("python", "python3", "python3.11"):
        (bin_dir / name).symlink_to(python)
    base = dict(base_env, PATH=f"{bin_dir}:{base_env['PATH']}")
    for stage in image.stages:
        env = dict(base)
        workdir = "/"
        for instruction in stage.instructions:
            keyword = instruction.keyword
            if keyword == "ENV":
                image.set_env(env, instruction)
            elif keyword == "WORKDIR":
                workdir = str(PurePosixPath(workdir) / expand(instruction.args, env))
                image.path(workdir).mkdir(parents=True, exist_ok=True)
            elif keyword == "COPY":
                image.copy(instruction, workdir, env)
            elif keyword == "RUN" and stage is not image.final:
                done = subprocess.run(
                    ["/bin/sh", "-c", instruction.args],
                    cwd=image.path(workdir),
                    env=env,
                    capture_output=True,
                    text=True,
                    check=False,
                )
                assert done.returncode == 0, f"RUN {instruction.args}\n{done.stdout}{done.stderr}"
            elif keyword in ("RUN", "USER", "VOLUME", "EXPOSE", "HEALTHCHECK"):
                continue  # final stage: the caller plays these (see the module docstring)
            elif keyword not in ("ENTRYPOINT", "CMD", "ARG", "LABEL", "STOPSIGNAL"):
                raise AssertionError(f"{keyword}: not understood here")
    return image


def run_lines(stage: Stage) -> list[str]:
    return [i.args for i in stage.all("RUN")]


def healthcheck_command(stage: Stage) -> list[str]:
    """The HEALTHCHECK's CMD (exec form) without its options."""
    args = stage.last("HEALTHCHECK").args
    _options, _, command = args.partition("CMD ")
    return list(json.loads(command))
