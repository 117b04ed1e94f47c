#!/usr/bin/env python3
"""Offline schemas for kubeconform, and the checks a schema cannot express.

  schemas.py k8s  SRC DST            kubernetes-validate's bundled schemas, made loadable
  schemas.py crd  CRD.yaml DST       a CRD's openAPIV3Schema as a strict JSON schema
  schemas.py keda-keys SCALER.go     the kafka trigger's metadata keys, as JSON
  schemas.py lint KEYS.json FILE... [--prod]
                                     project rules over rendered manifests; --prod also
                                     refuses placeholder secrets and unpinned images

Run by ../check with the venv's python (PyYAML comes with kubernetes-validate).
"""

import json
import re
import sys
from pathlib import Path

import yaml


def k8s(src, dst):
    """kubeconform resolves `$ref`s against each file's `$id` (a kubernetes.io URL it would
    fetch) and the references are absolute (`/api/_definitions.json#...`): drop the ids and
    make the references relative, so everything resolves inside DST."""
    dst = Path(dst)
    dst.mkdir(parents=True, exist_ok=True)

    def fix(node):
        if isinstance(node, dict):
            node.pop("$id", None)
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("/api/_definitions.json"):
                node["$ref"] = ref[len("/api/"):]
            for value in node.values():
                fix(value)
        elif isinstance(node, list):
            for value in node:
                fix(value)

    count = 0
    for path in sorted(Path(src).glob("*.json")):
        schema = json.loads(path.read_text())
        fix(schema)
        (dst / path.name).write_text(json.dumps(schema))
        count += 1
    if count == 0:
        sys.exit(f"schemas.py: no schemas in {src}")


def strict(node):
    """Objects with declared properties accept no others (what kubectl and the API server's
    field validation do), except where the CRD says unknown fields are kept."""
    if isinstance(node, dict):
        if (
            "properties" in node
            and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")
        ):
            node["additionalProperties"] = False
        for value in node.values():
            strict(value)
    elif isinstance(node, list):
        for value in node:
            strict(value)
    return node


def crd(crd_file, dst):
    """One file per served version, named as kubeconform's {{.ResourceKind}}{{.KindSuffix}}
    template expects (`scaledobject-keda-v1alpha1.json`)."""
    dst = Path(dst)
    meta = "_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    for doc in yaml.safe_load_all(Path(crd_file).read_text()):
        if not doc or doc.get("kind") != "CustomResourceDefinition":
            continue
        spec = doc["spec"]
        for version in spec["versions"]:
            schema = version.get("schema", {}).get("openAPIV3Schema")
            if not schema or not version.get("served", True):
                continue
            schema = strict(schema)
            # The CRD says only `type: object`; the real ObjectMeta catches `lables:`.
            if (dst / "_definitions.json").exists():
                schema["properties"]["metadata"] = {"$ref": meta}
            name = f"{spec['names']['kind']}-{spec['group'].split('.')[0]}-{version['name']}"
            (dst / f"{name.lower()}.json").write_text(json.dumps(schema))


def keda_keys(scaler_go):
    """The kafka scaler's trigger-metadata keys, from its struct tags
    (`keda:"name=lagThreshold,order=triggerMetadata,default=10"`): KEDA itself ignores keys
    it does not know, so a typo there only shows as wrong scaling."""
    keys = {}
    for tag in re.findall(r'keda:"([^"]+)"', Path(scaler_go).read_text()):
        fields = dict(part.split("=", 1) if "=" in part else (part, "") for part in tag.split(","))
        if "triggerMetadata" not in fields.get("order", ""):
            continue
        required = "optional" not in fields and "default" not in fields
        keys[fields["name"]] = {"required": required, "enum": fields.get("enum", "")}
    if "bootstrapServers" not in keys:
        sys.exit(f"schemas.py: no kafka trigger keys found in {scaler_go}")
    print(json.dumps(keys, sort_keys=True))


