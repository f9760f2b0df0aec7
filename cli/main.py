"""`autodl`: the command line. Parses arguments, calls the compiler, prints, sets the exit code.

Exit codes: 0 success, 1 generated files out of date (`compile --check`),
2 a spec is wrong (every problem printed like a compiler diagnostic).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from compiler.compile import compile_repo, drift
from compiler.emitters.plots_template import setup_hint
from compiler.errors import SpecError
from compiler.impact import MISSING, impact, load_baseline, load_run_state, run_impact
from compiler.load import LoadedSpec, load_spec

EXIT_DRIFT, EXIT_SPEC_ERROR = 1, 2


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return args.run(args)
    except SpecError as exc:
        for diagnostic in exc.diagnostics:
            print(diagnostic.format(), file=sys.stderr)
        count = len(exc.diagnostics)
        print(f"autodl: {count} error{'s' if count != 1 else ''}; no file was written", file=sys.stderr)
        return EXIT_SPEC_ERROR


def _compile(args: argparse.Namespace) -> int:
    root = Path(args.root)
    if args.check:
        diffs = drift(root)
        for text in diffs.values():
            sys.stdout.write(text)
        if diffs:
            print(f"autodl: {len(diffs)} generated file(s) out of date: {', '.join(sorted(diffs))}; "
                  "run `autodl compile` and commit the result", file=sys.stderr)
        problems = _promotion_problems(root)
        for problem in problems:
            print(f"autodl: {problem}", file=sys.stderr)
        if diffs or problems:
            return EXIT_DRIFT
        print("autodl: generated files are up to date; promotion records match dvc.lock and the gate's verdicts")
        return 0
    changed = compile_repo(root, tuple(args.only))
    print(f"autodl: wrote {', '.join(changed)}" if changed else "autodl: generated files are up to date")
    if (hint := setup_hint(root)) is not None:
        print(f"autodl: note: {hint}", file=sys.stderr)
    return 0


def _promotion_problems(root: Path) -> list[str]:
    from compiler.compile import SPECS_DIR
    from compiler.load import discover_specs, load_specs
    from compiler.promotion import promotion_problems

    return promotion_problems(root, load_specs(discover_specs(root / SPECS_DIR), root))


def _impact(args: argparse.Namespace) -> int:
    root = Path(args.root)
    loaded = load_spec(root / args.spec, root)  # an absolute spec path stays absolute
    notes: list[str] = []
    if args.rev is None:
        state = load_run_state(root, loaded)
        results = run_impact(loaded, state)
        against = "dvc.lock (the last run) and DVC's status of its files"
        if not state.compiled:
            notes.append("dvc.yaml/params.yaml do not match this spec yet: run `autodl compile` first (`dvc repro` "
                         "reads them, not the spec); the stages below assume you do")
        if state.note:
            notes.append(f"{state.note}; only params and definitions were compared")
    else:
        baseline = load_baseline(root, args.rev)
        results = impact(loaded, baseline)
        against = f"params.yaml/dvc.yaml from {baseline.source}"
    if args.json:
        def present(value: object) -> object:  # before asdict: its deep copy would hide the sentinel's identity
            return None if value is MISSING else value

        payload = [{**asdict(r), "changed_params": [{"key": c.key, "before": present(c.before),
                                                      "after": present(c.after)} for c in r.changed_params],
                    "direct": r.direct, "reasons": r.reasons()} for r in results]
        print(json.dumps(payload, indent=2, default=str))
        return 0
    reruns = [r for r in results if r.reruns]
    print(f"{loaded.spec.name}: {len(reruns)} of {len(results)} stages re-run ({loaded.path} against {against})")
    for note in notes:
        print(f"  note: {note}")
    width = max(len(r.stage) for r in results)
    for result in results:
        reasons = result.reasons()
        print(f"  {result.stage:<{width}}  {'re-run' if result.reruns else 'up to date'}")
        for reason in reasons:
            print(f"  {'':<{width}}    - {reason}")
    return 0


SERVED_FOLDERS: dict[str, tuple[str, ...]] = {"cascade": ("release",)}
"""The model folders a task serves from, where they are not its export and dependability outputs: a cascade's
deployable is its release (both models and what joins them), written once its gate passed."""


def model_folders(root: Path, project: str, task: str = "classification") -> list[Path]:
    """Where a project's deployable model of the last `dvc repro` lives, in the order the server searches:
    the export stage's (model.onnx, preprocess.json), then the dependability stage's (serving.json: temperature,
    OOD threshold and state)."""
    return [root / "models" / project / name for name in SERVED_FOLDERS.get(task, ("export", "dependability"))]


def serve_command(root: Path, project: str, port: int, host: str = "127.0.0.1",
                  serving: dict[str, int | str | None] | None = None, task: str = "classification") -> list[str]:
    """The model server command for a project's deployable model of the last `dvc repro`; `serving` holds
    the spec's image limits (`max_image_pixels`, `max_image_side_px`) and its `capture` settings as JSON."""
    folders = model_folders(root, project, task)
    missing = [f for f in folders if not f.is_dir()]
    if missing:
        raise FileNotFoundError(f"{', '.join(map(str, missing))} missing: run `dvc repro` first (or `dvc pull`)")
    limits = [arg for key, value in sorted((serving or {}).items()) if value is not None
              for arg in (f"--{key}", str(value))]
    return [sys.executable, "-m", "serving", "--model_name", project, "--host", host, "--http_port", str(port),
            *limits, *(arg for folder in folders for arg in ("--model_dir", str(folder)))]


