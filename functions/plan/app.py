"""Plan: validate the contract, prepare targets, cut tables into keyset pages (Step Functions task).
With `resume`, pick a planned run up again instead (`sluice resume`)."""

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
    if event.get("resume"):  # `sluice resume`: the run is planned already
        resumed = stages.resume_run(stages.context(), event)
        logger.thread_safe_append_keys(run_id=resumed["run_id"])
        logger.info("run resumed", extra={"pages": resumed["page_count"]})
        return resumed
    plan = stages.plan_run(stages.context(), event)
    logger.thread_safe_append_keys(run_id=plan["run_id"])
    logger.info("run planned", extra={"pages": plan["page_count"], "tables": len(plan["tables"])})
    metrics.add_metric(name="PagesPlanned", unit=MetricUnit.Count, value=plan["page_count"])
    return plan
