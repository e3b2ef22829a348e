"""`periodize train --agent-config`: inline JSON or a file (what `periodize tune` writes), with
an optional "reward" object; bad input is one error naming the file."""

from __future__ import annotations

import json

import pytest

from analysis.cli.train import _agent_config
from physiology_model.errors import DataError


def test_a_file_with_reward_settings_gives_the_learner_and_the_env_config(tmp_path):
    path = tmp_path / "best.json"
    path.write_text(json.dumps({"gamma": 0.97, "hidden_sizes": [64, 64],
                                "reward": {"kind": "multi_horizon", "alpha": 0.1}}))
    overrides, env = _agent_config(str(path))
    assert overrides == {"gamma": 0.97, "hidden_sizes": [64, 64]}
    assert env.reward.kind == "multi_horizon" and env.reward.alpha == 0.1
    assert _agent_config('{"gamma": 0.9}') == ({"gamma": 0.9}, None)


@pytest.mark.parametrize("text, problem", [("{not json", "not JSON"),
                                           ("[1, 2]", "JSON object"),
                                           ('{"reward": {"kind": "bogus"}}', "reward")])
def test_a_bad_file_is_one_error_naming_it(tmp_path, text, problem):
    path = tmp_path / "settings.json"
    path.write_text(text)
    with pytest.raises(DataError, match=problem) as info:
        _agent_config(str(path))
    assert info.value.path == str(path)
