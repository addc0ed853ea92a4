"""Chat templates: the model's own Jinja template, kept in the bundle and rendered without torch.

An instruct model was trained on conversations laid out by one template (ChatML's
``<|im_start|>user ... <|im_end|>``, Llama 3's headers, ...). The exporter copies it from the
model (a Hugging Face folder's ``chat_template.jinja`` or ``tokenizer_config.json``, a GGUF file's
``tokenizer.chat_template``) into the bundle, with the special tokens it names; the runtime renders
it here for ``Generator.chat()``, ``edge-run --chat`` and ``/v1/chat/completions``.

Rendering follows transformers' ``apply_chat_template``: a sandboxed Jinja2 environment
(``ImmutableSandboxedEnvironment``, ``trim_blocks``, ``lstrip_blocks``, loop controls), the
``raise_exception`` and ``strftime_now`` globals, a ``tojson`` that does not escape HTML, and the
special tokens (``bos_token``, ``eos_token``, ...) as variables. The result is tokenized without
adding special tokens (the template writes them).

A bundle without a template gets :data:`PLAIN_TEMPLATE`: ``role: content`` lines and an
``assistant:`` prompt, which a model never trained on chat can at least continue.

Tools: ``render(..., tools=[...])`` passes the OpenAI tool list (``{"type": "function",
"function": {"name", "description", "parameters"}}``) as the ``tools`` variable, as transformers
does; :attr:`ChatTemplate.supports_tools` says whether a template reads it. edge-sdk ships one
template that does, :data:`SHIPPED_TEMPLATES` ``chatml-tools`` (ChatML turns, Hermes-style
``<tool_call>`` calls), for models whose own template has no tool support (SmolLM2).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from edge_sdk.errors import BundleError, ConfigError, GenerationError

__all__ = [
    "CHAT_TEMPLATE_FILE",
    "PLAIN_TEMPLATE",
    "RESERVED_VARIABLES",
    "SHIPPED_TEMPLATES",
    "ChatTemplate",
    "Message",
    "check_template_variables",
    "read_hf_chat_template",
]

#: The template's file name inside a bundle.
CHAT_TEMPLATE_FILE = "chat_template.jinja"

#: The fallback for a bundle without a template (documented in the runtime README).
PLAIN_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)

#: The special-token names a template may use as variables (transformers' special tokens map).
SPECIAL_TOKEN_NAMES = ("bos_token", "eos_token", "unk_token", "pad_token")

#: Template variables the renderer sets itself: extra variables may not name them.
RESERVED_VARIABLES = frozenset({"messages", "add_generation_prompt", "tools"})

#: Templates shipped with edge-sdk (``edge_sdk/data/``), by the name ``edge-serve
#: --chat-template`` takes: ``chatml-tools`` is ChatML (``<|im_start|>``/``<|im_end|>``) with
#: tools listed in the system turn and Hermes-style ``<tool_call>`` / ``<tool_response>`` turns.
SHIPPED_TEMPLATES = {"chatml-tools": "chatml_tools.jinja"}

Message = Mapping[str, Any]  # {"role": "user", "content": "..."}


@dataclass(frozen=True)
class ChatTemplate:
    """A chat template and the special tokens it may name.

    ``source`` says where it came from (``"tokenizer_config.json"``, ``"gguf"``, ...; ``"plain"``
    for :data:`PLAIN_TEMPLATE`). ``special_tokens`` maps names such as ``"eos_token"`` to their
    text (``"<|im_end|>"``).
    """

    template: str
    source: str
    special_tokens: dict[str, str] = field(default_factory=dict)

    @classmethod
    def plain(cls) -> ChatTemplate:
        """The fallback for a model without a template."""
        return cls(PLAIN_TEMPLATE, "plain")

    @classmethod
    def from_file(
        cls, path: str | Path, special_tokens: Mapping[str, str] | None = None
    ) -> ChatTemplate:
        """A template read from ``path``, or a :data:`SHIPPED_TEMPLATES` name
        (``"chatml-tools"``), with ``special_tokens`` (usually the bundle's). Raises
        :class:`~edge_sdk.ConfigError` for a file that cannot be read or does not parse."""
        shipped = SHIPPED_TEMPLATES.get(str(path))
        file = Path(__file__).parent / "data" / shipped if shipped else Path(path)
        try:
            text = file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(
                f"cannot read the chat template {file}: {exc}; give a Jinja file or one of "
                f"{', '.join(SHIPPED_TEMPLATES)}"
            ) from exc
        try:
            _compile(text)
        except BundleError as exc:
            raise ConfigError(f"{file}: {exc}") from exc
        return cls(text, f"shipped:{path}" if shipped else str(file), dict(special_tokens or {}))

    @property
    def is_plain(self) -> bool:
        """Whether this is the fallback rather than the model's own template."""
        return self.source == "plain"

    @property
    def supports_tools(self) -> bool:
        """Whether the template reads the ``tools`` variable (renders tool definitions)."""
        return _uses_tools(self.template)

    def render(
        self,
        messages: Sequence[Message],
        /,
        *,
        add_generation_prompt: bool = True,
        tools: Sequence[Mapping[str, Any]] | None = None,
        **variables: Any,
    ) -> str:
        """The conversation as the model's text (``add_generation_prompt``: end with the
        assistant's turn opened). ``tools``: the OpenAI tool list, the template's ``tools``
        variable (None when not given, as transformers passes it). ``variables`` are extra
        template variables, as transformers' ``apply_chat_template(..., **kwargs)`` passes them
        (``enable_thinking=False`` for Qwen3); they override the special tokens. Raises
        :class:`~edge_sdk.GenerationError` for malformed messages, a reserved variable name or
        a template that rejects them."""
        check_template_variables(variables)
        checked = [_checked_message(m, i) for i, m in enumerate(messages)]
        import jinja2

        try:
            compiled = _compile(self.template)
            return str(
                compiled.render(
                    messages=checked,
                    add_generation_prompt=add_generation_prompt,
                    tools=None if tools is None else [dict(t) for t in tools],
                    **{**self.special_tokens, **variables},
                )
            )
        except (jinja2.TemplateError, TypeError, ValueError) as exc:
            # TypeError: a template adding text to a value it did not expect (None + str)
            raise GenerationError(f"the chat template rejected the conversation: {exc}") from exc

    # -- manifest -------------------------------------------------------------------------------

    def manifest_entry(self) -> dict[str, Any]:
        """The bundle manifest's ``chat`` entry (the template itself goes to its own file)."""
        return {
            "template_file": CHAT_TEMPLATE_FILE,
            "source": self.source,
            "special_tokens": dict(self.special_tokens),
        }

    @classmethod
    def from_bundle(cls, folder: Path, manifest: Mapping[str, Any]) -> ChatTemplate:
        """The bundle's template, or :meth:`plain` when it has none."""
        entry = manifest.get("chat")
        if not entry or not entry.get("template_file"):
            return cls.plain()
        path = folder / str(entry["template_file"])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise BundleError(
                f"the bundle's chat template {path} cannot be read: {exc}; export the bundle again"
            ) from exc
        tokens = {str(k): str(v) for k, v in (entry.get("special_tokens") or {}).items()}
        return cls(text, str(entry.get("source", "bundle")), tokens)


def read_hf_chat_template(folder: Path) -> ChatTemplate | None:
    """The chat template of a Hugging Face folder, or None when it has none.

    ``chat_template.jinja`` wins over ``tokenizer_config.json``'s ``chat_template`` (as in
    transformers 4.43+); a list of named templates gives the one named ``default``. The special
    tokens come from ``tokenizer_config.json`` (plain strings or ``{"content": ...}`` objects).
    """
    config: dict[str, Any] = {}
    config_path = folder / "tokenizer_config.json"
    if config_path.is_file():
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read {config_path} as JSON: {exc}") from exc
    tokens = {
        name: text
        for name in SPECIAL_TOKEN_NAMES
        if (text := _token_text(config.get(name))) is not None
    }
    jinja_path = folder / CHAT_TEMPLATE_FILE
    if jinja_path.is_file():
        return ChatTemplate(jinja_path.read_text(encoding="utf-8"), CHAT_TEMPLATE_FILE, tokens)
    template = config.get("chat_template")
    if isinstance(template, list):  # [{"name": "default", "template": ...}, {"name": ...}]
        named = {t.get("name"): t.get("template") for t in template if isinstance(t, dict)}
        template = named.get("default")
    if isinstance(template, str) and template:
        return ChatTemplate(template, "tokenizer_config.json", tokens)
    return None


def check_template_variables(variables: Mapping[str, Any]) -> None:
    """Refuse extra template variables that the renderer sets itself
    (:data:`RESERVED_VARIABLES`): :class:`~edge_sdk.GenerationError` naming the first one."""
    reserved = sorted(RESERVED_VARIABLES.intersection(variables))
    if reserved:
        raise GenerationError(
            f"the chat template variable {reserved[0]!r} is set by the renderer, not by "
            "extra template variables"
        )


def _token_text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        return str(value["content"])
    return None


def _checked_message(message: Message, index: int) -> dict[str, Any]:
    if not isinstance(message, Mapping):
        raise GenerationError(
            f"message {index} must be a mapping with 'role' and 'content', "
            f"got {type(message).__name__}"
        )
    role = message.get("role")
    if not isinstance(role, str) or not role:
        raise GenerationError(f"message {index} needs a 'role' (system, user or assistant)")
    content = message.get("content")
    if content is not None and not isinstance(content, (str, list)):
        raise GenerationError(
            f"message {index}'s 'content' must be text, got {type(content).__name__}"
        )
    return dict(message)


@lru_cache(maxsize=8)
def _uses_tools(template: str) -> bool:
    import jinja2.meta

    return "tools" in jinja2.meta.find_undeclared_variables(
        _compile(template).environment.parse(template)
    )


@lru_cache(maxsize=8)
def _compile(template: str) -> Any:
    """The template compiled in a sandbox configured as transformers configures it."""
    import jinja2
    import jinja2.ext
    import jinja2.nodes
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(
        x: Any,
        ensure_ascii: bool = False,
        indent: int | None = None,
        separators: tuple[str, str] | None = None,
        sort_keys: bool = False,
    ) -> str:
        return json.dumps(
            x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )

    def strftime_now(format: str) -> str:
        return datetime.now().strftime(format)

    class GenerationTag(jinja2.ext.Extension):
        """``{% generation %}...{% endgeneration %}`` (transformers marks assistant text with it):
        renders its body unchanged."""

        tags = {"generation"}  # noqa: RUF012 - jinja2's Extension declares tags as a set

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
            return jinja2.nodes.Scope(body).set_lineno(lineno)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols, GenerationTag]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    try:
        return env.from_string(template)
    except jinja2.TemplateSyntaxError as exc:
        raise BundleError(
            f"the chat template does not parse (line {exc.lineno}): {exc.message}"
        ) from exc
