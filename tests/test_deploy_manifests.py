"""The deployment files (Dockerfile, deploy/compose.yaml, deploy/k8s/) and
`mappa deploy strimzi`, checked without a container engine or a cluster: against the
published schemas (the Compose specification's, Kubernetes' as kubernetes-validate
bundles them, Strimzi's CRDs; vendored in tests/data/deploy/, see SOURCES.md there) and
for the properties deploy/README.md claims. Each property check is a function returning
what it finds wrong, run once on the real file and once on a copy spoiled on purpose, so
that none of them passes by finding nothing to look at."""

from __future__ import annotations

import copy
import functools
import json
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from broker.cli.main import UsageError, build_parser, main
from broker.errors import ConfigurationError
from broker.kafka.acls import LEDGER_PRINCIPAL, AclBinding, Operation
from broker.kafka.apache_install import KAFKA_VERSION
from broker.kafka.strimzi import kafka_topics, kafka_users, strimzi_resources
from broker.kafka.topics import PARTITIONS, Topics, topic_configs
from broker.settings import Settings
from broker.trust.provision import DataPaths, load_directory

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
VENDORED = Path(__file__).resolve().parent / "data" / "deploy"
EXAMPLE = DEPLOY / "agencies.example.yaml"
PASSPHRASE = "a deployment passphrase"  # noqa: S105 (a test deployment's)
# Environment names that would carry a secret's value; their *_FILE form names a file.
SECRET_NAME = re.compile(r"PASSWORD|PASSPHRASE|SECRET|TOKEN|PGPASS", re.IGNORECASE)
# user:password@ in a URL.
URL_PASSWORD = re.compile(r"://[^/@\s:]+:[^/@\s]+@")

Doc = dict[str, Any]


def load_yaml(path: Path) -> Doc:
    loaded: Doc = yaml.safe_load(path.read_text())
    return loaded


def example_agencies() -> list[str]:
    return [a["agency_id"] for a in load_yaml(EXAMPLE)["agencies"]]


def service_name(agency_id: str) -> str:
    return "gateway-" + agency_id.replace(".", "-")


