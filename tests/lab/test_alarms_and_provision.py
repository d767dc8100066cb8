"""Alarm evaluation against published metrics, and provisioning from a CDK-shaped template."""

from __future__ import annotations

import json
import time
from pathlib import Path

from infra.documents import document_content
from lab.alarms import AlarmKnobs, Alarms, parse_emf
from lab.provision import AlarmSpec, Provisioner
from lab.template import Template
from tests.lab import fixture_template
from tests.lab.helpers import embedded_region, factory

REPO = Path(__file__).resolve().parents[2]


def test_parse_emf_reads_powertools_metrics():
    line = json.dumps(
        {
            "_aws": {
                "Timestamp": 1_700_000_000_000,
                "CloudWatchMetrics": [
                    {
                        "Namespace": "Swarmkeeper",
                        "Dimensions": [["Cluster"]],
                        "Metrics": [{"Name": "NodesDown"}],
                    }
                ],
            },
            "Cluster": "demo",
            "NodesDown": [1.0, 2.0],
        }
    )
    got = parse_emf(line)
    assert [(d.namespace, d.name, d.dims, d.value) for d in got] == [
        ("Swarmkeeper", "NodesDown", {"Cluster": "demo"}, 1.0),
        ("Swarmkeeper", "NodesDown", {"Cluster": "demo"}, 2.0),
    ]
    assert parse_emf("plain log line") == []


def test_alarm_fires_on_breach_and_recovers():
    with embedded_region() as region:
        props = {
            "Namespace": "Swarmkeeper",
            "MetricName": "NodesDown",
            "Dimensions": [{"Name": "Cluster", "Value": "demo"}],
            "Statistic": "Maximum",
            "Period": 60,
            "EvaluationPeriods": 1,
            "Threshold": 0,
            "ComparisonOperator": "GreaterThanThreshold",
            "TreatMissingData": "notBreaching",
        }
        region.client("cloudwatch").put_metric_alarm(AlarmName="swarmkeeper-demo-nodes-down", **props)
        events: list[dict] = []
        alarms = Alarms(
            region,
            factory(region),
            events.append,
            [AlarmSpec("swarmkeeper-demo-nodes-down", "arn:alarm", props)],
            AlarmKnobs(period_scale=0.01),
        )
        alarms.install()
        cw = region.client("cloudwatch")
        # When the control plane publishes NodesDown=1
        cw.put_metric_data(
            Namespace="Swarmkeeper",
            MetricData=[
                {"MetricName": "NodesDown", "Value": 1, "Dimensions": [{"Name": "Cluster", "Value": "demo"}]}
            ],
        )
        alarms.evaluate()
        # Then the alarm goes to ALARM with the documented event, and moto shows the state
        assert events[-1]["detail-type"] == "CloudWatch Alarm State Change"
        assert events[-1]["detail"]["state"]["value"] == "ALARM"
        assert (
            events[-1]["detail"]["configuration"]["metrics"][0]["metricStat"]["metric"]["name"] == "NodesDown"
        )
        state = cw.describe_alarms(AlarmNames=["swarmkeeper-demo-nodes-down"])["MetricAlarms"][0][
            "StateValue"
        ]
        assert state == "ALARM"
        # When no more data comes (missing = not breaching), Then it returns to OK
        time.sleep(0.7)
        alarms.evaluate()
        assert events[-1]["detail"]["state"]["value"] == "OK"


def test_provision_creates_what_the_handlers_need(tmp_path: Path):
    path = fixture_template.write(tmp_path)
    with embedded_region() as region:
        t = Template.load(path, region=region.name, account=region.account)
        out = Provisioner(t, region, subnet_cidr="10.97.0.0/24", repo=REPO, cdk_out=None).run()
        # Groups exist at size 0, with both hooks; the template's desired size is kept for scenarios
        asg = region.client("autoscaling")
        groups = asg.describe_auto_scaling_groups()["AutoScalingGroups"]
        assert sorted((g["AutoScalingGroupName"], g["DesiredCapacity"]) for g in groups) == [
            ("swarmkeeper-demo-managers", 0),
            ("swarmkeeper-demo-workers", 0),
        ]
        assert out.group("-managers").desired == 3
        for g in groups:
            hooks = asg.describe_lifecycle_hooks(AutoScalingGroupName=g["AutoScalingGroupName"])[
                "LifecycleHooks"
            ]
            assert sorted(h["LifecycleHookName"] for h in hooks) == [
                "swarmkeeper-launch",
                "swarmkeeper-terminate",
            ]
        # Documents carry their real content
        doc = region.client("ssm").get_document(Name="swarmkeeper-demo-bootstrap-node")
        assert json.loads(doc["Content"]) == document_content("bootstrap-node")
        # Functions: their code, the layer, and the environment resolved against what exists
        fn = out.functions["swarmkeeper-demo-steps"]
        assert fn.code_dir == REPO / "functions" / "steps"
        assert fn.layer_dirs == [REPO / "layers" / "swarmkeeper" / "python"]
        assert fn.environment["STEP_QUEUE_URL"].endswith("/swarmkeeper-demo-steps")
        assert fn.environment["STATE_TABLE_NAME"] == "swarmkeeper-demo-state"
        region.client("dynamodb").describe_table(TableName=fn.environment["STATE_TABLE_NAME"])
        # Rules keep their real patterns and point at the functions
        rule = next(r for r in out.rules if r.targets == ["swarmkeeper-demo-lifecycle-action"])
        assert rule.pattern["detail"]["AutoScalingGroupName"] == [
            "swarmkeeper-demo-managers",
            "swarmkeeper-demo-workers",
        ]
        assert [s.function for s in out.queue_sources] == ["swarmkeeper-demo-steps"]
        # The bus's timeline rule writes each event to its log group, as on AWS (what `swarmkeeper
        # events` reads)
        region.client("events").put_events(
            Entries=[
                {
                    "Source": "swarmkeeper",
                    "DetailType": "Node Joined",
                    "Detail": json.dumps({"instanceId": "i-0123456789abcdef0"}),
                    "EventBusName": "swarmkeeper-demo",
                }
            ]
        )
        logged = region.client("logs").filter_log_events(logGroupName="/aws/events/swarmkeeper-demo")[
            "events"
        ]
        assert [json.loads(e["message"])["detail-type"] for e in logged] == ["Node Joined"]
        # The lab's subnets are quarters of the bridge's, one per zone: moto's private IPs are the
        # namespaces' IPs, and the template's subnet in the first zone is the first quarter
        subnets = region.client("ec2").describe_subnets()["Subnets"]
        assert any(
            s["CidrBlock"] == "10.97.0.0/26" and s["AvailabilityZone"] == "eu-west-1a" for s in subnets
        )
