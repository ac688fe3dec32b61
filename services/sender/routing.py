"""Which webhooks an event goes to: AMQP topic matching over the webhook table, kept indexed."""

from __future__ import annotations

import sys
from collections.abc import Iterable

from schemas.event_patterns import is_pattern
from schemas.webhooks import WebhookState


class _Node:
    """A trie node: one per distinct prefix of pattern words."""

    __slots__ = ("children", "is_hash", "webhooks")

    def __init__(self, word: str) -> None:
        self.children: dict[str, _Node] = {}
        self.is_hash = word == "#"
        # The patterns that end here, by id: most nodes are inner ones, so it is made when needed.
        self.webhooks: dict[str, WebhookState] | None = None


class RoutingIndex:
    """The enabled webhooks, one set of subscriptions per account (and one for the webhooks of no
    account): an event of an account is routed in that account's set and in the set of no
    account, so other accounts' webhooks cost its routing nothing, however many there are."""

    def __init__(self, webhooks: Iterable[WebhookState] = ()) -> None:
        self._by_account: dict[str | None, _Subscriptions] = {}
        self._account_of: dict[str, str | None] = {}
        for webhook in webhooks:
            self.put(webhook)

    def put(self, webhook: WebhookState) -> None:
        """Add or replace a webhook; a disabled one leaves routing."""
        self.remove(webhook.id)
        if webhook.disabled:
            return
        subscriptions = self._by_account.get(webhook.account)
        if subscriptions is None:
            subscriptions = self._by_account[webhook.account] = _Subscriptions()
        subscriptions.put(webhook)
        self._account_of[webhook.id] = webhook.account

    def apply(self, webhook_id: str, state: WebhookState | None) -> None:
        """Follow one change of the webhook table (None: deleted)."""
        if state is None:
            self.remove(webhook_id)
        else:
            self.put(state)

    def remove(self, webhook_id: str) -> None:
        """Take a webhook out of routing; an unknown id is ignored."""
        if webhook_id not in self._account_of:
            return
        account = self._account_of.pop(webhook_id)
        subscriptions = self._by_account[account]
        subscriptions.remove(webhook_id)
        if not subscriptions:
            del self._by_account[account]

    def route(self, event_type: str, account: str | None = None) -> list[WebhookState]:
        """Every enabled webhook subscribed to `event_type`, each once: those of no account, and
        those of the event's account."""
        everyone = self._by_account.get(None)
        found = everyone.route(event_type) if everyone is not None else []
        if account is not None and (own := self._by_account.get(account)) is not None:
            found.extend(own.route(event_type))
        return found

    def __len__(self) -> int:
        return len(self._account_of)


class _Subscriptions:
    """Webhooks' subscriptions: exact types in a dict, patterns in a trie over their words.

    The trie is what RabbitMQ's topic exchange uses: routing a type costs the nodes its words
    reach, not the number of patterns, so thousands of patterns that do not match cost nothing.
    """

    def __init__(self) -> None:
        self._exact: dict[str, dict[str, WebhookState]] = {}
        self._root = _Node("")
        self._event_of: dict[str, str] = {}

    def put(self, webhook: WebhookState) -> None:
        """Add a webhook (not in here yet)."""
        self._event_of[webhook.id] = webhook.event
        if not is_pattern(webhook.event):
            self._exact.setdefault(webhook.event, {})[webhook.id] = webhook
            return
        node = self._root
        for word in webhook.event.split("."):
            child = node.children.get(word)
            if child is None:
                # Interned: the same words ("request", "*") recur under thousands of nodes.
                child = node.children[sys.intern(word)] = _Node(word)
            node = child
        if node.webhooks is None:
            node.webhooks = {}
        node.webhooks[webhook.id] = webhook

    def remove(self, webhook_id: str) -> None:
        """Take a webhook out; an unknown id is ignored."""
        event = self._event_of.pop(webhook_id, None)
        if event is None:
            return
        if not is_pattern(event):
            by_id = self._exact[event]
            del by_id[webhook_id]
            if not by_id:
                del self._exact[event]
            return
        words = event.split(".")
        path = [self._root]  # path[i] is the node reached by words[:i]
        for word in words:
            path.append(path[-1].children[word])
        ends_here = path[-1].webhooks
        assert ends_here is not None  # put() made it for this webhook
        del ends_here[webhook_id]
        # Prune the nodes left empty, deepest first, so create/delete churn does not grow the trie.
        for depth in range(len(words), 0, -1):
            node = path[depth]
            if node.webhooks or node.children:
                break
            del path[depth - 1].children[words[depth - 1]]

    def route(self, event_type: str) -> list[WebhookState]:
        """Every enabled webhook subscribed to `event_type`, each once."""
        found = list(self._exact.get(event_type, {}).values())
        words = event_type.split(".")
        end = len(words)
        # Walk states (node, words taken). A `#` node may take one more word and stay, or hand on
        # to its children. Several paths can reach one state (`#.#`, `a.#.#`): the seen set keeps
        # the walk O(nodes x words), never exponential, and takes each end node's webhooks once.
        todo = [(self._root, 0)]
        seen: set[tuple[_Node, int]] = set()
        while todo:
            state = todo.pop()
            if state in seen:
                continue
            seen.add(state)
            node, at = state
            children = node.children
            if at == end:
                if node.webhooks:
                    found.extend(node.webhooks.values())
            else:
                if node.is_hash:
                    todo.append((node, at + 1))  # this `#` takes one more word
                for word in (words[at], "*"):
                    if (child := children.get(word)) is not None:
                        todo.append((child, at + 1))
            if (hash_ := children.get("#")) is not None:
                todo.append((hash_, at))  # a `#` starts here, having taken no word
        return found

    def __len__(self) -> int:
        return len(self._event_of)
