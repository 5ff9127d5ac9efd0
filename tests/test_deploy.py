"""The deployment files: compose, Kubernetes manifests, vLLM override and Dockerfiles parse, carry
the fields their tools require, point at files and settings that exist, run commands the CLI
accepts, and keep Ladder's containers non-root. No Docker engine or cluster here: this checks
what can be checked without one."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bot.cli import app
from bot.core.config import Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"


class ComposeLoader(yaml.SafeLoader):
    """YAML as compose reads it: `!reset` and `!override` are compose's own merge tags."""


ComposeLoader.add_constructor("!reset", lambda loader, node: None)
ComposeLoader.add_constructor("!override", lambda loader, node: loader.construct_object(node, deep=True)
                              if not isinstance(node, yaml.ScalarNode) else loader.construct_scalar(node))


def compose(path: Path) -> dict:
    return yaml.load(path.read_text(), Loader=ComposeLoader)


def setting_names() -> set[str]:
    """Every environment variable Settings reads: LADDER_FIELD and each alias."""
    names = set()
    for name, field in Settings.model_fields.items():
        names.add(f"LADDER_{name.upper()}")
        alias = field.validation_alias
        names.update(getattr(alias, "choices", []) if alias is not None else [])
    return names


def known_variable(name: str) -> bool:
    return name in setting_names() or name.startswith(("HF_", "TRANSFORMERS_", "VLLM_", "PYTHON"))


def accepted_by_cli(args: list[str]) -> None:
    """`ladder ARGS --help` parses: the command and its options exist."""
    result = CliRunner().invoke(app, [*args, "--help"])
    assert result.exit_code == 0, f"`ladder {' '.join(args)}` is not a command the CLI accepts:\n{result.output}"


# -- compose ---------------------------------------------------------------------------------


def test_compose_runs_a_bot_a_gpu_worker_the_model_server_and_chroma_on_volumes():
    spec = compose(DEPLOY / "compose.yaml")
    services = spec["services"]
    assert {"slack", "discord", "worker", "models", "chroma"} <= set(services)
    assert services["slack"]["profiles"] == ["slack"] and services["discord"]["profiles"] == ["discord"]
    for name in ("worker", "models"):  # the GPU services: the CUDA image and an NVIDIA GPU reserved
        service = services[name]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile.cuda" and service["image"] == "ladder:cuda"
        [device] = service["deploy"]["resources"]["reservations"]["devices"]
        assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    for name in ("slack", "discord", "chat"):
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
        assert "deploy" not in services[name]  # the bots need no GPU
    declared = set(spec["volumes"])
    for name, service in services.items():
        for mount in service.get("volumes", []):
            volume = mount.split(":")[0]
            assert volume in declared, f"{name} mounts undeclared volume {volume}"
    assert services["chroma"]["volumes"] == ["chroma-data:/data"]
    assert all("ladder-home:/data" in services[n]["volumes"] for n in ("slack", "discord", "worker", "models"))
    for name, service in services.items():  # build contexts and Dockerfiles exist
        if "build" in service:
            context = (DEPLOY / service["build"]["context"]).resolve()
            assert context == ROOT and (context / service["build"]["dockerfile"]).exists()


def merge_lists(node: yaml.Node, path: str = "") -> list[str]:
    """Return where a YAML merge key takes a list (`<<: [*a, *b]`): readers disagree on which
    mapping wins (PyYAML 6.0.4 changed it), so a file that uses one means different things."""
    found = []
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if key.value == "<<" and isinstance(value, yaml.SequenceNode):
                found.append(f"{path}/{key.value}")
            found += merge_lists(value, f"{path}/{key.value}")
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            found += merge_lists(item, f"{path}/{i}")
    return found


@pytest.mark.parametrize("path", sorted(DEPLOY.rglob("*.yaml")), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_deploy_yaml_has_no_merge_lists_that_readers_resolve_differently(path):
    for document in yaml.compose_all(path.read_text(), Loader=ComposeLoader):
        assert merge_lists(document) == []


def test_compose_takes_its_configuration_from_dotenv_with_known_settings():
    spec = compose(DEPLOY / "compose.yaml")
    for name, service in spec["services"].items():
        if name == "chroma":
            continue
        [env_file] = service["env_file"]
        assert (DEPLOY / env_file["path"]).resolve() == ROOT / ".env" and env_file["required"] is False
        for variable in service["environment"]:
            assert known_variable(variable), f"{name} sets {variable}, which Ladder does not read"
        assert service["environment"]["LADDER_HOME"] == "/data"
    bots = spec["services"]["slack"]["environment"]
    assert bots["LADDER_WORKER_IN_CHAT"] == "false"  # only the worker trains
    assert bots["LADDER_CHROMA_URL"] == "http://chroma:8000" and bots["LADDER_INFERENCE_URL"] == "http://models:8000/v1"
    assert "LADDER_INFERENCE_URL" not in spec["services"]["models"]["environment"]  # it is the server
    example = (DEPLOY / ".env.example").read_text()
    keys = re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example, flags=re.M)
    assert {"SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "DISCORD_TOKEN", "LADDER_GPU_HOURS_PER_USER",
            "LADDER_JOB_BACKEND", "LADDER_RAY_ADDRESS"} <= set(keys)
    unknown = [k for k in keys if not known_variable(k)]
    assert not unknown, f".env.example names settings Ladder does not read: {unknown}"



