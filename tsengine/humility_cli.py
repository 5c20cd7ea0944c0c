"""``tsengine humility add|list|remove``: manage a deployment's humility rules.

Every change loads the live deployment, changes its rules and saves it as a new
registry version, which :meth:`Registry.save` makes live atomically; an
exclusive lock on the deployment's folder serialises concurrent edits, so two
``add`` commands cannot both read version N and lose one rule.  A running
server picks the new version up when its cache reloads the deployment.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any, TypeVar

import orjson
import typer
from rich.console import Console
from rich.table import Table

from tsengine.errors import ParameterError, TsEngineError, short_list
from tsengine.humility import (
    DEFAULT_NAMES,
    HumilityRule,
    new_rule_id,
    rules_from_metadata,
    with_rules,
)
from tsengine.registry import Registry, check_id
from tsengine.validate import SID

__all__ = ["build_rule", "humility_app", "update_rules"]

humility_app = typer.Typer(
    help="Humility rules: flag, override or refuse predictions the model should not be trusted with.",
    no_args_is_help=True,
)
_err = Console(stderr=True)
_out = Console()
_EXIT_BAD_INPUT = 2
T = TypeVar("T")

_TRIGGER_ALIASES = {
    "uncertain_prediction": "uncertain_prediction",
    "outlying_input": "outlying_input",
    "low_observation_region": "low_observation_region",
}
_ACTION_ALIASES = {
    "no_op": "no_op",
    "noop": "no_op",
    "no_operation": "no_op",
    "override": "override",
    "override_prediction": "override",
    "throw_error": "throw_error",
    "error": "throw_error",
    "return_error": "throw_error",
}

RegistryOpt = Annotated[
    Path | None,
    typer.Option(
        "--registry", help="Registry folder (default: $TSENGINE_REGISTRY, else ~/.tsengine/registry)."
    ),
]


def _key(text: str) -> str:
    return text.strip().lower().replace("-", "_").replace(" ", "_")


def _choose(text: str, aliases: dict[str, str], what: str) -> str:
    value = aliases.get(_key(text))
    if value is None:
        choices = ", ".join(sorted({v.replace("_", "-") for v in aliases.values()}))
        msg = f"unknown humility {what} {text!r}; choose from {choices}"
        raise ParameterError(msg)
    return value


def _categories(deployment: Any, feature: str) -> tuple[str, ...] | None:
    """Training categories of a categorical input, when the deployment knows them."""
    if deployment.kind == "tabular":
        column = deployment.schema.column(feature)
        return tuple(column.categories) if column is not None and column.kind == "categorical" else None
    maps = getattr(getattr(deployment, "model", None), "maps", None)
    key = SID if feature == deployment.spec.series_id_column else feature
    known = maps.maps.get(key) if maps is not None else None
    return tuple(known) if known else None


def _check_feature(deployment: Any, trigger: str, feature: str) -> None:
    """The feature must be an input the rule can see, of the right kind."""
    if deployment.kind == "tabular":
        column = deployment.schema.column(feature)
        kinds = {c.name: c.kind for c in deployment.schema.columns}
        wanted = "numeric" if trigger == "outlying_input" else "categorical"
        if column is None or column.kind != wanted:
            options = [n for n, k in kinds.items() if k == wanted]
            msg = f"{trigger} needs a {wanted} feature; {feature!r} is not one (choose from {short_list(options, limit=10)})"
            raise ParameterError(msg)
        return
    spec = deployment.spec
    numeric = [k for k in spec.known_in_advance if k not in spec.categorical]
    categorical = [k for k in spec.known_in_advance if k in spec.categorical]
    if spec.series_id_column:
        categorical.append(spec.series_id_column)
    options = numeric if trigger == "outlying_input" else categorical
    if feature not in options:
        msg = (
            f"{trigger} on a time series deployment needs a known-in-advance feature"
            f"{'' if trigger == 'outlying_input' else ' or the series id column'} of the right kind; "
            f"{feature!r} is not one (choose from {short_list(options, limit=10) or 'none'})"
        )
        raise ParameterError(msg)


def _override_value(deployment: Any, value: str | None) -> Any:
    if value is None:
        return None
    classes = tuple(getattr(deployment, "classes", ()))
    if deployment.kind == "tabular" and deployment.task != "regression":
        match = [c for c in classes if str(c) == value]
        if not match:
            msg = f"override value {value!r} is not a class of this deployment: {short_list(classes)}"
            raise ParameterError(msg)
        return match[0]
    try:
        return float(value)
    except ValueError:
        msg = f"override value {value!r} must be a number for a regression or time series deployment"
        raise ParameterError(msg) from None


def build_rule(
    deployment: Any,
    *,
    trigger: str,
    action: str,
    feature: str | None = None,
    low: float | None = None,
    high: float | None = None,
    categories: tuple[str, ...] = (),
    value: str | None = None,
    name: str | None = None,
    rule_id: str | None = None,
) -> HumilityRule:
    """A rule checked against what the deployment can evaluate, defaults filled in.

    Outlying-input ranges default to the training range of a tabular feature;
    low-observation categories default to the categories seen in training.

    Raises:
        ParameterError: naming the wrong trigger, action, feature or value.
    """
    trigger = _choose(trigger, _TRIGGER_ALIASES, "trigger")
    action = _choose(action, _ACTION_ALIASES, "action")
    if trigger != "uncertain_prediction":
        if not feature:
            msg = f"{trigger} needs --feature"
            raise ParameterError(msg)
        _check_feature(deployment, trigger, feature)
    if trigger == "outlying_input" and deployment.kind == "tabular" and low is None and high is None:
        column = deployment.schema.column(feature)
        low, high = column.low, column.high
    if trigger == "low_observation_region" and not categories:
        categories = _categories(deployment, str(feature)) or ()
        if not categories:
            msg = f"the training categories of {feature!r} are unknown; list them with --category"
            raise ParameterError(msg)
    probability = deployment.kind == "tabular" and deployment.task != "regression"
    if trigger == "uncertain_prediction" and probability:
        for bound in (low, high):
            if bound is not None and not 0.0 <= bound <= 1.0:
                msg = f"a classification deployment's uncertain prediction range is a probability in [0, 1], got {bound}"
                raise ParameterError(msg)
    return HumilityRule(
        rule_id=rule_id or new_rule_id(),
        name=name or DEFAULT_NAMES[trigger],
        trigger=trigger,
        action=action,
        feature=feature if trigger != "uncertain_prediction" else None,
        low=low,
        high=high,
        categories=tuple(categories),
        override=_override_value(deployment, value) if action == "override" else None,
    )


@contextlib.contextmanager
def _locked(registry: Registry, deployment_id: str) -> Iterator[None]:
    home = registry.path / check_id(deployment_id)
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".humility.lock").open("a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def update_rules(
    registry: Registry,
    deployment_id: str,
    change: Callable[[Any, tuple[HumilityRule, ...]], tuple[HumilityRule, ...]],
) -> tuple[HumilityRule, ...]:
    """Load, change the rules, save a new version; under an exclusive lock.

    Raises:
        NotFoundError: unknown deployment.
    """
    registry.load(deployment_id)  # unknown id → NotFoundError, before any lock file is made
    with _locked(registry, deployment_id):
        deployment = registry.load(deployment_id)
        rules = change(deployment, rules_from_metadata(deployment.metadata))
        registry.save(dataclasses.replace(deployment, metadata=with_rules(deployment.metadata, rules)))
    return rules


def _run(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except TsEngineError as exc:
        _err.print(f"[bold red]error:[/] {exc.message}", highlight=False, soft_wrap=True)
        raise typer.Exit(_EXIT_BAD_INPUT) from None


@humility_app.command("add")
def add_cmd(
    deployment_id: Annotated[str, typer.Argument(metavar="ID", help="Deployment id.")],
    trigger: Annotated[
        str, typer.Option("--trigger", help="uncertain-prediction, outlying-input or low-observation-region.")
    ],
    action: Annotated[str, typer.Option("--action", help="no-op, override or throw-error.")] = "no-op",
    feature: Annotated[
        str | None, typer.Option("--feature", help="Input column (outlying input, low observation region).")
    ] = None,
    low: Annotated[float | None, typer.Option("--low", help="Lower bound of the accepted range.")] = None,
    high: Annotated[float | None, typer.Option("--high", help="Upper bound of the accepted range.")] = None,
    category: Annotated[
        list[str] | None,
        typer.Option("--category", help="Expected category (repeatable; default: training's)."),
    ] = None,
    value: Annotated[str | None, typer.Option("--value", help="Override: the prediction to return.")] = None,
    name: Annotated[str | None, typer.Option("--name", help="Rule name reported as ruleName.")] = None,
    rule_id: Annotated[str | None, typer.Option("--rule-id", help="Rule id (default: generated).")] = None,
    registry: RegistryOpt = None,
) -> None:
    """Add a rule to a deployment (saved as a new version)."""
    added: list[HumilityRule] = []

    def change(deployment: Any, rules: tuple[HumilityRule, ...]) -> tuple[HumilityRule, ...]:
        rule = build_rule(
            deployment,
            trigger=trigger,
            action=action,
            feature=feature,
            low=low,
            high=high,
            categories=tuple(category or ()),
            value=value,
            name=name,
            rule_id=rule_id,
        )
        if any(r.rule_id == rule.rule_id for r in rules):
            msg = f"rule id {rule.rule_id!r} already exists on {deployment.id!r}"
            raise ParameterError(msg)
        added.append(rule)
        return (*rules, rule)

    _run(lambda: update_rules(Registry(registry), deployment_id, change))
    _out.print(added[0].rule_id, highlight=False)


@humility_app.command("list")
def list_cmd(
    deployment_id: Annotated[str, typer.Argument(metavar="ID", help="Deployment id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the rules as JSON.")] = False,
    registry: RegistryOpt = None,
) -> None:
    """Show a deployment's rules."""
    rules = _run(lambda: rules_from_metadata(Registry(registry).load(deployment_id).metadata))
    if as_json:
        sys.stdout.buffer.write(
            orjson.dumps([r.to_dict() for r in rules], option=orjson.OPT_INDENT_2) + b"\n"
        )
        return
    if not rules:
        _err.print(f"no humility rules on {deployment_id!r}")
        return
    table = Table("ruleId", "ruleName", "trigger", "action", "feature", "range", "override")
    for r in rules:
        bounds = "" if r.low is None and r.high is None else f"[{r.low}, {r.high}]"
        if r.categories:
            bounds = f"{len(r.categories)} categories"
        table.add_row(r.rule_id, r.name, r.trigger, r.action, r.feature or "", bounds, str(r.override or ""))
    _out.print(table)


@humility_app.command("remove")
def remove_cmd(
    deployment_id: Annotated[str, typer.Argument(metavar="ID", help="Deployment id.")],
    rule_id: Annotated[str, typer.Argument(metavar="RULE_ID", help="Id of the rule to remove.")],
    registry: RegistryOpt = None,
) -> None:
    """Remove one rule (saved as a new version)."""

    def change(deployment: Any, rules: tuple[HumilityRule, ...]) -> tuple[HumilityRule, ...]:
        kept = tuple(r for r in rules if r.rule_id != rule_id)
        if len(kept) == len(rules):
            known = [r.rule_id for r in rules]
            msg = f"no rule {rule_id!r} on {deployment.id!r}; its rules are {short_list(known) or 'none'}"
            raise ParameterError(msg)
        return kept

    _run(lambda: update_rules(Registry(registry), deployment_id, change))
    _err.print(f"removed rule {rule_id} from {deployment_id}")
