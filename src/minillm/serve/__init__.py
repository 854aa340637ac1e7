"""``minillm serve``: an OpenAI-compatible HTTP API and a chat web page for one trained run.

    minillm serve runs/NAME [--host 127.0.0.1] [--port 8000]

- app.py: ``create_app(run_dir)``, the FastAPI app: the page at ``/``, ``POST /v1/answer`` (closed- or
  open-book, with sources and timing), ``GET /health``, the security guard in front of every route.
- openai_api.py: ``POST /v1/chat/completions`` (streaming too) and ``GET /v1/models``, for OpenAI clients.
- worker.py: the threads that run the generations, and the request limits.
- batching.py: a transformer's answers in progress decoded together, one forward a step (continuous batching).
- errors.py: the one JSON error shape, naming the request field at fault.
- static/: the chat page (plain HTML, JS and CSS; no build step, no network).

Needs the ``serve`` extra (fastapi, uvicorn); importing this package without it raises ImportError.
"""

from minillm.serve.app import DEFAULT_HOST, DEFAULT_PORT, create_app, is_loopback

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "create_app", "is_loopback"]
