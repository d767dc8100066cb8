"""deploy-stack and remove-stack, run as the SSM agent would run them, on a real one-manager swarm.

The embedded AWS is a moto server on the lab bridge: a versioned stacks bucket, the cluster's key and
SecureStrings under ``<prefix>/secrets/``. The tests build on each other, in file order: a stack with
a secret -> the secret rotated -> bad input of every kind (the running stack untouched) -> removal.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
from embedded_aws import agent_environment, clients, moto_on_bridge, wait_for

from infra.documents import parse_result, render_commands
from lab.nodes import LabNetwork, LabNode, leftovers, load_image

pytestmark = pytest.mark.lab

PREFIX = "sks"  # own names, so a lab running elsewhere on this machine is never touched
SUBNET = "10.99.6.0/24"
REGION = "eu-west-1"
PARAMS = "/swarmkeeper/stacktest"
BUCKET = "swarmkeeper-stacktest-stacks"
IMAGE = "swarmkeeper/busybox:lab"
SECRET = "s3cr3t-value\twith a tab\nand a last newline\n"
ROTATED = "the-rotated-value-0002"

APP = f"""version: "3.8"
services:
  web:
    image: {IMAGE}
    command: ["sleep", "100000"]
    secrets: [db_password]
    deploy:
      restart_policy:
        delay: 1s
secrets:
  db_password:
    external: true
"""

ONE = f"""version: "3.8"
services:
  {{service}}:
    image: {IMAGE}
    command: ["sleep", "100000"]
"""


@dataclass
class Run:
    returncode: int
    stdout: str
    stderr: str

    @property
    def result(self) -> dict[str, str]:
        return parse_result(self.stdout)


@dataclass
class StackLab:
    net: LabNetwork
    node: LabNode
    s3: object
    ssm: object
    endpoint: str
    runs: int = 0

    def run(self, action: str, **values: str) -> Run:
        """Render the document as the SSM agent does and run it with the agent's environment."""
        self.runs += 1
        path = self.node.root_dir / f"_script-{self.runs}-{action}.sh"
        path.write_text(render_commands(action, values))
        scratch = self.node.root_dir / "tmp"
        env = agent_environment(
            self.endpoint, REGION, TMPDIR=str(scratch), SWARMKEEPER_RUN_DIR=str(scratch / "run")
        )
        proc = self.node.run(["sh", str(path)], env=env, timeout=180)
        path.unlink()
        run = Run(proc.returncode, proc.stdout, proc.stderr)
        for value in (SECRET, ROTATED, SECRET.splitlines()[0]):
            assert value not in run.stdout and value not in run.stderr, f"{action} printed a secret"
        # and the run left no scratch file behind (where a secret could have been written)
        assert [p for p in scratch.rglob("*") if not p.is_dir()] == []
        return run

    def put(self, body: str, name: str = "app") -> str:
        key = f"stacks/{name}.yml"
        return self.s3.put_object(Bucket=BUCKET, Key=key, Body=body.encode())["VersionId"]

    def deploy(self, version: str, name: str = "app", key: str | None = None) -> Run:
        return self.run(
            "deploy-stack",
            StackName=name,
            Bucket=BUCKET,
            Key=key or f"stacks/{name}.yml",
            VersionId=version,
            ParameterPrefix=PARAMS,
            Region=REGION,
        )

    def docker(self, *args: str) -> str:
        proc = self.node.docker(*args)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    def service(self) -> dict:
        return json.loads(self.docker("service", "inspect", "app_web"))[0]

    def secrets(self) -> set[str]:
        return set(self.docker("secret", "ls", "--format", "{{.Name}}").split())

    def secret_in_task(self) -> str | None:
        """What the running task of app_web reads at /run/secrets/db_password (None: no task yet)."""
        ids = self.docker("ps", "-q", "--filter", "label=com.docker.swarm.service.name=app_web").split()
        if len(ids) != 1:
            return None
        proc = self.node.docker("exec", ids[0], "cat", "/run/secrets/db_password")
        return proc.stdout if proc.returncode == 0 else None


@pytest.fixture(scope="module")
def lab():
    net = LabNetwork(subnet=SUBNET, bridge=f"{PREFIX}br0", prefix=PREFIX)
    try:
        net.up()
        with moto_on_bridge(net) as endpoint:
            s3, kms, ssm = clients(endpoint, REGION, "s3", "kms", "ssm")
            s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
            s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
            key_id = kms.create_key(Description="swarmkeeper stack test")["KeyMetadata"]["KeyId"]
            ssm.put_parameter(
                Name=f"{PARAMS}/secrets/db_password", Value=SECRET, Type="SecureString", KeyId=key_id
            )
            node = net.add_node("ip-10-99-6-11.ec2.internal", "10.99.6.11")
            node.start_dockerd(wait=True)
            (node.root_dir / "tmp").mkdir(exist_ok=True)
            load_image(node)
            proc = node.run(["docker", "swarm", "init", "--advertise-addr", node.ip])
            assert proc.returncode == 0, proc.stderr
            yield StackLab(net, node, s3, ssm, endpoint)
    finally:
        net.down()
        left = leftovers(PREFIX)
        assert left == [], f"the lab left things behind: {left}"


def test_a_stack_is_deployed_with_its_external_secret(lab: StackLab):
    # Given a Compose file in the bucket that uses an external secret held as a SecureString
    version = lab.put(APP)

    # When the manager deploys that version
    run = lab.deploy(version)

    # Then the stack runs, and says so on its last line
    assert run.returncode == 0, run.stderr
    assert run.result == {"stack": "app", "version": version, "services": "1", "secrets": "1"}
    assert lab.docker("stack", "services", "app", "--format", "{{.Name}}") == "app_web"
    # and the secret is the swarm secret db_password-v1, holding the parameter's value exactly
    assert "db_password-v1" in lab.secrets()
    assert wait_for(lab.secret_in_task, SECRET) == SECRET


