"""template.yaml as the local runtime reads it: functions, queues, notifications, intrinsics."""

from __future__ import annotations

from pathlib import Path

import pytest
from sluice.local.template import Resolver, Template, load_yaml
from sluice.staging import EXTRACTED, SUFFIX, TRANSFORMED

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


@pytest.fixture(scope="module")
def template() -> Template:
    return Template.load(TEMPLATE)


def test_all_seven_functions_are_found_with_handler_code_and_timeouts(template):
    fns = template.functions
    assert set(fns) == {
        "PlanFunction",
        "ExtractFunction",
        "TransformFunction",
        "LoadFunction",
        "ProgressFunction",
        "VerifyFunction",
        "ImportFunction",
    }
    assert fns["ExtractFunction"].code_uri == "functions/extract/"
    assert {f.handler for f in fns.values()} == {"app.lambda_handler"}
    assert fns["PlanFunction"].timeout == 900
    assert fns["ProgressFunction"].timeout == 60
    assert fns["ExtractFunction"].timeout == 300  # from Globals
    for f in fns.values():
        assert (TEMPLATE.parent / f.code_uri / "app.py").is_file(), f.logical_id


def test_queue_fed_functions_have_their_sqs_sources_with_partial_batch_failures(template):
    sources = {lid: f.sqs_sources for lid, f in template.functions.items()}
    assert [(s.queue, s.batch_size, s.report_failures) for s in sources["ExtractFunction"]] == [
        ("ExtractQueue", 1, True)
    ]
    assert [(s.queue, s.report_failures) for s in sources["TransformFunction"]] == [
        ("TransformQueue", True)
    ]
    assert [(s.queue, s.report_failures) for s in sources["LoadFunction"]] == [("LoadQueue", True)]
    for lid in ("PlanFunction", "ProgressFunction", "VerifyFunction", "ImportFunction"):
        assert sources[lid] == ()


def test_function_environment_merges_globals_unresolved(template):
    env = template.functions["LoadFunction"].environment
    assert env["POWERTOOLS_SERVICE_NAME"] == "sluice"
    assert env["SLUICE_BUCKET"] == {"Ref": "StagingBucket"}
    assert env["SLUICE_MAX_RECEIVE_COUNT"] == {"Ref": "MaxReceiveCount"}


def test_every_work_queue_has_a_dead_letter_queue_and_max_receive_count(template):
    queues = template.queues
    assert set(queues) == {
        "ExtractQueue",
        "ExtractDLQ",
        "TransformQueue",
        "TransformDLQ",
        "LoadQueue",
        "LoadDLQ",
    }
    for name in ("Extract", "Transform", "Load"):
        q = queues[f"{name}Queue"]
        assert q.dlq == f"{name}DLQ"
        assert q.max_receive_count == {"Ref": "MaxReceiveCount"}
        assert q.visibility_timeout == 1800
        assert queues[f"{name}DLQ"].dlq is None
    assert template.parameter_defaults()["MaxReceiveCount"] == "3"


def test_s3_notifications_route_stage_suffixes_to_the_next_queue(template):
    assert sorted((n.queue, n.suffix, n.prefix) for n in template.notifications) == sorted(
        [
            ("TransformQueue", SUFFIX[EXTRACTED], None),
            ("LoadQueue", SUFFIX[TRANSFORMED], None),
            ("LoadQueue", SUFFIX["transformed-ddb"], None),
        ]
    )


def test_state_machine_definition_file_exists(template):
    lid, path, subs = template.state_machine()
    assert lid == "MigrationStateMachine"
    assert path.is_file()
    assert subs["PlanFunctionArn"] == {"Fn::GetAtt": ["PlanFunction", "Arn"]}


def test_short_form_tags_load_as_intrinsic_functions(tmp_path):
    doc = tmp_path / "t.yaml"
    doc.write_text(
        "A: !Ref X\n"
        "B: !GetAtt Q.Arn\n"
        "C: !Sub 'arn:${AWS::Partition}:x'\n"
        "D: !If [Cond, !Ref Y, !Ref AWS::NoValue]\n"
        "E: !Join ['-', [a, !Ref Z]]\n"
        "F: !Not [!Equals [!Ref P, '']]\n"
    )
    assert load_yaml(doc) == {
        "A": {"Ref": "X"},
        "B": {"Fn::GetAtt": ["Q", "Arn"]},
        "C": {"Fn::Sub": "arn:${AWS::Partition}:x"},
        "D": {"Fn::If": ["Cond", {"Ref": "Y"}, {"Ref": "AWS::NoValue"}]},
        "E": {"Fn::Join": ["-", ["a", {"Ref": "Z"}]]},
        "F": {"Fn::Not": [{"Fn::Equals": [{"Ref": "P"}, ""]}]},
    }


