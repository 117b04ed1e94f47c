#!/usr/bin/env python3
"""Offline schemas for kubeconform, and the checks a schema cannot express.

  schemas.py k8s  SRC DST            kubernetes-validate's bundled schemas, made loadable
  schemas.py crd  CRD.yaml... DST    each CRD's openAPIV3Schema as a strict JSON schema
  schemas.py keda-keys SCALER.go     the kafka trigger's metadata and auth keys, as JSON
  schemas.py lint KEYS.json FILE... [--prod]
                                     project rules over rendered manifests (secrets only
                                     as files of mounted Secrets, never CHAT_JWT_SECRET or
                                     CHAT_CLUSTER_SECRET as values); --prod also refuses
                                     placeholder secrets and unpinned images. (That every
                                     CHAT_* variable of the roles is set or listed in
                                     chat.env as not set on purpose is a test of the
                                     binary's: chat/src/manifest_settings.rs.)

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


def crd(crd_files, dst):
    """One file per served version, named as kubeconform's {{.ResourceKind}}{{.KindSuffix}}
    template expects (`scaledobject-keda-v1alpha1.json`, `kafka-kafka-v1.json`)."""
    dst = Path(dst)
    made = sum(crd_one(crd_file, dst) for crd_file in crd_files)
    if made == 0:
        sys.exit(f"schemas.py: no served CRD versions in {crd_files}")


def crd_one(crd_file, dst):
    made = 0
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
            made += 1
    return made


def keda_keys(scaler_go):
    """The kafka scaler's keys, from its struct tags
    (`keda:"name=lagThreshold,order=triggerMetadata,default=10"`): `trigger` keys go in the
    trigger's metadata, `auth` keys in a TriggerAuthentication. KEDA itself ignores keys it
    does not know, so a typo there only shows as wrong scaling or a failed login."""
    keys = {}
    for tag in re.findall(r'keda:"([^"]+)"', Path(scaler_go).read_text()):
        fields = dict(part.split("=", 1) if "=" in part else (part, "") for part in tag.split(","))
        order = fields.get("order", "").split(";")
        if "triggerMetadata" not in order and "authParams" not in order:
            continue
        required = "optional" not in fields and "default" not in fields
        keys[fields["name"]] = {"required": required, "enum": fields.get("enum", ""),
                                "trigger": "triggerMetadata" in order,
                                "auth": "authParams" in order}
    if "bootstrapServers" not in keys or not any(k["auth"] for k in keys.values()):
        sys.exit(f"schemas.py: no kafka trigger keys found in {scaler_go}")
    print(json.dumps(keys, sort_keys=True))


def duration_seconds(text):
    number, unit = re.fullmatch(r"(\d+)(ms|s|m|h)", text.strip()).groups()
    return int(number) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


def size_bytes(text):
    """An nginx size (`12m`, `512k`, `1g`, bytes)."""
    number, unit = re.fullmatch(r"(\d+)([kKmMgG]?)", str(text).strip()).groups()
    return int(number) * {"": 1, "k": 1024, "m": 1024 ** 2, "g": 1024 ** 3}[unit.lower()]


# After SIGTERM a role exits at most CHAT_DRAIN + 2 s later (chat/src/cli/); the margin
# covers the kubelet's signal delivery and a loaded node.
EXIT_AFTER_DRAIN_S = 2
GRACE_MARGIN_S = 5
# Where the roles' default listeners are (chat/src/cli/): loopback, useless in a pod.
DEFAULT_LISTEN = {"ingest": "127.0.0.1:8080", "fanout": "127.0.0.1:8080"}
DEFAULT_INTERNAL = {"ingest": "127.0.0.1:9080", "fanout": "127.0.0.1:9080",
                    "projector": "127.0.0.1:9082", "notifier": "127.0.0.1:9083"}
# The roles that serve only the internal listener (no CHAT_LISTEN, no port `http`).
INTERNAL_ONLY = ("projector", "notifier")
# The consumer group each scaled Deployment's role joins: (setting, the binary's default).
# A ScaledObject's consumerGroup must be it, or KEDA watches a group nobody consumes in.
SCALED_GROUPS = {"chat-projector": ("CHAT_PROJECTOR_GROUP", "chat-projector"),
                 "chat-notifier": ("CHAT_NOTIFIER_GROUP", "chat-notifier")}
# The value forms of the token and cluster secrets: development only. In a pod they would
# sit in the process's environment (inherited by every child, shown by /proc/<pid>/environ);
# production gives each as a file of a mounted Secret, CHAT_JWT_SECRET_FILE and
# CHAT_CLUSTER_SECRET_FILE. Refused in every pod, whatever their source, and in ConfigMaps.
SECRET_VALUES = ("CHAT_JWT_SECRET", "CHAT_CLUSTER_SECRET")
# How ingest and fanout verify tokens: exactly one (the binary refuses two, chat/src/cli/).
# The first is HS256; RS256 (the other two) leaves it out and needs CHAT_CLUSTER_SECRET_FILE.
TOKEN_KEYS = ("CHAT_JWT_SECRET_FILE", "CHAT_JWT_PUBLIC_KEY_FILE", "CHAT_JWT_JWKS_FILE")
# The settings naming a file that holds a secret (not a CA or a public key; the VAPID key is
# a private key): such a file must come from a Secret, mounted read-only, readable by no
# other user.
SECRET_FILE = re.compile(r"^CHAT_\w*(SECRET|PASSWORD|SSL_KEY|VAPID_KEY)_FILE$")
# What the kubelet gives files of a Secret or projected volume without a defaultMode.
DEFAULT_MODE = 0o644


def host_port(address):
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port) if port.isdigit() else None


def container_env(container, configmaps, secrets):
    """What each variable of a container is: ("value", text), ("configmap", name),
    ("secret", name) or ("field", path). envFrom first, env overrides, as the kubelet does."""
    env = {}
    for source in container.get("envFrom", []):
        prefix = source.get("prefix", "")
        if "configMapRef" in source:
            for key, value in configmaps.get(source["configMapRef"]["name"], {}).items():
                env[prefix + key] = ("value", str(value), "configmap")
        elif "secretRef" in source:
            for key in secrets.get(source["secretRef"]["name"], {}):
                env[prefix + key] = ("secret", source["secretRef"]["name"], "secret")
    for item in container.get("env", []):
        name, frm = item["name"], item.get("valueFrom", {})
        if "value" in item:
            env[name] = ("value", str(item["value"]), "env")
        elif "configMapKeyRef" in frm:
            ref = frm["configMapKeyRef"]
            value = configmaps.get(ref["name"], {}).get(ref["key"])
            env[name] = ("value", str(value), "configmap") if value is not None else ("unknown", ref["name"], "configmap")
        elif "secretKeyRef" in frm:
            env[name] = ("secret", frm["secretKeyRef"]["name"], "secretKeyRef")
        else:
            env[name] = ("field", json.dumps(frm), "env")
    return env


def value(env, name, default=None):
    kind, text, _ = env.get(name, ("value", default, "default"))
    return text if kind == "value" else None


def lint(keys_file, files):
    """What kubeconform cannot see: KEDA's kafka metadata, the hardening every pod must
    have, probes and listeners on the right ports, grace periods that outlast the drain,
    secrets only as files, NetworkPolicies, the Ingress's timeouts, and the operators'
    resources agreeing with the roles' settings."""
    keys = json.loads(Path(keys_file).read_text())
    problems = []
    for file in files:
        docs = [d for d in yaml.safe_load_all(Path(file).read_text()) if d]
        configmaps = {d["metadata"]["name"]: d.get("data", {}) for d in docs if d["kind"] == "ConfigMap"}
        secrets = {d["metadata"]["name"]: {**d.get("stringData", {}), **d.get("data", {})}
                   for d in docs if d["kind"] == "Secret"}
        config = next((data for name, data in configmaps.items() if name.startswith("chat-config")), {})

        def bad(obj, message):
            problems.append(f"{file}: {obj['kind']}/{obj['metadata']['name']}: {message}")

        workloads = {}
        for d in docs:
            kind = d["kind"]
            if kind == "ScaledObject":
                lint_scaled_object(d, keys, config, lambda m, d=d: bad(d, m))
            if kind == "TriggerAuthentication":
                for ref in d["spec"].get("secretTargetRef", []) + d["spec"].get("env", []):
                    if not keys.get(ref["parameter"], {}).get("auth"):
                        bad(d, f"parameter {ref['parameter']!r} is no auth parameter of KEDA's kafka scaler")
            if kind == "Secret" and "--prod" in sys.argv:
                values = {**d.get("stringData", {}), **d.get("data", {})}
                if any("PLACEHOLDER" in str(v) for v in values.values()):
                    bad(d, "placeholder secret in a production render")
            if kind == "ConfigMap":
                for key in SECRET_VALUES:
                    if key in d.get("data", {}):
                        bad(d, f"{key}: the value form is for development only; mount the Secret"
                               f" and set {key}_FILE")
            if kind == "ConfigMap" and d["metadata"]["name"].startswith("chat-config"):
                for key, text in d.get("data", {}).items():
                    if re.search(r"PASSWORD|SECRET|_KEY$|ACCESS_KEY", key) and not key.endswith("_FILE") \
                            and key != "AWS_REGION" and key not in SECRET_VALUES:
                        bad(d, f"{key}: secrets come from a Secret (as a file), never from the ConfigMap")
            if kind not in ("Deployment", "Job"):
                continue
            pod = d["spec"]["template"]["spec"]
            workloads[d["metadata"]["name"]] = d
            for c in pod["containers"] if "--prod" in sys.argv else []:
                image = c["image"]
                if "@sha256:" not in image and (":" not in image.rsplit("/", 1)[-1]
                                                 or image.endswith(":latest")):
                    bad(d, f"{c['name']}: production image {image} is not pinned")
            lint_pod(pod, kind, configmaps, secrets, lambda m, d=d: bad(d, m))
        lint_token_agreement(workloads, configmaps, secrets, lambda d, m: bad(d, m))
        lint_services(docs, lambda d, m: bad(d, m))
        lint_network_policies(docs, workloads, lambda d, m: bad(d, m))
        lint_ingress(docs, config, lambda d, m: bad(d, m))
        lint_platform(docs, config, lambda d, m: bad(d, m))
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
            if not rule["trigger"]:
                continue
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
        for key, text in meta.items():
            if not keys.get(key, {}).get("trigger"):
                bad(f"kafka trigger metadata {key!r} is unknown to KEDA's kafka scaler")
            if not isinstance(text, str):
                bad(f"kafka trigger metadata {key} must be a string, not {text!r}")
        target = spec["scaleTargetRef"]["name"]
        if target not in SCALED_GROUPS:
            bad(f"scales {target}, which joins no consumer group KEDA could watch")
        else:
            setting, default = SCALED_GROUPS[target]
            if meta.get("consumerGroup") != config.get(setting, default):
                bad(f"consumerGroup differs from {setting}")
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
        # KEDA must log in the way the roles do.
        protocol = config.get("CHAT_KAFKA_SECURITY_PROTOCOL", "plaintext")
        if ("tls" in meta and meta["tls"] == "enable") != protocol.endswith("ssl"):
            bad(f"tls {meta.get('tls', 'disable')!r} does not match CHAT_KAFKA_SECURITY_PROTOCOL {protocol}")
        mechanism = {"PLAIN": "plaintext", "SCRAM-SHA-256": "scram_sha256",
                     "SCRAM-SHA-512": "scram_sha512"}.get(config.get("CHAT_KAFKA_SASL_MECHANISM"))
        if protocol.startswith("sasl") and meta.get("sasl") != mechanism:
            bad(f"sasl {meta.get('sasl')!r} does not match CHAT_KAFKA_SASL_MECHANISM")
        if protocol != "plaintext" and "authenticationRef" not in trigger:
            bad("a secured Kafka needs an authenticationRef (TriggerAuthentication)")