def _serve(args: argparse.Namespace) -> int:
    root = Path(args.root)
    spec = load_spec(root / args.spec, root).spec
    project = spec.name
    capture = spec.serving.capture
    limits = {"max_image_pixels": spec.serving.max_image_pixels, "max_image_side_px": spec.serving.max_image_side_px,
              "capture": capture.model_dump_json() if capture is not None else None}
    try:
        command = serve_command(root, project, args.port, args.host, limits, spec.task)
    except FileNotFoundError as exc:
        print(f"autodl: {exc}", file=sys.stderr)
        return 1
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"autodl: serving {project} on http://{shown}:{args.port} (V1 /v1/models/{project}:predict, "
          f"V2 /v2/models/{project}/infer); Ctrl-C stops it", flush=True)
    return subprocess.call(command)


def _named_or_all_specs(args: argparse.Namespace) -> list[LoadedSpec]:
    """The specs named on the command line, else every spec in specs/."""
    from compiler.compile import SPECS_DIR
    from compiler.load import discover_specs, load_specs

    root = Path(args.root)
    return load_specs([root / s for s in args.spec] or discover_specs(root / SPECS_DIR), root)


def _report(args: argparse.Namespace) -> int:
    from ops.report import report

    sys.stdout.write(report(Path(args.root), _named_or_all_specs(args), args.rev))
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from ops.doctor import examine, manifest_path

    root = Path(args.root)
    loaded = load_spec(root / args.spec, root)
    name = loaded.spec.name
    if loaded.spec.cascade is not None:
        print(f"autodl: {name} is a cascade: its data are those of {loaded.spec.cascade.detector} and "
              f"{loaded.spec.cascade.classifier}; run `autodl doctor` on their specs", file=sys.stderr)
        return 1
    try:
        summary, choice, hints = examine(root, loaded.spec)
    except (FileNotFoundError, ValueError):
        print(f"autodl: {manifest_path(root, name).relative_to(root)} is missing or empty: run `dvc repro "
              f"{name}-ingest` first (doctor reads what ingest recorded of every image)", file=sys.stderr)
        return 1
    lines = summary.lines()
    print(f"{name}: {lines[0]}")
    for line in lines[1:]:
        print(f"  {line}")
    for reason in choice.reasons:
        print(f"  model: auto chooses {reason}")
    if choice.chosen:
        print(f"  to pin it: {choice.pinned()}")
    for hint in hints:
        print(f"  hint [{hint.key}]: {hint.message}")
    if not hints:
        print("  no hint: the input size, class balance and weights fit this data as far as doctor can tell")
    return 0


def _publish(args: argparse.Namespace) -> int:
    from compiler.compile import read_promoted
    from ops.publish import PublishError, publish

    root = Path(args.root)
    projects = [s.spec.name for s in _named_or_all_specs(args)
                if args.spec or read_promoted(root, s.spec.name) is not None]
    if not projects:
        print("autodl: no project has a promoted model (k8s/<project>/promoted.yaml); nothing to publish")
        return 0
    failed = 0
    for project in projects:
        try:
            done = publish(root, project, dry_run=args.dry_run)
        except PublishError as exc:
            print(f"autodl: {exc}", file=sys.stderr)
            failed += 1
            continue
        verb = "would upload" if args.dry_run else "uploaded"
        print(f"autodl: {project} {done.digest[:19]} at {done.uri}: {verb} {len(done.uploaded)} file(s)"
              f"{', ' + ', '.join(done.uploaded) if done.uploaded else ''}; {len(done.already_there)} already there")
    return 1 if failed else 0


def _frames(args: argparse.Namespace) -> int:
    from vision.detection.frames import export_frames

    root = Path(args.root)
    classes = list(load_spec(root / args.spec, root).spec.classes) if args.spec else args.classes.split(",")
    try:
        done = export_frames([Path(v) for v in args.video], Path(args.out), classes, args.fps, args.static_flow_px,
                             args.format)
    except (FileExistsError, ValueError) as exc:
        print(f"autodl: {exc}", file=sys.stderr)
        return 2
    print(f"autodl: {done.frames} frames from {len(args.video)} video(s) in {args.out} ({args.format}; "
          f"{done.static_dropped} static frames dropped); import them into Label Studio or CVAT and read the "
          "annotated export back with a coco or yolo source")
    return 0


