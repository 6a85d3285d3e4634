"""Who acts: the name an operator's command records in the audit trail.

Plain Python (no Dagster). The name is declared, not proven: ``OPSRECON_ACTOR`` when set,
else the operating-system user running the command. It tells apart the people sharing an
operator host and its service login; it is not authentication (anyone can set the
variable).
"""

from __future__ import annotations

import getpass
import os
import re
from collections.abc import Callable, Mapping

ACTOR_VAR = "OPSRECON_ACTOR"
MAX_ACTOR_LENGTH = 128  # the audit columns' width
# A login or an e-mail address, a Windows ``DOMAIN\\user``: never spaces, quotes or
# control characters, which would make the audit trail ambiguous to read.
_ACTOR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+\\-]*$")


class ActorError(ValueError):
    """No usable actor name (the variable is malformed, or the OS user is unknown)."""


def check_actor(name: str, where: str = "the actor") -> str:
    """``name`` when it is a usable actor name (1 to 128 characters: letters, digits and
    ``. _ @ + - \\``, starting with a letter or digit), else ``ActorError`` naming ``where``."""
    if len(name) > MAX_ACTOR_LENGTH or not _ACTOR.match(name):
        shown = name[:30] + ("..." if len(name) > 30 else "")
        raise ActorError(
            f"{where} must be 1 to {MAX_ACTOR_LENGTH} letters, digits or . _ @ + - \\ "
            f"starting with a letter or digit (got {shown!r})"
        )
    return name


def current_actor(
    environ: Mapping[str, str] | None = None,
    os_user: Callable[[], str] | None = None,
) -> str:
    """Who runs this command, read now (not at import): ``$OPSRECON_ACTOR`` when set and
    not empty, else the OS user; ``ActorError`` when neither gives a usable name."""
    env = os.environ if environ is None else environ
    declared = env.get(ACTOR_VAR, "").strip()
    if declared:
        return check_actor(declared, ACTOR_VAR)
    try:
        # Looked up now, not bound at import: ``getpass.getuser`` reads the environment.
        user = (os_user or getpass.getuser)()
    except (OSError, KeyError, ImportError):
        # getpass found no LOGNAME/USER/... and no password-database entry (a container
        # running under an arbitrary uid): the caller must say who it is.
        raise ActorError(f"cannot tell who is acting (no OS user name): set {ACTOR_VAR}") from None
    return check_actor(user, f"the OS user name (set {ACTOR_VAR} instead)")
