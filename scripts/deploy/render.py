#!/usr/bin/env python3
"""A small Kustomize renderer for k8s/ when no kustomize binary is at hand.

`kubectl kustomize` (kustomize v5) is what check-deploy uses when kubectl is
installed; no registry this project may use ships a current kustomize
binary, so this renderer covers exactly the Kustomization features k8s/
uses, and check-deploy compares its output with kubectl's whenever both
exist, so the two cannot drift apart unnoticed:

- resources: YAML files (several documents each) and directories holding a
  kustomization.yaml (rendered recursively, their transformations first);
- namespace: set on every namespaced object;
- labels: pairs added to metadata.labels (includeSelectors: false only);
- images: name -> newName/newTag on containers and initContainers;
- replicas: spec.replicas by Deployment/StatefulSet name;
- configMapGenerator / secretGenerator: files (key=path or path) and
  literals, options.disableNameSuffixHash, kustomize's content hash suffix,
  and the rewriting of references to generated names;
- patches: strategic-merge patches (path or inline), matched by kind and
  name: maps merge, null deletes a key, `$patch: delete` deletes the object,
  lists merge by their Kubernetes merge key (containers, volumes, env...),
  other lists are replaced.

Anything else in a kustomization.yaml is an error, never silently ignored.

Usage: render.py DIR  -> multi-document YAML on stdout.
"""

import base64
import copy
import hashlib
import json
import os
import sys

import yaml

SUPPORTED = {
    "apiVersion", "kind", "namespace", "labels", "resources", "images",
    "replicas", "configMapGenerator", "secretGenerator", "patches",
}

CLUSTER_SCOPED = {
    "Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition",
    "PersistentVolume", "StorageClass", "PriorityClass", "IngressClass",
    "MutatingWebhookConfiguration", "ValidatingWebhookConfiguration",
}

# Strategic-merge keys of the lists the manifests patch, by field name.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "env": "name",
    "imagePullSecrets": "name",
    "topologySpreadConstraints": "topologyKey",
}

# kustomize's legacy output order (kinds first and last), others by kind.
ORDER_FIRST = [
    "Namespace", "ResourceQuota", "StorageClass", "CustomResourceDefinition",
    "ServiceAccount", "PodSecurityPolicy", "Role", "ClusterRole", "RoleBinding",
    "ClusterRoleBinding", "ConfigMap", "Secret", "Endpoints", "Service",
    "LimitRange", "PriorityClass", "PersistentVolume", "PersistentVolumeClaim",
    "Deployment", "StatefulSet", "CronJob", "PodDisruptionBudget",
]
ORDER_LAST = ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]


class RenderError(Exception):
    pass


