"""`periodize cohort`: synthetic athletes or digital twins."""

from __future__ import annotations

import argparse

from analysis.cli.common import _load_model


def _cohort(args: argparse.Namespace) -> int:
    from simulator.cohort import CohortConfig, generate_cohort, twin_cohort

    model = _load_model(args.model)
    config = CohortConfig(event_share=args.event_share)
    if args.twins:
        from physiology_model.data.loaders import load_exports

        frame = load_exports(args.twins).frame
        cohort = twin_cohort(model, frame, args.seed, config=config, model_dir=args.model)
    else:
        cohort = generate_cohort(model, args.n, args.seed, config=config, source=args.source,
                                 model_dir=args.model)
    cohort.save(args.out)
    kind = cohort.meta["kind"]
    print(f"wrote {args.out}: {cohort.n} {kind} athletes (seed {args.seed})")
    return 0


# -- train -------------------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction) -> None:
    """Add the sub-command to `periodize`'s parser."""
    cohort = sub.add_parser("cohort", help="draw synthetic athletes (or digital twins)")
    cohort.add_argument("--model", required=True,
                       help="world model directory (`shipped`: the one fitted on the shipped data)")
    cohort.add_argument("--n", type=int, default=200, help="number of synthetic athletes")
    cohort.add_argument("--seed", type=int, required=True)
    cohort.add_argument("--out", required=True, help="cohort file (.npz)")
    cohort.add_argument("--source", default=None, help="device population to draw from")
    cohort.add_argument("--event-share", type=float, default=0.0,
                        help="share of athletes with a planned event")
    cohort.add_argument("--twins", nargs="+", default=None,
                        help="export paths: digital twins of these real athletes instead")
    cohort.set_defaults(func=_cohort)
