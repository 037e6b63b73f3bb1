"""``exo secure``: data keys, AES-256-GCM encryption at rest, model manifests.

    exo secure keygen KEYFILE                          a new 256-bit key (mode 0600)
    exo secure encrypt FILE... [--key-file K] [--remove-plaintext]
    exo secure decrypt FILE.enc... [--key-file K] [--out PATH]
    exo secure manifest MODEL... --out manifest.json   SHA-256 of each model file
    exo secure verify MODEL... --manifest manifest.json [--key-file K]

The key comes from ``--key-file`` or ``$EXO_DATA_KEY`` / ``$EXO_DATA_KEY_FILE`` and is never
printed (only its 8-byte id). Exit codes: 0 ok, 1 a file failed authentication or
verification (tampered/changed), 2 bad input (missing or wrong key, missing file, bad argument).
"""
from __future__ import annotations

import argparse
import sys

from runtime.cli.exit_codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE


def _key(args):
    from runtime.security.keys import load_key

    return load_key(args.key_file)


def _keygen(args) -> int:
    from runtime.security.keys import generate_key_file

    key = generate_key_file(args.keyfile)
    print(f"wrote a new AES-256 key to {args.keyfile} (mode 0600), key id {key.key_id.hex()}; "
          "keep a copy somewhere safe: data encrypted with a lost key cannot be recovered")
    return EXIT_OK


def _encrypt(args) -> int:
    from runtime.security.aead import encrypt_file, is_encrypted

    key = _key(args)
    if args.out and len(args.files) != 1:
        raise ValueError(f"--out {args.out}: only with one input file (got {len(args.files)})")
    for f in args.files:
        if is_encrypted(f):
            raise ValueError(f"{f}: already encrypted")
        dst = encrypt_file(f, args.out, key, remove_plaintext=args.remove_plaintext)
        print(f"{f} -> {dst} (AES-256-GCM, key id {key.key_id.hex()})" + (", plaintext removed" if args.remove_plaintext else ""))
    return EXIT_OK


def _decrypt(args) -> int:
    from runtime.security.aead import TamperedError, decrypt_file

    key = _key(args)
    if args.out and len(args.files) != 1:
        raise ValueError(f"--out {args.out}: only with one input file (got {len(args.files)})")
    failed = 0
    for f in args.files:
        try:
            dst = decrypt_file(f, args.out, key)
            print(f"{f} -> {dst} (authenticated)")
        except TamperedError as exc:
            failed += 1
            print(f"TAMPERED: {exc}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def _manifest(args) -> int:
    from runtime.security.manifest import write_manifest

    doc = write_manifest(args.models, args.out)
    for name, entry in doc["files"].items():
        print(f"{entry['sha256']}  {entry['size_bytes']:>12d}  {name}")
    print(f"wrote {args.out}")
    return EXIT_OK


def _verify(args) -> int:
    from runtime.security.aead import TamperedError
    from runtime.security.manifest import ModelIntegrityError, verify_model_file

    key = _key(args) if args.key_file else None
    if key is None:
        from runtime.security.keys import key_from_env_or_none

        key = key_from_env_or_none()
    failed = 0
    for m in args.models:
        try:
            digest = verify_model_file(m, args.manifest, key)
            print(f"OK        {m}  sha256 {digest}")
        except (ModelIntegrityError, TamperedError) as exc:
            failed += 1
            print(f"MISMATCH  {exc}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def cmd_secure(args) -> int:
    """Dispatch ``exo secure <sub>``; key problems and bad paths exit 2 with the reason."""
    from runtime.security.aead import DecryptionError, TamperedError
    from runtime.security.keys import KeyError_

    try:
        return args.secure_fn(args)
    except TamperedError as exc:
        print(f"exo secure {args.secure_command}: TAMPERED: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (KeyError_, DecryptionError, FileNotFoundError, FileExistsError, ValueError) as exc:
        print(f"exo secure {args.secure_command}: {exc}", file=sys.stderr)
        return EXIT_USAGE


def register(subparsers) -> None:
    """Add ``exo secure`` and its subcommands."""
    p = subparsers.add_parser("secure", help="data keys, AES-256-GCM encryption at rest, model manifests",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                              epilog="example:\n  exo secure keygen runs/data.key")
    sub = p.add_subparsers(dest="secure_command", metavar="<keygen|encrypt|decrypt|manifest|verify>", required=True)

    def key_arg(q):
        q.add_argument("--key-file", help="key file (64 hex chars, mode 0600); default $EXO_DATA_KEY / $EXO_DATA_KEY_FILE")

    q = sub.add_parser("keygen", help="write a new 256-bit key file (mode 0600)")
    q.add_argument("keyfile")
    q.set_defaults(fn=cmd_secure, secure_fn=_keygen)

    q = sub.add_parser("encrypt", help="encrypt files (FILE -> FILE.enc)")
    q.add_argument("files", nargs="+")
    q.add_argument("--out", help="output path (one input only; default FILE.enc)")
    q.add_argument("--remove-plaintext", action="store_true", help="delete each input after encrypting it")
    key_arg(q)
    q.set_defaults(fn=cmd_secure, secure_fn=_encrypt)

    q = sub.add_parser("decrypt", help="authenticate and decrypt files (FILE.enc -> FILE)")
    q.add_argument("files", nargs="+")
    q.add_argument("--out", help="output path (one input only; default FILE without .enc)")
    key_arg(q)
    q.set_defaults(fn=cmd_secure, secure_fn=_decrypt)

    q = sub.add_parser("manifest", help="write a SHA-256 manifest of model files")
    q.add_argument("models", nargs="+")
    q.add_argument("--out", required=True, help="manifest JSON to write")
    q.set_defaults(fn=cmd_secure, secure_fn=_manifest)

    q = sub.add_parser("verify", help="check model files against a manifest (as done before loading)")
    q.add_argument("models", nargs="+")
    q.add_argument("--manifest", required=True)
    key_arg(q)
    q.set_defaults(fn=cmd_secure, secure_fn=_verify)