# ---------------------------------------------------------------- Dockerfile


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) per instruction, continuation lines joined, comments and
    parser directives dropped."""
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for raw in joined.splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def dockerfile_problems(text: str) -> list[str]:
    """What the Dockerfile lacks of what deploy/README.md claims: several stages with the
    last one a slim Python runtime; a non-root USER there; a HEALTHCHECK asking /readyz
    with Python (no curl); the entrypoint mappa; the port exposed; the environment a
    read-only root filesystem needs."""
    steps = dockerfile_instructions(text)
    problems = []
    froms = [i for i, (word, _) in enumerate(steps) if word == "FROM"]
    if len(froms) < 2:
        problems.append("not multi-stage")
    final = steps[froms[-1] :] if froms else steps
    args = {a.split("=", 1)[0]: a.split("=", 1)[1] for w, a in steps if w == "ARG" and "=" in a}
    base = final[0][1].split()[0] if final else ""
    base = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), ""), base)
    if not re.fullmatch(r"python:3\.11-slim\S*", base):
        problems.append(f"runtime base is {base!r}, not a slim Python 3.11")
    users = [a.split(":")[0] for w, a in final if w == "USER"]
    if not users or users[-1] in {"root", "0"}:
        problems.append("runs as root")
    checks = [a for w, a in final if w == "HEALTHCHECK"]
    if not checks or "/readyz" not in checks[-1] or "python" not in checks[-1]:
        problems.append("no HEALTHCHECK asking /readyz with Python")
    if any("curl" in a or "wget" in a for _, a in final):
        problems.append("curl or wget in the runtime stage")
    if ("ENTRYPOINT", '["mappa"]') not in final:
        problems.append("entrypoint is not mappa")
    if not any(w == "EXPOSE" and "8700" in a.split() for w, a in final):
        problems.append("port 8700 not exposed")
    env = " ".join(a for w, a in final if w == "ENV")
    for needed in ("PYTHONDONTWRITEBYTECODE=1", "TMPDIR=/tmp", "MAPPA_DATA_DIR=/var/lib/mappa"):
        if needed not in env:
            problems.append(f"ENV lacks {needed}")
    if ("VOLUME", '["/var/lib/mappa"]') not in final:
        problems.append("the data directory is not a volume")
    return problems


def test_dockerfile_is_multi_stage_non_root_with_a_readiness_healthcheck() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert dockerfile_problems(text) == []
    spoiled = {
        "runs as root": text.replace("USER mappa:mappa", "USER root"),
        "not multi-stage": re.sub(r"(?s)FROM \$\{PYTHON_IMAGE\} AS build.*?(?=FROM)", "", text),
        "no HEALTHCHECK asking /readyz with Python": text.replace("/readyz", "/healthz"),
        "entrypoint is not mappa": text.replace('ENTRYPOINT ["mappa"]', 'ENTRYPOINT ["sh"]'),
        "ENV lacks PYTHONDONTWRITEBYTECODE=1": text.replace("PYTHONDONTWRITEBYTECODE=1", ""),
    }
    for problem, variant in spoiled.items():
        assert variant != text, problem
        assert problem in dockerfile_problems(variant)


def test_dockerignore_sends_only_the_source() -> None:
    lines = [
        line
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines[0] == "*"
    # Whatever the Dockerfile copies, and nothing more, is let back in.
    copied = set()
    for word, arguments in dockerfile_instructions((ROOT / "Dockerfile").read_text()):
        if word == "COPY" and not arguments.startswith("--"):
            for source in arguments.split()[:-1]:
                copied.add(source + "/" if (ROOT / source).is_dir() else source)
    assert {line[1:] for line in lines if line.startswith("!")} == copied


# ---------------------------------------------------------------- compose


@pytest.fixture(scope="module")
def compose() -> Doc:
    return load_yaml(DEPLOY / "compose.yaml")


def compose_schema_errors(document: Doc) -> list[str]:
    schema = json.loads((VENDORED / "compose-spec.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    return [f"{e.json_path}: {e.message}" for e in validator.iter_errors(document)]


def test_compose_file_follows_the_compose_specification(compose: Doc) -> None:
    assert compose_schema_errors(compose) == []
    spoiled = copy.deepcopy(compose)
    spoiled["services"]["kafka"]["healthcheck"]["intervall"] = "5s"
    spoiled["services"]["ledger"]["depends_on"]["postgres"]["condition"] = "service_ready"
    assert len(compose_schema_errors(spoiled)) == 2


def test_compose_runs_the_kafka_release_the_suite_tests(compose: Doc) -> None:
    assert compose["services"]["kafka"]["image"] == f"apache/kafka:{KAFKA_VERSION}"


def secret_files(document: Doc, service: Doc) -> set[str]:
    """The files a service's secrets come from, relative to deploy/."""
    names = [s if isinstance(s, str) else s["source"] for s in service.get("secrets", [])]
    return {document["secrets"][n]["file"] for n in names}


def gateway_problems(document: Doc) -> list[str]:
    """Where a gateway of the example's agencies is missing, or holds more than its own
    agency's: its data directory, its key passphrase, its Kafka credential."""
    problems = []
    for agency in example_agencies():
        service = document["services"].get(service_name(agency))
        if service is None:
            problems.append(f"no gateway for {agency}")
            continue
        command = service["command"]
        if command[:3] != ["serve", "--agency", agency] or "--no-ledger" not in command:
            problems.append(f"{agency}: command is not serve --agency {agency} --no-ledger")
        if service["volumes"] != [f"./data/{agency}:/var/lib/mappa"]:
            problems.append(f"{agency}: mounts {service['volumes']}")
        own = {f"./secrets/kafka-users/{agency}", f"./secrets/{agency}/key-passphrase"}
        if secret_files(document, service) != own:
            problems.append(f"{agency}: secrets {sorted(secret_files(document, service))}")
        if service["environment"].get("MAPPA_KAFKA_USERNAME") != agency:
            problems.append(f"{agency}: connects as another principal")
    return problems


def test_each_gateway_holds_only_its_own_agencys_data_and_secrets(compose: Doc) -> None:
    assert gateway_problems(compose) == []
    spoiled = copy.deepcopy(compose)
    police = spoiled["services"][service_name("police.staffordshire")]
    police["secrets"].append("housing-stoke-on-trent-key-passphrase")
    police["volumes"].append("./data/ledger:/var/lib/ledger")
    del spoiled["services"][service_name("housing.stoke-on-trent")]
    assert len(gateway_problems(spoiled)) == 3


