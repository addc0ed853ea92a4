"""A chat with a generator: turns that continue one sequence in the KV cache (``Generator.chat``).

::

    chat = gen.chat(system="Answer briefly.", template_kwargs={"enable_thinking": False})
    reply = chat.send("What is the capital of France?").run()
    print(reply.reasoning, reply.text)   # a thinking model's <think> block, then the answer
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from edge_sdk.errors import GenerationError
from edge_sdk.runtime.options import GenerationOptions
from edge_sdk.runtime.reasoning import ReasoningSplitter, prompt_opens_reasoning, template_thinks

if TYPE_CHECKING:
    from edge_sdk.runtime.generator import Generator, Prompt, Stream

__all__ = ["Conversation"]


class Conversation:
    """Turns that continue one sequence: each :meth:`send` runs only the new tokens on top of
    the KV cache that holds every earlier turn (prompts and replies).

    Templated (the default): each :meth:`send` adds a user message to :attr:`messages`, the
    whole conversation is laid out by the bundle's chat template with the extra variables in
    :attr:`template_kwargs` (change them between turns as you like), and only the tokens the
    cache does not already hold run (all of them again if an earlier turn now tokenizes
    differently); the reply is added as the assistant's message when the next turn starts, its
    reasoning as ``reasoning_content`` (which Qwen3's template keeps or drops as it was trained).
    Untemplated (``chat(template=False)``): the text or ids are fed exactly as given (add any
    turn markers your model was trained with). Another generation on the same generator
    replaces the conversation's cache; the conversation's next :meth:`send` then raises
    :class:`~edge_sdk.GenerationError`.

    :attr:`reasoning`: whether replies are split into ``reasoning`` (a ``<think>`` block) and
    ``text`` (the answer), in each :class:`~edge_sdk.runtime.TokenEvent` and in the
    :class:`~edge_sdk.runtime.GenerationResult` (``reasoning`` None when not split).
    """

    def __init__(
        self,
        generator: Generator,
        system: str | None = None,
        template: bool = True,
        template_kwargs: Mapping[str, Any] | None = None,
        reasoning: bool | None = None,
    ) -> None:
        self.generator = generator
        self.templated = template
        self.template_kwargs: dict[str, Any] = dict(template_kwargs or {})
        if reasoning is None:
            reasoning = template and template_thinks(generator.chat_template)
        self.reasoning = reasoning
        self.messages: list[dict[str, str]] = (
            [{"role": "system", "content": system}] if system else []
        )
        self._started = False
        self._last: Stream | None = None

    def send(
        self, text: Prompt, *, options: GenerationOptions | None = None, **changes: Any
    ) -> Stream:
        """Stream the reply to ``text`` (``options`` and keyword changes to them as
        :meth:`Generator.stream`)."""
        checked = GenerationOptions.build(options, **changes)
        # with a response format the grammar shapes the whole reply: no <think> block to split
        split = self.reasoning and checked.response_format is None
        if not self.templated:
            splitter = ReasoningSplitter() if split else None
            stream = self.generator._start(
                text, options=checked, conversation=self, splitter=splitter
            )
        else:
            if not isinstance(text, str):
                raise GenerationError(
                    "a templated conversation takes text; feed token ids with chat(template=False)"
                )
            self._record_reply()
            messages = [*self.messages, {"role": "user", "content": text}]
            prompt = self.generator.chat_prompt(messages, template_kwargs=self.template_kwargs)
            splitter = ReasoningSplitter(prompt_opens_reasoning(prompt.text)) if split else None
            stream = self.generator._start(
                prompt.ids, options=checked, conversation=self, whole=True, splitter=splitter
            )
            self.messages = messages
        self._started = True
        self._last = stream
        return stream

    def _record_reply(self) -> None:
        """Add the last reply (as far as it was streamed) to :attr:`messages`."""
        if self._last is not None:
            result = self._last.result
            message = {"role": "assistant", "content": result.text if result else ""}
            if result is not None and result.reasoning:
                message["reasoning_content"] = result.reasoning
            self.messages.append(message)
            self._last = None

    @property
    def context_tokens(self) -> int:
        """Tokens of the conversation so far (all in the cache but the last reply token)."""
        gen = self.generator
        return len(gen._context) + len(gen._pending)