def lint_pod(pod, kind, configmaps, secrets, bad):
    security = pod.get("securityContext", {})
    if not security.get("runAsNonRoot") or security.get("runAsUser") != 10001:
        bad("pod must set runAsNonRoot and runAsUser 10001")
    if security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        bad("pod must use the RuntimeDefault seccomp profile")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    tmp = {name for name, v in volumes.items() if "emptyDir" in v}
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
        env = container_env(c, configmaps, secrets)
        lint_secrets_as_files(c, env, volumes, secrets, lambda m, c=c: bad(f"{c['name']}: {m}"))
        if kind != "Deployment":
            continue
        role = (c.get("args") or [""])[0]
        lint_listeners(c, role, env, lambda m, c=c: bad(f"{c['name']}: {m}"))
        if role in ("ingest", "fanout"):
            lint_tokens(env, lambda m, c=c: bad(f"{c['name']}: {m}"))
        sleep = c.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
        drain = value(env, "CHAT_DRAIN", "5s")
        if drain is None:
            bad(f"{c['name']}: CHAT_DRAIN must be a literal value (chat.env or env) for the grace check")
            continue
        needed = sleep + duration_seconds(drain) + EXIT_AFTER_DRAIN_S + GRACE_MARGIN_S
        if pod.get("terminationGracePeriodSeconds", 30) < needed:
            bad(f"terminationGracePeriodSeconds must be at least {needed:g}s: preStop {sleep}s +"
                f" CHAT_DRAIN {drain} + {EXIT_AFTER_DRAIN_S}s to exit + {GRACE_MARGIN_S}s margin")


