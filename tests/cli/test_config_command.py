"""``tumorsynth config [NAME]``: every setting of every configuration, with its value and a
one-line description, in YAML that loads back unchanged; the shipped examples are found from
the installed package."""

import dataclasses
import typing

import pytest
import yaml
from cli_runner import cli

from tumorsynth._settings import load_config
from tumorsynth._settings_docs import field_docs, plain_settings
from tumorsynth.cli.config import EXAMPLES, KINDS, config_class, example_folder, example_path

#: What each default configuration needs before it loads (its checks refuse an empty data list).
REQUIRED = {
    "turing create": ["real=[{path: r, label_map: lits}]", "synthetic=[{path: s.jsonl}]"],
    "train": ["data.healthy=[scans]", "data.healthy_label_map=msd"],
    "train-autoencoder": ["data.images=[scans]"],
    "train-diffusion": ["autoencoder=ae", "data.cases=[scans]", "data.label_map=msd"],
    "train-adversarial": [
        "segmentor=seg",
        "data.healthy=[scans]",
        "data.healthy_label_map=totalsegmentator",
        "data.real=[tumors]",
        "data.real_label_map=lits",
    ],
    "experiment": [
        "arms=[{name: a}]",
        "test=[{name: t, images: i, labels: l, label_map: lits}]",
    ],
    "scaling": ["test=[{name: t, images: i, labels: l, label_map: lits}]"],
}


def dataclasses_of(cls: type) -> list[type]:
    """``cls`` and every config dataclass below it (sections, list entries)."""
    found = [cls]
    for hint in typing.get_type_hints(cls).values():
        for candidate in (hint, *typing.get_args(hint)):
            if dataclasses.is_dataclass(candidate) and candidate not in found:
                found += dataclasses_of(candidate)  # type: ignore[arg-type]
    return found


def test_without_a_name_every_name_is_listed_with_the_examples_folder():
    run = cli("config")
    assert run.code == 0, run.err
    for name in [*KINDS, *EXAMPLES]:
        assert name in run.out
    assert str(example_folder()) in run.out


@pytest.mark.parametrize("kind", KINDS)
def test_every_setting_has_a_one_line_description(kind):
    for cls in dataclasses_of(config_class(kind)):
        docs = field_docs(cls)
        missing = [f.name for f in dataclasses.fields(cls) if not docs.get(f.name)]
        assert not missing, f"{cls.__name__} does not describe {missing}"
        assert all("\n" not in text for text in docs.values())


@pytest.mark.parametrize("kind", KINDS)
def test_defaults_print_every_setting_and_load_back_unchanged(kind, tmp_path):
    cls = config_class(kind)
    run = cli("config", kind)
    assert run.code == 0, run.err
    printed = yaml.safe_load(run.out)
    assert printed == plain_settings(cls())
    for line in run.out.splitlines():  # one comment per setting line (list entries aside)
        assert line.startswith("#") or line.lstrip().startswith("- ") or "  # " in line, line
    path = tmp_path / "printed.yaml"
    path.write_text(run.out)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    # through the loader, the printed file is the defaults (given what the checks require)
    assert load_config(cls, path, REQUIRED[kind]) == load_config(cls, empty, REQUIRED[kind])


@pytest.mark.parametrize("name", EXAMPLES)
def test_an_example_prints_with_every_setting_and_loads_back_equal(name, tmp_path):
    cls = config_class(EXAMPLES[name])
    assert example_path(name).is_file()  # found through the package, not the repository
    run = cli("config", name)
    assert run.code == 0, run.err
    assert "To change" in run.out  # the example says what to adapt
    path = tmp_path / f"{name}.yaml"
    path.write_text(run.out)
    assert load_config(cls, path) == load_config(cls, example_path(name))
    assert set(yaml.safe_load(run.out)) == {f.name for f in dataclasses.fields(cls)}


def test_an_unknown_name_is_refused_naming_the_choices():
    run = cli("config", "segmentor")
    assert run.code == 2
    assert "config 'segmentor'" in run.err and "segmentor_synthetic" in run.err
