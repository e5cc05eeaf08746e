"""`sluice verify --local`: a saved local run read back from its target, page by page."""

from __future__ import annotations

from pathlib import Path

from ..errors import SluiceError
from .runtime import LocalStack
from .state import LocalState, run_dir


def verify_local(run_id: str, *, tables=None, state_dir: Path | None = None) -> dict:
    """The saved run's manifest, staged pages and emulated target tables in a fresh local
    stack, and its verify function invoked as `sluice verify --stack` invokes it."""
    from .run import _local_session

    state = LocalState(state_dir or run_dir(run_id))
    meta = state.meta()
    if meta.get("run_id") != run_id:
        raise SluiceError(f"{state.folder} holds run {meta.get('run_id')}, not {run_id}")
    if not (state.dir / "s3").is_dir():
        raise SluiceError(
            f"run {run_id}: its saved state in {state.dir} keeps no staged pages (the contract, "
            "the key ranges' objects), which verification reads; only a run saved with them "
            "can be verified locally"
        )
    event = {"run_id": run_id, "deep": True}
    if tables:
        event["tables"] = list(tables)
    with (
        _local_session(meta),
        LocalStack(consumers=False, restore=state.restorer(("manifest", "s3", "targets"))) as st,
    ):
        return st.invoke("VerifyFunction", event)
