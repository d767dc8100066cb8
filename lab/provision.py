"""Create, in the embedded region, what the handlers need — read from the synthesized template.

Auto Scaling groups (sizes start at 0; the template's desired capacity is what scenarios ask for),
lifecycle hooks, launch templates, security groups, the state table, the SSM documents with their
real content, Parameter Store parameters, KMS key and alias, queues, bucket, the event bus, rules
(their real patterns), alarms. Lambda functions are not created in moto: the lab runs them (see
``lab.lambdas``); their environment is the template's, resolved against what was created here.
The template's VPC maps to the lab's one VPC, whose CIDR is the lab bridge's subnet, and each of its
subnets to the lab subnet of its Availability Zone: a quarter of the bridge's subnet per zone (zones
a to d), so moto's private IPs are the namespaces' IPs and an instance's zone is its subnet's.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import uuid
from pathlib import Path
from typing import Any

from lab.provision_wiring import ProvisionWiring
from lab.provisioned import AlarmSpec, AssociationSpec, GroupInfo, Provisioned
from lab.template import Template, TemplateError

__all__ = ["LAB_AMI", "AlarmSpec", "AssociationSpec", "GroupInfo", "Provisioned", "Provisioner"]

log = logging.getLogger("lab.provision")

LAB_AMI = "ami-0123456789abcdef0"


_SYNTHETIC = {
    "AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::InstanceProfile",
    "AWS::Lambda::Permission", "AWS::CDK::Metadata", "AWS::EC2::InternetGateway",
    "AWS::EC2::VPCGatewayAttachment", "AWS::EC2::RouteTable", "AWS::EC2::Route",
    "AWS::EC2::SubnetRouteTableAssociation", "AWS::EC2::EIP", "AWS::EC2::NatGateway",
    "AWS::EC2::VPCEndpoint", "AWS::EC2::SecurityGroupIngress", "AWS::EC2::SecurityGroupEgress",
    "AWS::SQS::QueuePolicy", "AWS::S3::BucketPolicy", "AWS::Events::EventBusPolicy",
    "AWS::Lambda::EventSourceMapping", "AWS::Lambda::EventInvokeConfig",
}  # fmt: skip


class Provisioner(ProvisionWiring):
    def __init__(
        self, template: Template, region: Any, *, subnet_cidr: str, repo: Path, cdk_out: Path | None
    ):
        self.t = template
        self.region = region
        self.subnet_cidr = subnet_cidr
        self.repo = repo
        self.cdk_out = cdk_out
        self.phys: dict[str, Any] = {}
        self.attrs: dict[str, dict[str, Any]] = {}
        self.out = Provisioned()
        self._busy: set[str] = set()
        self._clients: dict[str, Any] = {}
        self.vpc_id = ""
        self.subnet_id = ""  # zone a's
        self.subnets: dict[str, str] = {}  # zone -> subnet id

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self.region.client(service)
        return self._clients[service]

    # -- entry point ------------------------------------------------------------------------------------
    def run(self) -> Provisioned:
        self.t.set_parameters(self._parameter_value)
        ec2 = self.client("ec2")
        self.vpc_id = ec2.create_vpc(CidrBlock=self.subnet_cidr)["Vpc"]["VpcId"]
        self.subnet_id = self._subnet_of(f"{self.region.name}a")
        for lid in self.t.creation_order(list(self.t.resources)):
            self.ensure(lid)
        self._functions()
        self._rules()
        self._event_sources()
        return self.out

    def _parameter_value(self, name: str, spec: dict) -> Any:
        ptype = spec.get("Type", "")
        if "AWS::EC2::Image::Id" in ptype:
            return LAB_AMI
        if ptype.startswith("AWS::SSM::Parameter::Value"):
            default = str(spec.get("Default", ""))
            if "bootstrap" in default:
                return "30"
            return f"lab-value-of:{default}"
        return None

    # -- intrinsics ---------------------------------------------------------------------------------------
    def ref(self, lid: str) -> Any:
        self.ensure(lid)
        return self.phys[lid]

    def getatt(self, lid: str, attr: str) -> Any:
        self.ensure(lid)
        attrs = self.attrs.get(lid, {})
        if attr in attrs:
            return attrs[attr]
        if attr == "Arn":
            return self._synthetic_arn(lid)
        raise TemplateError(f"Fn::GetAtt {lid}.{attr}: the lab does not know this attribute")

    def resolve(self, value: Any) -> Any:
        return self.t.resolve(value, self.ref, self.getatt)

    def _synthetic_arn(self, lid: str) -> str:
        res = self.t.resources[lid]
        service = res.type.split("::")[1].lower()
        return f"arn:aws:{service}:{self.region.name}:{self.region.account}:{lid}/{self.phys.get(lid, lid)}"

    # -- resources ----------------------------------------------------------------------------------------
    def ensure(self, lid: str) -> None:
        if lid in self.phys:
            return
        if lid not in self.t.resources:
            raise TemplateError(f"unknown resource {lid}")
        if lid in self._busy:
            # A reference cycle (IAM policies and the like): answer with the synthetic id.
            self.phys[lid] = self.t.generated_name(lid)
            return
        self._busy.add(lid)
        try:
            res = self.t.resources[lid]
            handler = getattr(self, "_create_" + re.sub(r"\W", "_", res.type), None)
            if handler is None:
                if res.type not in _SYNTHETIC and not res.type.startswith("Custom::"):
                    self.out.skipped.setdefault(res.type, []).append(lid)
                name = res.properties.get("RoleName") or res.properties.get("LogGroupName")
                self.phys[lid] = self.resolve(name) if name else self.t.generated_name(lid)
                self.attrs[lid] = {"Arn": self._synthetic_arn(lid)}
                return
            phys, attrs = handler(res)
            self.phys[lid] = phys
            self.attrs[lid] = attrs
        finally:
            self._busy.discard(lid)

    def _props(self, res: Any) -> dict[str, Any]:
        return self.resolve(res.properties)

    def _create_AWS__EC2__VPC(self, res: Any) -> tuple[str, dict]:
        return self.vpc_id, {"VpcId": self.vpc_id, "CidrBlock": self.subnet_cidr}

    def _subnet_of(self, zone: str) -> str:
        """The lab subnet of a zone of this region (a to d), made on first use."""
        if zone not in self.subnets:
            letters = "abcd"
            if not zone.startswith(self.region.name) or zone[len(self.region.name) :] not in letters:
                raise TemplateError(f"zone {zone!r}: the lab has zones {self.region.name}a to d")
            quarters = list(ipaddress.IPv4Network(self.subnet_cidr).subnets(prefixlen_diff=2))
            cidr = str(quarters[letters.index(zone[-1])])
            self.subnets[zone] = self.client("ec2").create_subnet(
                VpcId=self.vpc_id, CidrBlock=cidr, AvailabilityZone=zone
            )["Subnet"]["SubnetId"]
        return self.subnets[zone]

    def _create_AWS__EC2__Subnet(self, res: Any) -> tuple[str, dict]:
        zone = self._props(res).get("AvailabilityZone") or f"{self.region.name}a"
        return self._subnet_of(zone), {"SubnetId": self._subnet_of(zone), "AvailabilityZone": zone}

    def _create_AWS__EC2__SecurityGroup(self, res: Any) -> tuple[str, dict]:
        p = self._props(res)
        name = p.get("GroupName") or self.t.generated_name(res.logical_id)
        gid = self.client("ec2").create_security_group(
            GroupName=name, Description=p.get("GroupDescription", name), VpcId=self.vpc_id
        )["GroupId"]
        return gid, {"GroupId": gid, "VpcId": self.vpc_id}

    def _create_AWS__ElasticLoadBalancingV2__LoadBalancer(self, res: Any) -> tuple[str, dict]:
        # In the lab's one subnet: its listeners are played by lab.forwarder on the lab bridge.
        p = self._props(res)
        created = self.client("elbv2").create_load_balancer(
            Name=p.get("Name") or self.t.generated_name(res.logical_id),
            Subnets=[self.subnet_id],
            SecurityGroups=list(p.get("SecurityGroups") or []),
            Scheme=p.get("Scheme", "internal"),
            Type=p.get("Type", "network"),
        )["LoadBalancers"][0]
        arn = created["LoadBalancerArn"]
        full_name = arn.split(":loadbalancer/", 1)[-1]
        return arn, {"LoadBalancerFullName": full_name, "DNSName": created["DNSName"]}

    def _create_AWS__EC2__LaunchTemplate(self, res: Any) -> tuple[str, dict]:
        p = self._props(res)
        name = p.get("LaunchTemplateName") or self.t.generated_name(res.logical_id)
        data = dict(p.get("LaunchTemplateData") or {})
        data.pop("IamInstanceProfile", None)  # the instance role is stood in for by fake credentials
        data.pop("NetworkInterfaces", None)
        data["ImageId"] = data.get("ImageId") or LAB_AMI
        lt = self.client("ec2").create_launch_template(LaunchTemplateName=name, LaunchTemplateData=data)
        lt = lt["LaunchTemplate"]
        version = str(lt.get("LatestVersionNumber", 1))
        return lt["LaunchTemplateId"], {
            "LaunchTemplateId": lt["LaunchTemplateId"],
            "LatestVersionNumber": version,
            "DefaultVersionNumber": str(lt.get("DefaultVersionNumber", 1)),
        }

    def _create_AWS__AutoScaling__AutoScalingGroup(self, res: Any) -> tuple[str, dict]:
        p = self._props(res)
        name = p.get("AutoScalingGroupName") or self.t.generated_name(res.logical_id)
        subnets = p.get("VPCZoneIdentifier") or []
        subnets = subnets.split(",") if isinstance(subnets, str) else subnets
        # The lab's subnets only (an existing VPC's subnet ids name nothing here), each zone once.
        subnets = [s for s in subnets if s in self.subnets.values()] or [self.subnet_id]
        kw: dict[str, Any] = {
            "AutoScalingGroupName": name,
            "MinSize": 0,
            "MaxSize": int(p.get("MaxSize", 1)),
            "DesiredCapacity": 0,
            "VPCZoneIdentifier": ",".join(dict.fromkeys(subnets)),
        }
        if "LaunchTemplate" in p:
            lt = p["LaunchTemplate"]
            spec = (
                {"LaunchTemplateId": lt["LaunchTemplateId"]}
                if lt.get("LaunchTemplateId")
                else {"LaunchTemplateName": lt["LaunchTemplateName"]}
            )
            spec["Version"] = str(lt.get("Version", "$Latest"))
            kw["LaunchTemplate"] = spec
        elif "MixedInstancesPolicy" in p:
            kw["MixedInstancesPolicy"] = p["MixedInstancesPolicy"]
        else:
            raise TemplateError(f"{res.logical_id}: the lab needs a launch template")
        for key in (
            "TerminationPolicies",
            "NewInstancesProtectedFromScaleIn",
            "HealthCheckType",
            "HealthCheckGracePeriod",
            "DefaultCooldown",
            "CapacityRebalance",
        ):
            if key in p:
                kw[key] = p[key]
        if "HealthCheckGracePeriod" in kw:
            kw["HealthCheckGracePeriod"] = int(kw["HealthCheckGracePeriod"])
        if "DefaultCooldown" in kw:
            kw["DefaultCooldown"] = int(kw["DefaultCooldown"])
        tags = []
        for tag in p.get("Tags") or []:
            tags.append(
                {
                    "ResourceId": name,
                    "ResourceType": "auto-scaling-group",
                    "Key": tag["Key"],
                    "Value": str(tag["Value"]),
                    "PropagateAtLaunch": str(tag.get("PropagateAtLaunch", "false")).lower() == "true",
                }
            )
        if tags:
            kw["Tags"] = tags
        asg = self.client("autoscaling")
        asg.create_auto_scaling_group(**kw)
        for hook in p.get("LifecycleHookSpecificationList") or []:
            self._put_hook(name, hook)
        self.out.groups[name] = GroupInfo(
            res.logical_id,
            name,
            int(p.get("MinSize", 0)),
            int(p.get("MaxSize", 1)),
            int(p.get("DesiredCapacity", p.get("MinSize", 0))),
        )
        arn = self.region.backend("autoscaling").autoscaling_groups[name].arn
        return name, {"Arn": arn}

    def _put_hook(self, group: str, hook: dict) -> str:
        name = hook["LifecycleHookName"]
        kw = {
            "AutoScalingGroupName": group,
            "LifecycleHookName": name,
            "LifecycleTransition": hook["LifecycleTransition"],
            "HeartbeatTimeout": int(hook.get("HeartbeatTimeout", 3600)),
            "DefaultResult": hook.get("DefaultResult", "ABANDON"),
        }
        if hook.get("NotificationMetadata"):
            kw["NotificationMetadata"] = hook["NotificationMetadata"]
        self.client("autoscaling").put_lifecycle_hook(**kw)
        backend_hook = self.region.backend("autoscaling").lifecycle_hooks.get(f"{group}_{name}")
        if backend_hook is not None:
            backend_hook.notification_metadata = hook.get("NotificationMetadata")
        return name

    def _create_AWS__AutoScaling__LifecycleHook(self, res: Any) -> tuple[str, dict]:
        p = self._props(res)
        p.setdefault("LifecycleHookName", self.t.generated_name(res.logical_id))
        return self._put_hook(p["AutoScalingGroupName"], p), {}

    def _table(self, res: Any, p: dict) -> tuple[str, dict]:
        name = p.get("TableName") or self.t.generated_name(res.logical_id)
        kw: dict[str, Any] = {
            "TableName": name,
            "KeySchema": p["KeySchema"],
            "AttributeDefinitions": p["AttributeDefinitions"],
            "BillingMode": p.get("BillingMode", "PAY_PER_REQUEST"),
        }
        if kw["BillingMode"] == "PROVISIONED":
            kw["ProvisionedThroughput"] = p.get("ProvisionedThroughput") or {
                "ReadCapacityUnits": 5,
                "WriteCapacityUnits": 5,
            }
        gsis = p.get("GlobalSecondaryIndexes")
        if gsis:
            kw["GlobalSecondaryIndexes"] = [
                {k: v for k, v in g.items() if k in ("IndexName", "KeySchema", "Projection")} for g in gsis
            ]
        ddb = self.client("dynamodb")
        desc = ddb.create_table(**kw)["TableDescription"]
        ttl = p.get("TimeToLiveSpecification")
        if ttl and str(ttl.get("Enabled", "false")).lower() == "true":
            ddb.update_time_to_live(
                TableName=name,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]},
            )
        self.out.tables.append(name)
        return name, {"Arn": desc["TableArn"], "StreamArn": desc.get("LatestStreamArn", "")}

    def _create_AWS__DynamoDB__Table(self, res: Any) -> tuple[str, dict]:
        return self._table(res, self._props(res))

    def _create_AWS__DynamoDB__GlobalTable(self, res: Any) -> tuple[str, dict]:
        return self._table(res, self._props(res))

    def _create_AWS__SSM__Document(self, res: Any) -> tuple[str, dict]:
        p = self._props(res)
        name = p.get("Name") or self.t.generated_name(res.logical_id)
        content = p["Content"]
        fmt = p.get("DocumentFormat", "JSON")
        text = json.dumps(content) if isinstance(content, dict) else str(content)
        if isinstance(content, dict):
            fmt = "JSON"
        self.client("ssm").create_document(
            Name=name, Content=text, DocumentType=p.get("DocumentType", "Command"), DocumentFormat=fmt
        )
        self.out.documents.append(name)
        return name, {}

    def _create_AWS__SSM__Association(self, res: Any) -> tuple[str, dict]:
        p = self._props(res)
        association_id = str(uuid.uuid4())
        self.out.associations.append(AssociationSpec(association_id, p["Name"], list(p.get("Targets") or [])))
        return association_id, {"AssociationId": association_id}

    def _create_AWS__SSM__Parameter(self, res: Any) -> tuple[str, dict]:
        p = self._props(res)
        name = p.get("Name") or self.t.generated_name(res.logical_id)
        self.client("ssm").put_parameter(Name=name, Value=str(p["Value"]), Type=p.get("Type", "String"))
        return name, {"Type": p.get("Type", "String"), "Value": str(p["Value"])}

    def _create_AWS__KMS__Key(self, res: Any) -> tuple[str, dict]:
        meta = self.client("kms").create_key(Description=f"{self.t.stack_name} {res.logical_id}")[
            "KeyMetadata"
        ]
        return meta["KeyId"], {"Arn": meta["Arn"], "KeyId": meta["KeyId"]}

    def _create_AWS__KMS__Alias(self, res: Any) -> tuple[str, dict]:
        p = self._props(res)
        target = str(p["TargetKeyId"]).rsplit("/", 1)[-1]
        self.client("kms").create_alias(AliasName=p["AliasName"], TargetKeyId=target)
        return p["AliasName"], {}

    def _create_AWS__SQS__Queue(self, res: Any) -> tuple[str, dict]:
        p = self._props(res)
        fifo = str(p.get("FifoQueue", "false")).lower() == "true"
        name = p.get("QueueName") or self.t.generated_name(res.logical_id, 80 - (5 if fifo else 0))
        if fifo and not name.endswith(".fifo"):
            name += ".fifo"
        attrs: dict[str, str] = {}
        for key in (
            "VisibilityTimeout",
            "MessageRetentionPeriod",
            "DelaySeconds",
            "ReceiveMessageWaitTimeSeconds",
            "MaximumMessageSize",
            "FifoQueue",
            "ContentBasedDeduplication",
        ):
            if key in p:
                attrs[key] = str(p[key]).lower() if isinstance(p[key], bool) else str(p[key])
        if "RedrivePolicy" in p:
            rp = p["RedrivePolicy"]
            attrs["RedrivePolicy"] = json.dumps(rp if isinstance(rp, dict) else json.loads(rp))
        sqs = self.client("sqs")
        url = sqs.create_queue(QueueName=name, Attributes=attrs)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.out.queues[arn] = url
        return url, {"Arn": arn, "QueueName": name, "QueueUrl": url}

    def _create_AWS__SNS__Topic(self, res: Any) -> tuple[str, dict]:
        p = self._props(res)
        name = p.get("TopicName") or self.t.generated_name(res.logical_id)
        arn = self.client("sns").create_topic(Name=name)["TopicArn"]
        return arn, {"TopicArn": arn, "TopicName": name}

    def _create_AWS__S3__Bucket(self, res: Any) -> tuple[str, dict]:
        p = self._props(res)
        name = p.get("BucketName") or self.t.generated_name(res.logical_id, 63, lower=True)
        s3 = self.client("s3")
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": self.region.name})
        if (p.get("VersioningConfiguration") or {}).get("Status") == "Enabled":
            s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
        notifications = p.get("NotificationConfiguration") or {}
        if (notifications.get("EventBridgeConfiguration") or {}).get("EventBridgeEnabled") in (True, "true"):
            # lab.s3_events sends the bucket's events to the lab's EventBridge
            s3.put_bucket_notification_configuration(
                Bucket=name, NotificationConfiguration={"EventBridgeConfiguration": {}}
            )
        self.out.buckets.append(name)
        return name, {
            "Arn": f"arn:aws:s3:::{name}",
            "DomainName": f"{name}.s3.amazonaws.com",
            "RegionalDomainName": f"{name}.s3.{self.region.name}.amazonaws.com",
        }

    def _create_AWS__Logs__LogGroup(self, res: Any) -> tuple[str, dict]:
        # Created so that what the stack writes to CloudWatch Logs (the operators' timeline) is there.
        p = self._props(res)
        name = p.get("LogGroupName") or self.t.generated_name(res.logical_id)
        self.client("logs").create_log_group(logGroupName=name)
        return name, {"Arn": f"arn:aws:logs:{self.region.name}:{self.region.account}:log-group:{name}:*"}

    def _create_AWS__Events__EventBus(self, res: Any) -> tuple[str, dict]:
        p = self._props(res)
        arn = self.client("events").create_event_bus(Name=p["Name"])["EventBusArn"]
        self.out.buses.append(p["Name"])
        return p["Name"], {"Arn": arn, "Name": p["Name"]}

    def _create_AWS__Events__Rule(self, res: Any) -> tuple[str, dict]:
        name = self.resolve(res.properties.get("Name")) or self.t.generated_name(res.logical_id)
        bus = self.resolve(res.properties.get("EventBusName")) or "default"
        bus = str(bus).rsplit("/", 1)[-1]
        arn = f"arn:aws:events:{self.region.name}:{self.region.account}:rule/" + (
            f"{bus}/{name}" if bus != "default" else name
        )
        return name, {"Arn": arn}

    def _create_AWS__CloudWatch__Alarm(self, res: Any) -> tuple[str, dict]:
        p = self._props(res)
        name = p.get("AlarmName") or self.t.generated_name(res.logical_id)
        kw = {
            k: v
            for k, v in p.items()
            if k
            in (
                "AlarmDescription",
                "ActionsEnabled",
                "AlarmActions",
                "OKActions",
                "InsufficientDataActions",
                "MetricName",
                "Namespace",
                "Statistic",
                "ExtendedStatistic",
                "Dimensions",
                "Period",
                "Unit",
                "EvaluationPeriods",
                "DatapointsToAlarm",
                "Threshold",
                "ComparisonOperator",
                "TreatMissingData",
                "Metrics",
                "ThresholdMetricId",
            )
        }
        for key in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
            if key in kw:
                kw[key] = int(kw[key])
        if "Threshold" in kw:
            kw["Threshold"] = float(kw["Threshold"])
        if "Metrics" in kw:
            for m in kw["Metrics"]:
                if "MetricStat" in m:
                    m["MetricStat"]["Period"] = int(m["MetricStat"]["Period"])
        self.client("cloudwatch").put_metric_alarm(AlarmName=name, **kw)
        arn = f"arn:aws:cloudwatch:{self.region.name}:{self.region.account}:alarm:{name}"
        self.out.alarms.append(AlarmSpec(name, arn, p))
        return name, {"Arn": arn}

    def _create_AWS__Lambda__Function(self, res: Any) -> tuple[str, dict]:
        name = self.resolve(res.properties.get("FunctionName")) or self.t.generated_name(res.logical_id)
        arn = f"arn:aws:lambda:{self.region.name}:{self.region.account}:function:{name}"
        return name, {"Arn": arn}

    def _create_AWS__Lambda__LayerVersion(self, res: Any) -> tuple[str, dict]:
        name = self.resolve(res.properties.get("LayerName")) or self.t.generated_name(res.logical_id)
        arn = f"arn:aws:lambda:{self.region.name}:{self.region.account}:layer:{name}:1"
        return arn, {"Arn": arn}
