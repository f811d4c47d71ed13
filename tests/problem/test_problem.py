"""Problem files: validation, overrides, and the bad-input corpus (one-line errors, exit 2)."""

from __future__ import annotations

import copy
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mscalepde import ProblemError, load_problem, problem_from_dict
from mscalepde.cli import main
from mscalepde.problem.validate import with_overrides
from mscalepde.training.options import DEFAULT_ADAM_STEPS, default_points
from tests.helpers import POISSON1D, PROBLEMS

GOOD = """\
pde: poisson
domain: {box: [[0, 1]]}
exact: "sin(pi*x)"
boundary:
  - {faces: all, type: dirichlet, value: exact}
"""

# name -> (file content, substring expected in the one-line message)
CORPUS: dict[str, tuple[bytes | str, str]] = {
    "empty": ("", "the file is empty"),
    "blank": ("\n   \n", "the file is empty"),
    "comment_only": ("# nothing\n", "no content"),
    "syntax": ("pde: poisson\ndomain: {box: [[0, 1]\n", "invalid YAML"),
    "tabs": ("pde: poisson\n\tdomain: 1\n", "invalid YAML"),
    "binary": (bytes(range(256)) * 4, "not a UTF-8 text file"),
    "nul": ("pde: poisson\x00\n", "NUL"),
    "list_top": ("- a\n- b\n", "expected a mapping"),
    "scalar_top": ("42\n", "expected a mapping"),
    "unknown_key": (GOOD + "trian: {steps: 5}\n", "trian: unknown key (did you mean 'train'?"),
    "misspelled_nested": (GOOD + "train: {stpes: 5}\n", "train.stpes: unknown key"),
    "unknown_model_key": (GOOD + "model: {widht: 5}\n", "model.widht: unknown key"),
    "wrong_type_steps": (GOOD + "train: {steps: many}\n", "train.steps: expected an integer"),
    "negative_steps": (GOOD + "train: {steps: -5}\n", "train.steps: expected an integer >= 0"),
    "negative_points": (
        GOOD + "train: {points: {interior: -1}}\n",
        "train.points.interior: expected an integer >= 1",
    ),
    "zero_width": (GOOD + "model: {width: 0}\n", "model.width: expected an integer >= 1"),
    "bool_lr": (GOOD + "train: {lr: true}\n", "train.lr: expected a positive number"),
    "negative_lr": (GOOD + "train: {lr: -0.1}\n", "train.lr: expected a positive number"),
    "bad_dtype": (GOOD + "train: {dtype: float16}\n", "train.dtype: expected one of"),
    "bad_arch": (GOOD + "model: {arch: transformer}\n", "model.arch: expected one of"),
    "reversed_box": (
        GOOD.replace("[[0, 1]]", "[[1, 0]]"),
        "domain.box[0]: expected [lo, hi] with lo < hi, got [1, 0]",
    ),
    "eleven_axes": (
        GOOD.replace("[[0, 1]]", "[" + ",".join(["[0,1]"] * 11) + "]"),
        "domain.box: expected 1 to 10",
    ),
    "four_axes_named_xyz": (  # in 4D the axes are x1 ... x4: x is not a variable
        GOOD.replace("[[0, 1]]", "[[0,1],[0,1],[0,1],[0,1]]"),
        "exact: unknown name 'x' (allowed: x1, x2, x3, x4",
    ),
    "nan_box": (GOOD.replace("[[0, 1]]", "[[0, .nan]]"), "domain.box[0][1]: expected a number"),
    "heat_no_time": (
        "pde: heat\ndomain: {box: [[0, 1]]}\nexact: x\nboundary: [{type: dirichlet, value: 0}]\n",
        "domain.time: is required for heat",
    ),
    "reversed_time": (
        "pde: heat\ndomain: {box: [[0, 1]], time: [1, 0]}\nexact: x\n"
        "boundary: [{type: dirichlet, value: 0}]\n",
        "domain.time: expected [t0, t1] with t0 < t1, got [1, 0]",
    ),
    "poisson_with_time": (
        GOOD.replace("{box: [[0, 1]]}", "{box: [[0, 1]], time: [0, 1]}"),
        "domain.time: only heat",
    ),
    "periodic_one_face": (
        GOOD + "  - {faces: x-, type: periodic}\n",
        "periodic needs both faces of an axis",
    ),
    "periodic_half_overridden": (
        GOOD.replace("dirichlet, value: exact}", "periodic}")
        + "  - {faces: x+, type: dirichlet, value: 0}\n",
        "overrides half of the periodic pair",
    ),
    "value_exact_without_exact": (
        "pde: poisson\ndomain: {box: [[0, 1]]}\nsource: 1\n"
        "boundary: [{type: dirichlet, value: exact}]\n",
        "boundary[0].value: 'exact' needs an exact solution",
    ),
    "auto_without_exact": (
        "pde: poisson\ndomain: {box: [[0, 1]]}\nboundary: [{type: dirichlet, value: 0}]\n",
        "source: 'auto' derives f from 'exact'",
    ),
    "unknown_pde": (GOOD.replace("poisson", "wave"), "pde: expected one of poisson | heat | fit"),
    "missing_pde": (GOOD.replace("pde: poisson\n", ""), "pde: is required"),
    "missing_face": (
        GOOD.replace("[[0, 1]]", "[[0, 1], [0, 1]]").replace("faces: all", "faces: [x-, x+]"),
        "no condition on face(s) y-, y+",
    ),
    "face_of_missing_axis": (GOOD.replace("faces: all", "faces: [x-, y+]"), "has no face y+"),
    "bad_boundary_type": (
        GOOD.replace("dirichlet", "convective"),
        "boundary[0].type: expected one of",
    ),
    # the general operators (issue 12): each a one-line exit 2
    "interface_constant": (
        GOOD + "model: {interface: '2*pi'}\n",
        "model.interface: is constant",
    ),
    "interface_unknown_name": (
        GOOD + "model: {interface: 'x - y'}\n",
        "model.interface: ",
    ),
    "interface_not_a_string": (
        GOOD + "model: {interface: ['x - 0.5', 3]}\n",
        "model.interface[1]: expected a level-set expression",
    ),
    "robin_without_alpha": (
        GOOD.replace("dirichlet", "robin"),
        "boundary[0].alpha: is required for robin",
    ),
    "alpha_on_dirichlet": (
        GOOD.replace("value: exact}", "value: exact, alpha: 1}"),
        "boundary[0].alpha: is only used by type: robin",
    ),
    "diffusivity_not_positive": (
        GOOD + "diffusivity: 0.5 - x\n",
        "diffusivity: must be > 0 on the domain; at (x=",
    ),
    "diffusivity_negative_number": (GOOD + "diffusivity: -1\n", "diffusivity: "),
    "diffusivity_uses_u": (GOOD + "diffusivity: 1 + u**2\n", "diffusivity: may not depend on u"),
    "diffusivity_wrong_length": (
        GOOD + "diffusivity: [1, 2]\n",
        "diffusivity: expected one entry per axis (1 for x), got 2",
    ),
    "diffusivity_axis_not_positive": (
        GOOD.replace("[[0, 1]]", "[[0, 1], [0, 1]]").replace("sin(pi*x)", "x*y")
        + "diffusivity: [1, y - 0.5]\n",
        "diffusivity[1]: must be > 0 on the domain; at (x=0, y=0) it is -0.5",
    ),
    "reaction_unknown_name": (GOOD + "reaction: v**3\n", "reaction: unknown name 'v'"),
    "ritz_with_heat": (
        "pde: heat\ndomain: {box: [[0, 1]], time: [0, 1]}\nexact: x*t\n"
        "boundary: [{type: dirichlet, value: exact}]\ntrain: {loss: ritz}\n",
        "train.loss: ritz is the energy of an elliptic problem",
    ),
    "ritz_with_periodic": (
        GOOD.replace("dirichlet, value: exact}", "periodic}") + "train: {loss: ritz}\n",
        "train.loss: ritz does not take periodic conditions",
    ),
    "ritz_with_gauss_newton": (
        GOOD + "train: {loss: ritz, optimizer: [adam, {gauss-newton: {form: dual}}]}\n",
        "train.optimizer[1].gauss-newton.form: the Ritz energy's Gauss-Newton step has no dual",
    ),
    "u_as_param": (GOOD + "params: {u: 1}\n", "params"),
    "unknown_name": (GOOD.replace("sin(pi*x)", "sin(k*x)"), "exact: unknown name 'k'"),
    "missing_axis_name": (GOOD.replace("sin(pi*x)", "sin(pi*y)"), "exact: unknown name 'y'"),
    "t_in_poisson": (GOOD.replace("sin(pi*x)", "x*t"), "exact: unknown name 't'"),
    "attribute": (GOOD.replace("sin(pi*x)", "x.__class__"), "exact: attribute"),
    "dunder_import": (
        GOOD.replace("sin(pi*x)", "__import__('os').system('true')"),
        "exact:",
    ),
    "lambda": (GOOD.replace("sin(pi*x)", "(lambda: 1)()"), "exact:"),
    "subscript": (GOOD.replace("sin(pi*x)", "x[0]"), "exact:"),
    "string_literal": (GOOD.replace('"sin(pi*x)"', "\"'abc'\""), "exact: string"),
    "exponent_tower": (GOOD.replace("sin(pi*x)", "9**9**9**9"), "too large"),
    "exact_list": (GOOD.replace('"sin(pi*x)"', "[1, 2]"), "exact: expected an expression"),
    "python_tag": (
        GOOD + "description: !!python/object/apply:os.system ['true']\n",
        "YAML tag",
    ),
    "python_name_tag": (GOOD + "description: !!python/name:os.system\n", "YAML tag"),
    "alias_bomb": (
        GOOD
        + 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
        + "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
        + "c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
        + "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
        + "e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
        + "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
        + "g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]\n",
        "aliases",
    ),
    "duplicate_key": (GOOD + "pde: heat\n", "duplicate key 'pde'"),
    "huge_file": ("description: '" + "a" * (1 << 20) + "'\n", "file too large"),
    "deep_nesting": ("a: " + "[" * 5000 + "]" * 5000 + "\n", "invalid YAML"),
    "fit_without_exact": ("pde: fit\ndomain: {box: [[0, 1]]}\n", "exact: is required for pde: fit"),
    "fit_with_reaction": (
        "pde: fit\ndomain: {box: [[0, 1]]}\nexact: x\nreaction: u\n",
        "reaction: is not used by pde: fit",
    ),
    "fit_with_boundary": (
        "pde: fit\ndomain: {box: [[0, 1]]}\nexact: x\nboundary: [{type: dirichlet, value: 0}]\n",
        "boundary: is not used by pde: fit",
    ),
    "bad_params": (GOOD + "params: {x: 3}\n", "params.x"),
    "decay_factor": (
        GOOD + "train: {decay: {every: 10, factor: 2}}\n",
        "train.decay.factor: expected a positive number <= 1",
    ),
    "neumann_no_value": (
        GOOD.replace(", value: exact", "").replace("dirichlet", "neumann"),
        "boundary[0].value: is required",
    ),
    "nonfinite_data": (GOOD.replace("sin(pi*x)", "sqrt(x - 0.5)"), "non-finite"),
}


