"""`primum keys init`, `rotate`, `export` and `list`: the evidence signing keys (``adapters.evidence.keys``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from primum.cli.common import handled, home, primum
from primum.cli.output import console, err_console

keys_app = typer.Typer(no_args_is_help=True, help="Evidence signing keys (Ed25519) in $PRIMUM_HOME/keys.")


def _keys_dir() -> Path:
    return primum().settings.keys_dir


def _print_keyring(keyring: Any, directory: Path) -> None:
    current = keyring.current.keyid if keyring.can_sign else None
    console.print(f"keys in {directory}")
    for keyid in keyring.keyids():
        state = "current (signs)" if keyid == current else "retired (verifies old evidence only)"
        console.print(f"  {keyid}  {state}")


@keys_app.command("init")
@handled
def keys_init() -> None:
    """Generate the first signing key (private key 0600; public keys kept for verification)."""
    from primum.adapters.evidence.keys import init_keyring

    home()
    directory = _keys_dir()
    _print_keyring(init_keyring(directory), directory)


@keys_app.command("rotate")
@handled
def keys_rotate() -> None:
    """Replace the signing key; the old public key stays so old evidence still verifies."""
    from primum.adapters.evidence.keys import rotate_keyring

    directory = _keys_dir()
    _print_keyring(rotate_keyring(directory), directory)


@keys_app.command("export")
@handled
def keys_export(
    out: Annotated[Path | None, typer.Option("--output", "-o", help="file to write (default: stdout)")] = None,
    all_keys: Annotated[bool, typer.Option("--all", help="every public key, retired ones too")] = False,
) -> None:
    """The public key(s) an auditor needs for `primum evidence verify FILE --key PUB.pem` (PEM)."""
    from cryptography.hazmat.primitives import serialization

    from primum.adapters.evidence.keys import load_keyring, load_public_keyring

    directory = _keys_dir()
    keyring = load_keyring(directory) if (directory / "signing.pem").is_file() else load_public_keyring(directory)
    chosen = keyring.public_keys().values() if all_keys or not keyring.can_sign else [keyring.current.public_key]
    pem = b"".join(k.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
                   for k in chosen)
    if out is None:
        sys.stdout.write(pem.decode())
    else:
        out.write_bytes(pem)
        err_console.print(f"wrote {out}", highlight=False)


@keys_app.command("list")
@handled
def keys_list() -> None:
    """List the key ids: the current signing key and the retired ones."""
    from primum.adapters.evidence.keys import load_public_keyring

    directory = _keys_dir()
    keyring = load_public_keyring(directory)
    signing = directory / "signing.pem"
    if signing.is_file():
        from primum.adapters.evidence.keys import load_keyring

        keyring = load_keyring(directory)
    _print_keyring(keyring, directory)




personal_app = typer.Typer(no_args_is_help=True, help="Your own signing key: who you are to primum.")
keys_app.add_typer(personal_app, name="personal")

KeyFile = Annotated[Path | None, typer.Option("--key", help="the key file (default: $PRIMUM_KEY, else "
                                              "~/.config/primum/key.pem)")]
Comment = Annotated[str, typer.Option("--comment", help="the name at the end of the line (e.g. your user id)")]


def _personal_path(key: Path | None) -> Path:
    return (key or primum().settings.key_file or Path("key.pem")).expanduser().resolve()


@personal_app.command("init")
@handled
def personal_init(key: KeyFile = None, comment: Comment = "") -> None:
    """Generate your personal Ed25519 key (0600) and print the line to enrol under keys: in identities.yaml."""
    from primum.adapters.evidence.personal import generate_personal_key, public_line

    path = _personal_path(key)
    signing = generate_personal_key(path)
    err_console.print(f"wrote {path} (keep it to yourself); enrol this line under keys: of your user:",
                      highlight=False)
    sys.stdout.write(public_line(signing.public_key, comment) + "\n")


@personal_app.command("show")
@handled
def personal_show(key: KeyFile = None, comment: Comment = "") -> None:
    """Print the public line of your personal key (what identities.yaml enrols), and its key id."""
    from primum.adapters.evidence.personal import load_personal_key, public_line

    path = _personal_path(key)
    signing = load_personal_key(path)
    err_console.print(f"{path}: key id {signing.keyid}", highlight=False)
    sys.stdout.write(public_line(signing.public_key, comment) + "\n")
