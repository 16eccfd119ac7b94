"""``caspix-verify PACK.zip --public-key KEY``: exit 0 when the pack is intact, 1 otherwise."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from caspix_verify import KeyFileError, extract, load_public_keys, verify_pack


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="caspix-verify",
        description="Verify a Caspix evidence pack or export offline: its manifest, signature, "
        "file hashes, ledger proofs and checkpoint.",
    )
    parser.add_argument("pack", help="the pack, a ZIP file")
    parser.add_argument(
        "--public-key",
        required=True,
        metavar="KEY",
        help="the ledger's public key: the JSON published at /audit/ledger-keys, C2SP verifier keys, "
        "a PEM file or a base64 raw key",
    )
    parser.add_argument(
        "--extract",
        metavar="DIR",
        help="once the pack is found intact, write its files into DIR (new or empty), each checked "
        "again as it is written: open those, not the ZIP, with other tools",
    )
    arguments = parser.parse_args(argv)
    try:
        with open(arguments.public_key, encoding="utf-8") as key_file:
            keys = load_public_keys(key_file.read())
    except (OSError, UnicodeDecodeError, KeyFileError) as error:
        _say(f"FAILED: cannot read the public key: {error}")
        return 1
    try:
        with open(arguments.pack, "rb") as pack:
            result = verify_pack(pack, keys)
            for line in result.checked:
                _say(f"ok: {line}")
            for problem in result.problems:
                _say(f"FAILED: {problem}")
            _say(
                "The pack is intact."
                if result.intact
                else f"The pack is NOT intact: {len(result.problems)} problem(s)."
            )
            if result.intact and arguments.extract:
                extract(pack, result, arguments.extract)
                _say(f"Its {len(result.digests)} files, checked again, are in {arguments.extract}.")
    except OSError as error:
        _say(f"FAILED: cannot read the pack: {error}")
        return 1
    except ValueError as error:
        _say(f"FAILED: not extracted: {error}")
        return 1
    return 0 if result.intact else 1


if __name__ == "__main__":  # pragma: no cover - python -m caspix_verify.cli
    sys.exit(main())
