"""The ``prefrl`` command line (also ``python -m prefrl``).

Subcommands:
    export      write a preference store's labels to JSONL, Parquet or a Hugging Face dataset
    label       serve a preference store's pending queries in the labeling web app
    annotators  who labeled a store: answers, speed, agreement; drop an annotator's labels
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
        print(f"prefrl export: wrote {counts['rows']} rows ({counts['pairs']} pairs, {counts['rankings']} rankings "
              f"as their {counts['rows'] - counts['pairs']} pair rows) "
              f"to {counts['path']} ({counts['format']})")
    return 0


def _label_parser(sub) -> None:
    p = sub.add_parser(
        "label",
        help="label a preference store's pending queries (and review answered ones) in a local web app",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Serve the queries waiting in a preference store (posted by a run with --labeler web, kept in the\n"
            "store's file) in the labeling web app, without any training run; answers are written to the store\n"
            "as labels, with the annotator's name and the time. The page lists answered queries under /review.\n"
            "Prints the URL to open (it holds a random token); stop with Ctrl-C."
        ),
        epilog="needs fastapi and uvicorn:  pip install 'prefrl[web]'\n"
               "exit status: 0 when stopped with Ctrl-C, 2 on an error (one line on stderr)",
    )
    p.add_argument("store", help="the preference store (SQLite file) whose queries to serve")
    p.add_argument("--host", default="127.0.0.1",
                   help="interface to listen on (default 127.0.0.1: this machine only; 0.0.0.0 lets colleagues on "
                        "a trusted network in: the token is the only protection and HTTP is not encrypted)")
    p.add_argument("--port", type=int, default=0, help="TCP port (default 0: any free one; the URL says which)")
    p.add_argument("--timeout", type=float, default=300.0,
                   help="seconds an annotator holds a query before it goes back to the queue (default 300)")
    p.add_argument("--on-timeout", choices=("requeue", "drop"), default="requeue",
                   help="what happens to a query whose lease ran out (default requeue)")
    p.add_argument("--token", default=None, help="the URL's secret (default: a random one)")


def _run_label(args) -> int:
    from pathlib import Path

    from prefrl.export_rows import _open_ro
    from prefrl.label_queue import LabelQueue
    from prefrl.store import PreferenceStore

    try:
        from prefrl.web import serve
        import fastapi, uvicorn  # noqa: E401,F401 - fail now, with the fix, not after opening the store
    except ImportError as err:
        raise ImportError(f"the labeling app needs fastapi and uvicorn ({err}); pip install 'prefrl[web]'") from err
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be in 0..65535, got {args.port}")
    _open_ro(args.store).close()  # a missing or non-prefrl file is refused before anything is written to it
    store = PreferenceStore(Path(args.store))
    try:
        queue = LabelQueue(store, timeout_s=args.timeout, on_timeout=args.on_timeout)
        before = queue.stats()
        server = serve(queue, host=args.host, port=args.port, token=args.token, print_url=False)
        print(f"prefrl label: {before['pending'] + before['leased']} queries waiting, {before['answered']} answered "
              f"in {args.store}", file=sys.stderr)
        print(f"prefrl label: open {server.url}", file=sys.stderr)
        print(f"prefrl label: review answers at {server.review_url}", file=sys.stderr, flush=True)
        try:
            while server.running:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        server.stop()
        after = queue.stats()
        print(f"\nprefrl label: stopped; {after['labels_given'] - before['labels_given']} labels given in this session, "
              f"{after['pending'] + after['leased']} queries still waiting", file=sys.stderr)
    finally:
        store.close()
    return 0


def _annotators_parser(sub) -> None:
    p = sub.add_parser(
        "annotators",
        help="who labeled a store: answers, speed and agreement per annotator; drop one annotator's labels",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Print one line per annotator of a preference store labeled in the web page: queries answered,\n"
            "\"can't tell\" answers, labels that count, median seconds per answer, agreement on repeated queries\n"
            "(a run's --repeat-share), with the known answers of gold queries, and with the clips' true returns\n"
            "where they differ (what a noiseless oracle would answer); then agreement between people and with\n"
            "oneself. Read-only unless --drop is given."
        ),
        epilog="exit status: 0 on success, 2 on an error (one line on stderr)",
    )
    p.add_argument("store", help="the preference store (SQLite file)")
    p.add_argument("--drop", metavar="NAME", default=None,
                   help="stop training on every label NAME gave (kept in the file, marked replaced, left out of "
                        "training and export); refused while a run or 'prefrl label' has the store open")
    p.add_argument("--json", action="store_true", help="print the report as JSON instead of a table")


def _fmt_share(x: dict) -> str:
    return "-" if x["share"] is None else f"{x['share']:.2f} ({x['n']})"


def _run_annotators(args) -> int:
    import json
    from pathlib import Path

    from prefrl.annotators import team_report
    from prefrl.export_rows import _open_ro

    if args.drop is not None:
        from prefrl.label_queue import LabelQueue
        from prefrl.store import PreferenceStore

        _open_ro(args.store).close()  # a missing or non-prefrl file is refused before anything is written
        store = PreferenceStore(Path(args.store))  # refuses a store another process holds (StoreInUse)
        try:
            n = LabelQueue(store).drop_annotator(args.drop)
        finally:
            store.close()
        print(f"prefrl annotators: dropped {n} labels of {args.drop!r} (kept in the file, no longer trained on)",
              file=sys.stderr)
    import sqlite3

    db = _open_ro(args.store)
    try:
        report = team_report(db)
    except sqlite3.Error as err:
        raise ValueError(f"cannot read the preference store {args.store} ({err}); nothing was changed") from None
    finally:
        db.close()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    rows = [("annotator", "answers", "can't tell", "labels", "s/answer", "agree (repeats)", "agree (gold)",
             "agree (true return)")]
    for name, a in report["annotators"].items():
        secs = "-" if a["seconds_per_answer"] is None else f"{a['seconds_per_answer']:.1f}"
        rows.append((str(name), str(a["answers"]), str(a["skipped"]), str(a["labels"]), secs,
                     _fmt_share(a["repeat_agreement"]), _fmt_share(a["gold_agreement"]),
                     _fmt_share(a["true_agreement"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))
    rep = report["repeat_agreement"]
    print(f"agreement on repeated queries: between people {_fmt_share(rep['between_people'])}, same person "
          f"{_fmt_share(rep['same_person'])}; with gold answers {_fmt_share(report['gold_agreement'])}; with the "
          f"true return {_fmt_share(report['true_agreement'])} "
          "(share of pairs, (pairs compared))")
    return 0


_RUNNERS = {"export": _run_export, "label": _run_label, "annotators": _run_annotators}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="prefrl", description="prefrl: preference-based RL tools")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _export_parser(sub)
    _label_parser(sub)
    _annotators_parser(sub)
    args = parser.parse_args(argv)
    from prefrl.store import StoreInUse

    try:
        return _RUNNERS[args.command](args)
    except (OSError, ValueError, ImportError, StoreInUse) as err:
        print(f"prefrl {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"prefrl {args.command}: interrupted; nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
