"""The board's signing key and the keys a viewer trusts (DESIGN §6: verified means signed).

The maintainer of a board holds an Ed25519 private key (PEM, owner-only) outside every results
folder; `verify` signs its ledger entries with it. A viewer shows ✓ only for entries signed by a
key *it* trusts: given on the command line (`--trust`) or listed in the user's configuration
(`trusted-keys.txt` in the configuration folder), never read from the folder being judged.
A public key is written `ed25519:<base64 of its 32 raw bytes>`. No torch."""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Iterable
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from tasks.errors import BenchError

PREFIX = "ed25519:"
KEY_FILE = "board-key.pem"
TRUST_FILE = "trusted-keys.txt"


def config_dir() -> Path:
    """`TRACER_BENCH_CONFIG` if set, else the user's configuration folder."""
    env = os.environ.get("TRACER_BENCH_CONFIG")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_config_dir("tracer-bench"))


def default_key_path() -> Path:
    return config_dir() / KEY_FILE


def public_text(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PREFIX + base64.b64encode(raw).decode("ascii")


def parse_public(text: str, where: str) -> Ed25519PublicKey:
    """A public key from its `ed25519:<base64>` form; a one-line BenchError naming `where`."""
    body = text.strip().removeprefix(PREFIX) if text.strip().startswith(PREFIX) else None
    try:
        raw = base64.b64decode(body or "", validate=True)
        if len(raw) != 32:
            raise ValueError
        return Ed25519PublicKey.from_public_bytes(raw)
    except (ValueError, binascii.Error):
        raise BenchError(f"{where}: {text.strip()[:60]!r} is not a public key "
                         f"({PREFIX}<base64 of 32 bytes>)") from None  # fmt: skip


def create_key(path: Path) -> str:
    """Write a new private key at `path` (owner-only; never over an existing file) and return
    its public key."""
    path = Path(path)
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise BenchError(f"{path} exists: a board key is never overwritten (use --out)") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    return public_text(key.public_key())


def load_private(path: Path) -> Ed25519PrivateKey:
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"no board key at {path}: create one with `tracer-bench key create`")
    if os.name == "posix" and path.stat().st_mode & 0o077:
        raise BenchError(f"{path}: the board key is readable by others (chmod 600 {path})")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError) as exc:
        raise BenchError(f"{path}: not an unencrypted PEM private key ({exc})") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise BenchError(f"{path}: not an Ed25519 private key")
    return key


def _key_lines(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [ln.split("#", 1)[0].strip() for ln in lines if ln.split("#", 1)[0].strip()]


def trusted_keys(given: Iterable[str] = ()) -> dict[str, Ed25519PublicKey]:
    """The keys this viewer trusts, by their text: each `given` item (a public key, or a file of
    them, one per line) and the user's `trusted-keys.txt`. Nothing from a results folder."""
    texts: list[tuple[str, str]] = []
    for item in given:
        if item.strip().startswith(PREFIX):
            texts.append((item, "--trust"))
        elif Path(item).is_file():
            texts += [(line, item) for line in _key_lines(Path(item))]
        else:
            raise BenchError(f"--trust {item!r}: neither a public key ({PREFIX}…) nor a file")
    config = config_dir() / TRUST_FILE
    if config.is_file():
        texts += [(line, str(config)) for line in _key_lines(config)]
    keys = {}
    for text, where in texts:
        key = parse_public(text, where)
        keys[public_text(key)] = key
    return keys


def add_trusted(text: str) -> Path:
    """Add a public key to the user's trusted keys (once); the file's path."""
    key = public_text(parse_public(text, "key"))
    path = config_dir() / TRUST_FILE
    have = _key_lines(path) if path.is_file() else []
    if key not in have:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            fh.write(key + "\n")
    return path


def sign(key: Ed25519PrivateKey, payload: bytes) -> str:
    return base64.b64encode(key.sign(payload)).decode("ascii")


def signature_valid(key: Ed25519PublicKey, payload: bytes, signature: str) -> bool:
    try:
        key.verify(base64.b64decode(signature, validate=True), payload)
    except (InvalidSignature, ValueError, binascii.Error):
        return False
    return True
