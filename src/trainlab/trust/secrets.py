"""Nothing leaked: a credential reaches no file trainlab, Hydra, a logger or a launcher writes,
and no console line.

Three ways to give one, each covered:

- **On the command line**, as a URL password (``hydra.sweeper.storage=postgresql://u:pw@h/db``)
  or the value of a secret-named key (``+db.password=pw``): :func:`scrub_argv` moves the value
  into an environment variable of this process (``TRAINLAB_SECRET_<n>``) and puts
  ``${oc.env:TRAINLAB_SECRET_<n>}`` in its place before Hydra reads the command line. Hydra's
  ``.hydra/`` files, ``multirun.yaml``, W&B's copy of ``sys.argv``, DDP children and launcher
  jobs then see the interpolation only; the value is resolved in memory where it is used.
- **In the environment** (``PGPASSWORD``, ``WANDB_API_KEY``, ``${oc.env:DB_PASSWORD}``): every
  variable whose name says it holds a secret (:data:`SECRET_ENV`) is known to :func:`redact`.
- **In a config value** under a secret-named key (:data:`SECRET_KEY`): :func:`redact_config`
  masks it wherever trainlab writes a config (``config.yaml``, hyperparameters to loggers).

:func:`redact` masks URL passwords and every known secret value in a text; every log record
goes through it (:func:`protect_process` in the entry point's process, :func:`protect_job` in
each job's, where a launcher runs it elsewhere), and so do ``env.json`` and ``git.diff``. Values
shorter than :data:`MIN_LENGTH` characters are not searched for in free text (they would mask
ordinary words); their keys and URLs are still masked.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from typing import Any

MASK = "***"
MIN_LENGTH = 6
ENV_PREFIX = "TRAINLAB_SECRET_"
# A config key whose last part names a credential: password, db_password, api_key, hf_token, ...
SECRET_KEY = re.compile(
    r"^(?:[a-z0-9_]*_)?(?:password|passwd|pwd|secret|token|api_?key|access_key|private_key|"
    r"credentials?)$",
    re.IGNORECASE,
)
# An environment variable whose name says it holds a credential.
SECRET_ENV = re.compile(
    r"PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL", re.IGNORECASE
)
# scheme://user:password@host: the password part (not an interpolation: that is no secret).
URL_PASSWORD = re.compile(
    r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^:/@\s'\"]*:)(?P<password>(?!\$\{)[^@\s'\"/]+)(?=@)"
)
# A line of a diff or a config file that assigns a secret-named key: `password: x`, `TOKEN=x`.
ASSIGNMENT = re.compile(
    r"(?P<head>\b[\w.-]*(?:password|passwd|secret|token|api_?key|access_key|private_key)"
    r"['\"]?\s*[:=]\s*['\"]?)(?P<value>(?!\$\{)[^\s'\",}]+)",
    re.IGNORECASE,
)

_known: set[str] = set()


def remember(value: object) -> None:
    """Make ``value`` a secret that :func:`redact` masks wherever it appears."""
    text = str(value) if value is not None else ""
    if len(text) >= MIN_LENGTH:
        _known.add(text)


def remember_environment() -> None:
    """Every environment variable whose name says it holds a secret (:data:`SECRET_ENV`)."""
    for name, value in os.environ.items():
        if SECRET_ENV.search(name):
            remember(value)


def redact(text: str) -> str:
    """``text`` with URL passwords, secret-named assignments and every known secret masked."""
    text = URL_PASSWORD.sub(lambda m: m["head"] + MASK, text)
    text = ASSIGNMENT.sub(lambda m: m["head"] + MASK, text)
    for secret in sorted(_known, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def is_secret_key(key: object) -> bool:
    return bool(SECRET_KEY.match(str(key).rsplit(".", 1)[-1].lstrip("+~")))


def redact_config(node: Any) -> Any:
    """A plain config (dicts, lists, values) with secret-named keys' values and secrets inside
    strings masked; what trainlab writes wherever it writes a config."""
    if isinstance(node, dict):
        return {
            k: MASK if is_secret_key(k) and v not in (None, "") else redact_config(v)
            for k, v in node.items()
        }
    if isinstance(node, list | tuple):
        return [redact_config(v) for v in node]
    if isinstance(node, str):
        return redact(node)
    return node


def scrub_argv(argv: Sequence[str]) -> list[str]:
    """The command line with each secret moved into an environment variable of this process
    (inherited by its children) and ``${oc.env:...}`` in its place; see the module's doc."""
    scrubbed = [argv[0]] if argv else []
    for arg in argv[1:]:
        key, sep, value = arg.partition("=")
        if not sep or arg.startswith("-") or not value:
            scrubbed.append(arg)
        elif is_secret_key(key) and "${" not in value:
            scrubbed.append(f"{key}={_stash(value)}")
        else:
            scrubbed.append(
                key + sep + URL_PASSWORD.sub(lambda m: m["head"] + _stash(m["password"]), value)
            )
    return scrubbed


def _stash(value: str) -> str:
    """Put ``value`` into a new environment variable; its interpolation."""
    remember(value)
    for name, held in os.environ.items():
        if name.startswith(ENV_PREFIX) and held == value:
            return f"${{oc.env:{name}}}"
    number = sum(1 for name in os.environ if name.startswith(ENV_PREFIX))
    name = f"{ENV_PREFIX}{number}"
    os.environ[name] = value
    return f"${{oc.env:{name}}}"


class _RedactedRecord(logging.LogRecord):
    """A log record whose message (and traceback text) has secrets masked, whatever handler,
    console or file, writes it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.exc_info and self.exc_info[0] is not None:  # formatters reuse exc_text
            self.exc_text = redact(logging.Formatter().formatException(self.exc_info))

    def getMessage(self) -> str:
        return redact(super().getMessage())


def protect_process(argv: list[str]) -> list[str]:
    """What an entry point does first: learn the secrets of the environment, scrub the command
    line (returned, for ``sys.argv``), and mask secrets in every log record."""
    protect_job()
    return scrub_argv(argv)


def protect_job() -> None:
    """Learn the environment's secrets (``TRAINLAB_SECRET_<n>`` of a parent included) and mask
    every log record. Each job does it first: a launcher's job runs in a process of its own
    (a joblib worker, a SLURM job) where the entry point's :func:`protect_process` never ran."""
    remember_environment()
    logging.setLogRecordFactory(_RedactedRecord)
