"""Build `with_structured_output` runnables: function calling, JSON schema or JSON mode.

>>> structured = model.with_structured_output(Joke, method="json_schema", strict=True)
>>> structured.invoke("Tell me a joke about cats")
Joke(setup='...', punchline='...')
"""

from __future__ import annotations

from collections.abc import Mapping
from operator import itemgetter
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.output_parsers import (
    JsonOutputKeyToolsParser,
    JsonOutputParser,
    PydanticOutputParser,
    PydanticToolsParser,
)
from langchain_core.runnables import Runnable, RunnableMap, RunnablePassthrough
from langchain_core.utils.pydantic import is_basemodel_subclass

from ._tools import to_openai_tool

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel, LanguageModelInput


__all__ = ["StructuredMethod", "build_structured_output"]

StructuredMethod = Literal["function_calling", "json_schema", "json_mode"]


def _is_pydantic_class(schema: Any) -> bool:
    return isinstance(schema, type) and is_basemodel_subclass(schema)


def build_structured_output(
    model: BaseChatModel,
    schema: Mapping[str, Any] | type | None,
    *,
    method: StructuredMethod,
    include_raw: bool,
    strict: bool | None,
) -> Runnable[LanguageModelInput, Any]:
    """The runnable behind `ChatLLMRouter.with_structured_output`.

    - `function_calling`: the schema becomes a tool the model is forced to call; works on
      every deployment that supports tools (the default, and the safest across providers).
    - `json_schema`: the provider's native structured output (`response_format`
      json_schema); `strict=True` asks for exact schema adherence where supported.
    - `json_mode`: `response_format={"type": "json_object"}`; the prompt must describe
      the keys. `schema` only shapes parsing.
    """
    if method not in ("function_calling", "json_schema", "json_mode"):
        raise ValueError(
            f"unknown method {method!r}; use 'function_calling', 'json_schema' or 'json_mode'"
        )
    if schema is None and method != "json_mode":
        raise ValueError(f"method={method!r} needs a schema")
    if method == "json_mode" and strict is not None:
        raise ValueError("strict is not supported with method='json_mode'")
    is_pydantic = _is_pydantic_class(schema)
    trace_format: dict[str, Any] = {
        "kwargs": {"method": method, "strict": strict},
        "schema": schema,
    }
    parser: Runnable[Any, Any]
    if method == "function_calling":
        assert schema is not None
        tool = to_openai_tool(schema, strict=strict)
        tool_name = tool["function"]["name"]
        llm = model.bind_tools(
            [tool],
            tool_choice=tool_name,
            ls_structured_output_format=trace_format,
        )
        if is_pydantic:
            parser = PydanticToolsParser(tools=[schema], first_tool_only=True)  # type: ignore[list-item]
        else:
            parser = JsonOutputKeyToolsParser(key_name=tool_name, first_tool_only=True)
    elif method == "json_schema":
        assert schema is not None
        function = to_openai_tool(schema, strict=strict)["function"]
        json_schema: dict[str, Any] = {
            "name": function["name"],
            "schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
        if function.get("description"):
            json_schema["description"] = function["description"]
        if strict is not None:
            json_schema["strict"] = strict
        llm = model.bind(
            response_format={"type": "json_schema", "json_schema": json_schema},
            ls_structured_output_format=trace_format,
        )
        parser = _json_parser(schema, is_pydantic)
    else:
        llm = model.bind(
            response_format={"type": "json_object"},
            ls_structured_output_format={**trace_format, "schema": schema or {}}
            if schema is not None
            else None,
        )
        parser = _json_parser(schema, is_pydantic)
    if not include_raw:
        return llm | parser
    # On a parsing failure the raw message is still returned, with the error beside it.
    parse = RunnablePassthrough.assign(
        parsed=itemgetter("raw") | parser, parsing_error=lambda _: None
    )
    keep_raw = RunnablePassthrough.assign(parsed=lambda _: None)
    return RunnableMap(raw=llm) | parse.with_fallbacks([keep_raw], exception_key="parsing_error")


def _json_parser(schema: Any, is_pydantic: bool) -> Runnable[Any, Any]:
    if is_pydantic:
        return PydanticOutputParser(pydantic_object=schema)
    return JsonOutputParser()