def test_the_env_example_loads_as_it_stands(tmp_path, monkeypatch):
    for name in setting_names():
        monkeypatch.delenv(name, raising=False)
    env = tmp_path / ".env"
    env.write_text((DEPLOY / ".env.example").read_text())
    settings = Settings(_env_file=env)  # blank values (a token not filled in yet) mean unset
    assert settings.base_model == "smollm2-135m" and settings.trainers == []
    assert settings.discord_guild is None and settings.slack_bot_token is None
    env.write_text(env.read_text() + "LADDER_GPU_HOURS_PER_USER=20\nLADDER_DISCORD_GUILD=1234\n")
    filled = Settings(_env_file=env)
    assert filled.gpu_hours_per_user == 20 and filled.discord_guild == 1234


def test_compose_health_checks_hit_the_health_routes_on_the_served_ports():
    services = compose(DEPLOY / "compose.yaml")["services"]
    for name, port in (("slack", "3000"), ("models", "8000")):
        command = services[name]["command"]
        assert command[command.index("--port") + 1] == port
        test = " ".join(services[name]["healthcheck"]["test"])
        assert f"http://localhost:{port}/healthz" in test


@pytest.mark.parametrize("service", ["slack", "discord", "chat", "worker", "models"])
def test_compose_commands_are_ladder_commands(service):
    accepted_by_cli(compose(DEPLOY / "compose.yaml")["services"][service]["command"])