@pytest.fixture
def resolve() -> Resolver:
    return Resolver(
        params={
            "LogLevel": "INFO",
            "AWS::Region": "eu-west-1",
            "AWS::StackName": "dev",
            "Empty": "",
        },
        refs={"StagingBucket": "sluice-bucket", "ExtractQueue": "http://q/extract"},
        attrs={("ExtractQueue", "Arn"): "arn:aws:sqs:eu-west-1:1:extract"},
        conditions={"HasSecret": True, "NoSecret": False},
    )


def test_resolver_ref_prefers_parameters_then_resources(resolve):
    assert resolve({"Ref": "LogLevel"}) == "INFO"
    assert resolve({"Ref": "StagingBucket"}) == "sluice-bucket"
    with pytest.raises(KeyError, match="Nope"):
        resolve({"Ref": "Nope"})


def test_resolver_get_att(resolve):
    assert resolve({"Fn::GetAtt": ["ExtractQueue", "Arn"]}) == "arn:aws:sqs:eu-west-1:1:extract"


def test_resolver_sub_with_refs_pseudo_parameters_and_attributes(resolve):
    assert (
        resolve(
            {"Fn::Sub": "${StagingBucket}/${AWS::Region}/${ExtractQueue.Arn}/${AWS::StackName}"}
        )
        == "sluice-bucket/eu-west-1/arn:aws:sqs:eu-west-1:1:extract/dev"
    )


def test_resolver_sub_list_form_uses_its_own_variables_even_when_empty(resolve):
    sub = {
        "Fn::Sub": ["${Name}-${Blank}-${LogLevel}", {"Name": {"Ref": "StagingBucket"}, "Blank": ""}]
    }
    assert resolve(sub) == "sluice-bucket--INFO"


def test_resolver_if_picks_the_branch_of_its_condition(resolve):
    assert resolve({"Fn::If": ["HasSecret", {"Ref": "LogLevel"}, "no"]}) == "INFO"
    assert resolve({"Fn::If": ["NoSecret", {"Ref": "LogLevel"}, "no"]}) == "no"


def test_resolver_walks_nested_structures_and_joins(resolve):
    doc = {
        "Vars": {"Q": {"Ref": "ExtractQueue"}, "Plain": 3},
        "List": [{"Fn::Join": [":", ["a", {"Ref": "LogLevel"}]]}, "x"],
    }
    assert resolve(doc) == {"Vars": {"Q": "http://q/extract", "Plain": 3}, "List": ["a:INFO", "x"]}


def test_resolver_resolves_every_function_environment_of_the_real_template(template):
    params = {
        **template.parameter_defaults(),
        "AWS::Region": "us-east-1",
        "AWS::AccountId": "123456789012",
        "AWS::StackName": "s",
        "AWS::Partition": "aws",
    }
    refs = {lid: f"ref-{lid}" for lid in template.doc["Resources"]}
    resolve = Resolver(params, refs, {}, {})
    for f in template.functions.values():
        env = resolve(f.environment)
        assert all(isinstance(v, str) for v in env.values()), f.logical_id
        assert env["SLUICE_EXTRACT_QUEUE_URL"] == "ref-ExtractQueue"
        assert env["SLUICE_MAX_RECEIVE_COUNT"] == "3"


def test_resolver_evaluates_short_form_tags_loaded_from_yaml(resolve, tmp_path):
    doc = tmp_path / "t.yaml"
    doc.write_text(
        "Arn: !GetAtt ExtractQueue.Arn\n"
        "Url: !Sub '${ExtractQueue.Arn}|${StagingBucket}'\n"
        "Level: !If [NoSecret, DEBUG, !Ref LogLevel]\n"
    )
    assert resolve(load_yaml(doc)) == {
        "Arn": "arn:aws:sqs:eu-west-1:1:extract",
        "Url": "arn:aws:sqs:eu-west-1:1:extract|sluice-bucket",
        "Level": "INFO",
    }


def test_libyaml_and_the_pure_python_parser_read_the_same_template():
    """The local runtime parses template.yaml with libyaml (PyYAML's C parser) for speed;
    PyYAML's pure-Python SafeLoader, given the same CloudFormation tags, reads the same
    document, so the speed changes nothing."""
    import yaml
    from sluice.local import template as tpl

    if not yaml.__with_libyaml__:
        pytest.skip("this PyYAML has no libyaml: the runtime parses with SafeLoader itself")
    assert issubclass(tpl._CfnLoader, yaml.CSafeLoader)

    class PythonCfnLoader(yaml.SafeLoader):
        pass

    tags = {k: v for k, v in tpl._CfnLoader.yaml_constructors.items() if str(k).startswith("!")}
    assert {"!Ref", "!GetAtt", "!Sub", "!If"} <= set(tags)
    for tag, construct in tags.items():
        PythonCfnLoader.add_constructor(tag, construct)
    python_doc = yaml.load(TEMPLATE.read_text(), Loader=PythonCfnLoader)  # noqa: S506
    assert load_yaml(TEMPLATE) == python_doc
    assert python_doc["Resources"]["LoadFunction"]["Properties"]["Events"]
