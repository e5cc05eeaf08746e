"""Progress: read the manifest and report whether every page is loaded (Step Functions task)."""

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext
from sluice import stages

logger = Logger()
tracer = Tracer()


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    logger.thread_safe_append_keys(run_id=event.get("run_id"))
    wait_until = stages.tail_wait_until(event, context.get_remaining_time_in_millis())
    return stages.progress(stages.context(), event, wait_until=wait_until)
