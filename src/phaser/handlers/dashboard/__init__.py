"""The web dashboard at ``/ui``: overview, job list, job pages, submit
forms; server-rendered HTML (Jinja2) kept live by the server's event
streams, with a small script and a style sheet served from the package.

Pages are kept out of the OpenAPI document (they are for people). Their
errors are HTML pages with the same status codes the JSON API uses; in
``token`` mode a page without a session sends the browser to the login
form. See `phaser.dependencies.browser` for sessions and CSRF.
"""

from __future__ import annotations

from fastapi import APIRouter

from . import job, jobs, overview, session, submit

__all__ = ["router"]

router = APIRouter()
# In this order: fixed paths (``/ui/jobs/stream``) before the templates
# that would match them (``/ui/jobs/{job_id}``).
for part in (session, overview, jobs, job, submit):
    router.include_router(part.router)
