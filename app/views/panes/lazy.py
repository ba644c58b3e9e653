"""The main window's panes by id, each built the first time it is needed.

A mapping, so ``window.panes["settlement_queue"]`` reads as before: asking for a pane builds it (and the window puts
it in its dock) if it was not built yet. Iterating gives the ids of every pane, built or not; ``built()`` gives the
panes that exist, which is what a refresh or a reconnection should touch (a pane not built has nothing to reload).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

from .base import Pane


class LazyPanes(Mapping[str, Pane]):
    def __init__(
        self,
        pane_ids: Sequence[str],
        build: Callable[[str], Pane],
        attach: Callable[[str, Pane], None],
    ) -> None:
        self._ids = tuple(pane_ids)
        self._build = build
        self._attach = attach
        self._built: dict[str, Pane] = {}

    def __getitem__(self, pane_id: str) -> Pane:
        pane = self._built.get(pane_id)
        if pane is None:
            if pane_id not in self._ids:
                raise KeyError(pane_id)
            pane = self._build(pane_id)
            # Known before it is attached: attaching shows it, and whatever that sets off finds it built.
            self._built[pane_id] = pane
            self._attach(pane_id, pane)
        return pane

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, pane_id: object) -> bool:
        return pane_id in self._ids

    def is_built(self, pane_id: str) -> bool:
        return pane_id in self._built

    def peek(self, pane_id: str) -> Pane | None:
        """The pane if it is built, without building it."""
        return self._built.get(pane_id)

    def built(self) -> list[Pane]:
        """The panes built so far, in tab order."""
        return [self._built[i] for i in self._ids if i in self._built]