def environments(document: Doc) -> Iterator[tuple[str, str, str]]:
    """(service, name, value) for every environment entry, anchors resolved."""
    for name, service in document["services"].items():
        env = service.get("environment", {})
        pairs = env.items() if isinstance(env, dict) else (e.split("=", 1) for e in env)
        for key, value in pairs:
            yield name, key, str(value)


def inline_secret_problems(document: Doc) -> list[str]:
    """Secrets given as values rather than files: an environment variable named for a
    secret that is not a *_FILE (or libpq's PGPASSFILE), a URL with a password, a
    secret whose source is not a file under ./secrets."""
    problems = []
    for service, key, value in environments(document):
        if SECRET_NAME.search(key) and not key.endswith("_FILE") and key != "PGPASSFILE":
            problems.append(f"{service}: {key} inline")
        if URL_PASSWORD.search(value):
            problems.append(f"{service}: {key} has a password in a URL")
    for name, secret in document.get("secrets", {}).items():
        if not str(secret.get("file", "")).startswith("./secrets/"):
            problems.append(f"secret {name} is not a file under ./secrets")
    return problems


def test_no_secret_is_written_into_the_compose_file(compose: Doc) -> None:
    assert inline_secret_problems(compose) == []
    spoiled = copy.deepcopy(compose)
    spoiled["services"]["ledger"]["environment"]["MAPPA_DATABASE_URL"] = "postgresql://l:pw@pg/l"
    spoiled["services"]["kafka-acls"]["environment"]["MAPPA_KEY_PASSPHRASE"] = "x" * 16
    spoiled["secrets"]["kafka-admin-password"] = {"environment": "ADMIN_PASSWORD"}
    assert len(inline_secret_problems(spoiled)) == 3


ONE_SHOTS = {"kafka-credentials", "kafka-acls"}


def wiring_problems(document: Doc) -> list[str]:
    """Start order and health: every depends_on target exists, one-shots are waited for
    until they complete and long-running services until healthy (or started); every
    long-running service has a healthcheck; every mappa service runs non-root with a
    read-only root filesystem and no capabilities; ports are published on 127.0.0.1."""
    problems = []
    services = document["services"]
    for name, service in services.items():
        for target, rule in service.get("depends_on", {}).items():
            if target not in services:
                problems.append(f"{name} depends on unknown {target}")
                continue
            wanted = (
                {"service_completed_successfully"}
                if target in ONE_SHOTS
                else {"service_healthy", "service_started"}
            )
            if rule.get("condition") not in wanted:
                problems.append(f"{name} waits for {target} to be {rule.get('condition')}")
        if name not in ONE_SHOTS and "healthcheck" not in service:
            problems.append(f"{name} has no healthcheck")
        if service.get("image", "").startswith("mappa-broker") and not (
            service.get("read_only") is True
            and service.get("cap_drop") == ["ALL"]
            and not str(service.get("user", "0")).startswith("0")
        ):
            problems.append(f"{name} is not read-only, non-root, without capabilities")
        for port in service.get("ports", []):
            if not str(port).startswith("127.0.0.1:"):
                problems.append(f"{name} publishes {port} beyond this machine")
    return problems


def test_services_start_in_order_with_healthchecks_and_least_privilege(compose: Doc) -> None:
    assert wiring_problems(compose) == []
    spoiled = copy.deepcopy(compose)
    spoiled["services"]["ledger"]["depends_on"]["kafka-acls"]["condition"] = "service_started"
    spoiled["services"]["ledger"]["depends_on"]["zookeeper"] = {"condition": "service_started"}
    del spoiled["services"]["postgres"]["healthcheck"]
    spoiled["services"][service_name("coord.staffordshire")]["read_only"] = False
    spoiled["services"]["ledger"]["ports"] = ["8700:8700"]
    assert len(wiring_problems(spoiled)) == 5


def mappa_commands() -> Iterator[tuple[str, list[str]]]:
    """Every `mappa` command line the deployment files run: compose's and k8s'."""
    document = load_yaml(DEPLOY / "compose.yaml")
    for name, service in document["services"].items():
        if service.get("image", "").startswith("mappa-broker"):
            yield f"compose {name}", service["command"]
    for path, manifest in k8s_manifests():
        if manifest["kind"] == "Deployment":
            for container in manifest["spec"]["template"]["spec"]["containers"]:
                yield f"{path.name} {container['name']}", container["args"]