def _captures(args: argparse.Namespace) -> int:
    from ops.captures import fetch_for

    root = Path(args.root)
    spec = load_spec(root / args.spec, root).spec
    try:
        done, target = fetch_for(spec, root)
    except ValueError as exc:
        print(f"autodl: {exc}", file=sys.stderr)
        return 2
    for key in done.refused:
        print(f"autodl: refused {key!r}: not an image or record name inside the capture folder", file=sys.stderr)
    print(f"autodl: {len(done.copied)} capture file(s) copied into {target}, {done.already_there} already there"
          f"{f', {len(done.refused)} refused' if done.refused else ''}; `dvc repro {spec.name}-select` scores them")
    return 1 if done.refused else 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autodl", description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", help="repository root; other paths are relative to it (default: .)")
    commands = parser.add_subparsers(dest="command", required=True)

    compile_cmd = commands.add_parser("compile", help="regenerate params.yaml, dvc.yaml and schemas/ from specs/")
    compile_cmd.add_argument("--only", action="append", default=[], metavar="PREFIX",
                             help="write only the generated files whose path starts with PREFIX (repeatable); the "
                                  "promote stage re-renders a project's manifests so")
    compile_cmd.add_argument("--check", action="store_true",
                             help="write nothing; show a diff and exit 1 if any generated file is out of date")
    compile_cmd.set_defaults(run=_compile)

    impact_cmd = commands.add_parser("impact", help="list the stages `dvc repro` will run now, and why")
    impact_cmd.add_argument("spec", help="the spec, e.g. specs/digits.yaml")
    impact_cmd.add_argument("--rev", default=None,
                            help="instead of the last run (dvc.lock), compare with params.yaml/dvc.yaml at this git "
                                 "revision: what a spec edit changes, e.g. against a pull request's base branch")
    impact_cmd.add_argument("--json", action="store_true", help="machine-readable output")
    impact_cmd.set_defaults(run=_impact)

    serve_cmd = commands.add_parser("serve", help="run the KServe model server on localhost with a project's model")
    serve_cmd.add_argument("spec", help="the project's spec, e.g. specs/digits.yaml")
    serve_cmd.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080)")
    serve_cmd.add_argument("--host", default="127.0.0.1",
                           help="address to bind (default 127.0.0.1, this machine only; 0.0.0.0 for every interface)")
    serve_cmd.set_defaults(run=_serve)

    doctor_cmd = commands.add_parser("doctor", help="look at the ingested data and say which spec keys fit it better")
    doctor_cmd.add_argument("spec", help="the project's spec, e.g. specs/digits.yaml")
    doctor_cmd.set_defaults(run=_doctor)

    report_cmd = commands.add_parser("report", help="markdown for a pull request: gate verdicts and metric changes")
    report_cmd.add_argument("spec", nargs="*", help="specs to report on (default: every spec in specs/)")
    report_cmd.add_argument("--rev", default="HEAD", help="base revision the metrics are compared with")
    report_cmd.set_defaults(run=_report)

    publish_cmd = commands.add_parser("publish", help="copy promoted bundles to the content-addressed storageUri "
                                      "their InferenceService names (run after a merge, beside `dvc push`)")
    publish_cmd.add_argument("spec", nargs="*", help="specs to publish (default: every project with a promoted model)")
    publish_cmd.add_argument("--dry-run", action="store_true", help="check and list what would be uploaded")
    publish_cmd.set_defaults(run=_publish)

    frames_cmd = commands.add_parser("frames", help="sample frames of videos (static stretches dropped) into a COCO "
                                     "or YOLO image set ready for box annotation")
    frames_cmd.add_argument("video", nargs="+", help="video files")
    frames_cmd.add_argument("--out", required=True, help="a new folder for the image set")
    names = frames_cmd.add_mutually_exclusive_group(required=True)
    names.add_argument("--spec", help="take the class names from this spec")
    names.add_argument("--classes", help="comma-separated class names")
    frames_cmd.add_argument("--fps", type=float, default=2.0, help="frames sampled per second (default 2)")
    frames_cmd.add_argument("--static-flow-px", type=float, default=0.3,
                            help="drop frames whose mean optical flow to the last kept one is below this (default 0.3)")
    frames_cmd.add_argument("--format", choices=("coco", "yolo"), default="coco", help="layout (default coco)")
    frames_cmd.set_defaults(run=_frames)

    captures_cmd = commands.add_parser("captures", help="the model server's captures (serving.capture)")
    captures_verbs = captures_cmd.add_subparsers(dest="verb", required=True)
    fetch_cmd = captures_verbs.add_parser("fetch", help="copy new captures into the spec's captures pool folder")
    fetch_cmd.add_argument("spec", help="the project's spec, e.g. specs/street.yaml")
    fetch_cmd.set_defaults(run=_captures)
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
