"""A copy of a bundle with another chat template (for chat, reasoning and template tests)."""

from __future__ import annotations

import shutil
from pathlib import Path

from edge_sdk.bundle_update import update_bundle
from edge_sdk.chat_template import CHAT_TEMPLATE_FILE, ChatTemplate

#: A thinking model's template in the style of Qwen3-Thinking-2507 and DeepSeek-R1: the
#: generation prompt opens the <think> block, so the model's first token is reasoning, unless
#: ``enable_thinking`` is false (then it closes an empty block, as Qwen3's template does).
THINKING_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n"
    "{% else %}<think>\n{% endif %}{% endif %}"
)


def with_chat_template(
    bundle: Path, folder: Path, template: str, special_tokens: dict[str, str] | None = None
) -> Path:
    """``bundle`` copied to ``folder`` with ``template`` as its chat template."""
    shutil.copytree(bundle, folder)
    source = folder.parent / f"{folder.name}.{CHAT_TEMPLATE_FILE}"
    source.write_text(template, encoding="utf-8")
    entry = ChatTemplate(template, "test", dict(special_tokens or {})).manifest_entry()
    update_bundle(
        folder,
        edit=lambda manifest: {**manifest, "chat": entry},
        add_files={CHAT_TEMPLATE_FILE: source},
    )
    return folder
