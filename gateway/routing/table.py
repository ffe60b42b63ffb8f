"""The route table: (Class, Organisation) → connector instance and how it is served."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from gateway.config import RouteConfig
from gateway.govtalk.errors import GovTalkFault

Route = RouteConfig


class RouteTable:
    def __init__(self, routes: Iterable[Route]) -> None:
        self._routes: dict[tuple[str, str], Route] = {}
        self._by_class: dict[str, list[Route]] = {}
        for route in routes:
            self._routes[(route.class_, route.organisation)] = route
            self._by_class.setdefault(route.class_, []).append(route)

    def __iter__(self) -> Iterator[Route]:
        return iter(self._routes.values())

    def get(self, class_: str, organisation: str) -> Route | None:
        return self._routes.get((class_, organisation))

    def resolve(self, class_: str, organisation: str | None, *, reply_class: str) -> Route:
        """The route for a submission, or a 1001/2002 fault naming what was not found."""
        candidates = self._by_class.get(class_)
        if not candidates:
            raise GovTalkFault.of(
                1001, f"Unknown Class '{class_}': no service is routed for it", class_=reply_class
            )
        if organisation is None:
            if len(candidates) == 1:
                return candidates[0]
            offered = ", ".join(sorted(r.organisation for r in candidates))
            raise GovTalkFault.of(
                2002,
                f"TargetDetails/Organisation is required for Class '{class_}' "
                f"(offered by {offered})",
                class_=reply_class,
            )
        route = self._routes.get((class_, organisation))
        if route is None:
            offered = ", ".join(sorted(r.organisation for r in candidates))
            raise GovTalkFault.of(
                1001,
                f"Organisation '{organisation}' does not offer Class '{class_}' "
                f"(offered by {offered})",
                class_=reply_class,
            )
        return route

    def auth_level(self, class_: str) -> float:
        """The strongest authentication any organisation asks for this Class (0 if unrouted)."""
        return max((r.auth_level for r in self._by_class.get(class_, ())), default=0)

    def organisations(self) -> dict[str, str]:
        """Organisation code → name, as the routes declare them."""
        out: dict[str, str] = {}
        for route in self:
            out.setdefault(route.organisation, route.organisation_name or route.organisation)
        return out