def load_yaml_docs(path):
    with open(path, encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def pod_spec(obj):
    spec = obj.get("spec") or {}
    if obj.get("kind") == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    template = spec.get("template")
    if isinstance(template, dict):
        return template.get("spec")
    return None


# ---------------------------------------------------------------- merging


def strategic_merge(base, patch, field=None):
    """Merges patch into base (both plain YAML values) and returns the result."""
    if isinstance(patch, dict) and isinstance(base, dict):
        out = dict(base)
        for key, value in patch.items():
            if key == "$patch":
                continue
            if value is None:
                out.pop(key, None)
            elif key in out:
                out[key] = strategic_merge(out[key], value, key)
            else:
                out[key] = strip_directives(value)
        return out
    if isinstance(patch, list) and isinstance(base, list) and field in MERGE_KEYS:
        key = MERGE_KEYS[field]
        out = list(base)
        for item in patch:
            if not isinstance(item, dict) or key not in item:
                raise RenderError(f"list {field}: patch item without merge key {key}")
            for index, existing in enumerate(out):
                if isinstance(existing, dict) and existing.get(key) == item[key]:
                    if item.get("$patch") == "delete":
                        del out[index]
                    else:
                        out[index] = strategic_merge(existing, item, None)
                    break
            else:
                if item.get("$patch") != "delete":
                    out.append(strip_directives(item))
        return out
    return strip_directives(patch)


def strip_directives(value):
    if isinstance(value, dict):
        return {k: strip_directives(v) for k, v in value.items() if k != "$patch" and v is not None}
    if isinstance(value, list):
        return [strip_directives(v) for v in value]
    return value


# ---------------------------------------------------------------- generators


def go_json(value):
    """json.Marshal as Go writes it: sorted keys, no spaces, HTML-escaped."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text


def encode_hash(hex_digest):
    # kustomize: first 10 hex digits, with characters that could spell words
    # replaced (api/hasher: encodeHash).
    table = {"0": "g", "1": "h", "3": "k", "a": "m", "e": "t"}
    return "".join(table.get(c, c) for c in hex_digest[:10])


def content_hash(obj):
    # kustomize v5 (api/hasher) hashes kind, data (and binaryData, or a
    # Secret's type) with an empty name, as Go's json.Marshal writes it.
    if obj["kind"] == "ConfigMap":
        doc = {"kind": "ConfigMap", "name": "", "data": obj.get("data") or {}}
        if obj.get("binaryData"):
            doc["binaryData"] = obj["binaryData"]
    else:
        doc = {"kind": "Secret", "type": obj.get("type", "Opaque"), "name": "", "data": obj.get("data") or {}}
    return encode_hash(hashlib.sha256(go_json(doc).encode("utf-8")).hexdigest())


def b64(raw):
    # kustomize wraps base64 at 70 characters, each line ending in a newline.
    encoded = base64.b64encode(raw).decode()
    if len(encoded) <= 70:
        return encoded
    return "".join(encoded[i:i + 70] + "\n" for i in range(0, len(encoded), 70))


def generator_data(directory, spec, encode):
    data = {}
    for entry in spec.get("files") or []:
        key, _, rel = entry.partition("=")
        if not rel:
            key, rel = os.path.basename(entry), entry
        path = os.path.normpath(os.path.join(directory, rel))
        if not path.startswith(os.path.normpath(directory) + os.sep):
            raise RenderError(f"{entry}: files outside the kustomization root are refused")
        with open(path, "rb") as handle:
            raw = handle.read()
        data[key] = b64(raw) if encode else raw.decode("utf-8")
    for literal in spec.get("literals") or []:
        key, sep, value = literal.partition("=")
        if not sep:
            raise RenderError(f"literal {literal!r} has no '='")
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        data[key] = b64(value.encode()) if encode else value
    unknown = set(spec) - {"name", "files", "literals", "options", "type"}
    if unknown:
        raise RenderError(f"generator {spec.get('name')}: unsupported fields {sorted(unknown)}")
    unknown = set(spec.get("options") or {}) - {"disableNameSuffixHash"}
    if unknown:
        raise RenderError(f"generator {spec.get('name')}: unsupported options {sorted(unknown)}")
    return data


def generate(directory, kustomization):
    objects, renames = [], {}
    for kind, field in (("ConfigMap", "configMapGenerator"), ("Secret", "secretGenerator")):
        for spec in kustomization.get(field) or []:
            name = spec["name"]
            obj = {"apiVersion": "v1", "kind": kind, "metadata": {"name": name}}
            if kind == "Secret":
                obj["type"] = spec.get("type", "Opaque")
            obj["data"] = generator_data(directory, spec, encode=(kind == "Secret"))
            if not (spec.get("options") or {}).get("disableNameSuffixHash"):
                hashed = f"{name}-{content_hash(obj)}"
                renames[(kind, name)] = hashed
                obj["metadata"]["name"] = hashed
            objects.append(obj)
    return objects, renames


def rename_references(objects, renames):
    """Points configMap/secret references at generated (hashed) names."""
    if not renames:
        return

    def fix(kind, holder, field):
        if isinstance(holder, dict) and (kind, holder.get(field)) in renames:
            holder[field] = renames[(kind, holder[field])]

    for obj in objects:
        spec = pod_spec(obj)
        if not spec:
            continue
        for volume in spec.get("volumes") or []:
            fix("ConfigMap", volume.get("configMap"), "name")
            fix("Secret", volume.get("secret"), "secretName")
            for source in (volume.get("projected") or {}).get("sources") or []:
                fix("ConfigMap", source.get("configMap"), "name")
                fix("Secret", source.get("secret"), "name")
        for group in ("containers", "initContainers"):
            for container in spec.get(group) or []:
                for source in container.get("envFrom") or []:
                    fix("ConfigMap", source.get("configMapRef"), "name")
                    fix("Secret", source.get("secretRef"), "name")
                for var in container.get("env") or []:
                    ref = var.get("valueFrom") or {}
                    fix("ConfigMap", ref.get("configMapKeyRef"), "name")
                    fix("Secret", ref.get("secretKeyRef"), "name")
        for secret in spec.get("imagePullSecrets") or []:
            fix("Secret", secret, "name")


# ---------------------------------------------------------------- transformers


def apply_patch(objects, patch, origin):
    kind = patch.get("kind")
    name = (patch.get("metadata") or {}).get("name")
    matches = [o for o in objects if o.get("kind") == kind and o["metadata"].get("name") == name]
    if len(matches) != 1:
        raise RenderError(f"{origin}: patch for {kind}/{name} matches {len(matches)} objects")
    target = matches[0]
    index = next(i for i, o in enumerate(objects) if o is target)
    if patch.get("$patch") == "delete":
        del objects[index]
    else:
        objects[index] = strategic_merge(target, patch)


def set_image(container, images):
    image = container.get("image", "")
    name, tag = image, None
    if "@" in image:
        name = image.split("@", 1)[0]
    elif ":" in image.rsplit("/", 1)[-1]:
        name, tag = image.rsplit(":", 1)
    for rule in images:
        if rule["name"] != name:
            continue
        new_name = rule.get("newName", name)
        if "digest" in rule:
            container["image"] = f"{new_name}@{rule['digest']}"
        elif "newTag" in rule:
            container["image"] = f"{new_name}:{rule['newTag']}"
        elif tag is not None:
            container["image"] = f"{new_name}:{tag}"
        else:
            container["image"] = new_name


def transform(objects, kustomization):
    namespace = kustomization.get("namespace")
    if namespace:
        for obj in objects:
            if obj.get("kind") not in CLUSTER_SCOPED:
                obj["metadata"]["namespace"] = namespace
    for entry in kustomization.get("labels") or []:
        if entry.get("includeSelectors") or entry.get("includeTemplates"):
            raise RenderError("labels: only includeSelectors: false is supported")
        for obj in objects:
            obj["metadata"].setdefault("labels", {}).update(entry.get("pairs") or {})
    images = kustomization.get("images") or []
    if images:
        for obj in objects:
            spec = pod_spec(obj)
            for group in ("containers", "initContainers"):
                for container in (spec or {}).get(group) or []:
                    set_image(container, images)
    for rule in kustomization.get("replicas") or []:
        found = False
        for obj in objects:
            if obj["metadata"].get("name") == rule["name"] and obj.get("kind") in (
                "Deployment", "StatefulSet", "ReplicaSet", "ReplicationController"):
                obj.setdefault("spec", {})["replicas"] = rule["count"]
                found = True
        if not found:
            raise RenderError(f"replicas: no workload named {rule['name']}")


# ---------------------------------------------------------------- build


def build(directory):
    directory = os.path.abspath(directory)
    path = os.path.join(directory, "kustomization.yaml")
    if not os.path.isfile(path):
        raise RenderError(f"{directory}: no kustomization.yaml")
    with open(path, encoding="utf-8") as handle:
        kustomization = yaml.safe_load(handle) or {}
    unknown = set(kustomization) - SUPPORTED
    if unknown:
        raise RenderError(f"{path}: unsupported fields {sorted(unknown)} (see scripts/deploy/render.py)")

    objects = []
    for entry in kustomization.get("resources") or []:
        target = os.path.join(directory, entry)
        if os.path.isdir(target):
            objects.extend(build(target))
        else:
            objects.extend(load_yaml_docs(target))

    generated, renames = generate(directory, kustomization)
    objects.extend(generated)

    for index, entry in enumerate(kustomization.get("patches") or []):
        if set(entry) - {"path", "patch"}:
            raise RenderError(f"{path}: patches[{index}] supports only path and patch")
        if "path" in entry:
            docs = load_yaml_docs(os.path.join(directory, entry["path"]))
            origin = entry["path"]
        else:
            docs = [d for d in yaml.safe_load_all(entry["patch"]) if d is not None]
            origin = f"patches[{index}]"
        for doc in docs:
            apply_patch(objects, doc, origin)

    transform(objects, kustomization)
    rename_references(objects, renames)
    return objects


def sort_key(obj):
    kind = obj.get("kind", "")
    if kind in ORDER_FIRST:
        group, position = 0, ORDER_FIRST.index(kind)
    elif kind in ORDER_LAST:
        group, position = 2, ORDER_LAST.index(kind)
    else:
        group, position = 1, 0
    meta = obj.get("metadata") or {}
    return (group, position, kind, meta.get("namespace", ""), meta.get("name", ""))


def render(directory):
    objects = [copy.deepcopy(o) for o in build(directory)]
    objects.sort(key=sort_key)
    return objects


def main(argv):
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        objects = render(argv[1])
    except (RenderError, OSError, yaml.YAMLError) as error:
        print(f"render.py: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(yaml.safe_dump_all(objects, sort_keys=True, default_flow_style=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
