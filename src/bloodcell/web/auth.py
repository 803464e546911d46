"""Who is using the web app: the one interface pages ask, whatever signs people in.

Pages call ``current_user()`` and check ``User.has(role)``; they never look at
sessions, headers or tokens themselves, so the sign-in mechanism (none on a
loopback stack, built-in accounts, or Identity-Aware Proxy) can change without
touching them.
"""

from __future__ import annotations

from dataclasses import dataclass

USER = "user"
REVIEWER = "reviewer"
ROLES = (USER, REVIEWER)


@dataclass(frozen=True)
class User:
    name: str
    roles: frozenset[str]

    def has(self, role: str) -> bool:
        return role in self.roles


# The person at the keyboard of a loopback-only stack: nobody else can reach it.
LOCAL_USER = User("local", frozenset(ROLES))


def current_user() -> User:
    """The signed-in user of the current request (for now always the local user)."""
    return LOCAL_USER
