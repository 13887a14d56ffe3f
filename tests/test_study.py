"""Studies: sweep points, value parsing, a tiny two-point sweep that reuses its teachers, the CLI."""

import json
import os
import re

import numpy as np
import pytest

from distill_jax import study
from experiments import configs
from tests import forked_cli
from tests.conftest import REPO_ROOT
from tests.test_experiment import tiny_config
from tests.test_summaries import _scalars


@pytest.mark.parametrize(
  "text,current,want",
  [
    ("50", None, 50),
    ("0.5", None, 0.5),
    ("none", None, None),
    ("3", 5, 3),
    ("0.1", 1.0, 0.1),
    ("true", False, True),
    ("mlp", "linear", "mlp"),
  ],
)
def test_values_take_the_type_of_their_field(text, current, want):
  got = study.parse_value("f", text, current)
  assert got == want and type(got) is type(want)


@pytest.mark.parametrize(
  "text,current,want",
  [
    ("[256]", (), (256,)),
    ("[]", (256,), ()),
    ("(256, 128)", (64,), (256, 128)),
    ("[1, 0.5]", (1.0,), (1.0, 0.5)),
  ],
)
def test_tuple_fields_take_bracketed_values(text, current, want):
  got = study.parse_value("f", text, current)
  assert got == want and all(type(a) is type(b) for a, b in zip(got, want))


def test_values_split_at_commas_outside_brackets():
  assert study.split_values("[],[256],[256, 128]") == ["[]", "[256]", "[256, 128]"]
  assert study.split_values("50,100") == ["50", "100"]
  assert study.sweep(["student.hidden"], ["[],[256,128]"]) == {
    "student.hidden": ["[]", "[256,128]"]
  }
  assert study.point_name({"student.hidden": (256, 128), "x": ()}) == "student.hidden=256-128,x=-"


@pytest.mark.parametrize(
  "text,current,match",
  [
    ("abc", 5, "'abc' is not an int"),
    ("yes", True, "not a bool"),
    ("1", (1, 2), "'1' is not a tuple; give its elements in brackets"),
    ("[1.5]", (1, 2), r"must hold elements of the type of the field's \(1, 2\) \(int\)"),
    ("[True]", (), "is not a tuple"),
  ],
)
def test_bad_values_name_the_field_and_its_type(text, current, match):
  with pytest.raises(ValueError, match=match):
    study.parse_value("f", text, current)


def test_points_are_every_combination_validated_before_any_work():
  config = tiny_config("conv")
  planned = study.points(config, {"data.max_small": ["100", "200"], "seeds": ["1", "2"]})
  assert [values for values, _ in planned] == [
    {"data.max_small": 100, "seeds": 1},
    {"data.max_small": 100, "seeds": 2},
    {"data.max_small": 200, "seeds": 1},
    {"data.max_small": 200, "seeds": 2},
  ]
  assert [(p.data.max_small, p.seeds) for _, p in planned] == [
    (100, 1),
    (100, 2),
    (200, 1),
    (200, 2),
  ]
  assert config.data.max_small == 200 and config.seeds == 2  # the base config is untouched
  assert study.point_name(planned[1][0]) == "data.max_small=100,seeds=2"
  with pytest.raises(ValueError, match="no field 'data.max_smal'"):
    study.points(config, {"data.max_smal": ["1"]})
  with pytest.raises(ValueError, match="given twice"):
    study.points(config, {"seeds": ["2", "2"]})
  with pytest.raises(ValueError, match="seeds must be >= 1"):  # validation, before any work
    study.points(config, {"seeds": ["2", "0"]})
  with pytest.raises(ValueError, match="at least one --vary"):
    study.points(config, {})


def test_lam_and_temperature_points_share_one_grid_experiment():
  config = tiny_config("conv")
  vary = {"data.max_small": ["100", "200"], "lam": ["0.5", "2"], "temperature": ["1", "4"]}
  planned = study.points(config, vary)
  assert len(planned) == 8 and planned[1][0] == {
    "data.max_small": 100,
    "lam": 0.5,
    "temperature": 4.0,
  }
  assert tuple(planned[1][1].lams) == (0.5,) and tuple(planned[1][1].temperatures) == (4.0,)
  runs = study.experiments(planned)
  assert [rest for rest, _, _ in runs] == [{"data.max_small": 100}, {"data.max_small": 200}]
  for rest, grid_config, members in runs:
    assert tuple(grid_config.lams) == (0.5, 2.0) and tuple(grid_config.temperatures) == (1.0, 4.0)
    assert grid_config.data.max_small == rest["data.max_small"] and len(members) == 4
  assert tuple(config.lams) == (1.0,)  # the base config is untouched
  with pytest.raises(ValueError, match="lam must be"):
    study.points(config, {"lam": ["-1"]})
  with config.unlocked():
    config.temperatures = (1.0, 2.0)
  with pytest.raises(ValueError, match=r"temperatures holds 2 values.*--vary=temperature"):
    study.points(config, {"lam": ["1"]})


