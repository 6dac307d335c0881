"""The input layer: one YAML loader that knows where everything is, one error type that carries
where a mistake is, and the readers of values that several commands share."""

from __future__ import annotations

import datetime
import pickle
from pathlib import Path
from typing import Any

import pytest

from lambdasim import ConfigError
from lambdasim._scenario import ScenarioError
from lambdasim._source import (
    Mark,
    Node,
    SourceError,
    YamlMap,
    YamlSeq,
    env_argument,
    load_yaml,
    read_json_argument,
    read_text,
    services_text,
)

DOC = """\
name: demo
steps:
  - invoke: {count: 2}
  -   scale_down: {}
"""


def test_every_mapping_sequence_and_item_knows_its_file_line_and_column() -> None:
    doc = load_yaml(DOC, "s.yaml")
    assert isinstance(doc, YamlMap) and doc.file == "s.yaml" and doc.mark == Mark(1, 1)
    assert doc.key_marks["steps"] == Mark(2, 1) and doc.value_marks["name"] == Mark(1, 7)
    steps = doc["steps"]
    assert isinstance(steps, YamlSeq) and steps.file == "s.yaml"
    assert steps.item_marks == [Mark(3, 5), Mark(4, 7)]
    invoke = steps[0]["invoke"]
    assert invoke.mark == Mark(3, 13) and invoke.value_marks["count"] == Mark(3, 21)
    assert doc.key_line("missing") == 1 and doc.key_line("missing", 9) == 9 and steps.item_line(7) == steps.line == 3


def test_scenario_scalars_are_json_like_and_template_scalars_are_yaml_1_1() -> None:
    text = "a: yes\nb: 2024-01-02\nc: 0777\nd: true\ne: 1.5\nf: 12\n"
    assert dict(load_yaml(text, "s.yaml")) == {"a": "yes", "b": "2024-01-02", "c": "0777", "d": True, "e": 1.5,
                                               "f": 12}
    assert dict(load_yaml(text, "t.yaml", scalars="yaml1.1")) == {
        "a": True, "b": datetime.date(2024, 1, 2), "c": 511, "d": True, "e": 1.5, "f": 12}


def test_local_tags_go_to_the_factory_and_are_a_mistake_without_one() -> None:
    seen: list[tuple[str, Any, Mark]] = []

    def tag(suffix: str, value: Any, mark: Mark) -> str:
        seen.append((suffix, value, mark))
        return f"<{suffix}>"

    doc = load_yaml("A: !Ref Bucket\nB: !Join ['-', [x, y]]\n", "t.yaml", tags=tag)
    assert dict(doc) == {"A": "<Ref>", "B": "<Join>"}
    assert seen[0] == ("Ref", "Bucket", Mark(1, 4))
    assert seen[1][1] == ["-", ["x", "y"]] and isinstance(seen[1][1], YamlSeq)
    with pytest.raises(SourceError) as info:
        load_yaml("A: !Ref Bucket\n", "s.yaml")
    assert info.value.file == "s.yaml" and info.value.line == 1 and "!Ref" in info.value.reason


def test_duplicate_keys_are_recorded_and_the_reader_chooses_which_value_stays() -> None:
    text = "a: 1\nb: 2\na: 3\n"
    first = load_yaml(text, "s.yaml")
    assert first["a"] == 1 and first.duplicates == [("a", Mark(3, 1), Mark(1, 1))]
    assert load_yaml(text, "t.yaml", keep="last")["a"] == 3
    with pytest.raises(SourceError) as info:
        Node(first, "s.yaml", 1, "").fields(("a", "b"))
    assert (info.value.line, info.value.key) == (3, "a") and "given twice (first on line 1)" in info.value.reason


def test_merge_keys_are_applied_and_explicit_keys_win() -> None:
    doc = load_yaml("base: &b {x: 1, y: 2}\nuse: {<<: *b, y: 3}\n", "s.yaml")
    assert dict(doc["use"]) == {"x": 1, "y": 3} and doc["use"].duplicates == []


def test_invalid_yaml_is_a_source_error_with_its_line_of_the_type_asked_for() -> None:
    with pytest.raises(ScenarioError) as info:
        load_yaml("steps:\n  - invoke: {count: 2\n", "s.yaml", error_type=ScenarioError)
    error = info.value
    assert error.file == "s.yaml" and error.line == 3 and error.key is None
    assert error.reason.startswith("not valid YAML: ") and str(error).startswith("s.yaml:3: not valid YAML")
    assert isinstance(error, ConfigError)


def test_source_errors_carry_where_and_survive_pickling() -> None:
    error = SourceError("t.yaml", 7, "Resources.Fn.Properties.Timeout", "1000 is too large")
    assert str(error) == "t.yaml:7: Resources.Fn.Properties.Timeout: 1000 is too large"
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is SourceError and (again.file, again.line, again.key, again.reason) == (
        "t.yaml", 7, "Resources.Fn.Properties.Timeout", "1000 is too large")
    assert str(SourceError("t.yaml", None, None, "cannot read it")) == "t.yaml: cannot read it"


def test_nodes_keep_their_error_type_and_say_did_you_mean() -> None:
    root = Node(load_yaml("steps:\n  - invoke: {cuont: 2}\n", "s.yaml"), "s.yaml", 1, "", error_type=ScenarioError)
    body = root.child("steps").items()[0].child("invoke")
    assert body.path == "steps[0].invoke" and body.line == 2 and body.error_type is ScenarioError
    with pytest.raises(ScenarioError) as info:
        body.fields(("count", "concurrency"))
    assert info.value.key == "steps[0].invoke.cuont" and info.value.line == 2
    assert info.value.reason == ("unknown key 'cuont' (did you mean 'count'?); allowed keys: count, concurrency")


def test_read_text_names_the_file_as_shown(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_bytes(b"\xff\xfe")
    with pytest.raises(SourceError, match=r"^shown\.yaml: cannot read it: not UTF-8 text") as info:
        read_text(tmp_path / "bad.yaml", "shown.yaml", "it")
    assert info.value.line is None
    with pytest.raises(SourceError, match="No such file"):
        read_text(tmp_path / "none.yaml", "none.yaml", "the scenario")


def test_the_services_text_has_one_grammar() -> None:
    assert services_text("aws,redis=binary, memcached") == {"aws": "auto", "redis": "binary", "memcached": "auto"}
    assert services_text("aws\nredis = embedded\n") == {"aws": "auto", "redis": "embedded"}
    assert services_text("") == {} and services_text(None) == {}
    with pytest.raises(ConfigError, match=r"^--services: .*'postgres'"):
        services_text("postgres")
    with pytest.raises(ConfigError, match=r"^lambda_sim_services \(ini\): "):
        services_text("redis=telepathy", "lambda_sim_services (ini)")


def test_json_arguments_inline_or_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "e.json").write_text('{"a": [1, 2]}')
    assert read_json_argument('{"a": 1}', "--event") == {"a": 1}
    assert read_json_argument(f"@{tmp_path / 'e.json'}", "--event") == {"a": [1, 2]}
    with pytest.raises(ConfigError, match=r"^--event: not valid JSON at line 1, column 2"):
        read_json_argument("{a}", "--event")
    with pytest.raises(ConfigError, match=r"^--event @.*none\.json: cannot read"):
        read_json_argument(f"@{tmp_path / 'none.json'}", "--event")


def test_env_arguments() -> None:
    assert env_argument(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}
    with pytest.raises(ConfigError, match=r"^--env 'A': write it as KEY=VALUE"):
        env_argument(["A"])
