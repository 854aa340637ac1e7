"""The OpenAI-compatible routes: ``POST /v1/chat/completions`` and ``GET /v1/models``.

The convention of llama.cpp's server, vLLM, Ollama and litgpt serve, so the official ``openai`` package
and other OpenAI clients work when pointed at ``http://127.0.0.1:8000/v1``:

    client = openai.OpenAI(base_url="http://127.0.0.1:8000/v1", api_key="unused")
    client.chat.completions.create(model="NAME", messages=[{"role": "user", "content": "What is the Sun?"}])

Design choices:
- The model answers one question at a time: the last ``user`` message is the question. A follow-up that
  refers back ("How hot is it there?") is first rewritten to name the conversation's subject ("... on
  Venus?", answering/conversation.py) from the earlier ``user`` and ``assistant`` messages (a stateless server does
  not know what was retrieved for them: the subject is what they name), so retrieval and the model see a
  question that stands alone; the system prompt and tool messages are ignored. Content may be a
  string or a list of ``{"type": "text"}`` parts. Answers are open-book when the run has a retrieval index
  (else closed-book); the sources and a choice of mode are ``POST /v1/answer``'s.
- Mapped: ``temperature`` (0-2, default 0 = greedy, not OpenAI's 1: a small model answers best greedy),
  ``top_p``, ``max_completion_tokens`` or its older name ``max_tokens`` (capped by the model), ``seed``,
  ``stream`` and ``stream_options.include_usage``. ``n`` must be 1. Other OpenAI fields (``stop``,
  ``frequency_penalty``, ``user``, ...) are accepted and ignored, as llama.cpp does, so clients that always
  send them still work; the ``model`` field is echoed, since one server holds one model.
- Streaming is server-sent events: a first chunk with the assistant role, one chunk per text piece, a
  chunk with ``finish_reason``, the usage chunk when asked for, then ``data: [DONE]``. An error after the
  stream has begun (headers sent, so no status can change) is an ``{"error": ...}`` event.
- Size limits, each a 422 naming the field: at most ``MAX_MESSAGES`` (64) messages, and at most
  ``MAX_MESSAGE_CHARS`` (4,000) characters in any one message, earlier turns and system prompts
  included (the question itself is further held to worker.MAX_QUESTION_CHARS, 2,000, a 400 as before).
  The body size limit (app.py, 64 KiB, 413) bounds the whole request first; these bound what one field
  may hold, so a request cannot make the server resolve a huge conversation.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from minillm.answering.conversation import Turn, resolve
from minillm.models.generation import Sampling
from minillm.serve.errors import ApiError, error_body
from minillm.serve.worker import Finished, ModelWorker, check_question

log = logging.getLogger("minillm.serve")

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
MAX_MESSAGES = 64
MAX_MESSAGE_CHARS = 4000


def limit_chars(text: str) -> str:
    """text, or a ``string_too_long`` validation error (a 422, errors.py) when over MAX_MESSAGE_CHARS."""
    if len(text) > MAX_MESSAGE_CHARS:
        raise PydanticCustomError("string_too_long", "has {length} characters; at most {max_length} are allowed",
                                  {"length": len(text), "max_length": MAX_MESSAGE_CHARS})
    return text


LimitedText = Annotated[str, AfterValidator(limit_chars)]


def sse(payload: dict | str) -> str:
    """One server-sent event carrying JSON (or a literal such as OpenAI's "[DONE]")."""
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n"


class TextPart(BaseModel):
    model_config = ConfigDict(strict=True)
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    model_config = ConfigDict(strict=True)
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: list[TextPart] | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _string_is_one_part(cls, value: Any) -> Any:
        # not a `str | list` union: pydantic would name the union members in the error's field path
        if isinstance(value, str):
            return [{"type": "text", "text": value}]
        if value is not None and not isinstance(value, list):
            raise ValueError("must be a string or a list of {\"type\": \"text\"} parts")
        return value

    @field_validator("content")
    @classmethod
    def _not_too_long(cls, parts: list[TextPart] | None) -> list[TextPart] | None:
        limit_chars("".join(part.text for part in parts or []))  # the parts together, as text() joins them
        return parts

    def text(self) -> str:
        return "".join(part.text for part in self.content or [])


class StreamOptions(BaseModel):
    model_config = ConfigDict(strict=True)
    include_usage: bool = False


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(strict=True, extra="ignore")
    model: str | None = None
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_MESSAGES)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    seed: int | None = None
    n: Literal[1] = 1
    stream: bool = False
    stream_options: StreamOptions | None = None

    def question(self) -> str:
        """The last user message, checked like /v1/answer's question, resolved against the earlier user and
        assistant messages (answering/conversation.py): "How hot is it there?" after "What is Venus?" asks about
        Venus."""
        for i in range(len(self.messages) - 1, -1, -1):
            if self.messages[i].role == "user":
                question = check_question(self.messages[i].text(), f"messages.{i}.content")
                return resolve(self._turns(self.messages[:i]), question).question
        raise ApiError(400, "messages: no message has role 'user' (its content is the question)", "messages")

    @staticmethod
    def _turns(messages: list[ChatMessage]) -> list[Turn]:
        """Each non-empty user message with the assistant's reply to it, where one follows."""
        turns: list[Turn] = []
        for message in messages:
            text = message.text().strip()
            if message.role == "user" and text:
                turns.append(Turn(text))
            elif message.role == "assistant" and text and turns and turns[-1].answer is None:
                turns[-1] = Turn(turns[-1].question, text)
        return turns

    def sampling(self, worker: ModelWorker) -> Sampling:
        if self.max_completion_tokens is not None:
            limit, field = self.max_completion_tokens, "max_completion_tokens"
        else:
            limit, field = self.max_tokens, "max_tokens"
        return worker.sampling(limit, self.temperature, self.top_p, self.seed, max_tokens_field=field)