def test_at_setting_picks_one_grid_setting_by_its_arms():
  labelled = {
    "teacher_phi[lam=1,T=1]": "a",
    "teacher_phi[lam=1,T=10]": "b",
    "teacher[lam=1,T=1]": "c",
    "teacher_phi[lam=1,T=1] vs teacher[lam=1,T=1]": "d",
  }
  assert study.at_setting(labelled, 1.0, 1.0, grid=True) == {
    "teacher_phi": "a",
    "teacher": "c",
    "teacher_phi vs teacher": "d",
  }
  assert study.at_setting(labelled, 1.0, 10.0, grid=True) == {"teacher_phi": "b"}
  assert study.at_setting({"teacher_phi": "a"}, 1.0, 1.0, grid=False) == {"teacher_phi": "a"}


def test_log_axis_for_positive_values_spanning_ten_times():
  assert study.log_axis([50, 100, 1000]) and not study.log_axis([100, 300])
  assert not study.log_axis([0, 10, 100]) and not study.log_axis(["mlp", "linear"])


def test_a_target_size_sweep_trains_its_teachers_once_and_resumes(
  shared_data_dir, shared_tfds_dir, tmp_path
):
  config = tiny_config("conv")
  config.teacher.count, config.student.epochs = 2, 2
  vary = {"data.max_small": ["100", "200"]}
  result = study.run_study(
    config, vary, workdir=str(tmp_path), data_dir=shared_data_dir, tfds_dir=shared_tfds_dir
  )
  first, second = result["points"]
  assert first["values"] == {"data.max_small": 100} and second["num_examples"]["small"] == 200
  assert not first["teacher"]["reused_checkpoint"] and second["teacher"]["reused_checkpoint"]
  assert first["teacher"]["on_phi_target_test_accuracy_mean"] == pytest.approx(
    second["teacher"]["on_phi_target_test_accuracy_mean"]
  )  # the same teachers
  saved = json.loads((tmp_path / "study.json").read_text())
  assert saved == json.loads(json.dumps(result))
  effect = saved["points"][1]["effects"]["teacher_phi"]["test_accuracy"]
  assert effect["teachers"] == 2 and effect["verdict"] in ("holds", "fails", "inconclusive")
  scores = saved["points"][1]["scores"]  # each arm's own score; paired runs: Δ = their difference
  assert set(scores) == {"no_teacher", "teacher_phi"}
  assert scores["teacher_phi"]["test_accuracy"]["last_epochs"] - scores["no_teacher"][
    "test_accuracy"
  ]["last_epochs"] == pytest.approx(effect["mean"])
  assert 0 < scores["no_teacher"]["test_cross_entropy"]["final"]
  text = (tmp_path / "study.md").read_text()
  assert "| 100 | teacher_phi |" in text and "| 200 | teacher_phi |" in text
  assert (tmp_path / "study.png").stat().st_size > 0
  board = tmp_path / "tensorboard_study"
  assert sorted(os.listdir(board)) == ["data.max_small=100", "data.max_small=200"]
  _, hparams = _scalars(board / "data.max_small=200")  # the HParams metrics, read back
  assert hparams["teacher_phi/delta_accuracy_mean"] == [
    (0, pytest.approx(saved["points"][1]["effects"]["teacher_phi"]["test_accuracy"]["mean"]))
  ]

  again = study.run_study(  # the same command again: every point reuses its saved runs
    config, vary, workdir=str(tmp_path), data_dir=shared_data_dir, tfds_dir=shared_tfds_dir
  )
  assert all(point["teacher"]["reused_checkpoint"] for point in again["points"])
  for old, new in zip(result["points"], again["points"]):
    np.testing.assert_equal(new["effects"], old["effects"])


def test_the_figure_draws_category_values_and_a_grid(tmp_path):
  effect = {"mean": 0.01, "low": 0.0, "high": 0.02, "verdict": "holds"}
  point = lambda model, seeds: {  # noqa: E731
    "values": {"student.model": model, "seeds": seeds},
    "effects": {"teacher_phi": {"test_accuracy": effect, "test_cross_entropy": effect}},
  }
  fake = {
    "mapping": "conv",
    "vary": ["student.model", "seeds"],
    "points": [point(m, s) for m in ("linear", "mlp") for s in (2, 3)],
  }
  from distill_jax import figures

  assert os.path.getsize(figures.study_effects(fake, str(tmp_path / "s.png"))) > 0
  assert os.path.getsize(figures.study_grid(fake, str(tmp_path / "g.png"))) > 0


