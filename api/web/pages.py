"""The web pages: deployments, forecasts, backtests, monitoring and batch jobs.

Server-rendered Jinja2 templates plus two vendored scripts (uPlot for charts,
htmx for partial updates), all served by this app: nothing comes from a CDN and
there is no build step.  Every page calls what the API calls (the deployment
cache, :func:`api.predicting.predict_and_log`, :mod:`tsengine.render`, the
monitor, the batch store), so a page can never disagree with the API; errors
are shown with the API's own message and status.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

import orjson
import polars as pl
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import HTMLResponse, RedirectResponse, Response

from api.auth import check_credentials
from api.batch import BatchRoutes
from api.cache import LRUCache
from api.errors import describe_error
from api.parsing import Payload, parse_options
from api.predicting import predict_and_log
from api.settings import Settings
from api.web import session, views
from tsengine import render
from tsengine.batch.engine import public_job
from tsengine.batch.store import ACTIVE
from tsengine.contract import ServingDeployment, facts
from tsengine.deployment import BACKTEST_FILE, Deployment
from tsengine.errors import AuthenticationError, ParameterError, PayloadTooLargeError, TsEngineError
from tsengine.monitoring.service import Monitor
from tsengine.options import PredictOptions
from tsengine.registry import Registry

__all__ = ["add_web_routes"]

TEMPLATES = Path(__file__).resolve().parent / "templates"
# The form fields of the forecast page are the API's own query parameters.
FORECAST_FIELDS = (
    "forecastPoint",
    "predictionsStartDate",
    "predictionsEndDate",
    "relaxKnownInAdvanceFeaturesCheck",
    "maxExplanations",
)
_JOBS_SHOWN = 100


def _number(value: Any, digits: int = 4) -> str:
    """A number for people: thousands separated, ``digits`` significant digits, dash for none."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if not isinstance(value, float):
        return str(value)
    if value == 0:
        return "0"
    places = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:,.{places}f}"


def _script_json(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">`` (no ``</script>`` can appear)."""
    return orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY).decode().replace("<", "\\u003c")


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=TEMPLATES)
    templates.env.filters["num"] = _number
    templates.env.filters["script_json"] = _script_json
    templates.env.globals["static_version"] = "1"
    return templates


