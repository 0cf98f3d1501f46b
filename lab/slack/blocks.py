"""Block Kit as far as the emulator needs it: Slack's main validation rules and finding buttons.

Errors read like Slack's `invalid_blocks` answer: "must be ... [json-pointer:/blocks/0/text/text]".
"""

from __future__ import annotations

import secrets
import string
from typing import Any

BLOCK_TYPES = {"actions", "context", "divider", "file", "header", "image", "input", "markdown", "rich_text",
               "section", "video", "table"}
MAX_BLOCKS = 50


def _text(obj: Any, ptr: str, errors: list[str], *, max_len: int, plain_only: bool = False) -> None:
    if not isinstance(obj, dict):
        errors.append(f"must provide an object [json-pointer:{ptr}]")
        return
    kinds = ("plain_text",) if plain_only else ("plain_text", "mrkdwn")
    if obj.get("type") not in kinds:
        errors.append(f"must be one of {', '.join(kinds)} [json-pointer:{ptr}/type]")
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        errors.append(f"must be more than 0 characters [json-pointer:{ptr}/text]")
    elif len(text) > max_len:
        errors.append(f"must be less than {max_len + 1} characters [json-pointer:{ptr}/text]")


def _button(el: dict[str, Any], ptr: str, errors: list[str]) -> None:
    _text(el.get("text"), f"{ptr}/text", errors, max_len=75, plain_only=True)
    if len(str(el.get("action_id", ""))) > 255:
        errors.append(f"must be less than 256 characters [json-pointer:{ptr}/action_id]")
    if len(str(el.get("value", ""))) > 2000:
        errors.append(f"must be less than 2001 characters [json-pointer:{ptr}/value]")
    if "style" in el and el["style"] not in ("primary", "danger"):
        errors.append(f"must be one of primary, danger [json-pointer:{ptr}/style]")


def validate(blocks: Any) -> list[str]:
    """Slack's errors for a `blocks` argument, empty when it would be accepted."""
    if not isinstance(blocks, list):
        return ["must provide an array [json-pointer:/blocks]"]
    errors: list[str] = []
    if len(blocks) > MAX_BLOCKS:
        errors.append(f"must be less than {MAX_BLOCKS + 1} items [json-pointer:/blocks]")
    seen: set[str] = set()
    for i, block in enumerate(blocks):
        ptr = f"/blocks/{i}"
        if not isinstance(block, dict):
            errors.append(f"must provide an object [json-pointer:{ptr}]")
            continue
        kind = block.get("type")
        if kind not in BLOCK_TYPES:
            errors.append(f"unsupported type: {kind} [json-pointer:{ptr}/type]")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if not isinstance(block_id, str) or not block_id or len(block_id) > 255:
                errors.append(f"must be a string of 1 to 255 characters [json-pointer:{ptr}/block_id]")
            elif block_id in seen:
                errors.append(f"duplicate block_id: {block_id} [json-pointer:{ptr}/block_id]")
            seen.add(str(block_id))
        if kind == "section":
            if "text" not in block and "fields" not in block:
                errors.append(f"must provide text or fields [json-pointer:{ptr}]")
            if "text" in block:
                _text(block["text"], f"{ptr}/text", errors, max_len=3000)
            fields = block.get("fields", [])
            if not isinstance(fields, list) or len(fields) > 10:
                errors.append(f"must be an array of at most 10 items [json-pointer:{ptr}/fields]")
            else:
                for j, f in enumerate(fields):
                    _text(f, f"{ptr}/fields/{j}", errors, max_len=2000)
            acc = block.get("accessory")
            if isinstance(acc, dict) and acc.get("type") == "button":
                _button(acc, f"{ptr}/accessory", errors)
        elif kind == "header":
            _text(block.get("text"), f"{ptr}/text", errors, max_len=150, plain_only=True)
        elif kind in ("actions", "context"):
            els = block.get("elements")
            limit = 25 if kind == "actions" else 10
            if not isinstance(els, list) or not els or len(els) > limit:
                errors.append(f"must be an array of 1 to {limit} items [json-pointer:{ptr}/elements]")
                continue
            action_ids: set[str] = set()
            for j, el in enumerate(els):
                eptr = f"{ptr}/elements/{j}"
                if not isinstance(el, dict):
                    errors.append(f"must provide an object [json-pointer:{eptr}]")
                elif kind == "actions" and el.get("type") == "button":
                    _button(el, eptr, errors)
                    aid = el.get("action_id")
                    if aid is not None and aid in action_ids:
                        errors.append(f"duplicate action_id: {aid} [json-pointer:{eptr}/action_id]")
                    action_ids.add(aid)
                elif kind == "context" and el.get("type") in ("plain_text", "mrkdwn"):
                    _text(el, eptr, errors, max_len=3000)
    return errors


def _random_id(n: int = 5) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(n))


def normalise(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Fill in what Slack fills in: a block_id on every block, an action_id on every button."""
    for block in blocks:
        block.setdefault("block_id", _random_id())
        for el in _elements(block):
            if el.get("type") == "button":
                el.setdefault("action_id", _random_id())
                if isinstance(el.get("text"), dict) and el["text"].get("type") == "plain_text":
                    el["text"].setdefault("emoji", True)
    return blocks


def _elements(block: dict[str, Any]) -> list[dict[str, Any]]:
    els = [e for e in block.get("elements", []) if isinstance(e, dict)] if block.get("type") == "actions" else []
    acc = block.get("accessory")
    if block.get("type") == "section" and isinstance(acc, dict):
        els.append(acc)
    return els


def buttons(blocks: list[dict[str, Any]] | None) -> list[tuple[str, dict[str, Any]]]:
    """(block_id, button element) for every button in `actions` blocks and section accessories."""
    out = []
    for block in blocks or []:
        for el in _elements(block):
            if el.get("type") == "button":
                out.append((block.get("block_id", ""), el))
    return out
