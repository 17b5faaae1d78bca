"""Request and response bodies (pydantic): OpenAI's chat/completions shapes and our agent routes.

Unknown request fields are ignored, as OpenAI-compatible servers do (clients send `user`,
`presence_penalty`, ...); fields we cannot honour with another value are refused: `logprobs`
and `top_logprobs` (400, serve/errors.py `UNSUPPORTED`). What the schema cannot know until a
run is loaded (model and task names, the max_tokens cap) is added to it by serve/contract.py.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, field_validator


def _false_not_zero(value):
    """false, not 0 (pydantic's Literal[False] takes 0 too)."""
    if not isinstance(value, bool):
        raise ValueError("must be false")
    return value


def _json_number(value):
    """A number as JSON Schema has it: "5" and true are not numbers (pydantic would convert them)."""
    if isinstance(value, (str, bool, bytes)):
        raise ValueError("must be a JSON number")
    return value


def number(kind: type, **limits):
    """`kind` (int or float) as JSON Schema has it, within `limits` (ge, le, gt); the limits come
    first so that they reach the JSON schema as minimum/maximum."""
    return Annotated[kind, Field(**limits), BeforeValidator(_json_number)]


Int = number(int)
Bool = StrictBool  # true or false, not 0, 1 or "true"

MAX_CHOICES = 16  # the largest `n`: choices of one request decode side by side in the batch

# ---------------------------------------------------------------- requests


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class FunctionCall(_Loose):
    name: str
    arguments: str | dict[str, Any] = "{}"


class ToolCall(_Loose):
    id: str | None = None
    type: Literal["function"] = "function"
    function: FunctionCall


class TextPart(_Loose):
    type: Literal["text"]
    text: str


class ImageURL(_Loose):
    url: str = Field(min_length=1, description="A data URL (data:image/png;base64,...); an http(s) URL only "
                                               "where the server fetches them (media.fetch_urls).")
    detail: Literal["auto", "low", "high"] | None = None


class ImagePart(_Loose):
    type: Literal["image_url"]
    image_url: ImageURL | Annotated[str, Field(min_length=1)]


class InputAudio(_Loose):
    data: str = Field(min_length=1, description="The recording in base64 (or a data URL): any format PyAV "
                                                "decodes (WAV, MP3, Ogg/Opus, WebM, M4A, FLAC).")
    format: str | None = Field(None, description="The recording's format, e.g. wav or mp3 (a hint only: "
                                                 "it is read by its content).")


class AudioPart(_Loose):
    type: Literal["input_audio"]
    input_audio: InputAudio


class FileData(_Loose):
    file_data: str = Field(min_length=1, description="An image in base64 or as a data URL.")
    filename: str | None = None


class FilePart(_Loose):
    type: Literal["file"]
    file: FileData


ContentPart = Annotated[Union[TextPart, ImagePart, AudioPart, FilePart], Field(discriminator="type")]


def _parts_as_dicts(content):
    """Content parts as the plain dicts media/parts.py reads (validated, unknown fields dropped)."""
    if isinstance(content, list):
        return [p.model_dump(exclude_none=True) if isinstance(p, BaseModel) else p for p in content]
    return content


class ChatMessage(_Loose):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    _plain_parts = field_validator("content")(_parts_as_dicts)


class FunctionDef(_Loose):
    name: str = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] | None = None


class Tool(_Loose):
    type: Literal["function"] = "function"
    function: FunctionDef


class NamedFunction(_Loose):
    name: str


class NamedToolChoice(_Loose):
    type: Literal["function"] = "function"
    function: NamedFunction


class StreamOptions(_Loose):
    include_usage: Bool = False


class _Sampling(_Loose):
    model: str
    temperature: number(float, ge=0.0, le=2.0) | None = None
    top_p: number(float, gt=0.0, le=1.0) = 1.0
    max_tokens: number(int, ge=1) | None = None
    stop: str | list[str] | None = None
    seed: Int | None = None
    n: number(int, ge=1, le=MAX_CHOICES) = Field(1, description="How many choices to generate (each with its `index`); "
                                                       "with a `seed`, choice i samples with seed + i.")
    stream: Bool = False
    stream_options: StreamOptions | None = None
    logprobs: Annotated[Literal[False], BeforeValidator(_false_not_zero)] | None = Field(None, description="Not supported: log probabilities are not "
                                                             "returned (true is refused with a 400).")

    def stop_list(self) -> list[str]:
        stops = [self.stop] if isinstance(self.stop, str) else list(self.stop or [])
        return [s for s in stops if s]


class ChatCompletionRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: number(int, ge=1) | None = None  # OpenAI's newer name for max_tokens
    tools: list[Tool] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    top_logprobs: number(int, ge=0, le=0) | None = Field(None, description="Not supported (see `logprobs`).")


NonEmpty = Annotated[str, Field(min_length=1)]


class CompletionRequest(_Sampling):
    prompt: NonEmpty | Annotated[list[NonEmpty], Field(min_length=1, max_length=1)] = Field(
        description="One prompt: a string, or a list holding one.")
    echo: Bool = False


class SessionCreate(_Loose):
    title: str = ""


class AgentMessage(_Loose):
    # text, or OpenAI content parts: text, image_url, input_audio, file (read into text: media/parts.py)
    content: Annotated[str, Field(pattern=r"\S")] | Annotated[list[ContentPart], Field(min_length=1)] = Field(
        description="Text (not blank), or OpenAI content parts: text, image_url, input_audio, file.")
    task: str = Field("auto", description='"auto" (the router picks), "base" (no adapter) or a task name.')
    stream: Bool = False

    _plain_parts = field_validator("content")(_parts_as_dicts)


# ---------------------------------------------------------------- responses


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "agentmill"
    root: str
    parent: str | None = None
    agentmill: dict[str, Any] = Field(default_factory=dict)


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ResponseMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[dict[str, Any]] | None = None


class ChatChoice(BaseModel):
    index: int = 0
    message: ResponseMessage
    logprobs: None = None
    finish_reason: str


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    system_fingerprint: str | None = None
    agentmill: dict[str, Any]


class CompletionChoice(BaseModel):
    index: int
    text: str
    logprobs: None = None
    finish_reason: str


class Completion(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage
    agentmill: dict[str, Any]