class _Pages:
    """Page handlers bound to one app's settings, registry, cache, monitor and batch routes."""

    def __init__(
        self,
        settings: Settings,
        registry: Registry,
        cache: LRUCache[Any],
        monitor: Monitor | None,
        batch: BatchRoutes,
    ) -> None:
        self.settings = settings
        self.registry = registry
        self.cache = cache
        self.monitor = monitor
        self.batch = batch
        self.templates = _templates()

    # ------------------------------------------------------------------- access

    def _allowed(self, request: Request) -> bool:
        keys, datarobot_key = self.settings.api_keys, self.settings.datarobot_key
        if session.pages_open(keys, datarobot_key):
            return True
        if session.valid(request.cookies.get(session.COOKIE), keys, datarobot_key):
            return True
        if "authorization" in request.headers:  # scripts may use the API's own headers
            try:
                check_credentials(request.headers, api_keys=keys, datarobot_key=datarobot_key)
            except AuthenticationError:
                return False
            return True
        return False

    async def require_access(self, request: Request) -> None:
        """Dependency of every page: a valid session or API credentials, else the login form."""
        if self._allowed(request):
            return
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        login = f"/ui/login?next={quote(target, safe='')}"
        raise StarletteHTTPException(303, "Log in first", headers={"Location": login, "HX-Redirect": login})

    def _page(self, request: Request, name: str, code: int = 200, **context: Any) -> HTMLResponse:
        context.setdefault(
            "needs_login", not session.pages_open(self.settings.api_keys, self.settings.datarobot_key)
        )
        return self.templates.TemplateResponse(request, name, context, status_code=code)

    def _error(self, request: Request, exc: TsEngineError, *, fragment: bool = False) -> HTMLResponse:
        """The API's own reply for the error (status, message, headers; 5xx logged with the request id)."""
        context = request.scope.get("tsengine.context")
        reply = describe_error(exc, request_id=getattr(context, "request_id", None))
        name = "_error.html" if fragment else "error.html"
        page = self._page(request, name, reply.status, message=reply.message, status=reply.status)
        page.headers.update(reply.headers)
        return page

    async def login_form(self, request: Request, next: str = "/") -> HTMLResponse:  # noqa: A002 - the URL's name
        """The login form (only meaningful when the server has keys)."""
        return self._page(
            request,
            "login.html",
            next=_local(next),
            ask_datarobot_key=self.settings.datarobot_key is not None,
            ask_api_key=bool(self.settings.api_keys),
        )

    async def login(self, request: Request) -> Response:
        """Check the key as the API would; on success set the session cookie and go on."""
        form = await request.form(max_files=0, max_fields=5)
        next_url = _local(str(form.get("next") or "/"))
        try:
            key = session.verify_login(
                str(form.get("api_key") or ""),
                str(form.get("datarobot_key") or ""),
                api_keys=self.settings.api_keys,
                datarobot_key=self.settings.datarobot_key,
            )
        except AuthenticationError as exc:
            return self._page(
                request,
                "login.html",
                401,
                next=next_url,
                message=exc.message,
                ask_datarobot_key=self.settings.datarobot_key is not None,
                ask_api_key=bool(self.settings.api_keys),
            )
        response = RedirectResponse(next_url, status_code=303)
        response.set_cookie(
            session.COOKIE,
            session.issue(key, self.settings.datarobot_key),
            max_age=session.SESSION_SECONDS,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return response

    async def logout(self) -> Response:
        """Forget the session cookie."""
        response = RedirectResponse("/ui/login", status_code=303)
        response.delete_cookie(session.COOKIE, path="/")
        return response

    # ---------------------------------------------------------------- pages

    async def deployments(self, request: Request) -> HTMLResponse:
        """Every stored deployment, from metadata only (fast for many deployments)."""
        rows = await run_in_threadpool(self._deployment_rows)
        return self._page(request, "deployments.html", rows=rows)

    def _deployment_rows(self) -> list[views.DeploymentRow]:
        rows = []
        for deployment_id in self.registry.list():
            last = self.monitor.last_prediction(deployment_id) if self.monitor is not None else None
            try:
                meta = self.registry.read_meta(deployment_id)
            except TsEngineError as exc:
                rows.append(
                    views.DeploymentRow(deployment_id, "?", "", "", None, "", "", "", "", exc.message)
                )
                continue
            rows.append(views.deployment_row(deployment_id, meta, last))
        return rows

    async def _deployment(self, deployment_id: str) -> ServingDeployment:
        deployment, _hit = await self.cache.get(deployment_id)
        return cast("ServingDeployment", deployment)

    async def deployment(self, request: Request, deployment_id: str) -> HTMLResponse:
        """Spec, leaderboard, error by distance, per-series backtest, intervals check, humility rules."""
        try:
            deployment = await self._deployment(deployment_id)
        except TsEngineError as exc:
            return self._error(request, exc)
        info = deployment.info()
        known = facts(deployment.metadata)
        context: dict[str, Any] = {
            "d": deployment,
            "info": info,
            "leaderboard": views.leaderboard_rows(known),
            "rules": views.humility_rows(dict(deployment.metadata)),
        }
        if isinstance(deployment, Deployment):
            trace = await run_in_threadpool(self.registry.read_file, deployment_id, BACKTEST_FILE)
            backtest = (
                views.backtest_chart(pl.read_parquet(trace), deployment.spec.datetime_format)
                if trace
                else None
            )
            context |= {
                "distance_chart": views.distance_errors(known),
                "backtest_chart": backtest,
                "intervals": info.get("intervals"),
            }
        return self._page(request, "deployment.html", **context)

    async def forecast_form(self, request: Request, deployment_id: str) -> HTMLResponse:
        """The upload form; the deployment's spec tells what to post."""
        try:
            deployment = await self._deployment(deployment_id)
        except TsEngineError as exc:
            return self._error(request, exc)
        return self._page(request, "forecast.html", d=deployment, info=deployment.info(), values={})

    async def forecast(self, request: Request, deployment_id: str) -> HTMLResponse:
        """Predict the uploaded or pasted rows through the API's path; chart, table and CSV."""
        fragment = request.headers.get("hx-request") == "true"
        try:
            deployment = await self._deployment(deployment_id)
            payload, options, values = await self._forecast_input(request)
            result = await run_in_threadpool(self._predict, deployment, payload, options)
        except TsEngineError as exc:
            if fragment:
                return self._error(request, exc, fragment=True)
            return self._error(request, exc)
        context: dict[str, Any] = {"d": deployment, "result": result}
        if fragment:
            return self._page(request, "_forecast_result.html", **context)
        return self._page(request, "forecast.html", info=deployment.info(), values=values, **context)

    async def _forecast_input(self, request: Request) -> tuple[Payload, PredictOptions, dict[str, str]]:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            msg = f"The upload is {int(declared):,} bytes, over this server's {limit:,}-byte limit"
            raise PayloadTooLargeError(msg)
        form = await request.form(max_files=1, max_fields=20, max_part_size=limit)
        upload = form.get("file")
        data = b""
        name = ""
        if isinstance(upload, UploadFile) and upload.filename:
            data = await upload.read(limit + 1)
            name = upload.filename
        if not data.strip():
            data = str(form.get("data") or "").encode()
        if len(data) > limit:
            msg = f"The upload is over this server's {limit:,}-byte limit"
            raise PayloadTooLargeError(msg)
        if not data.strip():
            msg = "Choose a CSV or JSON file, or paste rows, to predict"
            raise ParameterError(msg)
        head = data.lstrip()[:1]
        is_json = name.lower().endswith(".json") or (not name and head in {b"[", b"{"})
        payload = Payload(data, "application/json" if is_json else "text/csv")
        values = {k: str(form.get(k) or "").strip() for k in FORECAST_FIELDS}
        items = [(k, v) for k, v in values.items() if v]
        if values["relaxKnownInAdvanceFeaturesCheck"]:
            items = [(k, "true" if k == "relaxKnownInAdvanceFeaturesCheck" else v) for k, v in items]
        return payload, parse_options(items), values

    def _predict(
        self, deployment: ServingDeployment, payload: Payload, options: PredictOptions
    ) -> dict[str, Any]:
        frame, prediction = predict_and_log(
            deployment, payload, options, self.monitor, version=self.cache.version(deployment.id), source="ui"
        )
        # the renderer reads each kind's own attributes (it dispatches on ``kind``)
        csv = render.to_csv(cast("Any", deployment), prediction, frame, options)
        result: dict[str, Any] = {
            "csv_base64": base64.b64encode(csv).decode(),
            "rows": prediction.frame.height,
            "warnings": prediction.warnings,
        }
        if isinstance(deployment, Deployment):
            result["chart"] = views.forecast_chart(deployment, prediction)
            result["series"] = len(result["chart"]["series"])
        else:
            result["columns"], result["table"] = views.prediction_table(render_table(csv))
        return result

    async def monitoring(
        self,
        request: Request,
        deployment_id: str,
        start: str | None = None,
        end: str | None = None,
        metric: str | None = None,
    ) -> HTMLResponse:
        """Accuracy over time, coverage, feature and target drift, service health."""
        try:
            deployment = await self._deployment(deployment_id)
            if self.monitor is None:
                msg = "Monitoring is switched off on this server (TSENGINE_MONITORING_ENABLED=false)"
                raise ParameterError(msg)
            since, until = _when(start, "start"), _when(end, "end")
            report = await run_in_threadpool(self._monitoring, deployment, since, until, metric)
        except TsEngineError as exc:
            return self._error(request, exc)
        return self._page(
            request, "monitoring.html", d=deployment, report=report, start=start or "", end=end or ""
        )

    def _monitoring(
        self,
        deployment: ServingDeployment,
        start: dt.datetime | None,
        end: dt.datetime | None,
        metric: str | None,
    ) -> dict[str, Any]:
        monitor = self.monitor
        assert monitor is not None
        report: dict[str, Any] = {
            "accuracy": monitor.accuracy(deployment, start, end),
            "service": monitor.service_stats(deployment, start, end),
            "settings": monitor.settings(deployment.id),
        }
        over_time = monitor.accuracy_over_time(deployment, start, end, metric=metric)
        report["metric"] = over_time["metric"]
        charts = [over_time]
        if deployment.kind == "timeseries" and over_time["metric"] != "Coverage":
            charts.append(monitor.accuracy_over_time(deployment, start, end, metric="Coverage"))
        report["charts"] = [_bucket_chart(chart) for chart in charts]
        for name, call in (("features", monitor.feature_drift), ("target", monitor.target_drift)):
            try:
                report[name] = call(deployment, start, end)
            except ParameterError as exc:  # tracking switched off: say so where the table would be
                report[f"{name}_off"] = exc.message
        return report

    async def batch_jobs(self, request: Request, deployment: str | None = None) -> HTMLResponse:
        """Batch jobs, newest first, refreshed while any is running."""
        jobs = await run_in_threadpool(self._jobs, deployment)
        return self._page(request, "batch.html", jobs=jobs, deployment=deployment or "")

    async def batch_rows(self, request: Request, deployment: str | None = None) -> HTMLResponse:
        """The table body alone, for htmx's polling."""
        jobs = await run_in_threadpool(self._jobs, deployment)
        return self._page(request, "_batch_rows.html", jobs=jobs, deployment=deployment or "")

    def _jobs(self, deployment: str | None) -> list[dict[str, Any]]:
        docs, _total = self.batch.store.jobs(deployment_id=deployment or None, limit=_JOBS_SHOWN)
        out = []
        for doc in docs:
            job = public_job(doc)
            spec = doc.get("jobSpec") or {}
            job["intake"] = (spec.get("intakeSettings") or {}).get("type", "")
            job["output"] = (spec.get("outputSettings") or {}).get("type", "")
            job["deploymentId"] = spec.get("deploymentId", "")
            job["active"] = doc.get("status") in ACTIVE
            job["downloadable"] = (
                job["output"] == "localFile"
                and bool(doc.get("_downloadReady"))
                and not doc.get("resultsDeleted")
                and doc.get("status") not in {"FAILED", "ABORTED"}
            )
            out.append(job)
        return out

    async def batch_download(self, request: Request, job_id: str) -> Response:
        """The job's result CSV through the API's own download handler (streamed while it runs)."""
        try:
            return await self.batch.download(job_id)
        except TsEngineError as exc:
            return self._error(request, exc)


def render_table(csv: bytes) -> pl.DataFrame:
    """The API's CSV answer as a frame, so the page's table shows exactly its columns and values."""
    return pl.read_csv(csv, infer_schema_length=0)


def _local(url: str) -> str:
    """Only same-site paths after login (no open redirect to another host)."""
    return url if url.startswith("/") and not url.startswith("//") and "\\" not in url else "/"


def _when(value: str | None, name: str) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        msg = f"{name} must be an ISO 8601 date or datetime, got {value!r}"
        raise ParameterError(msg) from exc
    return parsed.astimezone(dt.UTC).replace(tzinfo=None) if parsed.tzinfo else parsed


def _bucket_chart(over_time: dict[str, Any]) -> dict[str, Any]:
    """An accuracyOverTime answer as chart data: buckets that have a value (empty ones are gaps)."""
    scored = [b for b in over_time["buckets"] if b["value"] is not None]
    return {
        "metric": over_time["metric"],
        "x": [_epoch(b["period"]["start"]) for b in scored],
        "y": [b["value"] for b in scored],
        "n": [b["sampleSize"] for b in scored],
    }


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def add_web_routes(
    app: FastAPI,
    *,
    settings: Settings,
    registry: Registry,
    cache: LRUCache[Any],
    monitor: Monitor | None,
    batch: BatchRoutes,
) -> None:
    """Mount the pages: ``/`` and ``/ui/…`` (not in the OpenAPI document: they are not an API)."""
    pages = _Pages(settings, registry, cache, monitor, batch)
    open_router = APIRouter(include_in_schema=False)
    open_router.add_api_route("/ui/login", pages.login_form, methods=["GET"])
    open_router.add_api_route("/ui/login", pages.login, methods=["POST"])
    open_router.add_api_route("/ui/logout", pages.logout, methods=["POST"])
    app.include_router(open_router)

    router = APIRouter(include_in_schema=False, dependencies=[Depends(pages.require_access)])
    add = router.add_api_route
    add("/", pages.deployments, methods=["GET"])
    add("/ui", lambda: RedirectResponse("/", status_code=308), methods=["GET"])
    add("/ui/deployments/{deployment_id}", pages.deployment, methods=["GET"])
    add("/ui/deployments/{deployment_id}/forecast", pages.forecast_form, methods=["GET"])
    add("/ui/deployments/{deployment_id}/forecast", pages.forecast, methods=["POST"])
    add("/ui/deployments/{deployment_id}/monitoring", pages.monitoring, methods=["GET"])
    add("/ui/batch", pages.batch_jobs, methods=["GET"])
    add("/ui/batch/rows", pages.batch_rows, methods=["GET"])
    add("/ui/batch/{job_id}/download", pages.batch_download, methods=["GET"])
    app.include_router(router)
