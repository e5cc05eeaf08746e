"""Verify: compare source, manifest and target counts and write the report (Step Functions task)."""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from sluice import stages

logger = Logger()
tracer = Tracer()
metrics = Metrics()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    logger.thread_safe_append_keys(run_id=event.get("run_id"))
    # With "deep": true (`sluice verify --run ID`), every page is read back from the target.
    report = stages.verify_run(stages.context(), event)
    if report.get("deep"):
        mismatched = sum(len(t["mismatched"]) for t in report["tables"].values())
        metrics.add_metric(name="PagesMismatched", unit=MetricUnit.Count, value=mismatched)
    metrics.add_metric(
        name="RunsVerified" if report["ok"] else "RunsNotVerified", unit=MetricUnit.Count, value=1
    )
    logger.info("run verified", extra={"ok": report["ok"], "verdict": report["verdict"]})
    return report