def lint_listeners(c, role, env, bad):
    """Probes and metrics on the internal listener; the public one only for ingest and
    fanout; the ports the container declares are the ones the binary binds."""
    ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
    probes = {p: c.get(p, {}).get("httpGet", {}) for p in ("livenessProbe", "readinessProbe", "startupProbe")}
    paths = {p: probe.get("path") for p, probe in probes.items()}
    if paths != {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"}:
        bad(f"probes must be /healthz (liveness, startup) and /readyz: {paths}")
    for name, probe in probes.items():
        if probe.get("port") != "internal":
            bad(f"{name} must use port `internal` (the public listener answers 404): {probe.get('port')!r}")
    if "internal" not in ports:
        bad("needs a container port named `internal` (CHAT_INTERNAL_LISTEN)")
        return
    internal = value(env, "CHAT_INTERNAL_LISTEN", DEFAULT_INTERNAL.get(role))
    if internal is None:
        bad("CHAT_INTERNAL_LISTEN must be a literal value")
        return
    host, port = host_port(internal)
    if host not in ("0.0.0.0", "::"):
        bad(f"CHAT_INTERNAL_LISTEN {internal} is not reachable from the kubelet or Prometheus (use 0.0.0.0:PORT)")
    if port != ports["internal"]:
        bad(f"port `internal` is {ports['internal']} but CHAT_INTERNAL_LISTEN is {internal}")
    if role in INTERNAL_ONLY:
        if "http" in ports:
            bad(f"the {role} has no public listener: no port `http`")
        return
    public = value(env, "CHAT_LISTEN", DEFAULT_LISTEN.get(role))
    if public is None or "http" not in ports:
        bad("ingest and fanout need CHAT_LISTEN and a port named `http`")
        return
    public_host, public_port = host_port(public)
    if public_host not in ("0.0.0.0", "::") or public_port != ports["http"]:
        bad(f"port `http` is {ports['http']} but CHAT_LISTEN is {public}")
    if public_port == port:
        bad("CHAT_LISTEN and CHAT_INTERNAL_LISTEN must differ")
    if value(env, "CHAT_OBJECT_STORE") is None:
        bad("CHAT_OBJECT_STORE is not set: the roles refuse uploads without it")
    if role == "ingest":
        advertise = value(env, "CHAT_ADVERTISE")
        if advertise is None or host_port(advertise)[1] != port:
            bad(f"CHAT_ADVERTISE ({advertise}) must be this pod's address and internal port {port}:"
                " other nodes forward keyed sends there")


KINDS = {"secret": "Secret", "configMap": "ConfigMap"}
ORIGINS = {"env": "as an env value", "configmap": "from a ConfigMap",
           "secretKeyRef": "from a secretKeyRef", "secret": "through envFrom of a Secret"}


def lint_tokens(env, bad):
    """Ingest and fanout verify tokens with exactly one key setting and sign forwarded keyed
    sends with the cluster secret, which RS256 cannot derive."""
    keys = [name for name in TOKEN_KEYS if name in env]
    if not keys:
        bad("no token key: CHAT_JWT_SECRET_FILE (HS256) or, for RS256, CHAT_JWT_PUBLIC_KEY_FILE"
            " or CHAT_JWT_JWKS_FILE")
    elif len(keys) > 1:
        bad(f"{' and '.join(keys)} conflict (the binary refuses them together): keep one;"
            " with RS256 drop CHAT_JWT_SECRET_FILE")
    if keys and "CHAT_JWT_SECRET_FILE" not in keys and "CHAT_CLUSTER_SECRET_FILE" not in env:
        bad("RS256 tokens need CHAT_CLUSTER_SECRET_FILE: it signs the keyed sends forwarded"
            " between nodes, and there is no HS256 secret to derive it from")


def lint_token_agreement(workloads, configmaps, secrets, bad):
    """Fanout forwards keyed sends to ingest's writers, which verify them with their own
    cluster secret, and both verify the same users' tokens: their key settings and the
    Secrets behind them must be the same."""
    seen = {}
    for workload in workloads.values():
        if workload["kind"] != "Deployment":
            continue
        pod = workload["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod.get("volumes", [])}
        for c in pod["containers"]:
            role = (c.get("args") or [""])[0]
            if role not in ("ingest", "fanout"):
                continue
            env = container_env(c, configmaps, secrets)
            settings = {}
            for name in TOKEN_KEYS + ("CHAT_CLUSTER_SECRET_FILE",):
                text = value(env, name)
                if text is None:
                    continue
                found = mounted_file(c, volumes, text)
                source = found and file_source(found[1], found[2])
                settings[name] = text + (f" ({KINDS.get(source[0], source[0])} {source[1]})"
                                          if source and source[1] else "")
            seen[role] = (workload, settings)
    if len(seen) < 2:
        return
    (fanout, theirs), (_, ours) = seen["fanout"], seen["ingest"]
    for name in sorted(set(theirs) | set(ours)):
        if theirs.get(name) != ours.get(name):
            bad(fanout, f"{name} is {theirs.get(name, 'unset')} here but {ours.get(name, 'unset')} in"
                        " chat-ingest: forwarded keyed sends or tokens would be refused")


def mounted_file(c, volumes, path):
    """The mount, volume and relative path a container finds a file at, or None."""
    mount = next((m for m in c.get("volumeMounts", [])
                  if path.startswith(m["mountPath"].rstrip("/") + "/")), None)
    if mount is None:
        return None
    return mount, volumes.get(mount["name"], {}), path[len(mount["mountPath"].rstrip("/")) + 1:]


def file_source(volume, relative):
    """Where a volume's file comes from: (kind, name, mode) with kind "secret", "configMap",
    or another volume type ("emptyDir", ...), name the Secret's or ConfigMap's (None when
    not known), mode the file's permission bits; None when that cannot be told here (a
    projected volume whose sources without items differ in kind)."""
    if "secret" in volume:
        ref = volume["secret"]
        item = next((i for i in ref.get("items", []) if i["path"] == relative), {})
        return "secret", ref.get("secretName"), item.get("mode", ref.get("defaultMode", DEFAULT_MODE))
    if "projected" not in volume:
        return next((k for k in volume if k != "name"), None), None, None
    projected = volume["projected"]
    default = projected.get("defaultMode", DEFAULT_MODE)
    whole = []
    for source in projected.get("sources", []):
        for kind, ref in source.items():
            items = ref.get("items") or ([{"path": ref["path"]}] if "path" in ref else [])
            item = next((i for i in items if i["path"] == relative), None)
            if item is not None:
                return kind, ref.get("name"), item.get("mode", default)
            if not items:
                whole.append((kind, ref.get("name")))
    if whole and all(kind == "secret" for kind, _ in whole):
        return "secret", whole[0][1] if len(whole) == 1 else None, default
    return None


def lint_secrets_as_files(c, env, volumes, secrets, bad):
    """Every CHAT_*_FILE names a file some mounted volume provides; a file holding a secret
    comes from a Secret, mounted read-only and readable by no other user; passwords and the
    token and cluster secrets never arrive as values."""
    for name in SECRET_VALUES:
        if name in env:
            bad(f"{name} is set {ORIGINS.get(env[name][2], env[name][2])}: the value form is for"
                f" development only; mount the Secret and set {name}_FILE")
    for name, (kind, text, origin) in env.items():
        if re.search(r"PASSWORD", name) and not name.endswith("_FILE"):
            bad(f"{name}: passwords come only as files (the *_FILE setting)")
        if not (name.startswith("CHAT_") and name.endswith("_FILE")) or kind != "value":
            continue
        found = mounted_file(c, volumes, text)
        if found is None:
            bad(f"{name}={text}: no volume is mounted there")
            continue
        mount, volume, relative = found
        provided = volume_files(volume, secrets)
        if provided is not None and relative not in provided:
            bad(f"{name}={text}: volume {mount['name']} provides only {sorted(provided)}")
        if not SECRET_FILE.match(name):
            continue
        source = file_source(volume, relative)
        if source is not None and source[0] != "secret":
            bad(f"{name}={text}: a secret must be a file of a mounted Secret, not of"
                f" {KINDS.get(source[0], source[0])} {source[1] or mount['name']}")
            continue
        if not mount.get("readOnly"):
            bad(f"{name}={text}: volume {mount['name']} holds a secret: mount it readOnly")
        if source is not None and source[2] & 0o007:
            bad(f"{name}={text}: mode {source[2]:04o} lets every user read the secret"
                " (defaultMode 0440: the pods' group reads)")


def volume_files(volume, secrets):
    """The file names a volume provides, or None when that cannot be known here (a Secret
    made outside the render, without items)."""
    sources = volume.get("projected", {}).get("sources") or [volume]
    files = set()
    for source in sources:
        ref = source.get("secret") or source.get("configMap")
        if ref is None:
            return None
        if ref.get("items"):
            files.update(item["path"] for item in ref["items"])
        elif "secret" in source and ref.get("secretName", ref.get("name")) in secrets:
            files.update(secrets[ref.get("secretName", ref.get("name"))])
        else:
            return None
    return files


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


def lint_services(docs, bad):
    """Only the headless metrics Service may point at `internal`; no Service exposes it."""
    for svc in (d for d in docs if d["kind"] == "Service"):
        spec = svc["spec"]
        if spec.get("type") == "ExternalName":
            continue
        targets = {p.get("targetPort") for p in spec.get("ports", [])}
        if {"internal", 9090} & targets:
            if spec.get("clusterIP") != "None" or spec.get("type", "ClusterIP") != "ClusterIP":
                bad(svc, "only a headless ClusterIP Service may target port `internal`")
            if targets - {"internal", 9090}:
                bad(svc, "a Service over `internal` must not also carry public ports")


def lint_network_policies(docs, workloads, bad):
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    if not policies:
        return
    for name, workload in workloads.items():
        labels = workload["spec"]["template"]["metadata"]["labels"]
        covering = [p for p in policies if selects(p["spec"]["podSelector"], labels)]
        for kind in ("Ingress", "Egress"):
            if not any(kind in p["spec"].get("policyTypes", []) for p in covering):
                bad(workload, f"no NetworkPolicy restricts its {kind.lower()}")
        for c in workload["spec"]["template"]["spec"]["containers"]:
            ports = {p.get("name") for p in c.get("ports", [])} | {p["containerPort"] for p in c.get("ports", [])}
            for p in covering:
                for rule in p["spec"].get("ingress", []):
                    allowed = {port.get("port") for port in rule.get("ports", [])} or ports
                    if allowed & ports and not rule.get("from"):
                        bad(p, f"an ingress rule lets everyone reach {sorted(map(str, allowed & ports))} of {name}")
    for p in policies:
        for rule in p["spec"].get("ingress", []):
            for peer in rule.get("from", []):
                empty = lambda selector: selector is not None and not selector.get("matchLabels") \
                    and not selector.get("matchExpressions")
                if peer == {} or peer.get("ipBlock", {}).get("cidr") in ("0.0.0.0/0", "::/0") \
                        or (empty(peer.get("namespaceSelector")) and peer.get("podSelector") in (None, {})):
                    bad(p, "an ingress peer that matches everyone (every pod of every namespace)")


def lint_ingress(docs, config, bad):
    for ing in (d for d in docs if d["kind"] == "Ingress"):
        notes = ing["metadata"].get("annotations", {})
        idle = duration_seconds(config.get("CHAT_WS_IDLE", "60s"))
        for key in ("proxy-read-timeout", "proxy-send-timeout"):
            text = notes.get(f"nginx.ingress.kubernetes.io/{key}")
            if text is None or not text.isdigit() or int(text) <= idle:
                bad(ing, f"{key} ({text}) must exceed CHAT_WS_IDLE ({idle:g}s), or nginx cuts idle WebSockets")
        body = notes.get("nginx.ingress.kubernetes.io/proxy-body-size")
        limit = int(config.get("CHAT_MAX_ATTACHMENT_BYTES", "10485760"))
        if body is None or size_bytes(body) <= limit:
            bad(ing, f"proxy-body-size ({body}) must exceed CHAT_MAX_ATTACHMENT_BYTES ({limit})")
        routes = {}
        for rule in ing["spec"].get("rules", []):
            for path in rule.get("http", {}).get("paths", []):
                service = path["backend"]["service"]
                routes[path["path"]] = service["name"]
                if service["port"].get("name") != "http":
                    bad(ing, f"{path['path']}: must route to the Service's port `http`")
        expected = {"/v1": "chat-ingest", "/ws": "chat-fanout", "/v1/ws": "chat-fanout"}
        if routes != expected:
            bad(ing, f"routes {routes}, expected {expected}")


def acl_allows(acls, resource_type, name, operation):
    for acl in acls:
        res = acl["resource"]
        if acl.get("type", "allow") != "allow" or res["type"] != resource_type:
            continue
        matches = name == res["name"] if res.get("patternType", "literal") == "literal" \
            else name.startswith(res["name"])
        if matches and (operation in acl["operations"] or "All" in acl["operations"]):
            return True
    return False


def lint_platform(docs, config, bad):
    """Strimzi and Scylla Operator resources against the settings the roles get."""
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    topic = config.get("CHAT_TOPIC", "chat.events")
    signals = config.get("CHAT_SIGNALS_TOPIC", "chat.signals")
    partitions = int(config.get("CHAT_PARTITIONS", "8"))
    replicas = int(config.get("CHAT_REPLICATION_FACTOR", "3"))
    hours = int(config.get("CHAT_RETENTION_HOURS", "0"))
    min_insync = max(1, min(replicas // 2 + 1, replicas - 1))
    # chat migrate's topics: the log, the signals, and the notifier's parked webhooks.
    dead_letters = f"{topic}.dead-letters"
    retention = {topic: -1 if hours == 0 else hours * 3600000, signals: 3600000, dead_letters: -1}
    topic_partitions = {topic: partitions, signals: partitions, dead_letters: 1}
    for kt in by_kind.get("KafkaTopic", []):
        spec = kt["spec"]
        name = spec.get("topicName", kt["metadata"]["name"])
        if name not in retention:
            bad(kt, f"topic {name} is neither CHAT_TOPIC, CHAT_SIGNALS_TOPIC nor {dead_letters}")
            continue
        # chat migrate refuses a topic whose partition count differs from what it makes
        # (CHAT_PARTITIONS; one for the dead letters).
        if spec.get("partitions") != topic_partitions[name] or spec.get("replicas") != replicas:
            bad(kt, f"partitions/replicas {spec.get('partitions')}/{spec.get('replicas')} differ from"
                    f" chat migrate's {topic_partitions[name]}/{replicas} (CHAT_REPLICATION_FACTOR)")
        cfg = spec.get("config", {})
        if int(cfg.get("retention.ms", 0)) != retention[name]:
            bad(kt, f"retention.ms must be {retention[name]} (what chat migrate sets)")
        if int(cfg.get("min.insync.replicas", 0)) != min_insync:
            bad(kt, f"min.insync.replicas must be {min_insync} of {replicas}")
    kafkas = by_kind.get("Kafka", [])
    if kafkas:
        kafka = kafkas[0]
        host, port = host_port(config.get("CHAT_KAFKA_BROKERS", "").split(",")[0])
        if host != f"{kafka['metadata']['name']}-kafka-bootstrap":
            bad(kafka, f"CHAT_KAFKA_BROKERS {host} is not its bootstrap Service")
        listener = next((li for li in kafka["spec"]["kafka"]["listeners"] if li["port"] == port), None)
        protocol = config.get("CHAT_KAFKA_SECURITY_PROTOCOL", "plaintext")
        if listener is None:
            bad(kafka, f"no listener on port {port} (CHAT_KAFKA_BROKERS)")
        else:
            if listener["tls"] != protocol.endswith("ssl"):
                bad(kafka, f"listener {listener['name']} tls={listener['tls']} but CHAT_KAFKA_SECURITY_PROTOCOL={protocol}")
            auth = listener.get("authentication", {}).get("type")
            if (auth == "scram-sha-512") != (config.get("CHAT_KAFKA_SASL_MECHANISM") == "SCRAM-SHA-512"):
                bad(kafka, f"listener {listener['name']} authentication {auth} does not match CHAT_KAFKA_SASL_MECHANISM")
        brokers = sum(p["spec"]["replicas"] for p in by_kind.get("KafkaNodePool", [])
                      if "broker" in p["spec"]["roles"])
        if brokers < replicas:
            bad(kafka, f"{brokers} brokers cannot hold CHAT_REPLICATION_FACTOR {replicas}")
        username = config.get("CHAT_KAFKA_SASL_USERNAME")
        user = next((u for u in by_kind.get("KafkaUser", []) if u["metadata"]["name"] == username), None)
        if protocol.startswith("sasl") and user is None:
            bad(kafka, f"no KafkaUser {username} (CHAT_KAFKA_SASL_USERNAME)")
        if user is not None:
            acls = user["spec"].get("authorization", {}).get("acls", [])
            writers = config.get("CHAT_WRITER_GROUP", f"{topic}.writers")
            needs = [("topic", t, op) for t in (topic, signals, dead_letters)
                     for op in ("Describe", "Read", "Write", "Create")]
            needs += [("group", g, "Read") for g in
                      (config.get("CHAT_PROJECTOR_GROUP", "chat-projector"),
                       config.get("CHAT_NOTIFIER_GROUP", "chat-notifier"), writers,
                       # The throwaway ids of assign() consumers (eventlog's private_group).
                       "chat-fanout-tail-1-0", "chat-ingest-reader-1-0", "chat-projector-signals-1-0",
                       "chat-notifier-signals-1-0",
                       "chat-replay-reader-1-0")]
            for resource_type, name, operation in needs:
                if not acl_allows(acls, resource_type, name, operation):
                    bad(user, f"ACLs do not allow {operation} on {resource_type} {name}")
    for sc in by_kind.get("ScyllaCluster", []):
        dc = sc["spec"]["datacenter"]
        members = sum(rack.get("members", 0) for rack in dc["racks"])
        if config.get("CHAT_CQL_LOCAL_DC") != dc["name"]:
            bad(sc, f"CHAT_CQL_LOCAL_DC {config.get('CHAT_CQL_LOCAL_DC')} is not its datacenter {dc['name']}")
        for part in config.get("CHAT_CQL_REPLICATION", "1").split(","):
            name, _, factor = part.rpartition(":")
            if name and name != dc["name"]:
                bad(sc, f"CHAT_CQL_REPLICATION names datacenter {name}, not {dc['name']}")
            if int(factor) > members:
                bad(sc, f"CHAT_CQL_REPLICATION {part} exceeds its {members} nodes")
        host, port = host_port(config.get("CHAT_CQL_NODES", "").split(",")[0])
        tls = "CHAT_CQL_SSL_CA_FILE" in config
        if host != f"{sc['metadata']['name']}-client" or port != (9142 if tls else 9042):
            bad(sc, f"CHAT_CQL_NODES {host}:{port} is not its client Service on {'9142 (TLS)' if tls else '9042'}")


if __name__ == "__main__":
    command, args = sys.argv[1], [a for a in sys.argv[2:] if not a.startswith("--")]
    if command == "k8s":
        k8s(*args)
    elif command == "crd":
        crd(args[:-1], args[-1])
    elif command == "keda-keys":
        keda_keys(*args)
    elif command == "lint":
        lint(args[0], args[1:])
    else:
        sys.exit(f"schemas.py: unknown command {command}")
