"""A leader that loses its Lease starts over as a stand-by in the same process: the same command again, by exec,
with what it logged kept, its sockets closed, and an exit with 1 when the exec itself fails."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from colonies_operator import cli

# Runs twice in one process: the first round opens a listening socket, logs a line and starts over; the second
# binds the same port, which works only if the first round's socket was closed by the exec.
TWO_ROUNDS = textwrap.dedent("""
    import logging, os, socket, sys
    from colonies_operator import cli
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    if "PORT" not in os.environ:
        listening = socket.socket()
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        os.environ["PORT"] = str(listening.getsockname()[1])
        logging.info("round 1 pid %d args %s", os.getpid(), sys.argv[1:])
        cli.end_this_run(start_over=True)
    again = socket.socket()
    again.bind(("127.0.0.1", int(os.environ["PORT"])))
    again.listen()
    logging.info("round 2 pid %d args %s", os.getpid(), sys.argv[1:])
""")


def run_script(script: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-X", "utf8", "-c", script, *args], capture_output=True, text=True,
                          timeout=60)


def test_the_command_to_run_again_keeps_the_interpreter_its_options_and_the_arguments(monkeypatch):
    monkeypatch.setattr(sys, "executable", "/opt/python/bin/python3")
    monkeypatch.setattr(sys, "orig_argv", ["python3", "-X", "utf8", "-m", "colonies_operator.cli", "run", "-A"])
    assert cli.restart_command() == ["/opt/python/bin/python3", "-X", "utf8", "-m", "colonies_operator.cli",
                                     "run", "-A"]


def test_starting_over_runs_the_same_command_in_the_same_process_with_the_log_kept_and_sockets_closed():
    done = run_script(TWO_ROUNDS, "run", "--namespace", "work")
    assert done.returncode == 0, done.stderr
    first, second = done.stdout.splitlines()
    assert first.startswith("round 1 pid ") and second.startswith("round 2 pid ")
    assert first.split()[3] == second.split()[3], "a new process, not the same one"
    assert first.split(" args ")[1] == second.split(" args ")[1] == "['run', '--namespace', 'work']"


def test_an_exec_that_fails_says_so_and_exits_with_1():
    done = run_script(textwrap.dedent("""
        import sys
        from colonies_operator import cli
        sys.executable = "/nonexistent/python3"
        cli.end_this_run(start_over=True)
        print("went on")
    """))
    assert done.returncode == 1
    assert "went on" not in done.stdout
    assert "cannot start over (No such file or directory: /nonexistent/python3); exiting" in done.stderr


def test_a_lost_lease_starts_over_unless_told_to_exit():
    parser = cli.build_parser()
    assert parser.parse_args(["run", "-A"]).exit_on_lost_lease is False
    assert parser.parse_args(["run", "-A", "--exit-on-lost-lease"]).exit_on_lost_lease is True