def _write(tmp_path: Path, name: str, content: bytes | str) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_bad_input_corpus_one_line_exit_2(name, tmp_path, capsys):
    content, expected = CORPUS[name]
    path = _write(tmp_path, name, content)
    runs = tmp_path / "runs"
    start = time.perf_counter()
    code = main(["solve", str(path), "--quiet", "--runs-dir", str(runs)])
    elapsed = time.perf_counter() - start
    out, err = capsys.readouterr()
    assert code == 2, (name, out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert str(path) in lines[0], lines[0]
    assert expected in lines[0], lines[0]
    assert "Traceback" not in err
    assert not runs.exists(), "a failed validation must leave no run folder"
    assert elapsed < 10


def test_corpus_through_a_real_process_has_no_traceback(tmp_path):
    """The console entry point itself: exit code 2, one line, no traceback."""
    bad = _write(tmp_path, "bomb", CORPUS["exponent_tower"][0])
    proc = subprocess.run(
        [sys.executable, "-m", "mscalepde", "check", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stdout.count("\n") == 1 and "too large" in proc.stdout


def test_error_message_format_names_file_key_expected_and_found(tmp_path):
    path = _write(tmp_path, "t", GOOD + "train: {steps: -3}\n")
    with pytest.raises(ProblemError) as exc:
        load_problem(path)
    assert (
        str(exc.value) == f"{path}: train.steps: expected an integer >= 0 and <= 10000000, got -3"
    )


def test_defaults_are_filled_and_config_is_complete(tmp_path):
    p = load_problem(_write(tmp_path, "good", GOOD))
    assert p.name == "good"
    assert p.train["dtype"] == "float32" and p.train["steps"] == DEFAULT_ADAM_STEPS == 500
    # a file silent on the optimiser gets Adam, then Gauss–Newton on new points each
    # iteration until its loss stalls, on the default points
    assert p.train["optimizer"] == [
        {"name": "adam"},
        {"name": "gauss-newton", "steps": 100, "resample_every": 1, "decrease": 0.1,
         "patience": 15, "stall": 0.7},
    ]
    assert p.train["points"] == default_points(p.domain.space_dim, p.domain.has_time)
    # and, silent on the network, the automatic choice (resolved by solve, not at load)
    assert p.model == {"arch": "auto"}
    assert p.diagnostics["threshold"] == 0.05
    # the resolved config reloads to the same problem (a round trip)
    again = problem_from_dict(p.config, origin="again")
    assert again.config == p.config


def test_overrides_are_validated_and_applied(tmp_path):
    path = _write(tmp_path, "good", GOOD)
    p = load_problem(path, ["train.steps=7", "model.width=3", "train.points.interior=9"])
    assert (p.train["steps"], p.model["width"], p.train["points"]["interior"]) == (7, 3, 9)
    p = load_problem(path, ["boundary[0].value=0"])
    assert p.boundary["x-"].value.constant_value == 0.0
    with pytest.raises(ProblemError, match=r"\(--set\): train.steps: expected an integer"):
        load_problem(path, ["train.steps=abc"])
    with pytest.raises(ProblemError, match="train.stepz: unknown key"):
        load_problem(path, ["train.stepz=1"])
    with pytest.raises(ProblemError, match="expected KEY=VALUE"):
        load_problem(path, ["train.steps"])
    with pytest.raises(ProblemError, match="no list item"):
        load_problem(path, ["boundary[3].value=0"])


def test_compile_switch_accepts_yaml_booleans(tmp_path):
    """PyYAML reads a bare on/off/yes/no as a boolean: ``compile: off`` must still work."""
    path = _write(tmp_path, "good", GOOD)
    for text, expected in [("off", "off"), ("on", "on"), ("no", "off"), ("true", "on")]:
        assert load_problem(path, [f"train.compile={text}"]).train["compile"] == expected
    assert load_problem(path, ["train.compile=auto"]).train["compile"] == "auto"
    with pytest.raises(ProblemError, match=r"train.compile: expected one of auto \| on \| off"):
        load_problem(path, ["train.compile=sometimes"])


def test_later_boundary_entry_overrides_earlier_faces():
    data = copy.deepcopy(POISSON1D)
    data["boundary"].append({"faces": "x+", "type": "neumann", "value": "exact"})
    p = problem_from_dict(data)
    assert p.boundary["x-"].type == "dirichlet"
    assert p.boundary["x+"].type == "neumann" and p.boundary["x+"].from_exact


def test_params_and_constant_diffusivity():
    p = problem_from_dict(
        {
            "pde": "heat",
            "params": {"k": 2, "w": "k*pi"},
            "diffusivity": "1/w**2",
            "domain": {"box": [[0, 1]], "time": [0, 1]},
            "exact": "exp(-t)*sin(w*x)",
            "boundary": [{"type": "dirichlet", "value": "exact"}],
        }
    )
    assert p.params["w"] == pytest.approx(2 * 3.141592653589793)
    assert p.diffusivity == pytest.approx(1 / (2 * 3.141592653589793) ** 2)
    assert p.initial is p.exact


def test_every_shipped_problem_validates(capsys):
    files = sorted(str(f) for f in PROBLEMS.glob("*.yaml"))
    assert len(files) >= 9
    assert main(["check", *files]) == 0
    out = capsys.readouterr().out
    assert out.count("\nok ") + out.startswith("ok ") == len(files)


def test_check_reports_each_file_and_fails_on_any_bad(tmp_path, capsys):
    good = _write(tmp_path, "good", GOOD)
    bad = _write(tmp_path, "bad", "pde: wave\n")
    assert main(["check", str(good), str(bad)]) == 2
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("ok ") and out[1].startswith("FAIL ") and str(bad) in out[1]


def test_missing_file_is_a_one_line_error(tmp_path, capsys):
    assert main(["solve", str(tmp_path / "nope.yaml")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_changing_the_architecture_starts_from_its_defaults():
    path = PROBLEMS / "poisson1d_multiscale.yaml"  # its file model is mff with sigmas
    p = load_problem(path, ["model.arch=mlp", "model.width=7"])
    assert p.model == {"arch": "mlp", "width": 7, "depth": 4, "activation": "tanh",
                       "normalize": True}
    siren = load_problem(PROBLEMS / "poisson1d_sin.yaml", ["model.arch=siren"])
    assert siren.model["omega0"] == 30.0 and "activation" not in siren.model
    # the same architecture: other keys are kept
    assert with_overrides(p, model={"arch": "mlp", "depth": 1}).model["width"] == 7
    assert with_overrides(p, model={"arch": "fourier"}).model["normalize"] is False


def test_commented_architecture_examples_in_problem_files_are_valid():
    """Each problem file lists alternative models as comments; every one must validate."""
    import re

    import yaml as _yaml

    count = 0
    for path in sorted(PROBLEMS.glob("*.yaml")):
        for line in path.read_text().splitlines():
            m = re.match(r"#\s+model:\s*(\{.*\})\s*(#.*)?$", line)
            if not m:
                continue
            section = _yaml.safe_load(m.group(1))
            p = load_problem(path, [f"model={m.group(1)}"])
            assert p.model["arch"] == section["arch"]
            count += 1
    assert count >= 40
