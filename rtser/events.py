"""The event types a recognizer and ``rtser listen`` produce, and choosing which of them go out."""

from __future__ import annotations

EVENT_TYPES = ("utterance", "emotion", "speech", "status")


def check_event_types(types: list[str] | None) -> None:
    """Refuse (ValueError) an event selection that names no type or an unknown one."""
    if types is None:
        return
    unknown = [name for name in types if name not in EVENT_TYPES]
    if unknown or not types:
        raise ValueError(f"events must name one or more of {', '.join(EVENT_TYPES)}; got {', '.join(map(str, types)) or 'none'}")


def parse_event_types(text: str) -> list[str]:
    """``--events utterance,speech`` as a checked list (ValueError when it is not one)."""
    types = [name.strip() for name in text.split(",") if name.strip()]
    check_event_types(types)
    return types


def selected(event: dict, types: list[str] | None) -> bool:
    """Whether ``event`` is one of the chosen types (all are when ``types`` is None)."""
    return types is None or event.get("type") in types
