"""Load: write a transformed page to DynamoDB or MySQL (S3 notifications via SQS in)."""

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext
from sluice import stages
from sluice.events import run_page_stage, s3_object_keys
from sluice.staging import PageRef

processor = BatchProcessor(event_type=EventType.SQS)
logger = Logger()
tracer = Tracer()
metrics = Metrics()


@tracer.capture_method
def record_handler(record: SQSRecord) -> None:
    ctx = stages.context()
    receives = int(record.attributes.approximate_receive_count or 1)
    for key in s3_object_keys(record.body):
        ref, _ = PageRef.from_key(key)
        logger.thread_safe_append_keys(run_id=ref.run_id, page=ref.label)
        result = run_page_stage(
            ctx, "load", lambda key=key: stages.load_page(ctx, key), ref, receives
        )
        metrics.add_metric(name="RowsLoaded", unit=MetricUnit.Count, value=result["rows"])
        metrics.add_metric(name="RowsRejected", unit=MetricUnit.Count, value=result["rejected"])
        metrics.add_metric(name="PageSeconds", unit=MetricUnit.Seconds, value=result["seconds"])
        if "write_units" in result:  # DynamoDB: capacity sent, and time held by the write_rate
            metrics.add_metric(
                name="WriteUnits", unit=MetricUnit.Count, value=result["write_units"]
            )
            metrics.add_metric(
                name="RateWaitSeconds",
                unit=MetricUnit.Seconds,
                value=result["rate_wait_ms"] / 1000,
            )
        logger.info("page loaded", extra=result)


@logger.inject_lambda_context
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict, context: LambdaContext) -> dict:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
