"""The ``prefrl`` command line (also ``python -m prefrl``).

Subcommands:
    export   write a preference store's labels to JSONL, Parquet or a Hugging Face dataset
"""

from __future__ import annotations

import argparse
import sys
import time


def _export_parser(sub) -> None:
    from prefrl.export import FORMATS

    p = sub.add_parser(
        "export",
        help="write a preference store's labels to jsonl, parquet or a Hugging Face dataset",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Write every label of a preference store (a run's labels-seed*.sqlite) to one file: one row per\n"
            "comparison with its label mu (mass on clip 0), its validation split, and the clips' obs, act and\n"
            "true_reward arrays as nested lists with their dtype and shape. The store is opened read-only and\n"
            "never changed; the output must not exist yet."
        ),
        epilog=(
            "rebuild an array exactly:\n"
            "  np.asarray(row['obs'], dtype=row['obs_dtype']).reshape(row['obs_shape'])\n\n"
            "parquet needs pyarrow, hf needs datasets:  pip install 'prefrl[export]'\n"
            "exit status: 0 on success, 2 on an error (one line on stderr)"
        ),
    )
    p.add_argument("store", help="the preference store (SQLite file) to read")
    p.add_argument("--format", choices=FORMATS, default="jsonl",
                   help="jsonl (one JSON object per line), parquet, or hf (a datasets.Dataset.save_to_disk "
                        "directory, read with datasets.load_from_disk); default jsonl")
    p.add_argument("--out", default=None,
                   help="file (directory for hf) to create; must not exist. Default: the store's name with "
                        ".jsonl, .parquet or -hf in place of its suffix")
    p.add_argument("--quiet", action="store_true", help="print nothing on success")


def _progress(enabled: bool):
    """A callback printing 'exported n/total rows' on stderr at most twice a second (only on a terminal)."""
    if not enabled or not sys.stderr.isatty():
        return None
    last = [0.0]

    def show(n: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.5 or n == total:
            last[0] = now
            print(f"\rprefrl export: {n}/{total} rows", end="", file=sys.stderr, flush=True)
            show.shown = True

    show.shown = False
    return show


def _run_export(args) -> int:
    from prefrl.export import default_out, export_store

    out = args.out if args.out is not None else default_out(args.store, args.format)
    progress = _progress(not args.quiet)
    try:
        counts = export_store(args.store, out, args.format, progress=progress)
    finally:
        if progress is not None and progress.shown:
            print(file=sys.stderr)  # end the progress line
    if not args.quiet:
        print(f"prefrl export: wrote {counts['rows']} rows ({counts['pairs']} pairs, {counts['rankings']} rankings) "
              f"to {counts['path']} ({counts['format']})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="prefrl", description="prefrl: preference-based RL tools")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _export_parser(sub)
    args = parser.parse_args(argv)
    try:
        return _run_export(args)
    except (OSError, ValueError, ImportError) as err:
        print(f"prefrl {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"prefrl {args.command}: interrupted; nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