def test_the_vllm_override_serves_the_base_as_base_with_runtime_lora_loading():
    override = compose(DEPLOY / "vllm" / "compose.yaml")["services"]["models"]
    assert override["build"] is None and override["image"].startswith("vllm/vllm-openai:")
    args = " ".join(override["command"])
    for flag in ("--served-model-name=base", "--enable-lora", "--max-loras=", "--max-lora-rank=", "--port=8000"):
        assert flag in args
    assert override["environment"]["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert "/health" in " ".join(override["healthcheck"]["test"])
    guide = (DEPLOY / "vllm" / "README.md").read_text()
    assert "/v1/load_lora_adapter" in guide and "LADDER_INFERENCE_URL" in guide and "--max-lora-rank" in guide


# -- Kubernetes ------------------------------------------------------------------------------


def manifests() -> list[tuple[str, dict]]:
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs += [(path.name, doc) for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def by_kind(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for _, doc in manifests() if doc["kind"] == kind}


def pod_spec(workload: dict) -> dict:
    spec = workload["spec"]
    if workload["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec["template"]["spec"]


def workloads() -> list[dict]:
    return [doc for _, doc in manifests() if doc["kind"] in {"Deployment", "StatefulSet", "Job", "CronJob"}]


def test_every_manifest_has_the_fields_kubernetes_requires():
    docs = manifests()
    assert docs
    api = {"Namespace": "v1", "ConfigMap": "v1", "Secret": "v1", "Service": "v1", "PersistentVolumeClaim": "v1",
           "Deployment": "apps/v1", "StatefulSet": "apps/v1", "CronJob": "batch/v1", "Job": "batch/v1"}
    for name, doc in docs:
        assert doc["kind"] in api, f"{name}: unexpected kind {doc['kind']}"
        assert doc["apiVersion"] == api[doc["kind"]], f"{name}: {doc['kind']} is {api[doc['kind']]}"
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", doc["metadata"]["name"]), name
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text())
    for resource in kustomization["resources"]:
        assert (DEPLOY / "k8s" / resource).exists(), resource
    assert "secret.example.yaml" not in kustomization["resources"]  # never apply placeholder secrets


def test_the_required_pieces_are_there():
    deployments, services = by_kind("Deployment"), by_kind("Service")
    assert {"ladder-bot", "ladder-models"} <= set(deployments)
    assert {"ladder-models", "ladder-bot", "ladder-chroma"} <= set(services)
    assert "ladder-chroma" in by_kind("StatefulSet")
    claim = by_kind("PersistentVolumeClaim")["ladder-home"]
    assert claim["spec"]["resources"]["requests"]["storage"]
    training = by_kind("CronJob")["ladder-train"]
    [worker] = pod_spec(training)["containers"]
    assert worker["args"] == ["worker", "--once"] and worker["image"] == "ladder:cuda"
    assert int(worker["resources"]["limits"]["nvidia.com/gpu"]) == 1
    assert pod_spec(training)["restartPolicy"] in {"Never", "OnFailure"}
    [server] = pod_spec(deployments["ladder-models"])["containers"]
    assert int(server["resources"]["limits"]["nvidia.com/gpu"]) == 1
    assert "nvidia.com/gpu" not in json.dumps(deployments["ladder-bot"])  # the bot needs no GPU


def test_selectors_services_volumes_and_config_references_match():
    services = by_kind("Service")
    configs, secrets, claims = by_kind("ConfigMap"), by_kind("Secret"), by_kind("PersistentVolumeClaim")
    for workload in workloads():
        name = workload["metadata"]["name"]
        template_labels = (workload["spec"]["jobTemplate"]["spec"]["template"] if workload["kind"] == "CronJob"
                           else workload["spec"]["template"])["metadata"]["labels"]
        if workload["kind"] in {"Deployment", "StatefulSet"}:
            selector = workload["spec"]["selector"]["matchLabels"]
            assert selector.items() <= template_labels.items(), f"{name}: its selector does not match its pods"
        spec = pod_spec(workload)
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        templates = {t["metadata"]["name"] for t in workload["spec"].get("volumeClaimTemplates", [])}
        for container in spec["containers"]:
            for mount in container.get("volumeMounts", []):
                assert mount["name"] in volumes or mount["name"] in templates, f"{name}: no volume {mount['name']}"
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in configs
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in secrets
        for volume in volumes.values():
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims
    pods = [(pod_spec(w), (w["spec"]["template"] if w["kind"] != "CronJob" else None)) for w in workloads()]
    for name, service in services.items():
        matched = [spec for spec, template in pods
                   if template and service["spec"]["selector"].items() <= template["metadata"]["labels"].items()]
        assert matched, f"Service {name} selects no pods"
        ports = {p["name"] for spec in matched for c in spec["containers"] for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, f"Service {name}: no container port named {port['targetPort']}"


def test_ladder_pods_run_as_non_root_with_known_settings_and_real_commands():
    for workload in workloads():
        spec = pod_spec(workload)
        for container in spec["containers"]:
            if not container["image"].startswith("ladder:"):
                continue  # Chroma's own image
            name = f"{workload['metadata']['name']}/{container['name']}"
            context = spec.get("securityContext", {})
            assert context.get("runAsNonRoot") is True and context.get("runAsUser", 0) != 0, name
            assert container["securityContext"]["allowPrivilegeEscalation"] is False, name
            accepted_by_cli(container["args"])
            for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
                if probe in container:
                    assert container[probe]["httpGet"]["path"] == "/healthz", name
    for name, value in by_kind("ConfigMap")["ladder-config"]["data"].items():
        assert known_variable(name), f"ladder-config sets {name}, which Ladder does not read"
        assert isinstance(value, str), f"{name}: ConfigMap values must be strings"
    for name in by_kind("Secret")["ladder-secrets"]["stringData"]:
        assert known_variable(name), name


# -- Dockerfiles -----------------------------------------------------------------------------

INSTRUCTIONS = {"FROM", "RUN", "COPY", "ADD", "ENV", "ARG", "WORKDIR", "USER", "EXPOSE", "VOLUME", "ENTRYPOINT",
                "CMD", "LABEL", "HEALTHCHECK", "SHELL", "STOPSIGNAL", "ONBUILD"}


def instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined, steps = "", []
    for line in path.read_text().splitlines():
        if not joined and (not line.strip() or line.lstrip().startswith("#")):
            continue
        joined += line.rstrip("\\").strip() + " " if line.endswith("\\") else line.strip()
        if not line.endswith("\\"):
            keyword, _, rest = joined.partition(" ")
            steps.append((keyword.upper(), rest.strip()))
            joined = ""
    assert not joined, f"{path.name} ends inside a continued line"
    return steps


@pytest.mark.parametrize("name,index", [("Dockerfile", "whl/cpu"), ("Dockerfile.cuda", "whl/cu12")])
def test_dockerfiles_are_minimal_pinned_and_non_root(name, index):
    steps = instructions(DEPLOY / name)
    keywords = [k for k, _ in steps]
    assert set(keywords) <= INSTRUCTIONS, f"{name}: unknown instruction {set(keywords) - INSTRUCTIONS}"
    assert keywords[0] == "FROM" and keywords.count("FROM") == 1
    for keyword, args in steps:
        if keyword == "COPY":
            *sources, _ = shlex.split(args)
            for source in sources:
                assert (ROOT / source).exists(), f"{name}: COPY {source}, which the repository lacks"
                assert not re.match(r"\.?venv|tests|\.git", source)
    runs = " ".join(args for k, args in steps if k == "RUN")
    torch, ladder = runs.find('"torch==2.13.0"'), runs.find('pip install --no-cache-dir -c /tmp/lock.txt ".[ray]"')
    assert 0 <= torch < ladder, f"{name}: torch==2.13.0 must be installed before Ladder, the rest at the lock's pins"
    assert any("requirements.lock" in shlex.split(a) for k, a in steps if k == "COPY")
    pull = runs.find("ladder models pull smollm2-135m all-minilm-l6-v2")
    assert ladder < pull and "LADDER_MODELS=/opt/ladder-models" in dict(steps)["ENV"]  # the defaults ship inside
    assert index in dict((k, a) for k, a in steps if k == "ARG")["ARG"]
    users = [args for k, args in steps if k == "USER"]
    assert users and users[-1] not in {"root", "0"}, f"{name}: must end as a non-root user"
    assert keywords.index("USER") < keywords.index("ENTRYPOINT")
    assert f"--uid {10001}" in runs  # the uid the Kubernetes securityContext names
    entrypoint = json.loads(dict(steps)["ENTRYPOINT"])
    assert entrypoint == ["ladder"]
    accepted_by_cli(json.loads(dict(steps)["CMD"]))
    assert "LADDER_HOME=/data" in dict(steps)["ENV"]


def test_the_docker_context_leaves_out_the_local_environment_and_secrets():
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", ".git", ".env"} <= set(ignored)


def test_the_readme_deploy_steps_name_files_that_exist():
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Deploy"):readme.index("## Settings")]
    assert "cp deploy/.env.example .env" in section
    assert "docker compose -f deploy/compose.yaml --profile slack up -d --build" in section
    runbook = (DEPLOY / "README.md").read_text()
    for topic in ("## Backups", "## Rotating secrets", "## GPU quotas", "## What to watch", "## Kubernetes", "## Ray"):
        assert topic in runbook
    for path in re.findall(r"`(deploy/(?!ladder-)[\w./-]+)`", readme + runbook):
        assert (ROOT / path).exists(), f"the docs name {path}, which does not exist"


# What each Slack scope is for, as the code calls it; a scope nothing calls is one too many.
SCOPE_USES = {
    "commands": "app.command(", "chat:write": "chat_postMessage(", "files:read": "url_private",
    "files:write": "files_upload_v2(", "channels:history": 'app.event("message")',
    "groups:history": 'app.event("message")', "app_mentions:read": 'event("app_mention")',
    "assistant:write": "assistant_threads_setStatus(", "im:history": "assistant.user_message",
}


def test_the_slack_manifest_asks_only_for_scopes_the_code_uses():
    manifest = yaml.safe_load((DEPLOY / "slack" / "manifest.yaml").read_text())
    scopes = manifest["oauth_config"]["scopes"]["bot"]
    code = "\n".join(p.read_text() for p in (ROOT / "bot" / "platforms" / "slack").rglob("*.py"))
    assert set(scopes) <= set(SCOPE_USES), f"scopes with no known use: {set(scopes) - set(SCOPE_USES)}"
    unused = [scope for scope in scopes if SCOPE_USES[scope] not in code]
    assert not unused, f"the manifest asks for scopes the code never uses: {unused}"


def test_the_slack_manifest_makes_ladder_an_ai_app_with_the_prompts_the_code_sets():
    from bot.platforms.slack.assistant import PROMPTS

    manifest = yaml.safe_load((DEPLOY / "slack" / "manifest.yaml").read_text())
    view = manifest["features"]["assistant_view"]
    assert [(p["title"], p["message"]) for p in view["suggested_prompts"]] == list(PROMPTS) and len(PROMPTS) <= 4
    assert {"assistant:write", "im:history"} <= set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"assistant_thread_started", "message.im"} <= set(manifest["settings"]["event_subscriptions"]["bot_events"])
    assert manifest["features"]["app_home"]["messages_tab_enabled"]  # the assistant thread lives in the app's DM
