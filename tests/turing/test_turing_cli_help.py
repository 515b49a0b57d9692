"""Every ``tumorsynth turing`` action answers --help (argparse formats each one's arguments)."""

from __future__ import annotations

import pytest

from tumorsynth.cli.main import main
from tumorsynth.cli.turing import ACTIONS


@pytest.mark.parametrize("action", [None, *ACTIONS])
def test_help_of_every_action(action, capsys) -> None:
    argv = ["turing", "--help"] if action is None else ["turing", action, "--help"]
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    assert stopped.value.code == 0
    printed = capsys.readouterr().out
    assert printed.startswith("usage: tumorsynth turing")
    if action is not None:
        assert ACTIONS[action][1] in " ".join(printed.split())
