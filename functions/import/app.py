"""Import: start and watch Import from S3 for the tables an import creates (Step Functions task)."""

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
    ctx = stages.context()
    if event.get("action") == "start":
        result = stages.start_imports(ctx, event)
    else:
        result = stages.check_imports(ctx, event)
    if result["failed"]:
        logger.error("import failed", extra={"error": result["error"], "cause": result["cause"]})
        metrics.add_metric(name="ImportsFailed", unit=MetricUnit.Count, value=1)
    elif result["done"]:
        imported = sum(t["imported"] or 0 for t in result["tables"].values())
        metrics.add_metric(name="RowsImported", unit=MetricUnit.Count, value=imported)
        logger.info("imports done", extra={"tables": result["tables"]})
    return result