def test_a_new_secret_version_rolls_the_service_and_the_old_one_goes(lab: StackLab):
    # Given the secret's parameter at a new version
    lab.ssm.put_parameter(
        Name=f"{PARAMS}/secrets/db_password", Value=ROTATED, Type="SecureString", Overwrite=True
    )
    version = lab.s3.list_object_versions(Bucket=BUCKET, Prefix="stacks/app.yml")["Versions"][0]["VersionId"]

    # When the same stack is deployed again
    run = lab.deploy(version)

    # Then the service uses db_password-v2, and db_password-v1 is gone
    assert run.returncode == 0, run.stderr
    (secret,) = lab.service()["Spec"]["TaskTemplate"]["ContainerSpec"]["Secrets"]
    assert (secret["SecretName"], secret["File"]["Name"]) == ("db_password-v2", "db_password")
    assert {s for s in lab.secrets() if s.startswith("db_password")} == {"db_password-v2"}
    assert wait_for(lab.secret_in_task, ROTATED) == ROTATED


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("services: [web\n  - : x", "not a Compose file docker accepts"),
        ("just some text\n", "not a Compose file docker accepts"),
        ('version: "3.8"\nservices: [1, 2]\n', "not a Compose file docker accepts"),
        (
            'version: "3.8"\nservices:\n  web:\n    image: nosuch/image:1\n',
            "image nosuch/image:1 does not exist",
        ),
        ('version: "3.8"\nservices:\n  web:\n    command: ["sleep", "1"]\n', "service web has no image"),
        (APP.replace("db_password", "nosuch"), "there is no parameter /swarmkeeper/stacktest/secrets/nosuch"),
        # without the name checks, --prune would remove app_web before Swarm refused the file
        (ONE.format(service="web.1"), "service web.1: app_web.1 is not a name Swarm accepts"),
        (ONE.format(service="w" * 60), "is longer than the 63 characters Swarm accepts"),
        (
            ONE.format(service="api") + "    networks: [back]\nnetworks:\n  back:\n    name: back.net\n",
            "network back: back.net is not a name Swarm accepts",
        ),
        (
            ONE.format(service="web") + "secrets:\n  mine:\n    name: no spaces\n    file: /etc/hostname\n",
            "Swarm refused the file: ",
        ),
    ],
    ids=[
        "not-yaml",
        "not-a-mapping",
        "not-compose",
        "no-such-image",
        "no-image",
        "no-such-secret",
        "service-name-swarm-refuses",
        "service-name-too-long",
        "network-name-swarm-refuses",
        "secret-name-swarm-refuses",
    ],
)
def test_bad_input_is_refused_and_the_running_stack_is_untouched(lab: StackLab, body, says):
    # Given the running stack
    before = lab.service()

    # When a bad version of its file is deployed
    run = lab.deploy(lab.put(body))

    # Then the command fails, says why, and says the input was refused (no point trying it again)
    assert run.returncode != 0
    assert says in run.stderr, run.stderr
    assert run.result == {"stack": "app", "refused": "true"}
    # and the stack is exactly as it was
    after = lab.service()
    assert after["Spec"] == before["Spec"]


def test_a_key_that_is_not_the_stacks_own_is_refused(lab: StackLab):
    version = lab.put(APP, name="other")
    run = lab.deploy(version, name="app", key="stacks/other.yml")
    assert run.returncode != 0 and "is not stacks/app.yml" in run.stderr
    assert run.result == {"stack": "app", "refused": "true"}


def test_a_secret_parameter_that_is_not_a_secure_string_is_refused(lab: StackLab):
    lab.ssm.put_parameter(Name=f"{PARAMS}/secrets/plain", Value="visible", Type="String")
    run = lab.deploy(lab.put(APP.replace("db_password", "plain"), name="plain"), name="plain")
    assert run.returncode != 0 and "is not a SecureString" in run.stderr
    assert "visible" not in run.stdout + run.stderr
    assert lab.docker("stack", "ls", "--format", "{{.Name}}") == "app"


def test_compose_interpolation_sees_none_of_the_agents_environment(lab: StackLab):
    # Given a file that asks for the agent's credentials and the document's parameters
    body = APP.replace('["sleep", "100000"]', '["sleep", "1${AWS_SECRET_ACCESS_KEY}${SK_BUCKET}00000"]')
    run = lab.deploy(lab.put(body, name="probe"), name="probe")
    assert run.returncode == 0, run.stderr
    spec = json.loads(lab.docker("service", "inspect", "probe_web"))[0]["Spec"]
    # Then they were empty when docker read the file
    assert spec["TaskTemplate"]["ContainerSpec"]["Args"] == ["sleep", "100000"]
    assert lab.run("remove-stack", StackName="probe").returncode == 0


def test_remove_stack_removes_it_and_its_secrets_then_again(lab: StackLab):
    # When the stack is removed
    run = lab.run("remove-stack", StackName="app")

    # Then its services and the secret it used are gone
    assert run.returncode == 0, run.stderr
    assert run.result == {"stack": "app", "removed": "true"}
    assert lab.docker("stack", "ls", "--format", "{{.Name}}") == ""
    assert not {s for s in lab.secrets() if s.startswith("db_password")}
    # and removing it again is not an error
    again = lab.run("remove-stack", StackName="app")
    assert again.returncode == 0 and again.result == {"stack": "app", "removed": "true"}
