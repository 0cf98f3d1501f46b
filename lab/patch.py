"""The three patch types kube-apiserver accepts for these resources."""

from __future__ import annotations

import copy

import jsonpatch

from lab.errors import ApiError, bad_request, status, unsupported_media_type

# List fields whose strategic-merge strategy is "merge" on a key, for the kinds we serve.
MERGE_KEYS = {
    "conditions": "type",
    "containers": "name",
    "initContainers": "name",
    "volumes": "name",
    "env": "name",
    "volumeMounts": "mountPath",
    "ports": "containerPort",
    "addresses": "type",
    "ownerReferences": "uid",
    "containerStatuses": "name",
}


def merge_patch(target: object, patch: object) -> object:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: object, patch: object, field: str = "") -> object:
    if isinstance(patch, dict):
        if patch.get("$patch") == "delete":
            return None
        if patch.get("$patch") == "replace":
            return {k: v for k, v in patch.items() if k != "$patch"}
        result = copy.deepcopy(target) if isinstance(target, dict) else {}
        for key, value in patch.items():
            if key.startswith("$"):
                continue  # $retainKeys and friends: ordering hints we do not need
            if value is None:
                result.pop(key, None)
            else:
                result[key] = strategic_merge_patch(result.get(key), value, key)
        return result
    if isinstance(patch, list) and field in MERGE_KEYS and isinstance(target, list):
        merge_key = MERGE_KEYS[field]
        result = copy.deepcopy(target)
        for item in patch:
            if not isinstance(item, dict) or merge_key not in item:
                result.append(copy.deepcopy(item))
                continue
            for index, existing in enumerate(result):
                if isinstance(existing, dict) and existing.get(merge_key) == item[merge_key]:
                    merged = strategic_merge_patch(existing, item, "")
                    if merged is None:
                        del result[index]
                    else:
                        result[index] = merged
                    break
            else:
                if item.get("$patch") != "delete":
                    result.append(copy.deepcopy(item))
        return result
    return copy.deepcopy(patch)


PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
               "application/strategic-merge-patch+json", "application/apply-patch+yaml")


def check_patch_type(content_type: str) -> None:
    """415 for any other Content-Type, before the body is read (as PatchResource does)."""
    if content_type.split(";")[0].strip() not in PATCH_TYPES:
        raise unsupported_media_type()


def apply_patch(target: dict, content_type: str, body: object) -> dict:
    kind = content_type.split(";")[0].strip()
    if kind == "application/json-patch+json":
        if not isinstance(body, list):
            raise bad_request("json: cannot unmarshal object into Go value of type []handlers.jsonPatchOp")
        odd = next((op for op in body if not isinstance(op, dict | None)), None)
        if odd is not None:
            kind_name = {str: "string", bool: "bool", list: "array"}.get(type(odd), "number")
            raise bad_request(f"json: cannot unmarshal {kind_name} into Go value of type jsonpatch.Operation")
        try:
            return jsonpatch.apply_patch(target, body)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
            # A patch that decodes but cannot apply (failed test, missing path) is a 422.
            raise ApiError(status(422, "Invalid", "the server rejected our request due to an error in "
                                  "our request", {})) from exc
    if not isinstance(body, dict):
        raise bad_request("json: cannot unmarshal array into Go value of type map[string]interface {}")
    if kind in ("application/merge-patch+json", "application/apply-patch+yaml"):
        return merge_patch(target, body)
    if kind == "application/strategic-merge-patch+json":
        return strategic_merge_patch(target, body)
    raise unsupported_media_type()
