"""`exo --help` and every subcommand's `--help`: generated from the registry, no stale text, every example runs,
every duration flag rejects non-positive values."""
from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _support import REPO, exo_cmd, footage_or_skip

from runtime.cli.arguments import positive_seconds
from runtime.cli.main import build_parser, main

#: Seconds one example may take (they are cheap by design; the slowest, the HIL scenario, runs 9 s of loops).
EXAMPLE_TIMEOUT_S = 120
#: Examples that take well over 15 s here by nature (measured on this 2-core machine, shared): run only with
#: EXO_LONG_EXAMPLES=1, so the default walk stays near a minute. The live demo is also covered by test_cli_run.py.
LONG_COMMANDS = {"validate": "every shared trial through the chain (minutes; make validate)",
                 "batch": "every shared trial with static optimisation (minutes)",
                 "ingest": "every shared trial with static optimisation (minutes)",
                 "neuro": "static optimisation and synergies on a whole trial (about 30 s even for one)",
                 "monocular-check": "BlazePose on four cameras and triangulation (about 20 s for the fewest frames)",
                 "demo": "model scaling, both loops and the plant process (about 20 s for a 2 s replay)",
                 "tissue": "the flexcomp bench (about 15 s even with --quick)"}


def _subparsers(parser: argparse.ArgumentParser) -> argparse._SubParsersAction | None:
    return next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)


def all_parsers() -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """(command path, parser) of ``exo`` and every (nested) subcommand, in registration order."""
    out = []

    def walk(path: tuple[str, ...], p: argparse.ArgumentParser) -> None:
        out.append((path, p))
        sub = _subparsers(p)
        if sub is not None:
            for name, child in sub.choices.items():
                walk(path + (name,), child)
    walk((), build_parser())
    return out


def examples_in(text: str) -> list[str]:
    """The ``exo ...`` command lines of a help text that follow a line starting with "example" (same line after its
    colon, then the following ``exo`` lines up to the first other line)."""
    found, in_block = [], False
    for line in text.splitlines():
        s = line.strip()
        if re.match(r"examples?\b[^:]*:", s, flags=re.IGNORECASE):
            rest = s.split(":", 1)[1].strip()
            in_block = True
            if rest.startswith("exo "):
                found.append(rest)
            continue
        if in_block and s.startswith("exo "):
            found.append(s)
        else:
            in_block = False
    return found


def all_examples() -> list[tuple[str, str]]:
    """(command path as text, example) of every help text, examples that write outputs others read first."""
    rows = [(" ".join(path), e) for path, p in all_parsers() for e in examples_in(p.format_help())]
    producers = [r for r in rows if r[0] in ("run", "import")]
    return producers + [r for r in rows if r not in producers]


def _norm(text: str) -> str:
    return " ".join(text.split())


def test_top_level_help_lists_every_registered_subcommand(capsys):
    parser = build_parser()
    sub = _subparsers(parser)
    registered = {a.dest: a.help for a in sub._get_subactions()}
    assert set(registered) == set(sub.choices) and "demo" in registered and len(registered) >= 23
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    text = _norm(capsys.readouterr().out)
    assert exc.value.code == 0
    assert f"commands ({len(registered)}):" in text
    for name, help_ in registered.items():
        assert help_, f"subcommand {name!r} has no one-line help"
        assert _norm(f"{name} {help_}") in text, name


def test_help_texts_have_no_stale_or_unformatted_text():
    helps = {" ".join(path) or "exo": p.format_help() for path, p in all_parsers()}
    for where, text in helps.items():
        assert "%%" not in text, where
        assert "%(" not in text, where
    assert "not built yet" not in helps["run"] and "exo demo" in helps["run"]
    assert "%BW*ht" in helps["analyze"]


def test_every_command_has_a_runnable_example_or_is_a_group():
    examples = {path for path, _ in all_examples()}
    for path, p in all_parsers():
        name = " ".join(path)
        if path and _subparsers(p) is None and len(path) == 1:
            assert name in examples, f"exo {name} --help shows no example"


def _duration_flags() -> list[tuple[tuple[str, ...], str]]:
    flags = []
    for path, p in all_parsers():
        for a in p._actions:
            for opt in a.option_strings:
                if re.search(r"seconds|duration", opt) or a.type is positive_seconds:
                    flags.append((path, opt))
    return flags


def test_every_duration_flag_is_a_positive_duration():
    flags = _duration_flags()
    assert (("run",), "--seconds") in flags and (("demo",), "--seconds") in flags
    for path, p in all_parsers():
        for a in p._actions:
            if any(re.search(r"seconds|duration", o) for o in a.option_strings):
                assert a.type is positive_seconds, f"exo {' '.join(path)} {a.option_strings[0]}: not positive_seconds"