def duration_seconds(text):
    number, unit = re.fullmatch(r"(\d+)(ms|s|m|h)", text.strip()).groups()
    return int(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def lint(keys_file, files):
    """What kubeconform cannot see: KEDA's kafka metadata, the hardening every pod must
    have, probes on the right paths, grace periods that outlast the drain."""
    keys = json.loads(Path(keys_file).read_text())
    problems = []
    for file in files:
        docs = [d for d in yaml.safe_load_all(Path(file).read_text()) if d]
        config = {}
        for d in docs:
            if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("chat-config"):
                config = d.get("data", {})

        def bad(obj, message):
            problems.append(f"{file}: {obj['kind']}/{obj['metadata']['name']}: {message}")

        for d in docs:
            kind = d["kind"]
            if kind == "ScaledObject":
                lint_scaled_object(d, keys, config, lambda m, d=d: bad(d, m))
            if kind == "Secret" and "--prod" in sys.argv:
                values = {**d.get("stringData", {}), **d.get("data", {})}
                if any("PLACEHOLDER" in str(v) for v in values.values()):
                    bad(d, "placeholder secret in a production render")
            if kind not in ("Deployment", "Job"):
                continue
            pod = d["spec"]["template"]["spec"]
            for c in pod["containers"] if "--prod" in sys.argv else []:
                image = c["image"]
                if "@sha256:" not in image and (":" not in image.rsplit("/", 1)[-1]
                                                 or image.endswith(":latest")):
                    bad(d, f"{c['name']}: production image {image} is not pinned")
            lint_pod(pod, kind, config, lambda m, d=d: bad(d, m))
    for problem in problems:
        print(problem, file=sys.stderr)
    sys.exit(1 if problems else 0)


def lint_scaled_object(so, keys, config, bad):
    spec = so["spec"]
    partitions = int(config.get("CHAT_PARTITIONS", "8"))
    if spec.get("maxReplicaCount", 100) > partitions:
        bad(f"maxReplicaCount above the {partitions} partitions: the extra replicas idle")
    for trigger in spec["triggers"]:
        if trigger["type"] != "kafka":
            continue
        meta = trigger["metadata"]
        for key, rule in keys.items():
            if rule["required"] and key not in meta:
                bad(f"kafka trigger lacks required metadata {key}")
            if rule["enum"] and key in meta and meta[key] not in rule["enum"].split(";"):
                bad(f"{key}: {meta[key]!r} is not one of {rule['enum']}")
        # Stated rather than left to KEDA's defaults: offsetResetPolicy defaults to latest,
        # which counts a group without commits as lag 1 and wakes no projector for a log.
        for key in ("topic", "lagThreshold", "activationLagThreshold", "offsetResetPolicy",
                    "allowIdleConsumers", "limitToPartitionsWithLag"):
            if key not in meta:
                bad(f"kafka trigger lacks metadata {key}")
        for key, value in meta.items():
            if key not in keys:
                bad(f"kafka trigger metadata {key!r} is unknown to KEDA's kafka scaler")
            if not isinstance(value, str):
                bad(f"kafka trigger metadata {key} must be a string, not {value!r}")
        if meta.get("consumerGroup") != config.get("CHAT_PROJECTOR_GROUP", "chat-projector"):
            bad("consumerGroup differs from CHAT_PROJECTOR_GROUP")
        if meta.get("topic") != config.get("CHAT_TOPIC", "chat.events"):
            bad("topic differs from CHAT_TOPIC")
        if meta.get("allowIdleConsumers") == "true" and meta.get("limitToPartitionsWithLag") == "true":
            bad("allowIdleConsumers and limitToPartitionsWithLag exclude each other")
        lag = str(meta.get("lagThreshold", "10"))
        if not lag.isdigit() or int(lag) <= 0:
            bad("lagThreshold must be a positive integer")
        # KEDA runs in its own namespace: a short Service name would resolve there.
        parts = meta.get("bootstrapServers", "").split(",")[0].split(":")[0].split(".")
        if len(parts) == 1:
            bad("bootstrapServers must be resolvable from KEDA's namespace (kafka.<ns>.svc)")
        elif parts[2:3] == ["svc"] and parts[1] != so["metadata"].get("namespace"):
            bad(f"bootstrapServers names namespace {parts[1]}, the ScaledObject is elsewhere")


def lint_pod(pod, kind, config, bad):
    security = pod.get("securityContext", {})
    if not security.get("runAsNonRoot") or security.get("runAsUser") != 10001:
        bad("pod must set runAsNonRoot and runAsUser 10001")
    if security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        bad("pod must use the RuntimeDefault seccomp profile")
    tmp = {v["name"] for v in pod.get("volumes", []) if "emptyDir" in v}
    for c in pod["containers"]:
        sc = c.get("securityContext", {})
        if not (sc.get("readOnlyRootFilesystem") and sc.get("allowPrivilegeEscalation") is False
                and sc.get("capabilities", {}).get("drop") == ["ALL"]):
            bad(f"{c['name']}: needs readOnlyRootFilesystem, no privilege escalation, drop ALL")
        if not any(m["mountPath"] == "/tmp" and m["name"] in tmp for m in c.get("volumeMounts", [])):
            bad(f"{c['name']}: needs an emptyDir on /tmp")
        res = c.get("resources", {})
        if not res.get("requests") or not res.get("limits"):
            bad(f"{c['name']}: needs resource requests and limits")
        if kind != "Deployment":
            continue
        paths = {p: c.get(p, {}).get("httpGet", {}).get("path")
                 for p in ("livenessProbe", "readinessProbe", "startupProbe")}
        if paths != {"livenessProbe": "/healthz", "readinessProbe": "/readyz",
                     "startupProbe": "/healthz"}:
            bad(f"{c['name']}: probes must be /healthz (liveness, startup) and /readyz: {paths}")
        sleep = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        # Connections close over CHAT_DRAIN, background tasks get up to 10 s, the trace
        # exporter up to 5 s to flush (chat/src/server.rs, telemetry).
        needed = sleep + duration_seconds(config.get("CHAT_DRAIN", "5s")) + 10 + 5
        if pod.get("terminationGracePeriodSeconds", 30) <= needed:
            bad(f"terminationGracePeriodSeconds must exceed {needed:g}s"
                " (preStop + CHAT_DRAIN + 10 s tasks + 5 s trace flush)")


if __name__ == "__main__":
    command, args = sys.argv[1], [a for a in sys.argv[2:] if not a.startswith("--")]
    if command == "k8s":
        k8s(*args)
    elif command == "crd":
        crd(*args)
    elif command == "keda-keys":
        keda_keys(*args)
    elif command == "lint":
        lint(args[0], args[1:])
    else:
        sys.exit(f"schemas.py: unknown command {command}")
