"""The OpenAI-compatible routes: /v1/models, /v1/chat/completions, /v1/completions (and /health)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from agentmill.serve.chat import chat_completion
from agentmill.serve.completions import text_completion
from agentmill.serve.contract import EVERY_V1_ROUTE, SSE, errors
from agentmill.serve.errors import log_content
from agentmill.serve.schemas import ChatCompletion, ChatCompletionRequest, Completion, CompletionRequest, ModelCard, ModelList
from agentmill.serve.state import state_of

router = APIRouter(prefix="/v1", responses=EVERY_V1_ROUTE)
public = APIRouter()


def _cards(state) -> list:
    """The catalog's cards, each saying what a message to it may carry (text, image, audio)."""
    cards = state.catalog.cards()
    for card in cards:
        card.agentmill["input"] = state.media.accepts
    return cards


@router.get("/models")
def list_models(request: Request) -> ModelList:
    return ModelList(data=_cards(state_of(request)))


@router.get("/models/{model_id:path}", responses=errors(404))
def get_model(request: Request, model_id: str) -> ModelCard:
    catalog = state_of(request).catalog
    catalog.lookup(model_id)  # 404 for an unknown one
    wanted = catalog.base_id if model_id == "base" and "base" not in catalog.run.tasks else model_id
    return next(card for card in _cards(state_of(request)) if card.id == wanted)


@router.post("/chat/completions", responses={200: {"model": ChatCompletion, "content": SSE},
                                             **errors(400, 404, 429)})
async def chat_completions(request: Request, body: ChatCompletionRequest):
    state = state_of(request)
    log_content(state, f"chat {body.model}:", body.model_dump(mode="json", include={"messages"}, exclude_none=True))
    return await chat_completion(state, body, state.limiter.acquire(request.state.caller))


@router.post("/completions", responses={200: {"model": Completion, "content": SSE}, **errors(400, 404, 429)})
async def completions(request: Request, body: CompletionRequest):
    state = state_of(request)
    log_content(state, f"completion {body.model}:", body.prompt)
    return await text_completion(state, body, state.limiter.acquire(request.state.caller))


@public.get("/health")
def health(request: Request):
    state = state_of(request)
    return {"status": "ok", "run": state.run.manifest.get("name"), "base_model": state.catalog.base_id,
            "tasks": state.run.tasks, "router": state.catalog.router.available, "engine": state.engine.load(),
            "auth": bool(state.settings.api_keys)}
