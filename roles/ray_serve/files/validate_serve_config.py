"""Validate a Serve config against the pinned Ray's own schema, strictly.

Runs inside a Ray container: python3 validate_serve_config.py '<json>' ['<architectures json>'].
Ray's pydantic models ignore unknown fields (a misspelt `upscale_delay_secs`
is accepted and silently does nothing), so after Ray's own validation every
key is also checked against the model's fields. Prints one JSON line, last
(vLLM logs to stdout while it imports): {"ok": bool, "errors": [str, ...]}.
"""

import json
import sys
import typing

from pydantic import BaseModel, ValidationError
from ray.serve.config import AutoscalingConfig
from ray.serve.schema import DeploymentSchema, ServeDeploySchema

# Fields typed as a plain dict in the schema but validated later by Ray.
LATE = {
    (DeploymentSchema, "autoscaling_config"): AutoscalingConfig,
}


def models_in(annotation):
    """Pydantic model classes named by a field annotation (through Optional, List, ...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found = []
    for arg in typing.get_args(annotation):
        found += models_in(arg)
    return found


def is_list(annotation):
    origin = typing.get_origin(annotation)
    if origin in (list, typing.List):
        return True
    return any(is_list(a) for a in typing.get_args(annotation)
               if typing.get_origin(a) in (list, typing.List))


def unknown_keys(model, data, path, errors):
    if not isinstance(data, dict):
        return
    fields = model.model_fields
    names = set(fields) | {f.alias for f in fields.values() if f.alias}
    for key, value in data.items():
        where = f"{path}.{key}" if path else key
        if key not in names:
            errors.append(f"{where}: unknown field; {model.__name__} accepts: "
                          + ", ".join(sorted(fields)))
            continue
        field = fields.get(key) or next(f for f in fields.values() if f.alias == key)
        inner = LATE.get((model, key))
        targets = [inner] if inner else models_in(field.annotation)
        if not targets or value is None:
            continue
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            label = f"{where}[{index}]" if isinstance(value, list) else where
            unknown_keys(targets[0], item, label, errors)


def vllm_engine_fields():
    """Names vLLM's engine accepts as engine_kwargs, or None where vLLM is not installed."""
    try:
        import dataclasses
        from vllm.engine.arg_utils import AsyncEngineArgs
    except ImportError:
        return None
    return {field.name for field in dataclasses.fields(AsyncEngineArgs)}


def architecture_check(architectures, where, errors):
    """A checkpoint (its config.json's `architectures`, read on a worker host) that this vLLM cannot load."""
    if architectures is None:
        return
    try:
        import vllm
        from vllm.model_executor.models import ModelRegistry
    except ImportError:
        return
    if not architectures:
        errors.append(f"{where}: the model's config.json names no `architectures`, so vLLM cannot pick a model class")
    elif not set(ModelRegistry.get_supported_archs()).intersection(architectures):
        errors.append(f"{where}: the model is a {', '.join(architectures)} checkpoint, which vLLM "
                      f"{vllm.__version__} cannot load (not in its model registry); serve a supported "
                      "architecture, or pin a vLLM that supports it")


def llm_checks(app, path, errors, architectures=None):
    """Check ray.serve.llm apps' autoscaling blocks, and LLMConfig where importable."""
    if not str(app.get("import_path", "")).startswith("ray.serve.llm:"):
        return
    configs = (app.get("args") or {}).get("llm_configs") or []
    try:
        from ray.serve.llm import LLMConfig  # needs the llm extra (vLLM image)
    except ImportError:
        LLMConfig = None
    for index, config in enumerate(configs):
        where = f"{path}.args.llm_configs[{index}]"
        if LLMConfig is not None and isinstance(config, dict):
            try:
                LLMConfig.model_validate(config)
            except ValidationError as err:
                errors.append(f"{where}: {plain(err)}")
            if LLMConfig.model_config.get("extra") != "forbid":
                unknown_keys(LLMConfig, config, where, errors)
        architecture_check(architectures, where, errors)
        engine_fields = vllm_engine_fields()
        kwargs = (config or {}).get("engine_kwargs") or {}
        if engine_fields and isinstance(kwargs, dict):
            for key in sorted(set(kwargs) - engine_fields):
                errors.append(f"{where}.engine_kwargs.{key}: not an argument of vLLM's engine "
                              "(vllm.engine.arg_utils.AsyncEngineArgs)")
        autoscaling = ((config or {}).get("deployment_config") or {}).get("autoscaling_config")
        if isinstance(autoscaling, dict):
            try:
                AutoscalingConfig.model_validate(autoscaling)
            except ValidationError as err:
                errors.append(f"{where}.deployment_config.autoscaling_config: {plain(err)}")
            unknown_keys(AutoscalingConfig, autoscaling,
                         f"{where}.deployment_config.autoscaling_config", errors)


def plain(err):
    """A pydantic error without its documentation links."""
    return "\n".join(line for line in str(err).splitlines()
                     if "errors.pydantic.dev" not in line)


def main():
    config = json.loads(sys.argv[1])
    # The `architectures` of the model's config.json, for ray.serve.llm apps with local weights.
    architectures = json.loads(sys.argv[2]) if len(sys.argv) > 2 else None
    errors = []
    try:
        ServeDeploySchema.model_validate(config)
    except ValidationError as err:
        errors.append(plain(err))
    unknown_keys(ServeDeploySchema, config, "", errors)
    for index, app in enumerate(config.get("applications") or []):
        for dindex, deployment in enumerate(app.get("deployments") or []):
            autoscaling = deployment.get("autoscaling_config")
            if isinstance(autoscaling, dict):
                try:
                    AutoscalingConfig.model_validate(autoscaling)
                except ValidationError as err:
                    errors.append(f"applications[{index}].deployments[{dindex}]"
                                  f".autoscaling_config: {plain(err)}")
        llm_checks(app, f"applications[{index}]", errors, architectures)
    print(json.dumps({"ok": not errors, "errors": errors}))


if __name__ == "__main__":
    main()