def test_set_and_sweep_flags():
  config = study.apply_settings(
    configs.for_mapping("conv"), ["teacher.epochs=2", "data.max_small=100"]
  )
  assert config.teacher.epochs == 2 and config.data.max_small == 100
  assert config.to_dict() != configs.for_mapping("conv").to_dict()
  with pytest.raises(ValueError, match="give <field>=<value>"):
    study.apply_settings(config, ["teacher.epochs"])
  with pytest.raises(ValueError, match="--set=teacher.epoch: the config has no field"):
    study.apply_settings(config, ["teacher.epoch=2"])
  assert study.sweep(["seeds", "data.max_small"], ["1,2", "50"]) == {
    "seeds": ["1", "2"],
    "data.max_small": ["50"],
  }
  with pytest.raises(ValueError, match="one --values per --vary"):
    study.sweep(["seeds"], [])


@pytest.mark.parametrize(
  "args,message",
  [
    (["--vary=seeds", "--values=2,zero"], "--vary=seeds: 'zero' is not an int (the field's type)"),
    (["--mapping=blur", "--vary=seeds", "--values=2"], "--mapping=blur: unknown mapping"),
  ],
)
def test_cli_errors_are_one_line_before_any_work(args, message, tmp_path):
  result = forked_cli.run(
    "experiments.study",
    [*args, f"--workdir={tmp_path / 'w'}"],
    env=dict(os.environ, XLA_FLAGS=""),
    cwd=str(REPO_ROOT),
    timeout=60,
  )
  assert result.returncode != 0
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("error: " + message) and last.endswith(
    "Run with --helpshort for the flags."
  )
  assert not (tmp_path / "w").exists()


@pytest.mark.parametrize(
  "page,runs",
  [
    ("target_size", ["conv", "conv_fixed_steps", "identity", "noise"]),
    ("noise_variance", ["noise"]),
    ("lam_temperature", ["conv"]),
    ("student", ["conv", "identity"]),
  ],
)
def test_docs_study_tables_are_generated_from_their_json(page, runs):
  text = (REPO_ROOT / "docs" / "studies" / f"{page}.md").read_text()
  folders = sorted((REPO_ROOT / "docs" / "studies" / page).iterdir())
  assert [folder.name for folder in folders] == runs
  tables = ""
  for folder in folders:
    saved = json.loads((folder / "study.json").read_text())
    assert saved["mapping"] == folder.name.split("_fixed_steps")[0]
    assert (folder / "study.png").stat().st_size > 0
    table = study.markdown(saved).split("\n", 2)[2]
    assert table in text
    tables += table
    assert f"({page}/{folder.name}/study.png)" in text  # the page shows its figure
    if len(saved["vary"]) == 2:
      assert f"({page}/{folder.name}/study_grid.png)" in text
  # every effect the page's prose quotes (a signed number of four decimals) is in its tables
  prose = "\n".join(line for line in text.splitlines() if not line.startswith("|"))
  quoted = {number.replace("−", "-") for number in re.findall(r"[+−-]\d\.\d{4}\b", prose)}
  missing = sorted(number for number in quoted if number not in tables)
  assert not missing, (
    f"docs/studies/{page}.md quotes numbers its study.json does not hold: {missing}"
  )


def test_a_lam_by_temperature_study_trains_one_grid_program(
  shared_data_dir, shared_tfds_dir, tmp_path
):
  config = tiny_config("conv")
  config.teacher.count, config.student.epochs = 2, 1
  vary = {"lam": ["0.5", "2"], "temperature": ["1", "4"]}
  result = study.run_study(
    config, vary, workdir=str(tmp_path), data_dir=shared_data_dir, tfds_dir=shared_tfds_dir
  )
  assert [point["values"] for point in result["points"]] == [
    {"lam": lam, "temperature": t} for lam in (0.5, 2.0) for t in (1.0, 4.0)
  ]
  assert {point["folder"] for point in result["points"]} == {"grid=lam+temperature"}
  results = json.loads((tmp_path / "grid=lam+temperature" / "results.json").read_text())
  assert results["config"]["lams"] == [0.5, 2.0] and results["config"]["temperatures"] == [1.0, 4.0]
  point = result["points"][1]  # λ = 0.5, T = 4
  assert point["effects"]["teacher_phi"] == json.loads(
    json.dumps(results["effects"]["teacher_phi[lam=0.5,T=4]"])
  )
  assert len({json.dumps(p["effects"]) for p in result["points"]}) == 4  # four settings
  assert (tmp_path / "study_grid.png").stat().st_size > 0
  assert "| 0.5 | 4.0 | teacher_phi |" in (tmp_path / "study.md").read_text()