def usage(finished: Finished) -> dict[str, int]:
    return {"prompt_tokens": finished.prompt_tokens, "completion_tokens": finished.completion_tokens,
            "total_tokens": finished.prompt_tokens + finished.completion_tokens}


def openai_routes(worker: ModelWorker, model_id: str, meta: dict[str, Any]) -> APIRouter:
    """The routes for one served model; ``meta`` (size, context, ...) is listed with it, as llama.cpp does."""
    router = APIRouter()
    created = int(time.time())

    @router.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{"id": model_id, "object": "model", "created": created,
                                            "owned_by": "minillm", "meta": meta}]}

    @router.post("/v1/chat/completions")
    async def chat_completions(request: ChatCompletionRequest) -> Any:
        question = request.question()
        sampling = request.sampling(worker)
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        if request.stream:
            include_usage = bool(request.stream_options and request.stream_options.include_usage)
            events = _chunks(worker, question, sampling, completion_id, model_id, include_usage)
            return StreamingResponse(events, media_type="text/event-stream", headers=SSE_HEADERS)
        reply = await worker.reply(question, sampling, worker.default_mode)
        return {"id": completion_id, "object": "chat.completion", "created": int(time.time()),
                "model": model_id,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                             "logprobs": None, "finish_reason": reply.finished.finish_reason}],
                "usage": usage(reply.finished)}

    return router


async def _chunks(worker: ModelWorker, question: str, sampling: Sampling, completion_id: str, model_id: str,
                  include_usage: bool) -> AsyncIterator[str]:
    def chunk(choices: list[dict], **extra: Any) -> str:
        return sse({"id": completion_id, "object": "chat.completion.chunk", "created": int(time.time()),
                    "model": model_id, "choices": choices, **extra})

    def delta(content: dict, finish_reason: str | None = None) -> str:
        return chunk([{"index": 0, "delta": content, "logprobs": None, "finish_reason": finish_reason}])

    yield delta({"role": "assistant", "content": ""})
    try:
        async for event in worker.stream(question, sampling, worker.default_mode):
            if isinstance(event, str):
                yield delta({"content": event})
            elif isinstance(event, Finished):
                yield delta({}, event.finish_reason)
                if include_usage:
                    yield chunk([], usage=usage(event))
    except Exception:
        log.exception("generation failed")
        yield sse(error_body(500, "generation failed"))
        return
    yield sse("[DONE]")
