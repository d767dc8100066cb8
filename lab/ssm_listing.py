"""What ListCommandInvocations and DescribeInstanceInformation answer (moto has neither), built from
the lab's commands and agents."""

from __future__ import annotations

import datetime
from typing import Any

PLUGIN_OUTPUT_LIMIT = 2_500  # ListCommandInvocations' CommandPlugins[].Output


def filters_match(command: Any, inv: dict, filters: list[dict]) -> bool:
    for f in filters:
        key, value = f.get("key") or f.get("Key"), f.get("value") or f.get("Value")
        if key == "Status" and inv["Status"] != value:
            return False
        if key == "DocumentName" and command.document_name != value:
            return False
    return True


def invocation_entry(command: Any, inv: dict, details: bool, region_name: str) -> dict[str, Any]:
    """One CommandInvocations entry of ListCommandInvocations (its CommandPlugins with ``details``)."""
    entry: dict[str, Any] = {
        "CommandId": command.command_id,
        "InstanceId": inv["InstanceId"],
        "InstanceName": "",
        "Comment": command.comment,
        "DocumentName": command.document_name,
        "DocumentVersion": inv.get("DocumentVersion", "1"),
        "RequestedDateTime": command.requested_date_time,
        "Status": inv["Status"],
        "StatusDetails": inv["StatusDetails"],
        "TraceOutput": "",
        "StandardOutputUrl": inv.get("StandardOutputUrl", ""),
        "StandardErrorUrl": inv.get("StandardErrorUrl", ""),
        "ServiceRole": command.service_role_arn,
        "NotificationConfig": {
            "NotificationArn": "",
            "NotificationEvents": [],
            "NotificationType": "Command",
        },
        "CommandPlugins": [],
    }
    if details:
        entry["CommandPlugins"] = [
            {
                "Name": "aws:runShellScript",
                "Status": inv["Status"],
                "StatusDetails": inv["StatusDetails"],
                "ResponseCode": inv["ResponseCode"],
                "Output": (inv.get("StandardOutputContent", "") + inv.get("StandardErrorContent", ""))[
                    :PLUGIN_OUTPUT_LIMIT
                ],
                "StandardOutputUrl": inv.get("StandardOutputUrl", ""),
                "StandardErrorUrl": inv.get("StandardErrorUrl", ""),
                "OutputS3Region": command.output_s3_region or region_name,
                "OutputS3BucketName": command.output_s3_bucket_name,
                "OutputS3KeyPrefix": command.output_s3_key_prefix,
            }
        ]
    return entry


def information_filters(
    filter_list: list[dict], filters: list[dict]
) -> tuple[set[str] | None, set[str] | None]:
    """The instance ids and ping statuses DescribeInstanceInformation asks for (None: any), from
    either of its filter lists."""
    wanted_ids: set[str] | None = None
    ping: set[str] | None = None
    for f in filter_list:
        if f.get("key") == "InstanceIds":
            wanted_ids = set(f.get("valueSet") or [])
        if f.get("key") == "PingStatus":
            ping = set(f.get("valueSet") or [])
    for f in filters:
        if f.get("Key") in ("InstanceIds", "instanceIds"):
            wanted_ids = set(f.get("Values") or [])
        if f.get("Key") == "PingStatus":
            ping = set(f.get("Values") or [])
    return wanted_ids, ping


def instance_entry(agent: Any, status: str, now: datetime.datetime) -> dict[str, Any]:
    """One InstanceInformationList entry of DescribeInstanceInformation for a registered agent."""
    return {
        "InstanceId": agent.instance_id,
        "PingStatus": status,
        "LastPingDateTime": now if agent.online else agent.registered_at,
        "AgentVersion": "3.3.0.0",
        "IsLatestVersion": True,
        "PlatformType": "Linux",
        "PlatformName": "Amazon Linux",
        "PlatformVersion": "2023",
        "RegistrationDate": agent.registered_at,
        "ResourceType": "EC2Instance",
        "IPAddress": agent.ip,
        "ComputerName": agent.hostname,
    }