@pytest.mark.parametrize("path, flag", _duration_flags(), ids=lambda x: " ".join(x) if isinstance(x, tuple) else x)
@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "soon"])
def test_non_positive_duration_exits_2_naming_flag_and_value(capsys, path, flag, value):
    with pytest.raises(SystemExit) as exc:
        main([*path, flag, value])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert f"argument {flag}" in err and repr(value) in err, err


def test_run_seconds_zero_and_negative_rejected_end_to_end():
    for value in ("0", "-5"):
        r = subprocess.run([*exo_cmd(), "run", "--seconds", value, "--out", "unused"], capture_output=True, text=True,
                           timeout=60, cwd=REPO, check=False)
        assert r.returncode == 2 and "--seconds" in r.stderr and repr(value) in r.stderr, r.stderr


def test_every_example_parses_including_the_long_ones():
    """Even the examples that only run with EXO_LONG_EXAMPLES=1 name existing flags with valid values."""
    parser = build_parser()
    for where, example in all_examples():
        args = parser.parse_args(shlex.split(example)[1:])
        assert args.fn is not None, (where, example)


def test_no_subcommand_prints_help_and_exits_2(capsys):
    assert main([]) == 2 and "commands (" in capsys.readouterr().out


def test_example_extraction():
    text = "description\n\nexamples:\n  exo a --x 1\n  exo b\nnot an example\n  exo c\nexample: exo d 'q r'\n"
    assert examples_in(text) == ["exo a --x 1", "exo b", "exo d 'q r'"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """A working folder laid out like the repository root for the examples: launch/, hil/ and ../shared linked."""
    root = tmp_path_factory.mktemp("examples")
    cwd = root / "repo"
    cwd.mkdir()
    for name in ("launch", "hil"):
        (cwd / name).symlink_to(REPO / name)
    shared = REPO.parent / "shared"
    if shared.exists():
        (root / "shared").symlink_to(shared)
    return cwd


def _out_of(argv: list[str]) -> str | None:
    return argv[argv.index("--out") + 1] if "--out" in argv else None


def _needs(example: str, examples: list[str]) -> list[str]:
    """Examples whose output ``example`` reads: a run folder (their ``--out``), the clinic store (``exo import``)."""
    argv = shlex.split(example)
    reads = set(argv[2:]) - {_out_of(argv)}
    needs = [o for o in examples if o != example and _out_of(shlex.split(o)) in reads]
    if argv[1] == "trend":
        needs += [o for o in examples if shlex.split(o)[1] == "import"]
    return needs


_DONE: dict[str, subprocess.CompletedProcess] = {}


def _run_example(example: str, cwd: Path) -> subprocess.CompletedProcess:
    if example in _DONE:
        return _DONE[example]
    argv = shlex.split(example)
    env = dict(os.environ, EXO_FOOTAGE_OFFLINE="1", MPLBACKEND="Agg")
    r = subprocess.run([*exo_cmd(), *argv[1:]], cwd=cwd, capture_output=True, text=True, timeout=EXAMPLE_TIMEOUT_S,
                       env=env, check=False)
    _DONE[example] = r
    return r


def _skip_reason(example: str, cwd: Path) -> str | None:
    argv = shlex.split(example)
    if argv[1] in LONG_COMMANDS and os.environ.get("EXO_LONG_EXAMPLES") != "1":
        return f"long by nature: {LONG_COMMANDS[argv[1]]}; set EXO_LONG_EXAMPLES=1 to run it"
    uses_shared = (any("../shared/data" in a for a in argv) or "--replay" in argv
                   or argv[1] in ("validate", "ingest", "neuro", "import", "trend"))
    if uses_shared and not (cwd.parent / "shared" / "data").is_dir():
        return "needs the shared lab data (../shared/data), absent here"
    return None


@pytest.mark.parametrize("where, example", all_examples(), ids=lambda x: x)
def test_help_example_runs(workspace, where, example):
    """Each example, pasted as shown in `exo <cmd> --help`, exits 0 (run from a folder laid out like the repo)."""
    reason = _skip_reason(example, workspace)
    if reason:
        pytest.skip(reason)
    argv = shlex.split(example)
    if "demo.mp4" in argv:
        video = footage_or_skip("sports2d_demo_video")
        if not (workspace / "demo.mp4").exists():
            (workspace / "demo.mp4").symlink_to(video)
    if argv[1] in ("footage",):
        footage_or_skip("fetch_all")
    if argv[1] == "monocular-check":
        footage_or_skip("pose2sim_single_person")
    every = [e for _, e in all_examples()]
    for need in _needs(example, every):
        r = _run_example(need, workspace)
        assert r.returncode == 0, f"{need} (needed by {example}) exited {r.returncode}:\n{r.stderr[-3000:]}"
    t0 = time.perf_counter()
    r = _run_example(example, workspace)
    took = time.perf_counter() - t0
    assert r.returncode == 0, f"{example} exited {r.returncode} after {took:.1f} s:\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    print(f"{example}: {took:.1f} s", file=sys.stderr)
