"""Template resolution: the intrinsics CDK emits, resolved against what the lab created."""

from __future__ import annotations

import pytest

from lab.template import Template, TemplateError


def _template(resources: dict, **extra) -> Template:
    return Template(
        {"Resources": resources, **extra}, "swarmkeeper-t", region="eu-west-1", account="123456789012"
    )


def _resolve(t: Template, value):
    return t.resolve(value, lambda lid: f"phys-{lid}", lambda lid, attr: f"{lid}.{attr}")


def test_ref_getatt_join_sub_select_getazs():
    # Given a template with a queue and a parameter
    t = _template({"Q": {"Type": "AWS::SQS::Queue"}}, Parameters={"P": {"Type": "String", "Default": "d"}})
    t.set_parameters(lambda name, spec: None)
    # When intrinsics are resolved
    value = {
        "a": {"Ref": "Q"},
        "b": {"Fn::GetAtt": ["Q", "Arn"]},
        "c": {"Fn::Join": ["-", [{"Ref": "AWS::Region"}, {"Ref": "P"}]]},
        "d": {"Fn::Sub": "${AWS::AccountId}/${Q}/${Q.Arn}/${!Literal}"},
        "e": {"Fn::Select": [1, {"Fn::GetAZs": ""}]},
        "f": {"Fn::Sub": ["${X}-y", {"X": {"Ref": "Q"}}]},
        "g": {"Ref": "AWS::NoValue"},
    }
    # Then each is what CloudFormation would give
    assert _resolve(t, value) == {
        "a": "phys-Q",
        "b": "Q.Arn",
        "c": "eu-west-1-d",
        "d": "123456789012/phys-Q/Q.Arn/${Literal}",
        "e": "eu-west-1b",
        "f": "phys-Q-y",
    }


def test_conditions_and_if():
    t = _template({}, Conditions={"Yes": {"Fn::Equals": ["a", "a"]}})
    assert _resolve(t, {"Fn::If": ["Yes", 1, 2]}) == 1


def test_unknown_ref_is_an_error():
    t = _template({})
    with pytest.raises(TemplateError):
        _resolve(t, {"Ref": "Missing"})


def test_creation_order_follows_references_and_depends_on():
    t = _template(
        {
            "A": {"Type": "X", "Properties": {"p": {"Ref": "B"}}},
            "B": {"Type": "X", "DependsOn": "C"},
            "C": {"Type": "X"},
        }
    )
    assert t.creation_order(["A", "B", "C"]) == ["C", "B", "A"]


def test_parameters_without_value_fail_loudly():
    t = _template({}, Parameters={"P": {"Type": "String"}})
    with pytest.raises(TemplateError, match="P"):
        t.set_parameters(lambda name, spec: None)