def test_every_command_the_deployment_runs_is_one_the_cli_accepts() -> None:
    parser = build_parser()
    commands = list(mappa_commands())
    assert len(commands) == 2 * len(example_agencies()) + 4
    for where, argv in commands:
        args = parser.parse_args(argv)
        assert args.handler is not None, where
    with pytest.raises(UsageError):
        parser.parse_args(["serve", "--agency", "x", "--no-such-option"])


# ---------------------------------------------------------------- Kubernetes


def k8s_manifests() -> Iterator[tuple[Path, Doc]]:
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        if path.name != "kustomization.yaml":
            for document in yaml.safe_load_all(path.read_text()):
                yield path, document


def test_every_kubernetes_manifest_follows_the_api_schema() -> None:
    version = kubernetes_validate.latest_version()
    kinds = set()
    for _, manifest in k8s_manifests():
        kubernetes_validate.validate(manifest, version, strict=True)
        kinds.add(manifest["kind"])
    assert kinds == {
        "Namespace",
        "ConfigMap",
        "PersistentVolumeClaim",
        "Deployment",
        "Service",
        "NetworkPolicy",
    }
    deployment = next(m for _, m in k8s_manifests() if m["kind"] == "Deployment")
    spoiled = copy.deepcopy(deployment)
    spoiled["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["pat"] = "/"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(spoiled, version, strict=True)


def test_kustomization_lists_every_manifest() -> None:
    listed = load_yaml(DEPLOY / "k8s" / "kustomization.yaml")["resources"]
    on_disk = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(listed) == sorted(on_disk)


def pod_problems(name: str, pod: Doc) -> list[str]:
    """A pod spec's departures from: non-root, read-only root, no privilege escalation,
    every capability dropped, liveness on /healthz and readiness on /readyz."""
    problems = []
    if pod.get("securityContext", {}).get("runAsNonRoot") is not True:
        problems.append(f"{name}: pod may run as root")
    for c in pod["containers"]:
        sc = c.get("securityContext", {})
        if not (
            sc.get("readOnlyRootFilesystem") is True
            and sc.get("allowPrivilegeEscalation") is False
            and sc.get("capabilities", {}).get("drop") == ["ALL"]
        ):
            problems.append(f"{name}/{c['name']}: writable root, escalation or capabilities")
        live = c.get("livenessProbe", {}).get("httpGet", {}).get("path")
        ready = c.get("readinessProbe", {}).get("httpGet", {}).get("path")
        if (live, ready) != ("/healthz", "/readyz"):
            problems.append(f"{name}/{c['name']}: probes {live}, {ready}")
    return problems


def deployments() -> dict[str, Doc]:
    return {m["metadata"]["name"]: m for _, m in k8s_manifests() if m["kind"] == "Deployment"}


def test_every_pod_is_locked_down_and_probed() -> None:
    found = deployments()
    assert set(found) == {"ledger"} | {service_name(a) for a in example_agencies()}
    for name, deployment in found.items():
        assert pod_problems(name, deployment["spec"]["template"]["spec"]) == []
    pod = copy.deepcopy(found["ledger"]["spec"]["template"]["spec"])
    pod["securityContext"]["runAsNonRoot"] = False
    pod["containers"][0]["securityContext"]["capabilities"]["drop"] = ["NET_RAW"]
    pod["containers"][0]["readinessProbe"]["httpGet"]["path"] = "/healthz"
    assert len(pod_problems("ledger", pod)) == 3


def k8s_gateway_problems(agency: str, deployment: Doc, policies: list[Doc]) -> list[str]:
    """A gateway Deployment's departures from: serving its agency alone, as its own
    principal, with only its own Secrets and volume, and a NetworkPolicy selecting it."""
    problems = []
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    if container["args"][:3] != ["serve", "--agency", agency]:
        problems.append(f"{agency}: serves {container['args'][:3]}")
    env = {e["name"]: e.get("value") for e in container["env"]}
    if env.get("MAPPA_KAFKA_USERNAME") != agency:
        problems.append(f"{agency}: connects as {env.get('MAPPA_KAFKA_USERNAME')}")
    secrets = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
    if secrets != {agency, f"{service_name(agency)}-key-passphrase"}:
        problems.append(f"{agency}: secrets {sorted(secrets)}")
    claims = {
        v["persistentVolumeClaim"]["claimName"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    }
    if claims != {f"{service_name(agency)}-data"}:
        problems.append(f"{agency}: volumes {sorted(claims)}")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selecting = [
        p
        for p in policies
        if p["spec"]["podSelector"].get("matchLabels")
        and p["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    ]
    if not selecting:
        problems.append(f"{agency}: no NetworkPolicy of its own")
    return problems


def test_each_k8s_gateway_holds_only_its_own_agencys_secrets_behind_a_network_policy() -> None:
    found = deployments()
    policies = [m for _, m in k8s_manifests() if m["kind"] == "NetworkPolicy"]
    for agency in example_agencies():
        assert k8s_gateway_problems(agency, found[service_name(agency)], policies) == []
    police = copy.deepcopy(found[service_name("police.staffordshire")])
    volumes = police["spec"]["template"]["spec"]["volumes"]
    volumes.append({"name": "x", "secret": {"secretName": "housing.stoke-on-trent"}})
    police["spec"]["template"]["spec"]["containers"][0]["env"][0]["value"] = "mappa-admin"
    assert len(k8s_gateway_problems("police.staffordshire", police, [])) == 3


# ---------------------------------------------------------------- Strimzi


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A deployment of the example agencies, as `mappa keys init` makes it."""
    d = tmp_path_factory.mktemp("strimzi") / "deployment"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("MAPPA_KEY_PASSPHRASE", PASSPHRASE)
        env.delenv("MAPPA_DATA_DIR", raising=False)
        env.delenv("MAPPA_TOPIC_NAMESPACE", raising=False)
        assert main(["keys", "--data-dir", str(d), "init", "--agencies", str(EXAMPLE)]) == 0
        yield d


@pytest.fixture(scope="module")
def strimzi(data_dir: Path) -> list[Doc]:
    out = data_dir.parent / "strimzi.yaml"
    argv = ["deploy", "strimzi", "--data-dir", str(data_dir), "--namespace", "kafka"]
    assert main([*argv, "--out", str(out)]) == 0
    return [d for d in yaml.safe_load_all(out.read_text()) if d is not None]


@functools.cache
def crd_schema(kind: str) -> Doc:
    crd = load_yaml(VENDORED / f"strimzi-crd-{kind.lower()}.yaml")
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema: Doc = version["schema"]["openAPIV3Schema"]
    return schema


def unknown_fields(value: object, schema: Doc, where: str = "") -> list[str]:
    """Fields the schema does not declare: the API server would prune them silently,
    which JSON Schema validation of a CRD (no additionalProperties) does not catch."""
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    found = []
    if isinstance(value, dict) and "properties" in schema:
        for key, item in value.items():
            if key not in schema["properties"]:
                found.append(f"{where}.{key}")
            elif key != "metadata":
                found += unknown_fields(item, schema["properties"][key], f"{where}.{key}")
    elif isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            found += unknown_fields(item, schema["items"], f"{where}[{i}]")
    return found


def crd_problems(resource: Doc) -> list[str]:
    schema = crd_schema(resource["kind"])
    validator = jsonschema.Draft7Validator(schema)
    problems = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(resource)]
    problems += [f"undeclared {f}" for f in unknown_fields(resource, schema)]
    if resource["apiVersion"] != "kafka.strimzi.io/v1":
        problems.append(f"apiVersion {resource['apiVersion']}")
    return problems


def test_strimzi_resources_follow_the_strimzi_crds(strimzi: list[Doc]) -> None:
    assert {r["kind"] for r in strimzi} == {"KafkaTopic", "KafkaUser"}
    for resource in strimzi:
        assert crd_problems(resource) == [], resource["metadata"]["name"]
        assert resource["metadata"]["namespace"] == "kafka"
        assert resource["metadata"]["labels"] == {"strimzi.io/cluster": "mappa"}
    user = copy.deepcopy(next(r for r in strimzi if r["kind"] == "KafkaUser"))
    user["spec"]["authentication"]["type"] = "scram-sha-256"
    user["spec"]["authorization"]["acls"][0]["operation"] = "Read"
    assert len(crd_problems(user)) == 2
    topic = copy.deepcopy(next(r for r in strimzi if r["kind"] == "KafkaTopic"))
    topic["spec"]["partitions"] = 0
    assert len(crd_problems(topic)) == 1


def strimzi_bindings(resources: list[Doc]) -> set[AclBinding]:
    return {
        AclBinding(f"User:{r['metadata']['name']}", acl["resource"]["name"], Operation(op))
        for r in resources
        if r["kind"] == "KafkaUser"
        for acl in r["spec"]["authorization"]["acls"]
        if acl["type"] == "allow" and acl["resource"]["patternType"] == "literal"
        for op in acl["operations"]
    }


def test_strimzi_acls_are_exactly_what_mappa_deploy_acls_derives(
    strimzi: list[Doc], data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    assert main(["deploy", "acls", "--data-dir", str(data_dir), "--json"]) == 0
    derived = {
        AclBinding(b["principal"], b["topic"], Operation(b["operation"]))
        for b in json.loads(capsys.readouterr().out)
    }
    assert strimzi_bindings(strimzi) == derived
    users = {r["metadata"]["name"] for r in strimzi if r["kind"] == "KafkaUser"}
    assert users == {*example_agencies(), LEDGER_PRINCIPAL.removeprefix("User:")}
    for r in strimzi:
        if r["kind"] == "KafkaUser":
            assert r["spec"]["authentication"] == {"type": "scram-sha-512"}
            assert r["spec"]["authorization"]["type"] == "simple"


def test_strimzi_topics_are_the_namespaces_with_the_configs_acls_apply_uses(
    strimzi: list[Doc], data_dir: Path
) -> None:
    settings = Settings(data_dir=data_dir)
    areas = {a for agency in load_directory(DataPaths(data_dir)).agencies() for a in agency.areas}
    topics = [r for r in strimzi if r["kind"] == "KafkaTopic"]
    assert [t["spec"]["topicName"] for t in topics] == Topics().all_topics(areas)
    for t in topics:
        assert t["metadata"]["name"] == t["spec"]["topicName"]
        assert (t["spec"]["partitions"], t["spec"]["replicas"]) == (PARTITIONS, 3)
        assert t["spec"]["config"] == topic_configs(settings, 3)


def test_strimzi_refuses_names_kubernetes_cannot_hold() -> None:
    settings = Settings()
    binding = AclBinding("User:police.staffordshire", "mappa.audit", Operation.WRITE)
    with pytest.raises(ConfigurationError, match="not a Kubernetes object name"):
        kafka_users(["User:Police_Staffordshire"], [], namespace=None, cluster="mappa")
    with pytest.raises(ConfigurationError, match="principals without a user"):
        kafka_users(["User:probation.staffordshire"], [binding], namespace=None, cluster="m")
    with pytest.raises(ConfigurationError, match="cluster"):
        strimzi_resources([], [], [], settings, namespace=None, cluster="My_Cluster")
    with pytest.raises(ConfigurationError, match="namespace"):
        strimzi_resources([], [], [], settings, namespace="kafka.ns", cluster="mappa")
    with pytest.raises(ConfigurationError, match="replicas"):
        kafka_topics(["mappa.audit"], settings, namespace=None, cluster="m", replicas=0)


def test_strimzi_cli_prints_to_stdout_without_out(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    argv = ["deploy", "strimzi", "--data-dir", str(data_dir), "--cluster", "staging"]
    assert main([*argv, "--replicas", "1"]) == 0
    printed = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d is not None]
    assert all("namespace" not in d["metadata"] for d in printed)
    assert {d["metadata"]["labels"]["strimzi.io/cluster"] for d in printed} == {"staging"}
    assert {d["spec"]["replicas"] for d in printed if d["kind"] == "KafkaTopic"} == {1}
    assert main([*argv, "--cluster", "Not_A_Label"]) != 0
    assert "cluster 'Not_A_Label'" in capsys.readouterr().err


def test_walkthrough_commands_parse() -> None:
    """The `mappa` lines of deploy/README.md's compose walkthrough are commands the CLI
    accepts (the rest of each line is the shell's)."""
    text = (DEPLOY / "README.md").read_text()
    lines = [
        line.strip()
        for block in re.findall(r"```(?:sh)?\n(.*?)```", text, re.DOTALL)
        for line in block.replace("\\\n", " ").splitlines()
        if line.strip().startswith("mappa ")
    ]
    assert len(lines) >= 5
    parser = build_parser()
    for line in lines:
        argv = shlex.split(line.split("#")[0])[1:]
        parser.parse_args(argv)
